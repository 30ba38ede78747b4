//! Writing one batch: decode, resolve, plan, commit (retried while
//! PostgreSQL is unavailable; message by message when it refuses the
//! batch), then dead-letter what was refused and acknowledge the entries.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::metrics as m;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::plan::{self, Decoded, placement_check};
use super::{RETRY, Shared, WriteError, Written};
use crate::dead_letter::DeadLetter;
use crate::pack::Message;
use crate::queue::{Content, Entry};
use crate::uplink::{self, Body, Rejection, Uplink};

/// One message of a batch, with where it came from.
struct Item<'a> {
    message: &'a Message,
    received_ms: i64,
}

impl Shared {
    /// Writes a batch (retrying while PostgreSQL is unavailable), dead-letters
    /// what it refused, then acknowledges every entry. Returns without
    /// acknowledging when stopped first: the entries stay pending. `_order`
    /// is released when it returns.
    #[tracing::instrument(
        name = "uplink_batch",
        skip_all,
        fields(entries = batch.len(), messages, rejected)
    )]
    pub(super) async fn flush(
        self: Arc<Self>,
        mut batch: Vec<Entry>,
        stop: CancellationToken,
        _order: Option<OwnedMutexGuard<()>>,
    ) {
        let mut seen = HashSet::new();
        batch.retain(|e| seen.insert(e.id.clone()));
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let items: Vec<Item> = batch
            .iter()
            .filter_map(Entry::pack)
            .flat_map(|p| {
                p.messages.iter().map(|message| Item {
                    message,
                    received_ms: p.received_ms,
                })
            })
            .collect();
        tracing::Span::current().record("messages", items.len());
        let mut backoff = RETRY;
        let written = loop {
            match self.write(&items).await {
                Ok(w) => break w,
                Err(e) => {
                    metrics::counter!(m::UPLINK_DB_ERRORS).increment(1);
                    if self.warn_now() {
                        warn!(error = %e, messages = items.len(), "Cannot write the batch to PostgreSQL; retrying.");
                    }
                    if !backoff.pause(&stop).await {
                        return;
                    }
                }
            }
        };
        tracing::Span::current().record("rejected", written.rejected.len());
        let now = Utc::now();
        let mut records: Vec<String> = written
            .rejected
            .iter()
            .map(|(i, r)| {
                let m = items[*i].message;
                self.drops
                    .note("dead-lettered", r.reason, &m.topic, &r.detail);
                DeadLetter {
                    broker: &m.broker,
                    topic: &m.topic,
                    payload: &m.payload,
                    reason: r.reason,
                    detail: &r.detail,
                    at: now,
                }
                .record()
            })
            .collect();
        for entry in &batch {
            if let Content::Unreadable { raw, why } = &entry.content {
                let detail = format!("stream entry {}: {why}", entry.id);
                self.drops
                    .note("dead-lettered", "unreadable_queue_entry", "", &detail);
                records.push(
                    DeadLetter {
                        broker: "",
                        topic: "",
                        payload: raw,
                        reason: "unreadable_queue_entry",
                        detail: &detail,
                        at: now,
                    }
                    .record(),
                );
                metrics::counter!(m::TELEMETRY_DROPPED, "reason" => "unreadable_queue_entry")
                    .increment(1);
            }
        }
        let entries: Vec<&Entry> = batch.iter().collect();
        let mut backoff = RETRY;
        loop {
            let done = async {
                self.queue.push_dead(&records).await?;
                self.queue.ack(&entries).await
            };
            match done.await {
                Ok(()) => break,
                Err(e) => {
                    self.redis_failed(&e, "Cannot acknowledge a written batch in Redis");
                    if !backoff.pause(&stop).await {
                        return;
                    }
                }
            }
        }
        for (_, r) in &written.rejected {
            metrics::counter!(m::TELEMETRY_DROPPED, "reason" => r.reason).increment(1);
        }
        metrics::counter!(m::TELEMETRY_INSERTED).increment(written.inserted);
        metrics::counter!(m::TELEMETRY_REDELIVERED).increment(written.redelivered);
        metrics::histogram!(m::UPLINK_BATCH_SIZE).record(items.len() as f64);
        metrics::histogram!(m::UPLINK_FLUSH_DURATION).record(started.elapsed().as_secs_f64());
        let now_ms = now.timestamp_millis();
        let lag = metrics::histogram!(m::TELEMETRY_LAG);
        for ts in written.sample_ts {
            lag.record((now_ms - ts * 1000).max(0) as f64 / 1000.0);
        }
    }

    /// One transaction for the batch; if PostgreSQL refuses it, each entry in
    /// a transaction of its own, refused entries becoming `db_rejected`.
    async fn write(&self, items: &[Item<'_>]) -> Result<Written, WriteError> {
        match self.write_items(items, 0).await {
            Err(WriteError::Refused(e)) if items.len() > 1 => {
                warn!(error = %e, messages = items.len(), "PostgreSQL refused a batch; writing its messages one by one.");
                let mut all = Written::default();
                for (i, item) in items.iter().enumerate() {
                    match self.write_items(std::slice::from_ref(item), i).await {
                        Ok(w) => {
                            all.inserted += w.inserted;
                            all.redelivered += w.redelivered;
                            all.sample_ts.extend(w.sample_ts);
                            all.rejected.extend(w.rejected);
                        }
                        Err(WriteError::Refused(e)) => {
                            all.rejected
                                .push((i, Rejection::new("db_rejected", e.to_string())));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(all)
            }
            Err(WriteError::Refused(e)) => Ok(Written {
                rejected: vec![(0, Rejection::new("db_rejected", e.to_string()))],
                ..Written::default()
            }),
            other => other,
        }
    }

    /// Decodes, resolves, plans and writes `items` (whose first is `offset`
    /// in the flushed batch) in one transaction.
    async fn write_items(&self, items: &[Item<'_>], offset: usize) -> Result<Written, WriteError> {
        let decoded: Vec<Decoded> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let m = item.message;
                let received = item.received_ms.div_euclid(1000);
                Decoded {
                    index: offset + i,
                    broker: &m.broker,
                    at: DateTime::from_timestamp_millis(item.received_ms).unwrap_or_else(Utc::now),
                    uplink: uplink::decode_stored(
                        m.kind,
                        &m.topic,
                        &m.payload,
                        received,
                        self.checks,
                    ),
                }
            })
            .collect();
        let bound: Vec<&Uplink> = decoded
            .iter()
            .filter_map(|d| d.uplink.as_ref().ok())
            .filter(|u| u.body != Body::Unbound)
            .collect();
        let mut resolver = self.resolver.lock().await;
        resolver
            .resolve(
                &self.pool,
                bound.iter().map(|u| u.topic.node.as_str()),
                bound.iter().map(|u| u.topic.zone.as_str()),
            )
            .await?;
        // A node that disagrees with its cached entry may just have moved:
        // look it up again before refusing (at most once a second per node).
        let misfits: Vec<&str> = bound
            .iter()
            .filter(|u| {
                resolver
                    .node(&u.topic.node)
                    .is_some_and(|n| placement_check(n, u).is_err())
            })
            .map(|u| u.topic.node.as_str())
            .collect();
        if resolver.forget_stale(misfits.iter().copied()) {
            resolver
                .resolve(&self.pool, misfits.iter().copied(), std::iter::empty())
                .await?;
        }
        let plan = plan::plan(&decoded, &resolver);
        drop(resolver);
        Ok(self.commit(plan).await?)
    }
}
