//! The Redis pool (deadpool-redis).

use std::time::Duration;

use deadpool_redis::{Config, Pool, Runtime};

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("bad REDIS_URL: {0}")]
    Config(String),
    #[error("Redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("Redis: {0}")]
    Redis(#[from] deadpool_redis::redis::RedisError),
}

/// Builds the pool; connections are made on first use.
pub fn create_pool(url: &str, max_size: usize) -> Result<Pool, RedisError> {
    let mut config = Config::from_url(url);
    config.pool = Some(deadpool_redis::PoolConfig::new(max_size));
    config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| RedisError::Config(e.to_string()))
}

/// `PING` with a short timeout, for `/health`.
pub async fn ping(pool: &Pool) -> bool {
    let attempt = async {
        let mut conn = pool.get().await?;
        let pong: String = deadpool_redis::redis::cmd("PING")
            .query_async(&mut conn)
            .await?;
        Ok::<_, RedisError>(pong == "PONG")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}
