//! The writer: reads the uplink stream in batches (`TELEMETRY_BATCH_SIZE`
//! messages or `TELEMETRY_FLUSH_MS` after the first, whichever comes first),
//! writes each batch to PostgreSQL in one transaction, and acknowledges its
//! entries only after the commit.
//!
//! Up to `HISTORY_WRITERS` batches are written at once: one batch's commit
//! (its WAL flush) no longer holds up the next, and PostgreSQL works on
//! several. What must apply in arrival order — node status and last will —
//! keeps it: a batch holding one takes the `states` lock before it is handed
//! over (in reading order) and keeps it until it committed. Telemetry needs no
//! order: its rows are keyed by their own `ts`, and `telemetry_last` never
//! moves back in time. Every stored message of a bound node also tells where
//! the node is ([`node_state`]); [`ObservedCache`] keeps that from costing a
//! row update per message.
//!
//! At start it first finishes what this consumer read before a crash, then
//! claims what dead consumers left pending (and keeps doing so). PostgreSQL
//! down: the batch is retried with a backoff while ingest keeps filling the
//! stream. A batch PostgreSQL refuses (a constraint) is written message by
//! message, so one bad message is dead-lettered (`db_rejected`) instead of
//! stalling the queue.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::metrics as m;
use common::runtime::backoff::Backoff;
use common::store::zone_events::{self, ZoneEvent};
use proto::topics::NodeTopic;
use sqlx::PgPool;
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backpressure::RateLimit;
use crate::dead_letter::DeadLetter;
use crate::drop_log::DropLog;
use crate::node_rows;
use crate::node_state::{self, Happening, Ignored, Target, What};
use crate::observed::ObservedCache;
use crate::pack::Message;
use crate::queue::{Content, Entry, Queue};
use crate::resolver::{Misfit, NodeInfo, Resolver};
use crate::telemetry::{self, Sample};
use crate::uplink::{self, Body, Checks, Rejection, Uplink};

/// How long a stopping writer still tries to write what it holds.
const LAST_CHANCE: Duration = Duration::from_secs(5);

/// How the writer batches and takes over pending entries.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// This instance's consumer name in the group.
    pub consumer: String,
    /// Messages per batch.
    pub batch_size: usize,
    pub flush: Duration,
    /// Entries pending this long with another consumer are claimed.
    pub claim_idle: Duration,
    /// Batches written at once.
    pub writers: usize,
    /// What decoding checks (as ingest did).
    pub checks: Checks,
}

/// Retry delays: 100 ms doubling to 5 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// PostgreSQL refused the data (constraint, type): retrying the same
    /// statement cannot help.
    #[error("PostgreSQL refused the batch: {0}")]
    Refused(sqlx::Error),
    /// Unreachable, timed out, connection lost: retry later.
    #[error("PostgreSQL unavailable: {0}")]
    Unavailable(sqlx::Error),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(_) => WriteError::Refused(e),
            other => WriteError::Unavailable(other),
        }
    }
}

/// One message of a batch, with where it came from.
struct Item<'a> {
    message: &'a Message,
    received_ms: i64,
}

/// What a written batch leaves to do after the commit.
#[derive(Default)]
struct Written {
    inserted: u64,
    /// Readings absorbed as redeliveries.
    redelivered: u64,
    /// Telemetry `ts` of the batch, for the lag histogram.
    sample_ts: Vec<i64>,
    /// Indexes (into the batch's items) of refused messages.
    rejected: Vec<(usize, Rejection)>,
}

/// Whether a message changes a node's status, which must apply in order.
fn changes_status(topic: &str) -> bool {
    topic.ends_with("/status") || topic.ends_with("/lwt")
}

/// Messages in `entries`.
fn message_count(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|e| e.pack().map_or(0, |p| p.messages.len()))
        .sum()
}

/// Whether a message fits where its node is placed (greenhouse and zone),
/// and a reading its node's channel and metric. A last will is exempt: its
/// topic was fixed when the node connected, and may outlive a move.
fn placement_check(node: &NodeInfo, uplink: &Uplink) -> Result<(), Misfit> {
    let topic = &uplink.topic;
    let reading = match &uplink.body {
        Body::Lwt => return Ok(()),
        Body::Telemetry(t) => Some((
            topic.channel.as_deref().unwrap_or_default(),
            t.metric_type.as_str(),
        )),
        _ => None,
    };
    node.check(&topic.greenhouse, &topic.zone, reading)
}

