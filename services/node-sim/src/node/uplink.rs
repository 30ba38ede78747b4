//! What a classic node publishes: status on every (re)connect, telemetry
//! and heartbeats on their staggered intervals, and the one reading every
//! simulated node reports ([`reading`], shared with firmware mode).

use std::sync::Arc;
use std::time::Duration;

use proto::payloads::{Heartbeat, MetricType, NodeState, Status, Telemetry};
use proto::topics::{TopicKind, channel_topic, node_topic};
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info};

use super::{ACKED_TS_KEPT, Inner, lock, now_secs, sensors};
use crate::metrics as m;
use crate::physics::{Physics, current_hour};

/// One reading of `metric` at `ts`, as every simulated node reports it
/// (classic and firmware mode alike).
pub(crate) fn reading(
    physics: &Physics,
    metric: MetricType,
    unit: Option<&str>,
    ts: i64,
) -> Telemetry {
    Telemetry {
        metric_type: metric,
        value: physics.reading(metric),
        ts,
        unit: unit.map(str::to_owned),
        raw: None,
        stub: None,
        stable: matches!(metric, MetricType::Ph | MetricType::Ec).then_some(true),
        flow_active: (metric == MetricType::FlowRate).then(|| physics.pumping()),
        corrections_allowed: None,
        tds: None,
        health: None,
    }
}

impl Inner {
    pub(super) fn topic(&self, channel: &str, kind: TopicKind) -> String {
        channel_topic(
            &self.ctx.greenhouse,
            &self.spec.zone,
            &self.spec.uid,
            channel,
            kind,
        )
    }

    pub(super) async fn publish(
        &self,
        kind: &'static str,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> bool {
        match self.link.connection().publish(topic, payload, retain).await {
            Ok(()) => true,
            Err(e) => {
                metrics::counter!(m::PUBLISH_ERRORS, "kind" => kind).increment(1);
                debug!(node = %self.spec.uid, kind, error = %e, "Publish failed.");
                false
            }
        }
    }

    /// Publishes `message` on the node's own `kind` topic (status, heartbeat).
    async fn publish_node(&self, kind: TopicKind, message: &impl Serialize, retain: bool) {
        let topic = node_topic(&self.ctx.greenhouse, &self.spec.zone, &self.spec.uid, kind);
        let payload = serde_json::to_vec(message).expect("a payload serialises");
        self.publish(kind.as_str(), &topic, payload, retain).await;
    }

    async fn publish_status(&self, state: NodeState) {
        let status = Status {
            status: state,
            ts: now_secs(),
        };
        self.publish_node(TopicKind::Status, &status, true).await;
    }

    /// Status on every (re)connect, telemetry and heartbeats on their
    /// intervals, each node starting at a random point of its period so that
    /// a fleet does not publish in lockstep.
    pub(super) async fn run_uplink(self: Arc<Self>) {
        let mut connected = self.link.connected_watch();
        let mut telemetry = staggered_interval(self.ctx.telemetry_interval);
        let mut heartbeat = staggered_interval(self.ctx.heartbeat_interval);
        let mut last_step = Instant::now();
        if *connected.borrow_and_update() {
            self.spawn_status_online();
        }
        loop {
            tokio::select! {
                _ = self.loops.cancelled() => break,
                changed = connected.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if *connected.borrow_and_update() {
                        info!(node = %self.spec.uid, "Node online.");
                        self.spawn_status_online();
                    }
                }
                _ = telemetry.tick() => {
                    let now = Instant::now();
                    lock(&self.physics).step((now - last_step).as_secs_f64(), current_hour());
                    last_step = now;
                    // Sent beside the loop, as the firmware's MQTT client
                    // queues a publish and goes on: a publish waiting on a
                    // dying connection must not stop the next readings
                    // (cut off, they go to the link's offline buffer).
                    let node = self.clone();
                    self.tasks
                        .spawn(async move { node.publish_telemetry(None).await });
                }
                _ = heartbeat.tick() => {
                    if self.link.is_connected() {
                        let node = self.clone();
                        self.tasks.spawn(async move { node.publish_heartbeat().await });
                    }
                }
            }
        }
    }

    /// Publishes ONLINE beside the uplink loop: a connection that dies right
    /// after it came up holds the publish until its timeout, and the loop
    /// must go on making readings meanwhile (into the offline buffer).
    fn spawn_status_online(self: &Arc<Self>) {
        let node = self.clone();
        self.tasks
            .spawn(async move { node.publish_status(NodeState::Online).await });
    }

    /// One reading per sensor channel (or only `only`), published together.
    pub(super) async fn publish_telemetry(&self, only: Option<&str>) {
        let ts = now_secs();
        let messages: Vec<(&'static str, String, Vec<u8>)> = {
            let physics = lock(&self.physics);
            sensors(&self.spec)
                .filter(|(c, _)| only.is_none_or(|o| o == c.channel))
                .map(|(c, metric)| {
                    let t = reading(&physics, metric, c.unit, ts);
                    let payload = serde_json::to_vec(&t).expect("telemetry serialises");
                    (
                        c.channel,
                        self.topic(c.channel, TopicKind::Telemetry),
                        payload,
                    )
                })
                .collect()
        };
        // All channels at once: one node's readings wait for one round trip
        // to the broker, not one per channel.
        let sent = futures::future::join_all(messages.into_iter().map(
            |(channel, topic, payload)| async move {
                self.link
                    .send_telemetry(topic, payload)
                    .await
                    .then_some(channel)
            },
        ))
        .await;
        let mut ok = 0u64;
        let mut repeated = 0u64;
        {
            let mut acked = lock(&self.acked_ts);
            for channel in sent.into_iter().flatten() {
                ok += 1;
                let seen = acked.entry(channel).or_default();
                if seen.contains(&ts) {
                    repeated += 1;
                } else {
                    seen.push_back(ts);
                    if seen.len() > ACKED_TS_KEPT {
                        seen.pop_front();
                    }
                }
            }
        }
        metrics::counter!(m::TELEMETRY_PUBLISHED).increment(ok);
        if repeated > 0 {
            metrics::counter!(m::TELEMETRY_REPEATED_KEYS).increment(repeated);
        }
    }

    async fn publish_heartbeat(&self) {
        let heartbeat = Heartbeat {
            uptime: self.started.elapsed().as_secs(),
            free_heap: rand::random_range(96_000..=104_000),
            rssi: Some(rand::random_range(-80..=-40)),
            fw_version: Some(env!("CARGO_PKG_VERSION").into()),
        };
        self.publish_node(TopicKind::Heartbeat, &heartbeat, false)
            .await;
    }
}

/// A ticker of `period` whose first tick falls at a random point of its
/// first period, so that a fleet of nodes does not publish in lockstep; a
/// late tick is not made up for.
pub(crate) fn staggered_interval(period: Duration) -> tokio::time::Interval {
    let ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let first = Instant::now() + Duration::from_millis(rand::random_range(0..ms));
    let mut ticker = tokio::time::interval_at(first, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}
