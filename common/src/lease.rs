//! A lease for singleton jobs (timeout sweeper, failover, assignment,
//! scheduler firing), held in PostgreSQL's `leases` table.
//!
//! The holder renews every `ttl / 3`; a lease whose `expires_at` has passed
//! can be taken by anyone. Expiry is judged by the database clock, so the
//! instances' clocks do not matter. A holder that fails to renew (database
//! error, or someone else took it) stops acting at once; a holder that dies
//! is replaced by a standby within `ttl + ttl / 3`. On shutdown the lease is
//! released so the standby takes over at its next attempt.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics as m;

/// A lease this process competes for.
#[derive(Debug, Clone)]
pub struct Lease {
    pool: PgPool,
    name: String,
    holder: String,
    ttl: Duration,
}

/// Watches whether this process holds the lease.
#[derive(Debug, Clone)]
pub struct LeaseGuard {
    held: watch::Receiver<bool>,
}

impl LeaseGuard {
    /// Whether this process may act right now.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Waits until this process holds the lease.
    pub async fn wait_held(&mut self) {
        let _ = self.held.wait_for(|h| *h).await;
    }
}

impl Lease {
    /// `holder` identifies this process (e.g. `mqtt-bridge@host:pid:random`).
    pub fn new(pool: PgPool, name: &str, holder: &str, ttl: Duration) -> Self {
        Lease {
            pool,
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
        }
    }

    /// A holder id unique to this process and call.
    pub fn holder_id(service: &str) -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        format!(
            "{service}@{host}:{}:{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// Tries to take or renew the lease; true when this process holds it now.
    pub async fn try_acquire(&self) -> Result<bool, sqlx::Error> {
        let holder: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, acquired_at, expires_at) \
             VALUES ($1, $2, now(), now() + make_interval(secs => $3)) \
             ON CONFLICT (name) DO UPDATE SET \
                 holder = EXCLUDED.holder, \
                 expires_at = EXCLUDED.expires_at, \
                 acquired_at = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.acquired_at ELSE now() END \
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at < now() \
             RETURNING holder",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(self.ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder.is_some())
    }

    /// Gives the lease up if this process holds it.
    pub async fn release(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(&self.name)
            .bind(&self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Competes for the lease in the background until `shutdown`, then
    /// releases it. The guard tells when this process may act.
    pub fn spawn(self, shutdown: CancellationToken) -> LeaseGuard {
        let (tx, rx) = watch::channel(false);
        let guard = LeaseGuard { held: rx };
        tokio::spawn(async move {
            let every = self.ttl / 3;
            let gauge = metrics::gauge!(m::LEASE_HELD, "lease" => self.name.clone());
            loop {
                let held = match self.try_acquire().await {
                    Ok(h) => h,
                    Err(e) => {
                        warn!(lease = %self.name, error = %e, "Lease renewal failed; standing down.");
                        false
                    }
                };
                let was = tx.send_replace(held);
                if held != was {
                    if held {
                        info!(lease = %self.name, holder = %self.holder, "Lease acquired; this instance is active.");
                    } else {
                        info!(lease = %self.name, holder = %self.holder, "Lease lost; this instance is standby.");
                    }
                }
                gauge.set(if held { 1.0 } else { 0.0 });
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
            tx.send_replace(false);
            gauge.set(0.0);
            if let Err(e) = self.release().await {
                warn!(lease = %self.name, error = %e, "Could not release the lease; it expires by itself.");
            }
        });
        guard
    }
}
