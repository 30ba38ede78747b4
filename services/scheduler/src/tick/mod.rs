//! One scheduler tick: for every zone with an active recipe phase, the
//! irrigation slots and lighting edges due since the phase started (at most
//! [`LOOKBACK`] ago) that are not settled yet are fired — or, older than
//! the catch-up age, recorded as missed with a zone event. Lighting's
//! current state is also asserted once per schedule: when this instance
//! starts deciding (a restart, a takeover) and when the zone's recipe or
//! phase changes, unless an edge fired for it in the same tick.
//!
//! This file holds the tick's walk over the zones and the service's loop;
//! lighting's edges and asserted state are in [`lighting`], firing (or
//! skipping) one slot and sending its command in [`fire`].

mod fire;
mod lighting;

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use common::commands::{CommandSender, ZoneChannels};
use common::metrics as m;
use common::runtime::lease::LeaseGuard;
use common::store::recipe_phases::{self, ActivePhase};
use common::store::zone_events::{self, ZoneEvent};
use serde_json::{Map, json};
use sqlx::PgPool;
use tracing::warn;

use crate::fires::{self, SlotKey};
use crate::schedule::{Irrigation, Kind, parse_lighting};
use crate::slots;
use crate::time_spec::Window;

/// How far back a tick looks for slots not yet settled: one day, so each
/// daily slot is looked at on the day it was due.
pub fn lookback() -> Duration {
    Duration::hours(24)
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    pub zones: usize,
    /// Slot commands sent.
    pub fired: usize,
    /// Slots recorded as missed.
    pub skipped: usize,
    /// Lighting states asserted.
    pub asserted: usize,
}

/// What a tick has read and what it has to write.
struct Tick {
    now: DateTime<Utc>,
    settled: HashSet<SlotKey>,
    channels: ZoneChannels,
    events: Vec<ZoneEvent>,
    report: TickReport,
}

/// The firing part of the service; its ticks run one after another.
pub struct Scheduler {
    pool: PgPool,
    sender: CommandSender,
    lease: LeaseGuard,
    catch_up_max_age: Duration,
    /// Per zone, the lighting schedule (instance, phase, window) whose
    /// state this instance has asserted.
    asserted: HashMap<i64, (i64, i32, Window)>,
    /// Problems reported already (zone, subject, message): each becomes a
    /// zone event once per process, not once per tick.
    reported: HashSet<(i64, &'static str, String)>,
}

impl Scheduler {
    pub fn new(
        pool: PgPool,
        sender: CommandSender,
        lease: LeaseGuard,
        catch_up_max_age: Duration,
    ) -> Self {
        Scheduler {
            pool,
            sender,
            lease,
            catch_up_max_age,
            asserted: HashMap::new(),
            reported: HashSet::new(),
        }
    }

    /// The lease this scheduler acts under.
    pub fn lease(&self) -> &LeaseGuard {
        &self.lease
    }

    /// Forgets which lighting states were asserted, so the next tick
    /// asserts them all again (after a takeover the other instance may
    /// have left them anywhere).
    pub fn forget_assertions(&mut self) {
        self.asserted.clear();
    }

    /// Runs one tick over every zone with an active recipe phase.
    pub async fn tick(&mut self) -> anyhow::Result<TickReport> {
        let (now, phases) = recipe_phases::load(&self.pool)
            .await
            .context("reading the recipe phases")?;
        let zone_ids: Vec<i64> = phases.iter().map(|p| p.zone_id).collect();
        let channels: Vec<&str> = Kind::ALL.iter().map(|k| k.channel()).collect();
        let (settled, channels) = tokio::try_join!(
            fires::settled(&self.pool, now - lookback()),
            ZoneChannels::load(&self.pool, &zone_ids, &channels),
        )
        .context("reading fires and channels")?;
        let mut t = Tick {
            now,
            settled,
            channels,
            events: Vec::new(),
            report: TickReport {
                zones: phases.len(),
                ..TickReport::default()
            },
        };
        let mut active: HashMap<Kind, usize> = HashMap::new();
        for p in &phases {
            if !self.lease.is_held() {
                break; // another instance fires now
            }
            for kind in self.zone(p, &mut t).await? {
                *active.entry(kind).or_default() += 1;
            }
        }
        for kind in Kind::ALL {
            metrics::gauge!(m::ACTIVE_SCHEDULES, "kind" => kind.as_str())
                .set(active.get(&kind).copied().unwrap_or(0) as f64);
        }
        zone_events::insert(&self.pool, &t.events)
            .await
            .context("writing zone events")?;
        Ok(t.report)
    }

