//! Wiring: PostgreSQL, Redis (stream and consumer group), the broker
//! connections with manual acks and persistent sessions, the shared
//! subscriptions (uplink kinds and time requests), ingest, writer, monitor
//! and the HTTP server.

use std::sync::Arc;
use std::time::Duration;

use common::QoS;
use common::mqtt::pool::BrokerPool;
use common::runtime::http::{Dependency, Health};
use common::runtime::service::Base;
use common::settings::{Settings, Uses};
use proto::topics::TIME_REQUEST;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::drop_log::DropLog;
use crate::ingest::{Ingest, IngestStats};
use crate::pack::KINDS;
use crate::queue::Queue;
use crate::time_sync::TimeSync;
use crate::writer::{Writer, WriterConfig};
use crate::{DEFAULT_PORT, HistorySettings, SERVICE, monitor};

common::service_app! {
    /// A built history-logger, listening but not yet serving.
    pub struct App {
        queue: Queue,
        stats: Arc<IngestStats>,
    }
}

impl App {
    /// Connects to PostgreSQL (migrating it), Redis and the brokers, starts
    /// ingest, writer and monitor, and binds `HTTP_PORT` (0 picks a free port).
    pub async fn build(settings: Settings, history: HistorySettings) -> anyhow::Result<App> {
        let base = Base::start(SERVICE, &settings, &[Uses::Mqtt, Uses::Database]).await?;
        let (pool, stop, tasks) = (base.pool.clone(), base.stop.clone(), base.tasks.clone());
        let redis = common::store::redis::create_pool(&settings.redis.url, 8)?;
        let queue = Queue::new(
            redis.clone(),
            &history.history_stream,
            &history.history_consumer_group,
            &history.history_dead_letter_key,
            history.history_dead_letter_max,
            history.history_queue_max,
        );
        ensure_group(&queue, &stop).await?;

        let instance = history.instance();
        let (inbox_tx, inbox_rx) = mpsc::channel(4096);
        let session_expiry = history.session_expiry();
        // Follows the `brokers` table: a broker added later is connected and
        // given the same subscriptions, without a restart.
        let client_instance = instance.clone();
        let brokers = BrokerPool::connect_following(
            &settings,
            &pool,
            SERVICE,
            Some(inbox_tx),
            &stop,
            move |config| {
                config.manual_acks = true;
                // One PUBACK per message: let the kernel coalesce them.
                config.nodelay = false;
                config.session_expiry = session_expiry;
                // A persistent session is found again by its client id.
                config.client_id = format!("{SERVICE}-{client_instance}-{}", config.broker_id);
            },
        )
        .await?;
        let group = settings.mqtt.share_group_or(SERVICE);
        for kind in KINDS {
            brokers.subscribe_all(&kind.shared_filter(group), QoS::AtLeastOnce)?;
        }
        // Shared too: N instances answer each request once.
        brokers.subscribe_all(&format!("$share/{group}/{TIME_REQUEST}"), QoS::AtLeastOnce)?;

        let stats = Arc::new(IngestStats::default());
        let drops = Arc::new(DropLog::default());
        let ingest = Ingest {
            queue: queue.clone(),
            max_pack: history.telemetry_batch_size,
            brokers: brokers.clone(),
            stats: stats.clone(),
            time_sync: TimeSync::new(brokers.clone()),
            drops: drops.clone(),
            checks: history.checks(),
        };
        tasks.spawn(ingest.run(inbox_rx, stop.clone()));
        let writer = Writer::new(
            pool.clone(),
            queue.clone(),
            WriterConfig {
                consumer: instance.clone(),
                batch_size: history.telemetry_batch_size,
                flush: history.flush(),
                claim_idle: history.claim_idle(),
                writers: history.history_writers,
                checks: history.checks(),
            },
            drops,
        );
        tasks.spawn(writer.run(stop.clone()));
        tasks.spawn(monitor::run(queue.clone(), stats.clone(), stop.clone()));

        let health = Health::new(SERVICE)
            .require(Dependency::Postgres(pool.clone()))
            .require(Dependency::Redis(redis))
            .require(Dependency::Brokers(brokers.clone()));
        info!(instance, stream = %history.history_stream, "history-logger ready.");
        let runner = base
            .bind_ops(&settings, DEFAULT_PORT, health, brokers.clone())
            .await?;
        Ok(App {
            runner,
            queue,
            stats,
        })
    }

    /// The uplink queue (for tests).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// This instance's ingest counters (for tests).
    pub fn stats(&self) -> Arc<IngestStats> {
        self.stats.clone()
    }
}

/// Creates the consumer group, waiting up to 30 s for Redis.
async fn ensure_group(queue: &Queue, stop: &CancellationToken) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match queue.ensure_group().await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                warn!(error = %e, "Redis not reachable yet; retrying.");
                tokio::select! {
                    _ = stop.cancelled() => anyhow::bail!("stopped while waiting for Redis"),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(e) => return Err(anyhow::Error::new(e).context("Redis unreachable")),
        }
    }
}
