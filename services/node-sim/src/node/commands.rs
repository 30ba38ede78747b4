//! How a classic node answers a command (contract section 3): checks
//! (topic, format, signature, clock skew), redeliveries answered from the
//! recent-commands cache, then the action on the node's physics and its
//! ACK / DONE (or INVALID) responses, each command on a task of its own.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::mqtt::Inbound;
use proto::payloads::{Command, CommandResponse, ResponseStatus};
use proto::signing;
use proto::topics::{NodeTopic, TopicKind};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{Inner, MAX_CLOCK_SKEW_SECS, lock, now_millis, now_secs};
use crate::command::{Action, Rejection, parse_action};
use crate::layout::ChannelSpec;
use crate::metrics as m;
use crate::recent::Seen;

/// What a command comes to, decided before anything is sent.
enum Plan {
    /// Answer INVALID with this reason.
    Invalid(Rejection),
    /// Answer ACK, then DONE (after `wait`), with `details` on DONE.
    Execute {
        wait: Duration,
        details: Option<Map<String, Value>>,
    },
    /// A redelivery: send the last response again.
    Repeat(CommandResponse),
}

impl Inner {
    /// Takes commands one at a time (cheap checks only) and hands each
    /// one's responses to a task of its own, so a long pump run never holds
    /// up the next command.
    pub(super) async fn run_commands(self: Arc<Self>, mut inbox: mpsc::Receiver<Inbound>) {
        loop {
            let message = tokio::select! {
                _ = self.loops.cancelled() => break,
                message = inbox.recv() => match message {
                    Some(m) => m,
                    None => break,
                },
            };
            self.handle(message);
        }
    }

    fn handle(self: &Arc<Self>, message: Inbound) {
        let channel = match NodeTopic::parse(&message.topic) {
            Ok(NodeTopic {
                channel: Some(channel),
                kind: TopicKind::Command,
                ..
            }) => channel,
            _ => return self.undecodable(&message, "not a command topic"),
        };
        let command = match Command::decode(&message.payload) {
            Ok(c) => c,
            Err(e) => {
                let cmd_id = serde_json::from_slice::<Value>(&message.payload)
                    .ok()
                    .and_then(|v| v.get("cmd_id")?.as_str().map(str::to_owned))
                    .filter(|id| !id.is_empty());
                let Some(cmd_id) = cmd_id else {
                    return self.undecodable(&message, &e.to_string());
                };
                let plan = Plan::Invalid(Rejection::new("bad_format", e.to_string()));
                return self.answer(channel, cmd_id, plan);
            }
        };
        if !signing::verify(self.secret().expose_secret().as_bytes(), &command) {
            let plan = Plan::Invalid(Rejection::new(
                "bad_signature",
                "sig does not match the command signed with the node secret",
            ));
            return self.answer(channel, command.cmd_id, plan);
        }
        let skew = (now_secs() - command.ts).abs();
        if skew >= MAX_CLOCK_SKEW_SECS {
            let plan = Plan::Invalid(Rejection::new(
                "stale_command",
                format!("ts is {skew} s away from the node clock (limit {MAX_CLOCK_SKEW_SECS} s)"),
            ));
            return self.answer(channel, command.cmd_id, plan);
        }
        // Only an authentic, fresh command is remembered: a forged one must
        // not be able to block a later genuine command with the same id.
        match lock(&self.recent).check_in(&command.cmd_id) {
            Seen::New => {}
            Seen::Again(last) => {
                metrics::counter!(m::COMMANDS_RECEIVED, "result" => "duplicate").increment(1);
                debug!(node = %self.spec.uid, cmd_id = %command.cmd_id, "Redelivered command; not executed again.");
                if let Some(last) = last {
                    self.spawn_responses(channel, Plan::Repeat(last), command.cmd_id);
                }
                return;
            }
        }
        let plan = match self.spec.channel(&channel) {
            None => Plan::Invalid(Rejection::new(
                "unknown_channel",
                format!("node {} has no channel `{channel}`", self.spec.uid),
            )),
            Some(spec) => match parse_action(spec, &command.cmd, &command.params) {
                Err(r) => Plan::Invalid(r),
                Ok(action) => self.execute(spec, action),
            },
        };
        self.answer(channel, command.cmd_id, plan);
    }

    /// Applies the action and says how to report it.
    fn execute(&self, channel: &ChannelSpec, action: Action) -> Plan {
        self.executed.fetch_add(1, Ordering::Relaxed);
        let (wait, details) = lock(&self.physics).perform(self.spec.kind, channel, action);
        Plan::Execute { wait, details }
    }

    fn answer(self: &Arc<Self>, channel: String, cmd_id: String, plan: Plan) {
        let result = match &plan {
            Plan::Invalid(r) => {
                debug!(node = %self.spec.uid, %cmd_id, code = r.code, "Command refused.");
                "invalid"
            }
            _ => "done",
        };
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => result).increment(1);
        self.spawn_responses(channel, plan, cmd_id);
    }

    fn spawn_responses(self: &Arc<Self>, channel: String, plan: Plan, cmd_id: String) {
        if self.ctx.faults.drop_command() {
            metrics::counter!(m::RESPONSES_DROPPED).increment(1);
            return;
        }
        let node = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = node.loops.cancelled() => {}
                _ = node.send_responses(&channel, cmd_id, plan) => {}
            }
        });
    }

    async fn send_responses(&self, channel: &str, cmd_id: String, plan: Plan) {
        let response = |status, details: Option<Map<String, Value>>| CommandResponse {
            cmd_id: cmd_id.clone(),
            status,
            ts: 0,
            details,
            error_code: None,
            error_message: None,
            message: None,
        };
        match plan {
            Plan::Invalid(r) => {
                let mut invalid = response(ResponseStatus::Invalid, None);
                invalid.error_code = Some(r.code.to_owned());
                invalid.error_message = Some(r.message);
                self.respond(channel, invalid).await;
            }
            Plan::Repeat(last) => self.respond(channel, last).await,
            Plan::Execute { wait, details } => {
                self.respond(channel, response(ResponseStatus::Ack, None))
                    .await;
                tokio::time::sleep(wait).await;
                if details.is_some() {
                    // read_now and calibrate also report the fresh reading.
                    self.publish_telemetry(Some(channel)).await;
                }
                self.respond(channel, response(ResponseStatus::Done, details))
                    .await;
            }
        }
    }

    /// Sends one response after the configured delay, twice if a fault says so.
    async fn respond(&self, channel: &str, mut response: CommandResponse) {
        let delay = self.ctx.faults.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        response.ts = now_millis();
        let topic = self.topic(channel, TopicKind::CommandResponse);
        let payload = serde_json::to_vec(&response).expect("response serialises");
        for _ in 0..self.ctx.faults.copies() {
            self.publish("command_response", &topic, payload.clone(), false)
                .await;
        }
        lock(&self.recent).record(&response);
    }

    /// Counts and logs (at most every 10 s per node) a message nobody can answer.
    fn undecodable(&self, message: &Inbound, problem: &str) {
        metrics::counter!(m::COMMANDS_RECEIVED, "result" => "undecodable").increment(1);
        let now = u64::try_from(now_secs()).unwrap_or(0);
        let last = self.undecodable_logged.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .undecodable_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(node = %self.spec.uid, topic = %message.topic, problem, "Undecodable command ignored.");
        }
    }
}
