//! The node assignment engine. The holder of the `broker-registry.assignment`
//! lease, every `ASSIGN_INTERVAL_MS`, first brings the assignments in line
//! with where nodes are observed (`common::placement::observed`: moves confirmed by an
//! observation, nodes that cannot follow a config/update assigned where they
//! are, NodeConfig moves not made in time taken back, the stranded gauge),
//! then gives each `config_update` node without an assignment a broker by
//! the configured strategy (`common::placement::balance`), records it and tells the
//! node by the means it supports (`common::placement::assignments::carry_out`); every
//! `REBALANCE_INTERVAL_SEC` it runs a rebalance bounded by the threshold,
//! the move limit and the cooldown, so the system never flaps; and when a
//! broker joins, it publishes every node's config/update there too, so a
//! node that lands on it finds its broker.

use std::collections::BTreeSet;
use std::time::Duration;

use common::mqtt::pool::BrokerPool;
use common::placement::assignments::{self, Assignment, snapshot};
use common::placement::balance::{self, BrokerView, Move, NodeView, RebalanceLimits, Strategy};

use crate::strategy::SharedStrategy;
use common::placement::observed;
use common::runtime::lease::LeaseGuard;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The lease's name in the `leases` table.
pub const LEASE_NAME: &str = "broker-registry.assignment";
/// How long a joining broker may take to accept our connection.
const JOIN_WAIT: Duration = Duration::from_secs(30);

/// Records `moves` and tells each moved node (a config/update or a
/// NodeConfig naming its new broker, keyed with `default_secret` when it has
/// no secret of its own); returns the rows written.
pub async fn apply(
    pool: &PgPool,
    brokers: &BrokerPool,
    moves: &[Move],
    strategy: Strategy,
    default_secret: &str,
) -> Result<Vec<Assignment>, sqlx::Error> {
    let written = assignments::record_moves(pool, moves, strategy.as_str()).await?;
    if !written.is_empty() {
        assignments::carry_out(pool, brokers, &written, default_secret).await?;
    }
    Ok(written)
}

/// The assignment engine's settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The strategy in force, re-read each round (an operator may change it).
    pub strategy: SharedStrategy,
    pub assign_interval: Duration,
    /// `None`: no automatic rebalance.
    pub rebalance_interval: Option<Duration>,
    pub limits: RebalanceLimits,
    pub cooldown: Duration,
    /// How long a NodeConfig move may take before it is taken back.
    pub move_timeout: Duration,
    /// `NODE_DEFAULT_SECRET`, for NodeConfigs of nodes without a secret.
    pub default_secret: SecretString,
}

pub struct Engine {
    pub pool: PgPool,
    pub brokers: BrokerPool,
    pub config: EngineConfig,
    pub lease: LeaseGuard,
}

impl Engine {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.assign_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.brokers.changes();
        let mut known: BTreeSet<String> = self.brokers.ids().into_iter().collect();
        let mut next_rebalance = self.config.rebalance_interval.map(|i| Instant::now() + i);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = changes.changed() => {
                    let now: BTreeSet<String> = self.brokers.ids().into_iter().collect();
                    for joined in now.difference(&known) {
                        self.spawn_sync(joined.clone());
                    }
                    known = now;
                    continue;
                }
            }
            if !self.lease.is_held() {
                continue;
            }
            if let Err(e) =
                observed::follow_observations(&self.pool, self.config.move_timeout).await
            {
                warn!(error = %e, "Could not follow where nodes are observed; will retry.");
            }
            if let Err(e) = observed::stranded(&self.pool, None).await {
                warn!(error = %e, "Could not count the stranded nodes; will retry.");
            }
            if let Err(e) = self.assign_new().await {
                warn!(error = %e, "Assigning new nodes failed; will retry.");
            }
            if let (Some(at), Some(every)) = (next_rebalance, self.config.rebalance_interval)
                && Instant::now() >= at
            {
                next_rebalance = Some(Instant::now() + every);
                if let Err(e) = self.rebalance().await {
                    warn!(error = %e, "Rebalance failed; will retry at the next round.");
                }
            }
        }
    }

    async fn assign_new(&self) -> Result<(), sqlx::Error> {
        let strategy = self.config.strategy.current(&self.pool).await?;
        let written = self
            .plan_and_apply(strategy, |brokers, nodes| {
                balance::assign_new(strategy, brokers, nodes)
            })
            .await?;
        if let Some(written) = written {
            info!(
                nodes = written,
                strategy = strategy.as_str(),
                "New nodes assigned."
            );
        }
        Ok(())
    }

    async fn rebalance(&self) -> Result<(), sqlx::Error> {
        let (strategy, limits) = (
            self.config.strategy.current(&self.pool).await?,
            self.config.limits,
        );
        let written = self
            .plan_and_apply(strategy, |brokers, nodes| {
                balance::rebalance(strategy, brokers, nodes, limits)
            })
            .await?;
        if let Some(written) = written {
            info!(nodes = written, "Rebalanced.");
        }
        Ok(())
    }

    /// Reads the brokers and nodes, plans moves with `plan` and carries them
    /// out; returns how many assignments were written (`None`: no move planned).
    async fn plan_and_apply(
        &self,
        strategy: Strategy,
        plan: impl FnOnce(&[BrokerView], &[NodeView]) -> Vec<Move>,
    ) -> Result<Option<usize>, sqlx::Error> {
        let (brokers, nodes) = snapshot(&self.pool, self.config.cooldown).await?;
        let moves = plan(&brokers, &nodes);
        if moves.is_empty() {
            return Ok(None);
        }
        let written = apply(
            &self.pool,
            &self.brokers,
            &moves,
            strategy,
            self.config.default_secret.expose_secret(),
        )
        .await?;
        Ok(Some(written.len()))
    }

    /// Publishes every node's config/update on a broker that just joined,
    /// once our connection to it is up.
    fn spawn_sync(&self, broker: String) {
        let (pool, brokers, lease) = (self.pool.clone(), self.brokers.clone(), self.lease.clone());
        let secret = self.config.default_secret.clone();
        tokio::spawn(async move {
            let Some(connection) = brokers.get(&broker) else {
                return;
            };
            if connection.wait_connected(JOIN_WAIT).await.is_err() || !lease.is_held() {
                return;
            }
            match assignments::all(&pool).await {
                Ok(all) => {
                    match assignments::announce(
                        &pool,
                        &brokers,
                        &all,
                        Some(&broker),
                        secret.expose_secret(),
                    )
                    .await
                    {
                        Ok(n) => {
                            info!(broker = %broker, configs = n, "Broker joined; node configs published there.")
                        }
                        Err(e) => {
                            warn!(broker = %broker, error = %e, "Could not publish node configs on a joining broker.")
                        }
                    }
                }
                Err(e) => warn!(error = %e, "Could not read the assignments."),
            }
        });
    }
}
