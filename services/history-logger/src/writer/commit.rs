//! Writing a [`BatchPlan`] in one transaction: readings (`telemetry_samples`,
//! `telemetry_last`), the node rows the plan's nodes leave (locked first, in
//! id order), heartbeats, alerts and zone events. Every statement is a
//! `common::store` function; the node status rules between the lock and the
//! update are [`node_state::plan`], pure.

use common::metrics as m;
use common::store::{alerts, nodes, zone_events};
use serde_json::json;

use super::plan::BatchPlan;
use super::{Shared, Written};
use crate::node_state::{self, Ignored, Known, NODE_OFFLINE_ALERT};
use crate::telemetry;
use crate::uplink::Rejection;

impl Shared {
    /// Writes `plan` and commits; the readings refused as `same_second` come
    /// back in [`Written::rejected`].
    pub(super) async fn commit(&self, plan: BatchPlan<'_>) -> Result<Written, sqlx::Error> {
        let BatchPlan {
            samples,
            sample_items,
            mut happenings,
            heartbeats,
            mut events,
            rejected,
        } = plan;
        let mut written = Written {
            rejected,
            ..Written::default()
        };
        // Only nodes whose row may change are locked and planned.
        let ids = self.observed.due(&happenings);
        happenings.retain(|h| ids.binary_search(&h.target.node_id).is_ok());

        let mut tx = self.pool.begin().await?;
        let outcome = telemetry::write(&mut tx, &samples).await?;
        written.inserted = outcome.inserted;
        written.redelivered = outcome.redelivered;
        for (k, s) in samples.iter().enumerate() {
            if outcome.refused.binary_search(&k).is_err() {
                written.sample_ts.push(s.ts);
            }
        }
        for k in outcome.refused {
            let s = &samples[k];
            written.rejected.push((
                sample_items[k],
                Rejection::new(
                    "same_second",
                    format!(
                        "another {} reading of channel `{}` at ts {} is stored; this one ({}) is not",
                        s.metric_type, s.channel, s.ts, s.value
                    ),
                ),
            ));
        }
        let known = Known::by_id(nodes::lock_states(&mut tx, &ids).await?);
        let states = node_state::plan(&known, &happenings);
        nodes::update_states(&mut tx, &states.rows).await?;
        alerts::resolve_for_nodes(&mut *tx, NODE_OFFLINE_ALERT, &states.resolve).await?;
        let raise: Vec<_> = states
            .raise
            .iter()
            .map(|(t, source)| {
                let details = json!({ "node_uid": t.node_uid, "source": source });
                (t.zone_id, t.node_id, details)
            })
            .collect();
        alerts::raise_for_nodes(&mut *tx, NODE_OFFLINE_ALERT, &raise).await?;
        nodes::record_heartbeats(&mut tx, &heartbeats).await?;
        events.extend(states.events.iter().cloned());
        zone_events::insert(&mut *tx, &events).await?;
        tx.commit().await?;

        self.observed.remember(states.after);
        for (h, why) in &states.ignored {
            metrics::counter!(m::NODE_STATUS_IGNORED, "reason" => why.reason()).increment(1);
            let detail = match why {
                Ignored::OtherBroker => format!(
                    "a status or last will of node `{}` from broker `{}`, which is not the broker the node is observed on",
                    h.target.node_uid, h.broker
                ),
                Ignored::Stale => format!(
                    "an ONLINE of node `{}` on broker `{}` older than its last observed uplink (a retained replay)",
                    h.target.node_uid, h.broker
                ),
            };
            self.drops
                .note("status ignored", why.reason(), h.target.node_uid, &detail);
        }
        Ok(written)
    }
}
