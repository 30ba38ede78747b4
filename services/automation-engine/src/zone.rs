//! One zone in one cycle: advance its recipe phase if its time has come,
//! otherwise decide pH and EC and send the doses decided. Every decision
//! and every problem becomes a zone event (filtered for repeats by the
//! cycle); a problem also marks the zone failed for the cycle's error count.

use std::time::{Duration, Instant};

use common::commands::{CommandSender, NewCommand, SendOutcome, Source, new_cmd_id};
use common::metrics as m;
use common::runtime::lease::LeaseGuard;
use common::store::recipe_phases::ActivePhase;
use common::store::zone_events::ZoneEvent;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::controller::{self, Decision, Dose, Quantity, Reading, Setpoint};
use crate::phase;
use crate::snapshot::Snapshot;

/// What every zone of a cycle shares.
pub struct ZoneCtx<'a> {
    pub pool: &'a PgPool,
    pub sender: &'a CommandSender,
    pub lease: &'a LeaseGuard,
    pub snapshot: &'a Snapshot,
}

/// A zone event and what the repeat filter needs to know about it.
#[derive(Debug)]
pub struct Note {
    /// `ph`, `ec`, `zone` or `phase`.
    pub subject: &'static str,
    /// The reason of a skip or an error; `None` for what is always written.
    pub repeat_key: Option<String>,
    pub event: ZoneEvent,
}

/// What processing one zone came to.
#[derive(Debug, Default)]
pub struct ZoneOutcome {
    pub notes: Vec<Note>,
    /// What went wrong; not empty = the zone failed this cycle.
    pub errors: Vec<String>,
    pub doses: usize,
    pub elapsed: Duration,
}

impl ZoneOutcome {
    fn absorb(&mut self, other: ZoneOutcome) {
        self.notes.extend(other.notes);
        self.errors.extend(other.errors);
        self.doses += other.doses;
    }

    fn fail(&mut self, zone_id: i64, subject: &'static str, error: String) {
        self.notes.push(Note {
            subject,
            repeat_key: Some(error.clone()),
            event: ZoneEvent::new(
                zone_id,
                "AUTOMATION_ERROR",
                json!({ "subject": subject, "error": error }),
            ),
        });
        self.errors.push(error);
    }
}

/// Processes one zone; answers with the zone it processed. One span per
/// zone step: its decisions and errors are logged with the zone.
#[tracing::instrument(name = "zone_step", skip_all, fields(zone = %phase.zone_uid, phase = phase.phase_index))]
pub async fn process<'a>(
    ctx: &ZoneCtx<'_>,
    phase: &'a ActivePhase,
) -> (&'a ActivePhase, ZoneOutcome) {
    let started = Instant::now();
    let mut out = ZoneOutcome::default();
    decide_and_act(ctx, phase, &mut out).await;
    out.elapsed = started.elapsed();
    (phase, out)
}

