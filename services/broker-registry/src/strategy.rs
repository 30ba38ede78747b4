//! The assignment strategy in force: `ASSIGNMENT_STRATEGY` until an operator
//! changes it (`PUT /api/strategy`), then the value stored in
//! `registry_settings`, which every instance (and a restart) follows.

use std::sync::{Arc, RwLock};

use common::placement::balance::Strategy;
use common::store::registry_settings::{self, ASSIGNMENT_STRATEGY};
use sqlx::PgPool;
use tracing::warn;

/// Every strategy's name, for the API.
pub const AVAILABLE: [Strategy; 3] = [Strategy::Static, Strategy::Dynamic, Strategy::Priority];

/// The strategy this instance uses, shared by the engine and the API.
#[derive(Debug, Clone)]
pub struct SharedStrategy(Arc<RwLock<Strategy>>);

impl SharedStrategy {
    pub fn new(configured: Strategy) -> Self {
        SharedStrategy(Arc::new(RwLock::new(configured)))
    }

    /// The strategy as last read or set here.
    pub fn get(&self) -> Strategy {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, strategy: Strategy) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = strategy;
    }

    /// The stored strategy (taken up here), else the one in force.
    pub async fn current(&self, pool: &PgPool) -> Result<Strategy, sqlx::Error> {
        if let Some(text) = registry_settings::get(pool, ASSIGNMENT_STRATEGY).await? {
            match text.parse() {
                Ok(stored) => self.put(stored),
                Err(e) => warn!(error = %e, "Stored assignment strategy not understood; ignored."),
            }
        }
        Ok(self.get())
    }

    /// Switches to `strategy` here and stores it for the other instances.
    pub async fn set(
        &self,
        pool: &PgPool,
        strategy: Strategy,
        actor: &str,
    ) -> Result<(), sqlx::Error> {
        registry_settings::set(pool, ASSIGNMENT_STRATEGY, strategy.as_str(), actor).await?;
        self.put(strategy);
        Ok(())
    }
}
