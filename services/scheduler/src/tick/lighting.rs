//! Lighting in a tick: the window's on and off edges due since the phase
//! started, each fired once, then the state the lights should be in now,
//! asserted once per schedule (a start, a takeover, a changed phase).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use common::commands::new_cmd_id;
use common::store::recipe_phases::ActivePhase;
use common::store::zone_events::ZoneEvent;
use serde_json::{Map, json};

use super::{Scheduler, Tick};
use crate::schedule::Kind;
use crate::slots;
use crate::time_spec::Window;

impl Scheduler {
    /// Lighting: the window's edges since `from` in order, then the current
    /// state if this schedule has not been asserted yet.
    pub(super) async fn lighting(
        &mut self,
        p: &ActivePhase,
        tz: Tz,
        from: DateTime<Utc>,
        window: Window,
        t: &mut Tick,
    ) -> anyhow::Result<()> {
        let mut edges: Vec<(DateTime<Utc>, bool)> =
            slots::occurrences(&[window.start], tz, from, t.now)
                .into_iter()
                .map(|at| (at, true))
                .chain(
                    slots::occurrences(&[window.end], tz, from, t.now)
                        .into_iter()
                        .map(|at| (at, false)),
                )
                .collect();
        edges.sort();
        let mut switched = false;
        for (at, on) in edges {
            let mut params = Map::new();
            params.insert("state".into(), json!(on));
            switched |= self
                .slot((p.zone_id, Kind::Lighting, at), "set_relay", &params, t)
                .await?;
        }
        let schedule = (p.instance_id, p.phase_index, window);
        let previous = self.asserted.get(&p.zone_id);
        if previous == Some(&schedule) {
            return Ok(());
        }
        let reason = if previous.is_some() {
            "schedule_changed"
        } else {
            "start"
        };
        // An edge fired just now has set the state already.
        if switched || self.assert_light(p, tz, window, reason, t).await? {
            self.asserted.insert(p.zone_id, schedule);
        }
        Ok(())
    }

    /// Sends the state the lights should be in now; true when it was sent.
    async fn assert_light(
        &mut self,
        p: &ActivePhase,
        tz: Tz,
        window: Window,
        reason: &str,
        t: &mut Tick,
    ) -> anyhow::Result<bool> {
        let on = window.contains(slots::local_time(tz, t.now));
        let target = match t.channels.pick(p.zone_id, Kind::Lighting.channel(), None) {
            Ok(target) => target.clone(),
            Err(e) => {
                self.report(p.zone_id, Kind::Lighting.as_str(), e.to_string(), t);
                return Ok(false);
            }
        };
        let mut params = Map::new();
        params.insert("state".into(), json!(on));
        let cmd_id = new_cmd_id();
        let Some(mut payload) = self
            .send(&target, Kind::Lighting, &cmd_id, "set_relay", &params)
            .await?
        else {
            return Ok(false);
        };
        let sent = payload["sent"] == json!(true);
        payload["state"] = json!(on);
        payload["reason"] = json!(reason);
        payload["window"] = json!(format!(
            "{}-{}",
            window.start.format("%H:%M"),
            window.end.format("%H:%M")
        ));
        t.events
            .push(ZoneEvent::new(p.zone_id, "LIGHTING_ASSERTED", payload));
        t.report.asserted += usize::from(sent);
        Ok(sent)
    }
}
