//! The health monitor: every `HEALTH_INTERVAL_MS`, for each enabled broker,
//! a round-trip probe, the broker's `$SYS` figures and the connection drops
//! seen since the last sample become one `broker_health_samples` row, the
//! broker's current figures in `brokers`, its load index and — after two
//! samples in a row agree — its status (GOOD / DEGRADED / CRITICAL; see
//! [`crate::load_index`]). It also counts the bound nodes that are OFFLINE
//! ([`m::NODES_OFFLINE`]). Every instance samples (the samples are cheap and
//! each instance keeps its own gauges current); only status changes are
//! written once, by whoever sees them first.

use std::collections::HashMap;
use std::time::Duration;

use common::metrics as m;
use common::mqtt::pool::BrokerPool;
use common::placement::broker_status::{self, BrokerStatus, Writer};
use common::placement::probe::Prober;
use common::store::broker_health_samples::{self, NewSample};
use common::store::brokers::{self, Measured};
use common::store::nodes;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::load_index::{Figures, load_index, sample_status};
use crate::sys_stats::SysStats;

/// How long a probe may take before it counts as failed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the monitor remembers of a broker between samples.
#[derive(Default)]
struct Memory {
    /// Messages received + sent and when, for the rate.
    counters: Option<(u64, Instant)>,
    msgs_per_sec: f64,
    connected: Option<watch::Receiver<bool>>,
    last_status: Option<BrokerStatus>,
}

pub struct Monitor {
    pub pool: PgPool,
    pub brokers: BrokerPool,
    pub prober: Prober,
    pub stats: SysStats,
    pub interval: Duration,
}

impl Monitor {
    /// Samples until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut memory: HashMap<String, Memory> = HashMap::new();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.sample_all(&mut memory).await {
                warn!(error = %e, "Broker health sample failed; will retry.");
            }
        }
    }

    async fn sample_all(&self, memory: &mut HashMap<String, Memory>) -> Result<(), sqlx::Error> {
        let ids: Vec<String> = brokers::enabled(&self.pool)
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect();
        let probes = futures::future::join_all(ids.iter().map(|id| async move {
            match self.brokers.get(id) {
                Some(c) => self.prober.probe(&c, PROBE_TIMEOUT).await.ok(),
                None => None,
            }
        }))
        .await;
        for (id, latency) in ids.iter().zip(probes) {
            let mem = memory.entry(id.clone()).or_default();
            self.sample(id, latency, mem).await?;
        }
        for b in brokers::overview(&self.pool).await? {
            metrics::gauge!(m::BROKER_NODES, "broker" => b.id).set(b.nodes as f64);
        }
        let offline = nodes::offline_bound(&self.pool).await?;
        metrics::gauge!(m::NODES_OFFLINE).set(offline as f64);
        Ok(())
    }

    async fn sample(
        &self,
        id: &str,
        latency: Option<Duration>,
        mem: &mut Memory,
    ) -> Result<(), sqlx::Error> {
        let latency_ms = latency.map(|l| l.as_secs_f64() * 1000.0);
        match latency {
            Some(l) => metrics::histogram!(m::BROKER_PROBE_DURATION, "broker" => id.to_owned())
                .record(l.as_secs_f64()),
            None => {
                metrics::counter!(m::BROKER_PROBE_FAILURES, "broker" => id.to_owned()).increment(1)
            }
        }
        // Our own connection changed state since the last sample: it
        // dropped (and maybe came back).
        let mut disconnects = 0;
        if let Some(c) = self.brokers.get(id) {
            let rx = mem.connected.get_or_insert_with(|| c.connected_watch());
            disconnects = i32::from(rx.has_changed().unwrap_or(false));
            rx.borrow_and_update();
        }
        let sys = self.stats.get(id);
        if let (Some(r), Some(s)) = (sys.received, sys.sent) {
            let total = r + s;
            let now = Instant::now();
            if let Some((before, at)) = mem.counters
                && total >= before
            {
                let secs = now.duration_since(at).as_secs_f64();
                // $SYS counters move every sys_interval; keep the last rate
                // until they do.
                if total > before && secs > 0.0 {
                    mem.msgs_per_sec = (total - before) as f64 / secs;
                    mem.counters = Some((total, now));
                }
            } else {
                mem.counters = Some((total, now));
            }
        }
        let figures = Figures {
            connections: sys.clients.unwrap_or(0) as f64,
            msgs_per_sec: mem.msgs_per_sec,
            latency_ms: latency_ms.unwrap_or(0.0),
            cpu: None,
        };
        let load = load_index(&figures);
        let status = sample_status(load, latency_ms, disconnects > 0);
        let sample = NewSample {
            broker_id: id,
            probe_ok: latency.is_some(),
            latency_ms,
            connections: sys.clients.map(|c| c as i32),
            msgs_per_sec: mem.msgs_per_sec,
            retained: sys.retained.map(|r| r as i32),
            uptime_sec: sys.uptime_sec,
            disconnects,
            load_index: load,
            status,
        };
        broker_health_samples::insert(&self.pool, &sample).await?;
        let measured = Measured {
            load_index: load,
            connections: sys.clients.unwrap_or(0) as i32,
            msgs_per_sec: mem.msgs_per_sec,
            latency_ms,
        };
        // Two samples in a row, or the status would follow every spike.
        let mut shown = brokers::record_figures(&self.pool, id, &measured).await?;
        if mem.last_status == Some(status) && status != BrokerStatus::Offline {
            let reason = format!(
                "health: load index {load:.3}, latency {} ms, {disconnects} drops",
                latency_ms.map_or("-".into(), |l| format!("{l:.1}"))
            );
            if let Some(from) =
                broker_status::set_status(&self.pool, id, status, Writer::Monitor, &reason).await?
            {
                info!(broker = id, from = from.as_str(), to = status.as_str(), %reason, "Broker status changed.");
                shown = status;
            }
        }
        mem.last_status = Some(status);
        metrics::gauge!(m::BROKER_STATUS, "broker" => id.to_owned()).set(shown.gauge());
        metrics::gauge!(m::BROKER_LOAD_INDEX, "broker" => id.to_owned()).set(load);
        Ok(())
    }
}