/// The dead-letter reason and detail of a misfit.
fn misfit_rejection(misfit: Misfit, node: &NodeInfo, uplink: &Uplink) -> Rejection {
    let topic = &uplink.topic;
    let detail = match misfit {
        Misfit::Greenhouse | Misfit::Zone => format!(
            "node `{}` is in {}, not {}/{}",
            topic.node,
            node.placement(),
            topic.greenhouse,
            topic.zone
        ),
        Misfit::Channel => format!(
            "node `{}` has no channel `{}`",
            topic.node,
            topic.channel.as_deref().unwrap_or_default()
        ),
        Misfit::Metric => {
            let channel = topic.channel.as_deref().unwrap_or_default();
            let declared = node
                .channels
                .get(channel)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "no metric".into());
            let sent = match &uplink.body {
                Body::Telemetry(t) => t.metric_type.as_str(),
                _ => "",
            };
            format!(
                "channel `{channel}` of node `{}` measures {declared}, not {sent}",
                topic.node
            )
        }
    };
    Rejection::new(misfit.reason(), detail)
}

pub struct Writer {
    config: WriterConfig,
    shared: Arc<Shared>,
}

/// What every batch being written uses.
struct Shared {
    pool: PgPool,
    queue: Queue,
    resolver: tokio::sync::Mutex<Resolver>,
    /// Held by a batch with status or lwt messages until it committed.
    states: Arc<tokio::sync::Mutex<()>>,
    warn_limit: Mutex<RateLimit>,
    /// Which nodes of a batch may need their row changed.
    observed: ObservedCache,
    drops: Arc<DropLog>,
    checks: Checks,
}

impl Shared {
    fn warn_now(&self) -> bool {
        self.warn_limit
            .lock()
            .expect("rate limit lock")
            .ready(Instant::now())
    }
}

impl Writer {
    pub fn new(pool: PgPool, queue: Queue, config: WriterConfig, drops: Arc<DropLog>) -> Self {
        let checks = config.checks;
        Writer {
            config,
            shared: Arc::new(Shared {
                pool,
                queue,
                resolver: tokio::sync::Mutex::new(Resolver::default()),
                states: Arc::new(tokio::sync::Mutex::new(())),
                warn_limit: Mutex::new(RateLimit::new(Duration::from_secs(10))),
                observed: ObservedCache::default(),
                drops,
                checks,
            }),
        }
    }

    /// Runs until `stop`; what it holds is written (for at most
    /// [`LAST_CHANCE`]) before it returns.
    pub async fn run(self, stop: CancellationToken) {
        // Writes go on for a moment after `stop`, so a batch in hand is not
        // given up the instant the service is asked to stop.
        let writes = CancellationToken::new();
        let shared = &self.shared;
        shared.recover(&self.config, &stop).await;
        let claim_every = self.config.claim_idle.max(Duration::from_secs(1));
        let mut last_claim = Instant::now();
        let mut batch: Vec<Entry> = Vec::new();
        let mut in_batch = 0usize;
        // Messages per entry, to read about one batch's worth of entries.
        let mut per_entry = 1usize;
        let mut deadline: Option<Instant> = None;
        let mut backoff = RETRY;
        let mut in_flight = JoinSet::new();
        while !stop.is_cancelled() {
            while in_flight.try_join_next().is_some() {}
            if last_claim.elapsed() >= claim_every {
                last_claim = Instant::now();
                shared.claim_stale(&self.config, &stop).await;
            }
            let room = self.config.batch_size.saturating_sub(in_batch);
            let count = room.div_ceil(per_entry).max(1);
            let block = deadline.map_or(crate::queue::MAX_BLOCK_MS, |d| {
                u64::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(u64::MAX)
            });
            let read = tokio::select! {
                _ = stop.cancelled() => break,
                r = shared.queue.read_new(&self.config.consumer, count, block) => r,
            };
            match read {
                Ok(entries) => {
                    backoff = RETRY;
                    if !entries.is_empty() {
                        deadline.get_or_insert_with(|| Instant::now() + self.config.flush);
                        let messages = message_count(&entries);
                        per_entry = (messages / entries.len()).max(1);
                        in_batch += messages;
                    }
                    batch.extend(entries);
                }
                Err(e) => {
                    metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
                    if shared.warn_now() {
                        warn!(error = %e, "Cannot read the uplink queue; retrying.");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
            if !batch.is_empty()
                && (in_batch >= self.config.batch_size
                    || deadline.is_some_and(|d| Instant::now() >= d))
            {
                while in_flight.len() >= self.config.writers.max(1) {
                    in_flight.join_next().await;
                }
                let batch = std::mem::take(&mut batch);
                let order = shared.order_guard(&batch).await;
                in_flight.spawn(shared.clone().flush(batch, writes.clone(), order));
                in_batch = 0;
                deadline = None;
            }
        }
        let last_chance = writes.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LAST_CHANCE).await;
            last_chance.cancel();
        });
        if !batch.is_empty() {
            // Best effort: what is not written stays pending for the next start.
            let order = shared.order_guard(&batch).await;
            in_flight.spawn(shared.clone().flush(batch, writes.clone(), order));
        }
        in_flight.join_all().await;
        debug!("Uplink writer stopped.");
    }
}

