//! What a node can be told to do: the commands each channel type knows and
//! the checks on their parameters, turned into an [`Action`] or a
//! [`Rejection`] with the `error_code` the node answers INVALID with.

use serde_json::{Map, Value};

use crate::layout::{ChannelSpec, ChannelType};

/// The longest pump run a node accepts (10 minutes), as the firmware does.
pub const MAX_RUN_MS: u64 = 600_000;
/// The largest single dose, in millilitres.
pub const MAX_DOSE_ML: f64 = 1_000.0;

/// A validated command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    RunPump { duration_ms: u64 },
    Dose { ml: f64 },
    SetRelay { on: bool },
    SetPwm { value: u8 },
    Stop,
    Calibrate,
    ReadNow,
    Ping,
}

/// Why a command is answered INVALID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `error_code` of the response, e.g. `bad_params`.
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
}

fn bad_params(message: impl Into<String>) -> Rejection {
    Rejection::new("bad_params", message)
}

/// `params.<name>` as `read` accepts it, else `bad_params` saying it must be
/// `wants`.
fn param<T>(
    params: &Map<String, Value>,
    name: &str,
    read: impl Fn(&Value) -> Option<T>,
    wants: impl std::fmt::Display,
) -> Result<T, Rejection> {
    params
        .get(name)
        .and_then(read)
        .ok_or_else(|| bad_params(format!("params.{name} must be {wants}")))
}

/// Checks `cmd` and its `params` against the channel it was sent to.
pub fn parse_action(
    channel: &ChannelSpec,
    cmd: &str,
    params: &Map<String, Value>,
) -> Result<Action, Rejection> {
    let actuator = channel.channel_type == ChannelType::Actuator;
    match (cmd, actuator) {
        ("ping", _) => Ok(Action::Ping),
        ("run_pump", true) => {
            let duration_ms = param(
                params,
                "duration_ms",
                |v| v.as_u64().filter(|d| (1..=MAX_RUN_MS).contains(d)),
                format_args!("an integer between 1 and {MAX_RUN_MS}"),
            )?;
            Ok(Action::RunPump { duration_ms })
        }
        ("dose", true) => {
            let ml = param(
                params,
                "ml",
                |v| v.as_f64().filter(|ml| *ml > 0.0 && *ml <= MAX_DOSE_ML),
                format_args!("a number above 0 and at most {MAX_DOSE_ML}"),
            )?;
            Ok(Action::Dose { ml })
        }
        ("set_relay", true) => {
            let on = param(params, "state", Value::as_bool, "true or false")?;
            Ok(Action::SetRelay { on })
        }
        ("set_pwm", true) => {
            let read = |v: &Value| v.as_u64().and_then(|v| u8::try_from(v).ok());
            let value = param(params, "value", read, "an integer between 0 and 255")?;
            Ok(Action::SetPwm { value })
        }
        ("stop", true) => Ok(Action::Stop),
        ("calibrate", false) => Ok(Action::Calibrate),
        ("read_now", false) => Ok(Action::ReadNow),
        _ => Err(Rejection::new(
            "unknown_command",
            format!(
                "`{cmd}` is not a command for {} channel `{}`",
                channel.channel_type.as_str(),
                channel.channel
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::layout::NodeKind;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn pump() -> &'static ChannelSpec {
        &NodeKind::Ph.channels()[1]
    }

    fn sensor() -> &'static ChannelSpec {
        &NodeKind::Ph.channels()[0]
    }

    #[test]
    fn valid_commands() {
        let cases = [
            (
                "run_pump",
                json!({"duration_ms": 100}),
                Action::RunPump { duration_ms: 100 },
            ),
            (
                "run_pump",
                json!({"duration_ms": 600000}),
                Action::RunPump {
                    duration_ms: 600_000,
                },
            ),
            ("dose", json!({"ml": 2.5}), Action::Dose { ml: 2.5 }),
            ("dose", json!({"ml": 1000}), Action::Dose { ml: 1000.0 }),
            (
                "set_relay",
                json!({"state": true}),
                Action::SetRelay { on: true },
            ),
            ("set_pwm", json!({"value": 0}), Action::SetPwm { value: 0 }),
            (
                "set_pwm",
                json!({"value": 255}),
                Action::SetPwm { value: 255 },
            ),
            ("stop", json!({}), Action::Stop),
            ("ping", json!({}), Action::Ping),
        ];
        for (cmd, p, expected) in cases {
            assert_eq!(parse_action(pump(), cmd, &params(p)), Ok(expected), "{cmd}");
        }
        assert_eq!(
            parse_action(sensor(), "calibrate", &Map::new()),
            Ok(Action::Calibrate)
        );
        assert_eq!(
            parse_action(sensor(), "read_now", &Map::new()),
            Ok(Action::ReadNow)
        );
        assert_eq!(
            parse_action(sensor(), "ping", &Map::new()),
            Ok(Action::Ping)
        );
    }

    #[test]
    fn bad_params_name_the_param() {
        let cases = [
            ("run_pump", json!({}), "duration_ms"),
            ("run_pump", json!({"duration_ms": 0}), "duration_ms"),
            ("run_pump", json!({"duration_ms": 600001}), "duration_ms"),
            ("run_pump", json!({"duration_ms": 1.5}), "duration_ms"),
            ("run_pump", json!({"duration_ms": "100"}), "duration_ms"),
            ("run_pump", json!({"duration_ms": -5}), "duration_ms"),
            ("dose", json!({"ml": 0}), "ml"),
            ("dose", json!({"ml": -1}), "ml"),
            ("dose", json!({"ml": 1000.5}), "ml"),
            ("set_relay", json!({"state": 1}), "state"),
            ("set_pwm", json!({"value": 256}), "value"),
            ("set_pwm", json!({"value": -1}), "value"),
        ];
        for (cmd, p, field) in cases {
            let r = parse_action(pump(), cmd, &params(p.clone())).unwrap_err();
            assert_eq!(r.code, "bad_params", "{cmd} {p}");
            assert!(r.message.contains(field), "{cmd} {p}: {}", r.message);
        }
    }

    #[test]
    fn commands_belong_to_a_channel_type() {
        for (channel, cmd) in [
            (sensor(), "run_pump"),
            (sensor(), "dose"),
            (sensor(), "stop"),
            (pump(), "calibrate"),
            (pump(), "read_now"),
            (pump(), "self_destruct"),
        ] {
            let r = parse_action(channel, cmd, &Map::new()).unwrap_err();
            assert_eq!(r.code, "unknown_command", "{cmd} on {}", channel.channel);
        }
    }
}
