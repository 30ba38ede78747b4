//! Time sync: a node asks `hydro/time/request` and is answered
//! `hydro/time/response` with this server's clock
//! ([`TimeResponse::at`], QoS 1, not retained), on the broker the request came
//! from, straight from ingest (no Redis, no PostgreSQL: a node waits for this
//! before it publishes anything with a `ts`).
//!
//! Instances subscribe with a shared subscription, so each request is
//! answered once whatever their number. The answer is broadcast on the
//! broker, as the firmware expects: every node there waiting for its clock
//! takes it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::metrics as m;
use common::mqtt::Inbound;
use common::mqtt::pool::BrokerPool;
use proto::payloads::TimeResponse;
use proto::topics::TIME_RESPONSE;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::backpressure::RateLimit;

/// Answers time requests on the broker each came from.
#[derive(Clone)]
pub struct TimeSync {
    brokers: BrokerPool,
    warn_limit: Arc<Mutex<RateLimit>>,
}

impl TimeSync {
    /// Answers on the connections of `brokers` (those added later too).
    pub fn new(brokers: BrokerPool) -> Self {
        TimeSync {
            brokers,
            warn_limit: Arc::new(Mutex::new(RateLimit::new(Duration::from_secs(10)))),
        }
    }

    /// Answers `request` in the background (the publish waits for its PUBACK;
    /// ingest does not).
    pub fn answer(&self, request: &Inbound) {
        let broker = request.broker_id.to_string();
        metrics::counter!(m::TIME_REQUESTS, "broker" => broker.clone()).increment(1);
        let Some(connection) = self.brokers.get(&broker) else {
            self.failed(
                broker,
                "no_connection",
                "this instance has no connection to it",
            );
            return;
        };
        let started = Instant::now();
        let this = self.clone();
        tokio::spawn(async move {
            let answer = TimeResponse::at(Utc::now().timestamp());
            let payload = serde_json::to_vec(&answer).expect("a TimeResponse serializes");
            match connection.publish(TIME_RESPONSE, payload, false).await {
                Ok(()) => {
                    metrics::histogram!(m::TIME_RESPONSE_DURATION)
                        .record(started.elapsed().as_secs_f64());
                    debug!(broker, unix_ts = answer.unix_ts, "Answered a time request.");
                }
                Err(e) => this.failed(broker, e.reason(), &e.to_string()),
            }
        });
    }

    fn failed(&self, broker: String, reason: &'static str, detail: &str) {
        let now = Instant::now();
        if self
            .warn_limit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ready(now)
        {
            warn!(
                broker,
                reason, detail, "Could not answer a node's time request; it will ask again."
            );
        }
        metrics::counter!(m::TIME_RESPONSE_FAILURES, "broker" => broker, "reason" => reason)
            .increment(1);
    }
}