impl Shared {
    /// The `states` lock when `batch` changes node statuses; taken in reading
    /// order, before the batch is handed to its task.
    async fn order_guard(&self, batch: &[Entry]) -> Option<OwnedMutexGuard<()>> {
        let changes = batch
            .iter()
            .filter_map(Entry::pack)
            .flat_map(|p| &p.messages)
            .any(|m| changes_status(&m.topic));
        if changes {
            Some(self.states.clone().lock_owned().await)
        } else {
            None
        }
    }

    /// Writes what this consumer read before a restart, then what dead
    /// consumers left behind.
    async fn recover(self: &Arc<Self>, config: &WriterConfig, stop: &CancellationToken) {
        let mut after = "0".to_owned();
        loop {
            let read = self
                .queue
                .read_own_pending(&config.consumer, config.batch_size, &after)
                .await;
            match read {
                Ok(entries) if entries.is_empty() => break,
                Ok(entries) => {
                    after = entries.last().map(|e| e.id.clone()).unwrap_or(after);
                    info!(
                        entries = entries.len(),
                        "Writing entries left pending by this instance's last run."
                    );
                    self.clone().flush(entries, stop.clone(), None).await;
                }
                Err(e) => {
                    warn!(error = %e, "Cannot read this consumer's pending entries; the claim sweep will take them.");
                    break;
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
        self.claim_stale(config, stop).await;
    }

    /// Claims and writes entries other consumers have held too long.
    async fn claim_stale(self: &Arc<Self>, config: &WriterConfig, stop: &CancellationToken) {
        let idle = u64::try_from(config.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let mut cursor = "0-0".to_owned();
        loop {
            let claimed = self
                .queue
                .autoclaim(&config.consumer, idle, &cursor, config.batch_size)
                .await;
            match claimed {
                Ok((next, entries)) => {
                    if !entries.is_empty() {
                        info!(
                            entries = entries.len(),
                            "Claimed entries a stopped consumer left pending."
                        );
                        let order = self.order_guard(&entries).await;
                        self.clone().flush(entries, stop.clone(), order).await;
                    }
                    if next == "0-0" || stop.is_cancelled() {
                        return;
                    }
                    cursor = next;
                }
                Err(e) => {
                    metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
                    debug!(error = %e, "Claim sweep failed; next time.");
                    return;
                }
            }
        }
    }

    /// Writes a batch (retrying while PostgreSQL is unavailable), dead-letters
    /// what it refused, then acknowledges every entry. Returns without
    /// acknowledging when stopped first: the entries stay pending. `_order`
    /// is released when it returns.
    #[tracing::instrument(name = "uplink_batch", skip_all, fields(entries = batch.len()))]
    async fn flush(
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
        let mut backoff = RETRY;
        let written = loop {
            match self.write(&items).await {
                Ok(w) => break w,
                Err(e) => {
                    metrics::counter!(m::UPLINK_DB_ERRORS).increment(1);
                    if self.warn_now() {
                        warn!(error = %e, messages = items.len(), "Cannot write the batch to PostgreSQL; retrying.");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        };
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
                    metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
                    if self.warn_now() {
                        warn!(error = %e, "Cannot acknowledge a written batch in Redis; retrying.");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
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

    /// Decodes, resolves and writes `items` (whose first is `offset` in the
    /// flushed batch) in one transaction.
    async fn write_items(&self, items: &[Item<'_>], offset: usize) -> Result<Written, WriteError> {
        let decoded: Vec<(usize, i64, Result<Uplink, Rejection>)> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let received = item.received_ms.div_euclid(1000);
                let m = item.message;
                (
                    i,
                    item.received_ms,
                    uplink::decode(&m.topic, &m.payload, received, self.checks),
                )
            })
            .collect();
        let topics: Vec<&NodeTopic> = decoded
            .iter()
            .filter_map(|(_, _, u)| {
                u.as_ref()
                    .ok()
                    .filter(|u| u.body != Body::Unbound)
                    .map(|u| &u.topic)
            })
            .collect();
        let mut resolver = self.resolver.lock().await;
        resolver
            .resolve(
                &self.pool,
                topics.iter().map(|t| t.node.as_str()),
                topics.iter().map(|t| t.zone.as_str()),
            )
            .await?;
        // A node that disagrees with its cached entry may just have moved:
        // look it up again before refusing (at most once a second per node).
        let misfits: Vec<&str> = decoded
            .iter()
            .filter_map(|(_, _, u)| u.as_ref().ok())
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

        let mut written = Written::default();
        let mut samples = Vec::new();
        // Item index of each sample, to refuse a same-second duplicate.
        let mut sample_items = Vec::new();
        // Messages of bound nodes, in arrival order: (item, uplink, at, node, zone).
        let mut accepted = Vec::new();
        for (i, received_ms, uplink) in decoded {
            let uplink = match uplink {
                Ok(u) => u,
                Err(r) => {
                    written.rejected.push((offset + i, r));
                    continue;
                }
            };
            // Ingest never stores these; one from an older version is skipped.
            if uplink.body == Body::Unbound {
                continue;
            }
            let at = DateTime::from_timestamp_millis(received_ms).unwrap_or_else(Utc::now);
            let topic = &uplink.topic;
            let Some(zone_id) = resolver.zone(&topic.zone) else {
                written.rejected.push((
                    offset + i,
                    Rejection::new("zone_id_not_found", format!("no zone `{}`", topic.zone)),
                ));
                continue;
            };
            let Some(node) = resolver.node(&topic.node) else {
                written.rejected.push((
                    offset + i,
                    Rejection::new("node_id_not_found", format!("no node `{}`", topic.node)),
                ));
                continue;
            };
            if let Err(misfit) = placement_check(node, &uplink) {
                written
                    .rejected
                    .push((offset + i, misfit_rejection(misfit, node, &uplink)));
                continue;
            }
            if let Body::Telemetry(t) = &uplink.body {
                samples.push(Sample {
                    node_id: node.id,
                    zone_id: Some(zone_id),
                    channel: topic.channel.clone().unwrap_or_default(),
                    metric_type: t.metric_type.as_str(),
                    value: t.value,
                    raw: t.raw,
                    stable: t.stable,
                    ts: t.ts,
                });
                sample_items.push(offset + i);
            }
            accepted.push((i, uplink, at, node.id, zone_id));
        }
        drop(resolver);

        let mut happenings = Vec::with_capacity(accepted.len());
        let mut beats = Vec::new();
        let mut events = Vec::new();
        for (i, uplink, at, node_id, zone_id) in &accepted {
            let topic = &uplink.topic;
            let target = Target {
                node_id: *node_id,
                zone_id: Some(*zone_id),
                node_uid: &topic.node,
            };
            let what = match &uplink.body {
                Body::Telemetry(_) => What::Uplink("telemetry"),
                Body::Status(s) => What::Status {
                    state: s.status,
                    ts: s.ts,
                },
                Body::Lwt => What::Lwt,
                Body::Heartbeat(h) => {
                    beats.push((*node_id, h, *at));
                    What::Uplink("heartbeat")
                }
                Body::Event(e) => {
                    let mut payload = serde_json::Value::Object(e.fields.clone());
                    payload["event_code"] = e.event_code.clone().into();
                    payload["node_uid"] = topic.node.clone().into();
                    if let Some(channel) = &topic.channel {
                        payload["channel"] = channel.clone().into();
                    }
                    events.push(ZoneEvent {
                        zone_id: Some(*zone_id),
                        kind: e.zone_event_type().into(),
                        payload,
                        at: Some(*at),
                    });
                    What::Uplink("event")
                }
                Body::Error(e) => {
                    events.push(node_rows::node_error(target, e, *at));
                    What::Uplink("error")
                }
                Body::Unbound => continue,
            };
            happenings.push(Happening {
                target,
                broker: &items[*i].message.broker,
                at: *at,
                what,
            });
        }
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
        let known = node_rows::lock(&mut tx, &ids).await?;
        let plan = node_state::plan(&known, &happenings);
        node_rows::apply(&mut tx, &plan).await?;
        node_rows::heartbeats(&mut tx, &beats).await?;
        events.extend(plan.events.iter().cloned());
        zone_events::insert(&mut *tx, &events).await?;
        tx.commit().await?;

        self.observed.remember(plan.after);
        for (h, why) in &plan.ignored {
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
