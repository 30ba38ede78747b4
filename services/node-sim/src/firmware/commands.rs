//! How a firmware-mode node answers a command: the firmware's checks
//! ([`super::signature`]), redeliveries answered from the cache, then the
//! same command rules and physics as a classic node, with responses as
//! MQTT_SPEC §8 describes them (`ts` in milliseconds).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use proto::payloads::{CommandResponse, ResponseStatus};
use proto::topics::TopicKind;
use serde_json::{Map, Value};
use tracing::debug;

use super::node::{Inner, lock};
use super::signature::{self, HmacRejection};
use crate::command::{Action, Rejection, parse_action};
use crate::layout::ChannelSpec;
use crate::metrics as m;
use crate::recent::Seen;

impl Inner {
    pub(super) fn on_command(self: &Arc<Self>, channel: String, payload: &[u8]) {
        let Ok(Value::Object(command)) = serde_json::from_slice::<Value>(payload) else {
            metrics::counter!(m::COMMANDS_RECEIVED, "result" => "undecodable").increment(1);
            return;
        };
        let text = |k: &str| {
            command
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let Some(cmd_id) = text("cmd_id").map(str::to_owned) else {
            // Nothing to answer with.
            metrics::counter!(m::COMMANDS_RECEIVED, "result" => "undecodable").increment(1);
            return;
        };
        let Some(cmd) = text("cmd").map(str::to_owned) else {
            return self.reply_error(
                channel,
                cmd_id,
                "invalid_command_format",
                "Command must include non-empty cmd and cmd_id",
            );
        };
        let now = lock(&self.clock).now_secs();
        if let Err(r) = signature::check(&command, self.secret().as_bytes(), now) {
            debug!(hardware_id = %self.hardware_id, %cmd_id, code = r.error_code(), "Command refused.");
            return self.refuse(channel, cmd_id, r);
        }
        match lock(&self.recent).check_in(&cmd_id) {
            Seen::New => {}
            Seen::Again(last) => {
                metrics::counter!(m::COMMANDS_RECEIVED, "result" => "duplicate").increment(1);
                if let Some(last) = last {
                    self.spawn(channel, vec![(Duration::ZERO, last)], false);
                }
                return;
            }
        }
        let params = match command.get("params") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => {
                return self.reply_error(
                    channel,
                    cmd_id,
                    "invalid_params_format",
                    "params must be a JSON object",
                );
            }
        };
        let Some(spec) = self.channel(&channel) else {
            let r = Rejection::new(
                "unknown_channel",
                format!("node has no channel `{channel}`"),
            );
            return self.reply_invalid(channel, cmd_id, r);
        };
        match parse_action(&spec, &cmd, &params) {
            Err(r) => self.reply_invalid(channel, cmd_id, r),
            Ok(action) => self.execute(channel, cmd_id, spec, action),
        }
    }

    /// A channel the node runs: in its config when it has one, and on its hardware.
    pub(super) fn channel(&self, name: &str) -> Option<ChannelSpec> {
        let configured = lock(&self.config)
            .as_ref()
            .is_none_or(|c| c.channels.iter().any(|ch| ch.name == name));
        configured
            .then(|| self.hardware.channel(name).copied())
            .flatten()
    }

    pub(super) fn execute(
        self: &Arc<Self>,
        channel: String,
        cmd_id: String,
        spec: ChannelSpec,
        action: Action,
    ) {
        self.executed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "done").increment(1);
        let (wait, details) = lock(&self.physics).perform(self.hardware.kind, &spec, action);
        let ack = response(&cmd_id, ResponseStatus::Ack);
        let mut done = response(&cmd_id, ResponseStatus::Done);
        done.details = details;
        self.spawn(
            channel,
            vec![(Duration::ZERO, ack), (wait, done)],
            matches!(action, Action::ReadNow | Action::Calibrate),
        );
    }

    pub(super) fn refuse(self: &Arc<Self>, channel: String, cmd_id: String, r: HmacRejection) {
        self.reply_error(channel, cmd_id, r.error_code(), r.error_message());
    }

    pub(super) fn reply_error(
        self: &Arc<Self>,
        channel: String,
        cmd_id: String,
        code: &str,
        message: &str,
    ) {
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "error").increment(1);
        let mut r = response(&cmd_id, ResponseStatus::Error);
        r.error_code = Some(code.to_owned());
        r.error_message = Some(message.to_owned());
        self.spawn(channel, vec![(Duration::ZERO, r)], false);
    }

    pub(super) fn reply_invalid(
        self: &Arc<Self>,
        channel: String,
        cmd_id: String,
        rejection: Rejection,
    ) {
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "invalid").increment(1);
        let mut r = response(&cmd_id, ResponseStatus::Invalid);
        r.error_code = Some(rejection.code.to_owned());
        r.error_message = Some(rejection.message);
        self.spawn(channel, vec![(Duration::ZERO, r)], false);
    }

    /// Sends `responses` in order (each after its wait) on the connection in
    /// use at that moment; with `read_first`, a fresh reading of the
    /// channel goes out before the last one.
    pub(super) fn spawn(
        self: &Arc<Self>,
        channel: String,
        responses: Vec<(Duration, CommandResponse)>,
        read_first: bool,
    ) {
        if self.ctx.faults.drop_command() {
            metrics::counter!(m::RESPONSES_DROPPED).increment(1);
            return;
        }
        let node = self.clone();
        self.tasks.spawn(async move {
            let last = responses.len().saturating_sub(1);
            let run = async {
                for (i, (wait, mut r)) in responses.into_iter().enumerate() {
                    tokio::time::sleep(wait + node.ctx.faults.delay()).await;
                    let Some(connection) = node.connection() else {
                        return;
                    };
                    if read_first && i == last {
                        node.publish_telemetry(&connection, Some(&channel)).await;
                    }
                    r.ts = lock(&node.clock).stamp_ms();
                    let topic = node.channel_topic(&channel, TopicKind::CommandResponse);
                    let payload = serde_json::to_vec(&r).expect("response serialises");
                    for _ in 0..node.ctx.faults.copies() {
                        node.publish(
                            &connection,
                            "command_response",
                            &topic,
                            payload.clone(),
                            false,
                        )
                        .await;
                    }
                    lock(&node.recent).record(&r);
                }
            };
            tokio::select! {
                _ = node.loops.cancelled() => {}
                _ = run => {}
            }
        });
    }
}

fn response(cmd_id: &str, status: ResponseStatus) -> CommandResponse {
    CommandResponse {
        cmd_id: cmd_id.to_owned(),
        status,
        ts: 0,
        details: None,
        error_code: None,
        error_message: None,
        message: None,
    }
}
