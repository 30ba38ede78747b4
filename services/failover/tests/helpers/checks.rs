//! What a test reads of a running [`Cluster`]: the assignments and broker
//! statuses in the database, waits for them to settle or fail over, and
//! commands sent through the bridge with their final statuses.

use std::collections::HashMap;

use testkit::eventually;

use super::{Cluster, WAIT};

impl Cluster {
    /// Waits until every node has a confirmed assignment and is connected
    /// to the broker it names.
    pub async fn wait_settled(&self) {
        let settled = eventually(WAIT, || async {
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
        assert!(
            settled.is_some(),
            "nodes did not settle: {:?}",
            self.assignments().await
        );
    }

    /// Waits until no assignment names `broker`, every node is confirmed on
    /// another broker and connected there, and the failover event is closed.
    pub async fn wait_failed_over(&self, broker: &str) {
        let done = eventually(WAIT, || async {
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
        assert!(
            done.is_some(),
            "failover of {broker} did not finish: {:?}",
            self.assignments().await
        );
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

    pub async fn broker_status(&self, broker: &str) -> String {
        sqlx::query_scalar("SELECT status FROM brokers WHERE id = $1")
            .bind(broker)
            .fetch_one(self.pool())
            .await
            .expect("broker row")
    }

    /// Sends a `ping` to the node's first channel through the bridge; the
    /// HTTP status and `command_id`.
    pub async fn command(&self, node: &str) -> (u16, Option<String>) {
        let channel = self.first_channel(node);
        let zone: String = sqlx::query_scalar(
            "SELECT z.uid FROM nodes n JOIN zones z ON z.id = n.zone_id WHERE n.uid = $1",
        )
        .bind(node)
        .fetch_one(self.pool())
        .await
        .expect("node zone");
        let response = self
            .http
            .post(format!("{}/bridge/zones/{zone}/commands", self.bridge))
            .json(&serde_json::json!({"cmd":"ping","channel":channel,"node_uid":node}))
            .send()
            .await
            .expect("bridge answers");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
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
