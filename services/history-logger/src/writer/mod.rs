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
//! Each batch is decoded (by the kind ingest stored with each message),
//! resolved, planned without I/O ([`plan`]) and written in one transaction
//! ([`commit`]); one `uplink_batch` span covers it.
//!
//! At start it first finishes what this consumer read before a crash, then
//! claims what dead consumers left pending (and keeps doing so). PostgreSQL
//! down: the batch is retried with a backoff while ingest keeps filling the
//! stream. A batch PostgreSQL refuses (a constraint) is written message by
//! message, so one bad message is dead-lettered (`db_rejected`) instead of
//! stalling the queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::metrics as m;
use common::runtime::backoff::Backoff;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backpressure::RateLimit;
use crate::drop_log::DropLog;
use crate::observed::ObservedCache;
use crate::queue::{Entry, Queue};
use crate::resolver::Resolver;
use crate::uplink::{Checks, Rejection};

mod commit;
mod flush;
pub mod plan;
mod recover;
#[cfg(test)]
mod tests;

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

/// Messages in `entries`.
fn message_count(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|e| e.pack().map_or(0, |p| p.messages.len()))
        .sum()
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
    /// Counts a failed Redis call and warns that `what` failed (at most once
    /// per warning window); the caller retries.
    fn redis_failed(&self, error: &dyn std::fmt::Display, what: &str) {
        metrics::counter!(m::UPLINK_REDIS_ERRORS).increment(1);
        if self.warn_now() {
            warn!(error = %error, "{what}; retrying.");
        }
    }

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
                    backoff.reset();
                    if !entries.is_empty() {
                        deadline.get_or_insert_with(|| Instant::now() + self.config.flush);
                        let messages = message_count(&entries);
                        per_entry = (messages / entries.len()).max(1);
                        in_batch += messages;
                    }
                    batch.extend(entries);
                }
                Err(e) => {
                    shared.redis_failed(&e, "Cannot read the uplink queue");
                    if !backoff.pause(&stop).await {
                        break;
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
