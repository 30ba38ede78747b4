//! What a test reads of a running [`Cluster`]: the assignments and broker
//! statuses in the database, waits for them to settle or fail over, and
//! commands sent through the bridge with their final statuses.

use std::collections::HashMap;

use testkit::eventually;

use super::{Cluster, Options, WAIT};

impl Cluster {
    /// A cluster with `options`, once settled ([`Cluster::wait_settled`]).
    pub async fn settled(options: Options) -> Cluster {
        let c = Cluster::start(options).await.expect("cluster starts");
        c.wait_settled().await;
        c
    }

    /// Waits (up to [`WAIT`]) until `check` answers; panics saying `what`,
    /// with the assignments as they are, when it never does.
    pub async fn until<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<()>>,
    {
        if eventually(WAIT, check).await.is_none() {
            panic!("{what}: {:?}", self.assignments().await);
        }
    }

    /// Waits until every node has a confirmed assignment and is connected
    /// to the broker it names.
    pub async fn wait_settled(&self) {
        self.until("nodes did not settle", || async {
            let rows = self.assignments().await;
            let all_confirmed = rows.len() == self.sim_nodes.len()
                && rows.iter().all(|(_, _, confirmed)| *confirmed);
            let on_theirs = rows.iter().all(|(uid, broker, _)| {
                self.sim_nodes
                    .iter()
                    .find(|n| n.uid() == uid)
                    .is_some_and(|n| {
                        n.is_connected() && n.link().broker_url() == self.url_of(broker)
                    })
            });
            (all_confirmed && on_theirs).then_some(())
        })
        .await;
    }

    /// Waits until no assignment names `broker`, every node is confirmed on
    /// another broker and connected there, and the failover event is closed.
    pub async fn wait_failed_over(&self, broker: &str) {
        let what = format!("failover of {broker} did not finish");
        self.until(&what, || async {
            let rows = self.assignments().await;
            let moved = rows.iter().all(|(_, b, confirmed)| b != broker && *confirmed);
            let closed: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM failover_events WHERE broker_id = $1 AND finished_at IS NOT NULL)",
            )
            .bind(broker)
            .fetch_one(self.pool())
            .await
            .ok()?;
            (moved && closed).then_some(())
        })
        .await;
    }

    /// (node uid, broker, confirmed) for every assignment.
    pub async fn assignments(&self) -> Vec<(String, String, bool)> {
        sqlx::query_as(
            "SELECT n.uid, a.broker_id, a.confirmed_at IS NOT NULL FROM node_broker_assignments a \
             JOIN nodes n ON n.id = a.node_id ORDER BY n.uid",
        )
        .fetch_all(self.pool())
        .await
        .expect("assignments")
    }

    /// The nodes assigned to `broker`.
    pub async fn nodes_on(&self, broker: &str) -> Vec<String> {
        self.assignments()
            .await
            .into_iter()
            .filter(|(_, b, _)| b == broker)
            .map(|(uid, _, _)| uid)
            .collect()
    }

    /// The text `sql` selects for `$1` = `key`; panics saying `what` when
    /// there is none.
    pub async fn text_of(&self, sql: &str, key: &str) -> String {
        testkit::scalar_for(self.pool(), sql, key).await
    }

    pub async fn broker_status(&self, broker: &str) -> String {
        let sql = "SELECT status FROM brokers WHERE id = $1";
        self.text_of(sql, broker).await
    }

    /// Sends a `ping` to the node's first channel through the bridge; the
    /// HTTP status and `command_id`.
    pub async fn command(&self, node: &str) -> (u16, Option<String>) {
        let channel = self.first_channel(node);
        let sql = "SELECT z.uid FROM nodes n JOIN zones z ON z.id = n.zone_id WHERE n.uid = $1";
        let zone = self.text_of(sql, node).await;
        let request = self
            .http
            .post(format!("{}/bridge/zones/{zone}/commands", self.bridge));
        let ping = serde_json::json!({"cmd":"ping","channel":channel,"node_uid":node});
        let (status, body) = testkit::http::call(request, None, Some(ping.to_string())).await;
        (
            status,
            body["data"]["command_id"].as_str().map(str::to_owned),
        )
    }

    /// Waits for every command to reach a final status; returns them by status.
    pub async fn final_statuses(&self, ids: &[String]) -> HashMap<String, usize> {
        let finished = eventually(WAIT, || async {
            let statuses: Vec<(String, bool)> = sqlx::query_as(
                "SELECT status, finished_at IS NOT NULL FROM commands WHERE cmd_id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(self.pool())
            .await
            .ok()?;
            (statuses.len() == ids.len() && statuses.iter().all(|(_, f)| *f)).then_some(statuses)
        })
        .await
        .expect("every command finishes");
        let mut counts = HashMap::new();
        for (s, _) in finished {
            *counts.entry(s).or_default() += 1;
        }
        counts
    }
}