    /// One zone; answers the kinds of schedule it has that are valid.
    async fn zone(&mut self, p: &ActivePhase, t: &mut Tick) -> anyhow::Result<Vec<Kind>> {
        let mut active = Vec::new();
        // A missing phase is automation-engine's to report.
        let Some(targets) = &p.targets else {
            return Ok(active);
        };
        if targets.get("irrigation").is_none() && targets.get("lighting").is_none() {
            return Ok(active);
        }
        let Ok(tz) = p.timezone.parse::<Tz>() else {
            let error = format!(
                "greenhouse time zone `{}` is not an IANA name such as Europe/Lisbon",
                p.timezone
            );
            self.report(p.zone_id, "timezone", error, t);
            return Ok(active);
        };
        let from = p.phase_started_at.max(t.now - lookback());
        if let Some(spec) = targets.get("irrigation") {
            match Irrigation::parse(spec) {
                Err(e) => self.report(p.zone_id, Kind::Irrigation.as_str(), e, t),
                Ok(irrigation) => {
                    active.push(Kind::Irrigation);
                    let mut params = Map::new();
                    params.insert("duration_ms".into(), json!(irrigation.duration_sec * 1000));
                    for at in slots::occurrences(&irrigation.times, tz, from, t.now) {
                        let key = (p.zone_id, Kind::Irrigation, at);
                        self.slot(key, "run_pump", &params, t).await?;
                    }
                }
            }
        }
        if let Some(spec) = targets.get("lighting") {
            match parse_lighting(spec) {
                Err(e) => self.report(p.zone_id, Kind::Lighting.as_str(), e, t),
                Ok(window) => {
                    active.push(Kind::Lighting);
                    self.lighting(p, tz, from, window, t).await?;
                }
            }
        }
        Ok(active)
    }

    /// Reports a problem with a zone's schedule once per process: a log
    /// line and a `SCHEDULE_INVALID` zone event saying what is wrong.
    fn report(&mut self, zone_id: i64, subject: &'static str, error: String, t: &mut Tick) {
        if self.reported.insert((zone_id, subject, error.clone())) {
            warn!(zone_id, subject, %error, "Schedule not usable.");
            t.events.push(ZoneEvent::new(
                zone_id,
                "SCHEDULE_INVALID",
                json!({ "kind": subject, "error": error }),
            ));
        }
    }
}

/// Ticks every `every` while this instance holds the lease (and at once
/// when it gains it, asserting every lighting state again), until `stop`.
pub async fn run(
    mut scheduler: Scheduler,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    use common::runtime::leader_ticks::{LeaderTicks, Turn};
    let mut turns = LeaderTicks::new(scheduler.lease().clone(), every);
    while let Some(turn) = turns.next(&stop).await {
        if turn == Turn::Gained {
            scheduler.forget_assertions();
        }
        let started = std::time::Instant::now();
        match scheduler.tick().await {
            Ok(r) if r.fired + r.skipped + r.asserted > 0 => tracing::info!(
                zones = r.zones,
                fired = r.fired,
                skipped = r.skipped,
                asserted = r.asserted,
                "Tick done."
            ),
            Ok(r) => tracing::debug!(zones = r.zones, "Tick done."),
            Err(e) => warn!(
                error = format!("{e:#}"),
                "Tick failed; will retry at the next one."
            ),
        }
        metrics::histogram!(m::SCHEDULE_TICK_DURATION).record(started.elapsed().as_secs_f64());
    }
}
