//! The cycle loop: every `AUTOMATION_INTERVAL_SEC`, while this instance
//! holds the lease, read a snapshot, process its zones with the adaptive
//! concurrency, write the zone events, count the failed zones and raise or
//! resolve the alert.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::commands::CommandSender;
use common::metrics as m;
use common::runtime::leader_ticks::LeaderTicks;
use common::runtime::lease::LeaseGuard;
use common::store::zone_events;
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::event_repeat::RepeatFilter;
use crate::snapshot::Snapshot;
use crate::zone::{self, ZoneCtx};
use crate::{alerts, concurrency};

/// What one cycle did.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleReport {
    /// Zones with an active recipe.
    pub zones: usize,
    pub failed: usize,
    /// Commands sent.
    pub doses: usize,
    /// Zone events written.
    pub events: usize,
    pub concurrency: usize,
    pub elapsed: Duration,
}

/// The deciding part of the service; its cycles run one after another.
pub struct Engine {
    pool: PgPool,
    sender: CommandSender,
    lease: LeaseGuard,
    target_cycle_time: Duration,
    filter: RepeatFilter,
    /// Time per zone to plan the next cycle with ([`concurrency::remember`]).
    avg_zone_time: Option<Duration>,
}

impl Engine {
    pub fn new(
        pool: PgPool,
        sender: CommandSender,
        lease: LeaseGuard,
        target_cycle_time: Duration,
        event_repeat: Duration,
    ) -> Self {
        Engine {
            pool,
            sender,
            lease,
            target_cycle_time,
            filter: RepeatFilter::new(
                chrono::Duration::from_std(event_repeat).unwrap_or(chrono::Duration::MAX),
            ),
            avg_zone_time: None,
        }
    }

    /// Runs one cycle over every zone with an active recipe. A database
    /// error reading the snapshot or writing the events fails the cycle;
    /// a zone's own problems fail only that zone.
    pub async fn run_cycle(&mut self) -> Result<CycleReport, sqlx::Error> {
        let started = Instant::now();
        let snapshot = Snapshot::load(&self.pool).await?;
        let total = snapshot.phases.len();
        let concurrency = concurrency::optimal(total, self.avg_zone_time, self.target_cycle_time);
        metrics::gauge!(m::OPTIMAL_CONCURRENCY).set(concurrency as f64);
        metrics::gauge!(m::AUTOMATION_ZONES).set(total as f64);

        let ctx = ZoneCtx {
            pool: &self.pool,
            sender: &self.sender,
            lease: &self.lease,
            snapshot: &snapshot,
        };
        // Collected first: a lazily mapped iterator here trips the compiler's
        // higher-ranked lifetime check when the loop is spawned.
        let zones: Vec<_> = snapshot
            .phases
            .iter()
            .map(|p| zone::process(&ctx, p))
            .collect();
        let outcomes: Vec<_> = futures::stream::iter(zones)
            .buffer_unordered(concurrency)
            .collect()
            .await;

        let mut events = Vec::new();
        let mut failed = Vec::new();
        let mut doses = 0;
        let mut zone_time = Duration::ZERO;
        for (p, outcome) in outcomes {
            metrics::histogram!(m::ZONE_PROCESSING_TIME).record(outcome.elapsed.as_secs_f64());
            zone_time += outcome.elapsed;
            doses += outcome.doses;
            if !outcome.errors.is_empty() {
                metrics::counter!(m::ZONE_PROCESSING_ERRORS, "zone" => p.zone_uid.clone())
                    .increment(1);
                warn!(zone = %p.zone_uid, errors = ?outcome.errors, "Zone processing failed.");
                failed.push(p.zone_uid.clone());
            }
            for note in outcome.notes {
                if self.filter.keep(
                    p.zone_id,
                    note.subject,
                    note.repeat_key.as_deref(),
                    snapshot.now,
                ) {
                    events.push(note.event);
                }
            }
        }
        let zones: HashSet<i64> = snapshot.phases.iter().map(|p| p.zone_id).collect();
        self.filter.retain_zones(&zones);
        if total > 0 {
            let measured = zone_time / total as u32;
            self.avg_zone_time = Some(concurrency::remember(self.avg_zone_time, measured));
        }
        zone_events::insert(&self.pool, &events).await?;
        alerts::update(&self.pool, &failed, total).await?;
        let elapsed = started.elapsed();
        metrics::histogram!(m::AUTOMATION_CYCLE_DURATION).record(elapsed.as_secs_f64());
        Ok(CycleReport {
            zones: total,
            failed: failed.len(),
            doses,
            events: events.len(),
            concurrency,
            elapsed,
        })
    }
}

/// Runs a cycle every `interval` while this instance holds the lease (and
/// at once when it gains it), until `stop`.
pub async fn run(mut engine: Engine, interval: Duration, stop: CancellationToken) {
    let mut turns = LeaderTicks::new(engine.lease.clone(), interval);
    while turns.next(&stop).await.is_some() {
        match engine.run_cycle().await {
            Ok(r) if r.doses > 0 || r.failed > 0 => info!(
                zones = r.zones,
                doses = r.doses,
                failed = r.failed,
                concurrency = r.concurrency,
                ms = r.elapsed.as_millis() as u64,
                "Cycle done."
            ),
            Ok(r) => debug!(
                zones = r.zones,
                ms = r.elapsed.as_millis() as u64,
                "Cycle done."
            ),
            Err(e) => warn!(error = %e, "Cycle failed; will retry at the next one."),
        }
    }
}
