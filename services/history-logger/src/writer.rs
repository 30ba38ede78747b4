//! The writer: reads the uplink stream in batches (`TELEMETRY_BATCH_SIZE`
//! entries or `TELEMETRY_FLUSH_MS` after the first, whichever comes first),
//! writes each batch to PostgreSQL in one transaction, and acknowledges its
//! entries only after the commit.
//!
//! At start it first finishes what this consumer read before a crash, then
//! claims what dead consumers left pending (and keeps doing so). PostgreSQL
//! down: the batch is retried with a backoff while ingest keeps filling the
//! stream. A batch PostgreSQL refuses (a constraint) is written entry by
//! entry, so one bad entry is dead-lettered (`db_rejected`) instead of
//! stalling the queue.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::metrics as m;
use common::payloads::NodeState;
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backpressure::RateLimit;
use crate::dead_letter::DeadLetter;
use crate::node_state::{self, Target};
use crate::queue::{Entry, NewEntry, Queue};
use crate::resolver::Resolver;
use crate::telemetry::{self, Sample};
use crate::uplink::{self, Body, Rejection, Uplink};

/// How the writer batches and takes over pending entries.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// This instance's consumer name in the group.
    pub consumer: String,
    pub batch_size: usize,
    pub flush: Duration,
    /// Entries pending this long with another consumer are claimed.
    pub claim_idle: Duration,
}

/// Retry delays: 100 ms doubling to 5 s.
#[derive(Debug, Default)]
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let ms = (100u64 << self.0.min(6)).min(5_000);
        self.0 += 1;
        Duration::from_millis(ms)
    }
}

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

/// What a written batch leaves to do after the commit.
#[derive(Default)]
struct Written {
    inserted: u64,
    /// Telemetry `ts` of the batch, for the lag histogram.
    sample_ts: Vec<i64>,
    rejected: Vec<(usize, Rejection)>,
}

pub struct Writer {
    pool: PgPool,
    queue: Queue,
    config: WriterConfig,
    resolver: Resolver,
    warn_limit: RateLimit,
}

impl Writer {
    pub fn new(pool: PgPool, queue: Queue, config: WriterConfig) -> Self {
        Writer {
            pool,
            queue,
            config,
            resolver: Resolver::default(),
            warn_limit: RateLimit::new(Duration::from_secs(10)),
        }
    }

