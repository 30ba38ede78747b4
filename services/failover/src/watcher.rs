//! The failover loop: keeps a [`Detector`] per enabled broker, feeds it
//! probes (every `FAILOVER_PROBE_INTERVAL_MS`, faster while a broker is
//! suspect), dropped connections (at once), silent nodes and unanswered
//! commands (every 2 s), and hands its decisions to the [`Actor`] while this
//! instance holds the lease. Every instance watches, so a standby that takes
//! the lease over knows the brokers already.

use std::collections::HashMap;
use std::time::Duration;

use common::mqtt::pool::BrokerPool;
use common::placement::broker_status::BrokerStatus;
use common::placement::probe::Prober;
use common::runtime::lease::LeaseGuard;
use common::store::brokers;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::actions::Actor;
use crate::detector::{Decision, Detector, Signal};
use crate::settings::FailoverSettings;
use crate::signals::{self, Uplink};

/// How often silence and unanswered commands are checked.
const SLOW_SIGNALS_EVERY: Duration = Duration::from_secs(2);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Watcher {
    pub pool: PgPool,
    pub brokers: BrokerPool,
    pub prober: Prober,
    pub uplink: Uplink,
    pub settings: FailoverSettings,
    pub lease: LeaseGuard,
    pub actor: Actor,
}

impl Watcher {
    pub async fn run(self, stop: CancellationToken) {
        let mut detectors: HashMap<String, Detector> = HashMap::new();
        let (drop_tx, mut drops) = mpsc::channel::<String>(64);
        let mut changes = self.brokers.changes();
        let mut watched: Vec<String> = Vec::new();
        let mut slow_at = Instant::now() + SLOW_SIGNALS_EVERY;
        loop {
            // Watch the connections of brokers that joined the pool.
            for id in self.brokers.ids() {
                if !watched.contains(&id) {
                    self.watch_drops(&id, drop_tx.clone(), stop.clone());
                    watched.push(id);
                }
            }
            watched.retain(|id| self.brokers.get(id).is_some());
            let pace = if detectors.values().any(Detector::suspect) {
                self.settings.suspect_probe()
            } else {
                self.settings.probe_interval()
            };
            let mut signals: Vec<(String, Signal)> = Vec::new();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pace) => {}
                _ = changes.changed() => continue,
                Some(id) = drops.recv() => signals.push((id, Signal::ConnectionDropped)),
            }
            if let Err(e) = self.sync(&mut detectors).await {
                warn!(error = %e, "Could not read the brokers; will retry.");
                continue;
            }
            for (id, latency) in self.probe_all(&detectors).await {
                signals.push((
                    id,
                    if latency.is_some() {
                        Signal::ProbeOk
                    } else {
                        Signal::ProbeFailed
                    },
                ));
            }
            if Instant::now() >= slow_at {
                slow_at = Instant::now() + SLOW_SIGNALS_EVERY;
                signals.extend(self.slow_signals().await);
            }
            let mut decisions = Vec::new();
            for (id, signal) in signals {
                if let Some(d) = detectors.get_mut(&id) {
                    if signal != Signal::ProbeOk {
                        debug!(broker = %id, signal = signal.as_str(), "Broker signal.");
                    }
                    if let Some(decision) = d.on(signal) {
                        decisions.push((id, decision));
                    }
                }
            }
            if self.lease.is_held() {
                self.act(&detectors, decisions).await;
            }
        }
    }

    /// Adds detectors for new brokers, drops those of removed ones, and
    /// follows decisions another instance wrote.
    async fn sync(&self, detectors: &mut HashMap<String, Detector>) -> Result<(), sqlx::Error> {
        let states = brokers::enabled_states(&self.pool).await?;
        detectors.retain(|id, _| states.iter().any(|b| &b.id == id));
        for b in states {
            let offline = b.status == BrokerStatus::Offline;
            let d = detectors
                .entry(b.id)
                .or_insert_with(|| Detector::new(self.settings.thresholds(), offline));
            if offline != d.is_dead() {
                *d = Detector::new(self.settings.thresholds(), offline);
            }
        }
        Ok(())
    }

    async fn probe_all(
        &self,
        detectors: &HashMap<String, Detector>,
    ) -> Vec<(String, Option<Duration>)> {
        futures::future::join_all(detectors.keys().map(|id| async move {
            let latency = match self.brokers.get(id) {
                Some(c) => self.prober.probe(&c, PROBE_TIMEOUT).await.ok(),
                None => None,
            };
            (id.clone(), latency)
        }))
        .await
    }

    async fn slow_signals(&self) -> Vec<(String, Signal)> {
        let mut out = Vec::new();
        match signals::brokers_with_nodes(&self.pool).await {
            Ok(with_nodes) => out.extend(
                self.uplink
                    .silent(&with_nodes, self.settings.silence())
                    .into_iter()
                    .map(|b| (b, Signal::NodesSilent)),
            ),
            Err(e) => warn!(error = %e, "Could not read the assignments."),
        }
        match signals::unanswered(&self.pool, self.settings.unanswered()).await {
            Ok(brokers) => out.extend(brokers.into_iter().map(|b| (b, Signal::CommandsUnanswered))),
            Err(e) => warn!(error = %e, "Could not read the open commands."),
        }
        out
    }

    async fn act(&self, detectors: &HashMap<String, Detector>, decisions: Vec<(String, Decision)>) {
        for (broker, decision) in decisions {
            let result = match decision {
                Decision::Failover { cause, failures } => {
                    self.actor.fail_over(&broker, cause, failures).await
                }
                Decision::Recovered => {
                    self.actor
                        .recovered(&broker, self.settings.thresholds().recover_probes)
                        .await
                }
            };
            if let Err(e) = result {
                warn!(broker = %broker, error = %e, "Failover action failed; it is retried while the broker stays dead.");
            }
        }
        // Nodes a dead broker still has (given to it in a race, or left by
        // an instance that died half-way) are moved too.
        for (broker, d) in detectors {
            if d.is_dead()
                && let Err(e) = self.actor.evacuate(broker).await
            {
                warn!(broker = %broker, error = %e, "Could not move the remaining nodes.");
            }
        }
        if let Err(e) = self.actor.finish_events().await {
            warn!(error = %e, "Could not close finished failover events.");
        }
    }

    /// Reports each drop of our connection to `id` at once.
    fn watch_drops(&self, id: &str, tx: mpsc::Sender<String>, stop: CancellationToken) {
        let Some(connection) = self.brokers.get(id) else {
            return;
        };
        let id = id.to_owned();
        tokio::spawn(async move {
            let mut rx = connection.connected_watch();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    changed = rx.changed() => if changed.is_err() { return },
                }
                if !*rx.borrow_and_update() && tx.send(id.clone()).await.is_err() {
                    return;
                }
            }
        });
    }
}
