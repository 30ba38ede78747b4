//! One due slot in a tick: settled already, recorded as missed (older than
//! the catch-up age), or claimed in the fires table and its command sent
//! through the shared command path, with the zone event describing it.

use common::commands::{NewCommand, SendOutcome, Source, Target, new_cmd_id};
use common::metrics as m;
use common::store::zone_events::ZoneEvent;
use serde_json::{Map, Value, json};
use tracing::warn;

use super::{Scheduler, Tick};
use crate::fires::{self, SlotKey};
use crate::schedule::Kind;
use crate::slots::{self, Due};

impl Scheduler {
    /// One slot that is due: settled already, fired, or recorded as missed.
    /// True when this call sent its command.
    pub(super) async fn slot(
        &mut self,
        key: SlotKey,
        cmd: &str,
        params: &Map<String, Value>,
        t: &mut Tick,
    ) -> anyhow::Result<bool> {
        let (zone_id, kind, at) = key;
        if t.settled.contains(&key) {
            return Ok(false);
        }
        let late = match slots::classify(at, t.now, self.catch_up_max_age) {
            Due::Fire { late } => late,
            Due::Skip { age } => {
                if fires::skip(&self.pool, key).await? {
                    metrics::counter!(m::SCHEDULE_MISSED_SLOTS, "kind" => kind.as_str())
                        .increment(1);
                    t.report.skipped += 1;
                    t.events.push(ZoneEvent::new(
                        zone_id,
                        "SCHEDULE_SLOT_SKIPPED",
                        json!({
                            "kind": kind.as_str(),
                            "slot": at,
                            "age_sec": age.num_seconds(),
                            "catch_up_max_age_sec": self.catch_up_max_age.num_seconds(),
                            "params": params,
                        }),
                    ));
                }
                return Ok(false);
            }
        };
        let target = match t.channels.pick(zone_id, kind.channel(), None) {
            Ok(target) => target.clone(),
            Err(e) => {
                self.report(zone_id, kind.as_str(), e.to_string(), t);
                return Ok(false);
            }
        };
        if !self.lease.is_held() {
            return Ok(false);
        }
        let Some(cmd_id) = fires::claim(&self.pool, key, &new_cmd_id()).await? else {
            return Ok(false); // settled since this tick read the fires
        };
        let Some(mut payload) = self.send(&target, kind, &cmd_id, cmd, params).await? else {
            return Ok(false);
        };
        let sent = payload["sent"] == json!(true);
        payload["slot"] = json!(at);
        payload["late_sec"] = json!(late.num_seconds());
        let event = match kind {
            Kind::Irrigation => "IRRIGATION_FIRED",
            Kind::Lighting => "LIGHTING_SWITCHED",
        };
        t.events.push(ZoneEvent::new(zone_id, event, payload));
        t.report.fired += usize::from(sent);
        Ok(sent)
    }

    /// Sends a command; answers the event fields describing it, or `None`
    /// when another sender had sent it already (same command id).
    pub(super) async fn send(
        &self,
        target: &Target,
        kind: Kind,
        cmd_id: &str,
        cmd: &str,
        params: &Map<String, Value>,
    ) -> anyhow::Result<Option<Value>> {
        let command = NewCommand {
            cmd_id: cmd_id.to_owned(),
            cmd: cmd.to_owned(),
            params: params.clone(),
            source: Source::Scheduler,
            request_hash: None,
        };
        let mut payload = json!({
            "cmd_id": cmd_id,
            "cmd": cmd,
            "params": params,
            "node_uid": target.node_uid,
            "channel": target.channel,
        });
        match self.sender.send(target, command).await {
            Ok(SendOutcome::Sent { broker_id }) => {
                metrics::counter!(m::SCHEDULE_EXECUTIONS, "kind" => kind.as_str()).increment(1);
                payload["sent"] = json!(true);
                payload["broker_id"] = json!(broker_id);
            }
            Ok(SendOutcome::Failed { broker_id, error }) => {
                warn!(zone = %target.zone_uid, kind = kind.as_str(), broker = %broker_id, %error, "Schedule command not delivered.");
                payload["sent"] = json!(false);
                payload["send_error"] = json!(format!("broker {broker_id}: {error}"));
            }
            Ok(SendOutcome::Duplicate) => return Ok(None),
            Err(e) => return Err(anyhow::anyhow!(e).context("recording a schedule command")),
        }
        Ok(Some(payload))
    }
}