    /// Runs until `stop`; a partial batch is written before it returns.
    pub async fn run(mut self, stop: CancellationToken) {
        self.recover(&stop).await;
        let claim_every = self.config.claim_idle.max(Duration::from_secs(1));
        let mut last_claim = Instant::now();
        let mut batch: Vec<Entry> = Vec::with_capacity(self.config.batch_size);
        let mut deadline: Option<Instant> = None;
        let mut backoff = Backoff::default();
        while !stop.is_cancelled() {
            if last_claim.elapsed() >= claim_every {
                last_claim = Instant::now();
                self.claim_stale(&stop).await;
            }
            let room = self.config.batch_size - batch.len();
            let block = deadline.map_or(crate::queue::MAX_BLOCK_MS, |d| {
                u64::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(u64::MAX)
            });
            let read = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.queue.read_new(&self.config.consumer, room, block) => r,
            };
            match read {
                Ok(entries) => {
                    backoff = Backoff::default();
                    if !entries.is_empty() && deadline.is_none() {
                        deadline = Some(Instant::now() + self.config.flush);
                    }
                    batch.extend(entries);
                }
                Err(e) => {
                    metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
                    if self.warn_limit.ready(Instant::now()) {
                        warn!(error = %e, "Cannot read the uplink queue; retrying.");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                }
            }
            if batch.len() >= self.config.batch_size
                || deadline.is_some_and(|d| Instant::now() >= d)
            {
                self.flush(std::mem::take(&mut batch), &stop).await;
                deadline = None;
            }
        }
        if !batch.is_empty() {
            // Best effort: what is not written stays pending for the next start.
            let last_chance = CancellationToken::new();
            let guard = last_chance.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                guard.cancel();
            });
            self.flush(batch, &last_chance).await;
        }
        debug!("Uplink writer stopped.");
    }

    /// Writes what this consumer read before a restart, then what dead
    /// consumers left behind.
    async fn recover(&mut self, stop: &CancellationToken) {
        let mut after = "0".to_owned();
        loop {
            let read = self
                .queue
                .read_own_pending(&self.config.consumer, self.config.batch_size, &after)
                .await;
            match read {
                Ok(entries) if entries.is_empty() => break,
                Ok(entries) => {
                    after = entries.last().map(|e| e.id.clone()).unwrap_or(after);
                    info!(
                        entries = entries.len(),
                        "Writing entries left pending by this instance's last run."
                    );
                    self.flush(entries, stop).await;
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
        self.claim_stale(stop).await;
    }

    /// Claims and writes entries other consumers have held too long.
    async fn claim_stale(&mut self, stop: &CancellationToken) {
        let idle = u64::try_from(self.config.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let mut cursor = "0-0".to_owned();
        loop {
            let claimed = self
                .queue
                .autoclaim(&self.config.consumer, idle, &cursor, self.config.batch_size)
                .await;
            match claimed {
                Ok((next, entries)) => {
                    if !entries.is_empty() {
                        info!(
                            entries = entries.len(),
                            "Claimed entries a stopped consumer left pending."
                        );
                        self.flush(entries, stop).await;
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
    /// acknowledging when stopped first: the entries stay pending.
    async fn flush(&mut self, mut batch: Vec<Entry>, stop: &CancellationToken) {
        let mut seen = HashSet::new();
        batch.retain(|e| seen.insert(e.id.clone()));
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut backoff = Backoff::default();
        let written = loop {
            match self.write(&batch).await {
                Ok(w) => break w,
                Err(e) => {
                    metrics::counter!(m::UPLINK_DB_ERRORS).increment(1);
                    if self.warn_limit.ready(Instant::now()) {
                        warn!(error = %e, entries = batch.len(), "Cannot write the batch to PostgreSQL; retrying.");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                }
            }
        };
        let now = Utc::now();
        let records: Vec<String> = written
            .rejected
            .iter()
            .filter_map(|(i, r)| {
                let msg = batch[*i].message.as_ref()?;
                Some(
                    DeadLetter {
                        broker: &msg.broker,
                        topic: &msg.topic,
                        payload: &msg.payload,
                        reason: r.reason,
                        detail: &r.detail,
                        at: now,
                    }
                    .record(),
                )
            })
            .collect();
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        let mut backoff = Backoff::default();
        loop {
            let done = async {
                self.queue.push_dead(&records).await?;
                self.queue.ack(&ids).await
            };
            match done.await {
                Ok(()) => break,
                Err(e) => {
                    metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
                    if self.warn_limit.ready(Instant::now()) {
                        warn!(error = %e, "Cannot acknowledge a written batch in Redis; retrying.");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next()) => {}
                    }
                }
            }
        }
        for (_, r) in &written.rejected {
            metrics::counter!(m::TELEMETRY_DROPPED, "reason" => r.reason).increment(1);
        }
        metrics::counter!(m::TELEMETRY_INSERTED).increment(written.inserted);
        metrics::histogram!(m::UPLINK_BATCH_SIZE).record(batch.len() as f64);
        metrics::histogram!(m::UPLINK_FLUSH_DURATION).record(started.elapsed().as_secs_f64());
        let now_ms = now.timestamp_millis();
        for ts in written.sample_ts {
            metrics::histogram!(m::TELEMETRY_LAG)
                .record((now_ms - ts * 1000).max(0) as f64 / 1000.0);
        }
    }

    /// One transaction for the batch; if PostgreSQL refuses it, each entry in
    /// a transaction of its own, refused entries becoming `db_rejected`.
    async fn write(&mut self, batch: &[Entry]) -> Result<Written, WriteError> {
        match self.write_entries(batch, 0).await {
            Err(WriteError::Refused(e)) if batch.len() > 1 => {
                warn!(error = %e, entries = batch.len(), "PostgreSQL refused a batch; writing its entries one by one.");
                let mut all = Written::default();
                for (i, entry) in batch.iter().enumerate() {
                    match self.write_entries(std::slice::from_ref(entry), i).await {
                        Ok(w) => {
                            all.inserted += w.inserted;
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

    /// Decodes, resolves and writes `entries` (whose first is `offset` in the
    /// flushed batch) in one transaction.
    async fn write_entries(
        &mut self,
        entries: &[Entry],
        offset: usize,
    ) -> Result<Written, WriteError> {
        let decoded: Vec<(usize, &NewEntry, Result<Uplink, Rejection>)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let msg = e.message.as_ref()?;
                let received = msg.received_ms.div_euclid(1000);
                Some((
                    offset + i,
                    msg,
                    uplink::decode(&msg.topic, &msg.payload, received),
                ))
            })
            .collect();
        let topics = decoded
            .iter()
            .filter_map(|(_, _, u)| u.as_ref().ok()?.topic.as_ref());
        self.resolver
            .resolve(
                &self.pool,
                topics.clone().map(|t| t.node.as_str()),
                topics.map(|t| t.zone.as_str()),
            )
            .await?;

        let mut written = Written::default();
        let mut samples = Vec::new();
        let mut others = Vec::new();
        for (i, msg, uplink) in decoded {
            let uplink = match uplink {
                Ok(u) => u,
                Err(r) => {
                    written.rejected.push((i, r));
                    continue;
                }
            };
            let at = DateTime::from_timestamp_millis(msg.received_ms).unwrap_or_else(Utc::now);
            let Some(topic) = &uplink.topic else {
                others.push((None, uplink, at));
                continue;
            };
            let node = self.resolver.node(&topic.node);
            if matches!(uplink.body, Body::Hello(_)) {
                // A hello registers an unknown node (unassigned, whatever
                // zone its topic names); a known node has nothing to register.
                if node.is_none() {
                    others.push((None, uplink, at));
                }
                continue;
            }
            let Some(zone_id) = self.resolver.zone(&topic.zone) else {
                written.rejected.push((
                    i,
                    Rejection::new("zone_id_not_found", format!("no zone `{}`", topic.zone)),
                ));
                continue;
            };
            if node.is_none() {
                written.rejected.push((
                    i,
                    Rejection::new("node_id_not_found", format!("no node `{}`", topic.node)),
                ));
                continue;
            }
            let target = node.map(|n| (n.id, Some(zone_id)));
            match &uplink.body {
                Body::Telemetry(t) => {
                    let (node_id, zone_id) = target.expect("checked above");
                    written.sample_ts.push(t.ts);
                    samples.push(Sample {
                        node_id,
                        zone_id,
                        channel: topic.channel.clone().unwrap_or_default(),
                        metric_type: t.metric_type.as_str(),
                        value: t.value,
                        raw: t.raw,
                        stable: t.stable,
                        ts: t.ts,
                    });
                }
                _ => others.push((target, uplink, at)),
            }
        }

        let mut tx = self.pool.begin().await?;
        written.inserted = telemetry::write(&mut tx, &samples).await?;
        for (target, uplink, at) in &others {
            let node_uid = uplink.topic.as_ref().map_or("", |t| t.node.as_str());
            let target = target.map(|(node_id, zone_id)| Target {
                node_id,
                zone_id,
                node_uid,
            });
            match (&uplink.body, target) {
                (Body::Status(s), Some(t)) => {
                    node_state::set_status(&mut tx, t, s.status, "status", *at).await?
                }
                (Body::Lwt, Some(t)) => {
                    node_state::set_status(&mut tx, t, NodeState::Offline, "lwt", *at).await?
                }
                (Body::Heartbeat(h), Some(t)) => {
                    node_state::heartbeat(&mut tx, t.node_id, h, *at).await?
                }
                (Body::Event(e), Some(t)) => {
                    let mut payload = serde_json::Value::Object(e.fields.clone());
                    payload["event_code"] = e.event_code.clone().into();
                    payload["node_uid"] = node_uid.into();
                    if let Some(channel) = uplink.topic.as_ref().and_then(|t| t.channel.as_ref()) {
                        payload["channel"] = channel.clone().into();
                    }
                    node_state::zone_event(&mut tx, t.zone_id, &e.zone_event_type(), &payload, *at)
                        .await?
                }
                (Body::Error(e), Some(t)) => node_state::node_error(&mut tx, t, e, *at).await?,
                (Body::Hello(h), None) => {
                    let added = node_state::register(&mut tx, h).await?;
                    if added {
                        info!(uid = %uplink::hello_uid(h), hardware_id = %h.hardware_id, "Registered an unassigned node from its hello.");
                    }
                }
                // Telemetry went into `samples`; a node message always has a target.
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(written)
    }
}
