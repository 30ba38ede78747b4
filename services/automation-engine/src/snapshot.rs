//! What one cycle decides from, read in a few set-wise queries rather than
//! several per zone (a cycle of 1,000 zones reads five result sets): the
//! zones' recipe phases and the database clock, each zone's limits, its
//! newest pH/EC readings, the last automation dose of each pump channel,
//! and which node has each pump channel.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use common::commands::ZoneChannels;
use common::store::recipe_phases::{self, ActivePhase};
use common::store::telemetry_last;
use sqlx::PgPool;

use crate::controller::{FUTURE_TOLERANCE_SEC, LastDose, Quantity, Reading};
use crate::limits::Limits;

/// The inputs of one cycle.
#[derive(Debug)]
pub struct Snapshot {
    /// The database's clock when the snapshot was read.
    pub now: DateTime<Utc>,
    pub phases: Vec<ActivePhase>,
    limits: HashMap<(i64, Quantity), Result<Limits, String>>,
    readings: HashMap<(i64, Quantity), Reading>,
    last_doses: HashMap<(i64, String), LastDose>,
    pub channels: ZoneChannels,
}

impl Snapshot {
    pub async fn load(pool: &PgPool) -> Result<Snapshot, sqlx::Error> {
        let (now, phases) = recipe_phases::load(pool).await?;
        let zone_ids: Vec<i64> = phases.iter().map(|p| p.zone_id).collect();
        let mut limits = HashMap::new();
        let mut pumps: Vec<(i64, String)> = Vec::new();
        for p in &phases {
            for q in Quantity::ALL {
                let l = Limits::for_zone(q, &p.capabilities);
                if let Ok(l) = &l {
                    pumps.push((p.zone_id, l.down_channel.clone()));
                    pumps.push((p.zone_id, l.up_channel.clone()));
                }
                limits.insert((p.zone_id, q), l);
            }
        }
        let names: HashSet<&str> = pumps.iter().map(|(_, c)| c.as_str()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let (readings, last_doses, channels) = tokio::try_join!(
            load_readings(pool, &zone_ids),
            load_last_doses(pool, &pumps),
            ZoneChannels::load(pool, &zone_ids, &names),
        )?;
        Ok(Snapshot {
            now,
            phases,
            limits,
            readings,
            last_doses,
            channels,
        })
    }

    /// The zone's limits for `quantity`, or what is wrong with its overrides.
    pub fn limits(&self, zone_id: i64, quantity: Quantity) -> Result<&Limits, &str> {
        match self.limits.get(&(zone_id, quantity)) {
            Some(Ok(l)) => Ok(l),
            Some(Err(e)) => Err(e),
            None => Err("zone not in this cycle"),
        }
    }

    pub fn reading(&self, zone_id: i64, quantity: Quantity) -> Option<&Reading> {
        self.readings.get(&(zone_id, quantity))
    }

    /// The newer of the last doses through the two pumps of `limits`: both
    /// directions count, so base is not dosed right after acid.
    pub fn last_dose(&self, zone_id: i64, limits: &Limits) -> Option<&LastDose> {
        [&limits.down_channel, &limits.up_channel]
            .into_iter()
            .filter_map(|c| self.last_doses.get(&(zone_id, c.clone())))
            .max_by_key(|d| d.at)
    }
}

/// The newest pH and EC reading of each zone, whichever of its nodes gave it;
/// a reading from the future (see [`FUTURE_TOLERANCE_SEC`]) only when the zone
/// has no other, so one node's clock running ahead cannot hide the others'
/// current readings (and is still seen, and skipped, when it is all there is).
async fn load_readings(
    pool: &PgPool,
    zone_ids: &[i64],
) -> Result<HashMap<(i64, Quantity), Reading>, sqlx::Error> {
    let metrics: Vec<String> = Quantity::ALL
        .iter()
        .map(|q| q.metric_type().to_owned())
        .collect();
    let rows =
        telemetry_last::newest_by_zone(pool, zone_ids, &metrics, FUTURE_TOLERANCE_SEC as f64)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let q = if r.metric_type == Quantity::Ph.metric_type() {
                Quantity::Ph
            } else {
                Quantity::Ec
            };
            let reading = Reading {
                node_id: r.node_id,
                value: r.value,
                ts: r.ts,
                stable: r.stable,
            };
            ((r.zone_id, q), reading)
        })
        .collect())
}

/// The newest automation command of each (zone, pump channel) that reached
/// a broker (a SEND_FAILED one dosed nothing).
async fn load_last_doses(
    pool: &PgPool,
    pumps: &[(i64, String)],
) -> Result<HashMap<(i64, String), LastDose>, sqlx::Error> {
    let rows = common::store::commands::last_automation_per_channel(pool, pumps).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let dose = LastDose {
                cmd_id: r.cmd_id,
                at: r.created_at,
                open: r.open,
            };
            ((r.zone_id, r.channel), dose)
        })
        .collect())
}
