//! Ingest: messages from every broker are checked, appended to the uplink
//! stream as one [`Pack`] per burst (the refused ones to the dead-letter
//! list) in one Redis round trip, and only then acknowledged to their broker.
//!
//! Two kinds never reach the stream: a time request is answered at once
//! ([`TimeSync`]), and the uplink of an unbound node (temp namespace) is only
//! counted, for device-registry owns it.
//!
//! Redis down: nothing is acknowledged; the burst is retried with a backoff
//! while the brokers hold the rest. Queue full: nothing is appended or
//! acknowledged until the writer has made room.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use common::metrics as m;
use common::mqtt::Inbound;
use common::mqtt::pool::BrokerPool;
use common::runtime::backoff::Backoff;
use proto::topics::{TIME_REQUEST, Topic, TopicError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backpressure::{Pressure, RateLimit};
use crate::dead_letter::DeadLetter;
use crate::drop_log::DropLog;
use crate::pack::KINDS;
use crate::pack::{Message, Pack};
use crate::queue::Queue;
use crate::time_sync::TimeSync;
use crate::uplink::{self, Body, Checks};

/// Messages appended per Redis round trip (one pack) at most; also how far
/// one instance may overshoot the queue's bound.
pub const MAX_BURST: usize = 1024;

/// Counters of one instance, shared with its tests and monitor.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Messages appended to the stream by this instance.
    pub accepted: AtomicU64,
    /// Messages refused (dead-lettered) by this instance.
    pub refused: AtomicU64,
    /// Messages of unbound nodes acknowledged without storing.
    pub unbound: AtomicU64,
    /// Time requests this instance answered (or tried to).
    pub time_requests: AtomicU64,
    /// The stream length last seen.
    pub queue_len: AtomicU64,
}

/// The label of a topic's kind for `uplink_received_total{kind}`: a kind
/// this service stores, else `other`.
fn kind_label(topic: &Result<Topic, TopicError>) -> &'static str {
    match topic {
        Ok(Topic::Node(t)) if KINDS.contains(&t.kind) => t.kind.as_str(),
        _ => "other",
    }
}

/// The ingest loop and what it uses.
pub struct Ingest {
    pub queue: Queue,
    /// Messages per pack at most: `TELEMETRY_BATCH_SIZE` (capped at
    /// [`MAX_BURST`]), so that one pack fits one write batch.
    pub max_pack: usize,
    pub brokers: BrokerPool,
    pub stats: Arc<IngestStats>,
    /// Answers time requests on the spot.
    pub time_sync: TimeSync,
    /// Rate-limited log lines for dead letters.
    pub drops: Arc<DropLog>,
    /// What decoding checks (the writer checks the same).
    pub checks: Checks,
}

impl Ingest {
    /// Runs until `stop` or until every broker connection is gone.
    pub async fn run(self, mut inbox: mpsc::Receiver<Inbound>, stop: CancellationToken) {
        let mut warn_limit = RateLimit::new(Duration::from_secs(10));
        let max_pack = self.max_pack.clamp(1, MAX_BURST);
        let mut burst: Vec<Inbound> = Vec::with_capacity(max_pack);
        loop {
            let received = tokio::select! {
                _ = stop.cancelled() => break,
                n = inbox.recv_many(&mut burst, max_pack) => n,
            };
            if received == 0 {
                break;
            }
            if !self.store(&burst, &mut warn_limit, &stop).await {
                break;
            }
            for message in burst.drain(..) {
                if let Some(conn) = self.brokers.get(&message.broker_id)
                    && let Err(e) = conn.ack(&message).await
                {
                    debug!(broker = %message.broker_id, error = %e, "Could not acknowledge; the broker will send it again.");
                }
            }
        }
        debug!("Ingest stopped.");
    }

