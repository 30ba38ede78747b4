//! What the API's handlers and the advisor's rounds share: the database,
//! the brokers, the strategy in force, the rebalance limits and the advisor.

use std::sync::Arc;
use std::time::Duration;

use common::mqtt::pool::BrokerPool;
use common::placement::balance::RebalanceLimits;
use sqlx::PgPool;

use crate::advisor::Advisor;
use crate::strategy::SharedStrategy;

/// What the routes and the advisor need.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub brokers: BrokerPool,
    /// The strategy in force (changed at run time through the API).
    pub strategy: SharedStrategy,
    pub limits: RebalanceLimits,
    pub cooldown: Duration,
    /// `NODE_DEFAULT_SECRET`, for NodeConfig moves of nodes without a secret.
    pub default_secret: secrecy::SecretString,
    pub advisor: Arc<Advisor>,
    /// The service's stop: long-lived responses (the event stream) end on it.
    pub stop: tokio_util::sync::CancellationToken,
}
