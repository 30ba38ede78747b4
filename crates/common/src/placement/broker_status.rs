//! A broker's status (GOOD / DEGRADED / CRITICAL / OFFLINE) and the one way
//! to change it: [`set_status`] updates `brokers.status` and records the
//! change in `broker_status_changes` in one transaction, so every change is
//! stored and none is stored twice.
//!
//! Who writes what: broker-registry's health monitor moves a broker between
//! GOOD, DEGRADED and CRITICAL; only the failover service marks it OFFLINE
//! (after confirming) and GOOD again (after it has answered for a while), so
//! the two never fight over a dead broker.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::store::{broker_status_changes, brokers};

proto::text_enum! {
    /// A broker's health, best first (`brokers.status`, the same text in JSON
    /// and in SQL).
    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
    )]
    #[serde(rename_all = "UPPERCASE")]
    #[sqlx(type_name = "text", rename_all = "UPPERCASE")]
    pub enum BrokerStatus {
        Good => "GOOD",
        Degraded => "DEGRADED",
        Critical => "CRITICAL",
        Offline => "OFFLINE",
    }
}

impl BrokerStatus {
    /// The value of the `broker_status{broker}` gauge: 0 GOOD … 3 OFFLINE.
    pub fn gauge(self) -> f64 {
        match self {
            BrokerStatus::Good => 0.0,
            BrokerStatus::Degraded => 1.0,
            BrokerStatus::Critical => 2.0,
            BrokerStatus::Offline => 3.0,
        }
    }

    /// Whether nodes may be given to a broker in this state.
    pub fn takes_nodes(self) -> bool {
        self != BrokerStatus::Offline
    }
}

// By hand: its error names no choices (unlike `text_enum!`'s).
impl std::str::FromStr for BrokerStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BrokerStatus::from_text(s).ok_or_else(|| format!("`{s}` is not a broker status"))
    }
}

/// Which transitions a writer may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The health monitor: GOOD, DEGRADED, CRITICAL; never from or to OFFLINE.
    Monitor,
    /// The failover service: anything.
    Failover,
}

/// Sets the broker's status to `to` unless it is already `to` (or, for the
/// monitor, unless either side is OFFLINE). Returns the previous status when
/// it changed; the change is recorded with `reason`.
pub async fn set_status(
    pool: &PgPool,
    broker_id: &str,
    to: BrokerStatus,
    writer: Writer,
    reason: &str,
) -> Result<Option<BrokerStatus>, sqlx::Error> {
    if writer == Writer::Monitor && to == BrokerStatus::Offline {
        return Ok(None);
    }
    let mut tx = pool.begin().await?;
    let Some(from) =
        brokers::update_status(&mut *tx, broker_id, to, writer == Writer::Failover).await?
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    broker_status_changes::record(&mut *tx, broker_id, from, to, reason).await?;
    tx.commit().await?;
    Ok(Some(from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for s in [
            BrokerStatus::Good,
            BrokerStatus::Degraded,
            BrokerStatus::Critical,
            BrokerStatus::Offline,
        ] {
            assert_eq!(s.as_str().parse::<BrokerStatus>(), Ok(s));
        }
        assert!(BrokerStatus::Good < BrokerStatus::Degraded);
        assert!(BrokerStatus::Critical < BrokerStatus::Offline);
        assert!("good".parse::<BrokerStatus>().is_err());
        assert_eq!(
            "good".parse::<BrokerStatus>(),
            Err("`good` is not a broker status".to_owned())
        );
        assert!(!BrokerStatus::Offline.takes_nodes());
        assert!(BrokerStatus::Critical.takes_nodes());
    }
}