    /// Appends a burst to Redis, waiting while the queue is full and retrying
    /// while Redis is down. False when stopped first (nothing acknowledged).
    async fn store(
        &self,
        burst: &[Inbound],
        warn_limit: &mut RateLimit,
        stop: &CancellationToken,
    ) -> bool {
        let now = Utc::now();
        let received_ms = now.timestamp_millis();
        let mut pack = Pack {
            received_ms,
            messages: Vec::with_capacity(burst.len()),
        };
        let mut dead = Vec::new();
        let mut reasons = Vec::new();
        let mut unbound = 0u64;
        for message in burst {
            if message.topic == TIME_REQUEST {
                self.stats.time_requests.fetch_add(1, Ordering::Relaxed);
                self.time_sync.answer(message);
                continue;
            }
            // The one parse of the topic: its kind travels in the pack.
            let topic = Topic::parse(&message.topic);
            let kind = kind_label(&topic);
            metrics::counter!(m::UPLINK_RECEIVED, "kind" => kind).increment(1);
            match uplink::decode_parsed(topic, &message.payload, now.timestamp(), self.checks) {
                Ok(u) if u.body == Body::Unbound => {
                    metrics::counter!(m::UPLINK_UNBOUND, "kind" => kind).increment(1);
                    unbound += 1;
                }
                Ok(u) => pack.messages.push(Message {
                    broker: message.broker_id.to_string(),
                    kind: u.topic.kind,
                    topic: message.topic.clone(),
                    payload: message.payload.to_vec(),
                }),
                Err(r) => {
                    self.drops
                        .note("dead-lettered", r.reason, &message.topic, &r.detail);
                    dead.push(
                        DeadLetter {
                            broker: &message.broker_id,
                            topic: &message.topic,
                            payload: &message.payload,
                            reason: r.reason,
                            detail: &r.detail,
                            at: now,
                        }
                        .record(),
                    );
                    reasons.push(r.reason);
                }
            }
        }
        self.stats.unbound.fetch_add(unbound, Ordering::Relaxed);
        if pack.messages.is_empty() && dead.is_empty() {
            return true;
        }
        let bound = self.queue.bound();
        // Retry delays: 100 ms doubling to 2 s.
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            if !pack.messages.is_empty()
                && Pressure::of(self.stats.queue_len.load(Ordering::Relaxed), bound)
                    == Pressure::Full
            {
                // Full: hold the burst unacknowledged until the writer makes room.
                match self.queue.stats().await {
                    Ok((len, _)) if Pressure::of(len, bound) != Pressure::Full => {
                        self.stats.queue_len.store(len, Ordering::Relaxed);
                    }
                    result => {
                        if let Ok((len, _)) = result {
                            self.stats.queue_len.store(len, Ordering::Relaxed);
                            metrics::gauge!(m::UPLINK_QUEUE_PRESSURE).set(Pressure::Full.gauge());
                        }
                        if warn_limit.ready(Instant::now()) {
                            warn!(
                                bound,
                                "Uplink queue is full: not acknowledging to the brokers until the writer catches up."
                            );
                        }
                        tokio::select! {
                            _ = stop.cancelled() => return false,
                            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        }
                        continue;
                    }
                }
            }
            match self.queue.push(&pack, &dead).await {
                Ok(len) => {
                    self.stats.queue_len.store(len, Ordering::Relaxed);
                    let pressure = Pressure::of(len, bound);
                    metrics::gauge!(m::UPLINK_QUEUE_PRESSURE).set(pressure.gauge());
                    if pressure >= Pressure::High && warn_limit.ready(Instant::now()) {
                        warn!(
                            len,
                            bound, "Uplink queue above 90 % of its bound; still accepting."
                        );
                    }
                    break;
                }
                Err(e) => {
                    metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
                    if warn_limit.ready(Instant::now()) {
                        warn!(error = %e, "Cannot append to the uplink queue: not acknowledging to the brokers; retrying.");
                    }
                    if !backoff.pause(stop).await {
                        return false;
                    }
                }
            }
        }
        self.stats
            .accepted
            .fetch_add(pack.messages.len() as u64, Ordering::Relaxed);
        self.stats
            .refused
            .fetch_add(reasons.len() as u64, Ordering::Relaxed);
        for reason in reasons {
            metrics::counter!(m::TELEMETRY_DROPPED, "reason" => reason).increment(1);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_labels_are_bounded() {
        let label = |topic: &str| kind_label(&Topic::parse(topic));
        assert_eq!(label("hydro/g/z/n/c/telemetry"), "telemetry");
        assert_eq!(label("hydro/g/z/n/lwt"), "lwt");
        assert_eq!(label("hydro/g/z/n/node_hello"), "other");
        assert_eq!(label("hydro/node_hello"), "other");
        assert_eq!(label("anything/else"), "other");
    }
}