async fn decide_and_act(ctx: &ZoneCtx<'_>, p: &ActivePhase, out: &mut ZoneOutcome) {
    let snap = ctx.snapshot;
    if let Some(advance) = phase::advance(p, snap.now) {
        match phase::apply(ctx.pool, p, &advance).await {
            Ok(Some(event)) => out.notes.push(Note {
                subject: "phase",
                repeat_key: None,
                event,
            }),
            Ok(None) => {}
            Err(e) => out.fail(
                p.zone_id,
                "zone",
                format!("could not advance the phase: {e}"),
            ),
        }
        // The new phase's targets apply from the next cycle.
        return;
    }
    let Some(targets) = &p.targets else {
        let error = format!("recipe {} has no phase {}", p.recipe_id, p.phase_index);
        return out.fail(p.zone_id, "zone", error);
    };
    let mut doses = Vec::new();
    for q in Quantity::ALL {
        let Some(raw) = targets.get(q.as_str()) else {
            continue; // the phase does not control this quantity
        };
        let subject = q.as_str();
        let setpoint = match Setpoint::parse(raw) {
            Ok(s) => s,
            Err(e) => {
                out.fail(p.zone_id, subject, format!("targets.{subject}: {e}"));
                continue;
            }
        };
        let limits = match snap.limits(p.zone_id, q) {
            Ok(l) => l,
            Err(e) => {
                out.fail(p.zone_id, subject, e.to_owned());
                continue;
            }
        };
        let reading = snap.reading(p.zone_id, q);
        let last = snap.last_dose(p.zone_id, limits);
        let mut payload = json!({
            "quantity": subject,
            "target": setpoint.target,
            "value": reading.map(|r| r.value),
        });
        match controller::decide(&setpoint, limits, reading, last, snap.now) {
            Decision::Skip(skip) => {
                metrics::counter!(m::AUTOMATION_DECISIONS, "quantity" => subject, "decision" => skip.reason())
                    .increment(1);
                payload["reason"] = json!(skip.reason());
                merge(&mut payload, skip.details());
                out.notes.push(Note {
                    subject,
                    repeat_key: Some(skip.reason().to_owned()),
                    event: ZoneEvent::new(p.zone_id, "AUTOMATION_SKIP", payload),
                });
            }
            Decision::Dose(dose) => {
                metrics::counter!(m::AUTOMATION_DECISIONS, "quantity" => subject, "decision" => "dose")
                    .increment(1);
                doses.push(send_dose(ctx, p, q, dose, reading, payload));
            }
        }
    }
    // pH and EC pumps are separate: their doses go out together.
    for sent in futures::future::join_all(doses).await {
        out.absorb(sent);
    }
}

/// Sends one dose (unless this instance no longer decides) and describes it.
async fn send_dose(
    ctx: &ZoneCtx<'_>,
    p: &ActivePhase,
    q: Quantity,
    dose: Dose,
    reading: Option<&Reading>,
    mut payload: Value,
) -> ZoneOutcome {
    let mut out = ZoneOutcome::default();
    if !ctx.lease.is_held() {
        return out; // another instance decides now
    }
    let subject = q.as_str();
    // Where several nodes have the pump, the one whose probe gave the
    // reading doses: it sits in the tank that reading describes.
    let target =
        match ctx
            .snapshot
            .channels
            .pick(p.zone_id, &dose.channel, reading.map(|r| r.node_id))
        {
            Ok(t) => t,
            Err(e) => {
                out.fail(p.zone_id, subject, e.to_string());
                return out;
            }
        };
    let mut params = Map::new();
    params.insert("duration_ms".into(), json!(dose.duration_ms));
    let command = NewCommand {
        cmd_id: new_cmd_id(),
        cmd: "run_pump".into(),
        params,
        source: Source::Automation,
        request_hash: None,
    };
    merge(
        &mut payload,
        json!({
            "error": dose.error,
            "direction": dose.direction,
            "channel": dose.channel,
            "node_uid": target.node_uid,
            "duration_ms": dose.duration_ms,
            "capped": dose.capped,
            "cmd_id": command.cmd_id,
        }),
    );
    match ctx.sender.send(target, command).await {
        Ok(SendOutcome::Sent { broker_id }) => {
            out.doses += 1;
            payload["sent"] = json!(true);
            payload["broker_id"] = json!(broker_id);
        }
        Ok(SendOutcome::Failed { broker_id, error }) => {
            let error = format!("dose not delivered: broker {broker_id}: {error}");
            payload["sent"] = json!(false);
            payload["send_error"] = json!(error);
            out.errors.push(error);
        }
        Ok(SendOutcome::Duplicate) => {
            // A fresh 128-bit id never collides; if it did, nothing was sent.
            payload["sent"] = json!(false);
            out.errors
                .push("dose not sent: duplicate command id".into());
        }
        Err(e) => {
            out.fail(
                p.zone_id,
                subject,
                format!("could not record the dose: {e}"),
            );
            return out;
        }
    }
    out.notes.push(Note {
        subject,
        repeat_key: None,
        event: ZoneEvent::new(p.zone_id, "AUTOMATION_DOSE", payload),
    });
    out
}

/// Adds `extra`'s fields to the object `into`.
fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}
