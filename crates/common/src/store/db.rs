//! PostgreSQL pool and the embedded migrations of `migrations/`.

use std::time::Duration;

use sqlx::PgPool;

use crate::runtime::backoff::Backoff;
use crate::settings::Settings;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Every migration of `migrations/`, compiled in.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Why the database could not be reached or prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("PostgreSQL unreachable at {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stopped while waiting for PostgreSQL")]
    Stopped,
}

fn target(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("?")
    )
}

/// How long a service waits for PostgreSQL at start before giving up.
pub const SERVICE_START_WAIT: Duration = Duration::from_secs(30);

/// A service's pool: the settings' connection options and size, migrated,
/// waiting up to [`SERVICE_START_WAIT`] for the database.
pub async fn open(settings: &Settings, shutdown: &CancellationToken) -> Result<PgPool, DbError> {
    connect_and_migrate(
        settings.pg.options(),
        settings.pg.max_connections,
        SERVICE_START_WAIT,
        shutdown,
    )
    .await
}

/// Connects, retrying for up to `wait` (PostgreSQL often starts after us in
/// compose), then runs the migrations (under sqlx's advisory lock, so several
/// services starting at once is fine).
pub async fn connect_and_migrate(
    options: PgConnectOptions,
    max_connections: u32,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<PgPool, DbError> {
    let pool = connect(options, max_connections, wait, shutdown).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Connects, retrying for up to `wait`.
pub async fn connect(
    options: PgConnectOptions,
    max_connections: u32,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<PgPool, DbError> {
    let target = target(&options);
    let deadline = tokio::time::Instant::now() + wait;
    // Retry delays: 500 ms doubling to 3 s.
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
    let mut attempt = 0u32;
    loop {
        let result = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await;
        match result {
            Ok(pool) => {
                info!(target = %target, "PostgreSQL connected.");
                return Ok(pool);
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                attempt += 1;
                warn!(target = %target, attempt, error = %e, "PostgreSQL not reachable yet; retrying.");
                if !backoff.pause(shutdown).await {
                    return Err(DbError::Stopped);
                }
            }
            Err(source) => return Err(DbError::Connect { target, source }),
        }
    }
}

/// `SELECT 1` with a short timeout, for `/health`.
pub async fn ping(pool: &PgPool) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(pool)
        )
        .await,
        Ok(Ok(_))
    )
}
