//! Every payload of the contract against golden JSON examples in
//! `tests/golden/`: each `valid/<kind>*.json` decodes and re-encodes to the
//! same JSON; each `invalid/<kind>_*.json` is refused.

use std::path::Path;

use proto::payloads::{
    Command, CommandResponse, ConfigUpdate, Heartbeat, NodeError, NodeEvent, NodeHello,
    PayloadError, Status, Telemetry,
};
use serde_json::Value;

/// Decodes `bytes` as the payload `kind` names, and encodes it back.
fn round_trip(kind: &str, bytes: &[u8]) -> Result<Value, PayloadError> {
    fn json<T: serde::Serialize>(t: T) -> Value {
        serde_json::to_value(t).unwrap()
    }
    Ok(match kind {
        "telemetry" => json(Telemetry::decode(bytes, 1_800_000_000)?),
        "command" => json(Command::decode(bytes)?),
        "command_response" => json(CommandResponse::decode(bytes)?),
        "status" => json(Status::decode(bytes)?),
        "heartbeat" => json(Heartbeat::decode(bytes)?),
        "error" => json(NodeError::decode(bytes)?),
        "event" => json(NodeEvent::decode(bytes)?),
        "node_hello" => json(NodeHello::decode(bytes)?),
        "config_update" => json(ConfigUpdate::decode(bytes)?),
        other => panic!("no payload kind for golden file prefix `{other}`"),
    })
}

/// The payload kind a golden file is for: the longest known prefix of its name.
fn kind_of(name: &str) -> &'static str {
    const KINDS: [&str; 9] = [
        "command_response",
        "config_update",
        "node_hello",
        "telemetry",
        "heartbeat",
        "command",
        "status",
        "error",
        "event",
    ];
    KINDS
        .into_iter()
        .find(|k| name.starts_with(k))
        .unwrap_or_else(|| panic!("golden file `{name}` names no payload"))
}

fn golden(dir: &str) -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn valid_examples_decode_and_round_trip() {
    let files = golden("valid");
    assert!(files.len() >= 9, "one example per payload at least");
    for (name, bytes) in files {
        let decoded = round_trip(kind_of(&name), &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded, original, "{name} does not round-trip");
    }
}

#[test]
fn invalid_examples_are_refused() {
    let files = golden("invalid");
    assert!(files.len() >= 9);
    for (name, bytes) in files {
        assert!(
            round_trip(kind_of(&name), &bytes).is_err(),
            "{name} was accepted"
        );
    }
}

#[test]
fn every_payload_kind_has_a_valid_and_an_invalid_example() {
    let names: Vec<String> = golden("valid")
        .into_iter()
        .chain(golden("invalid"))
        .map(|(n, _)| n)
        .collect();
    for kind in [
        "telemetry",
        "command",
        "command_response",
        "status",
        "heartbeat",
        "error",
        "event",
        "node_hello",
        "config_update",
    ] {
        let valid = golden("valid").iter().any(|(n, _)| kind_of(n) == kind);
        let invalid = golden("invalid").iter().any(|(n, _)| kind_of(n) == kind);
        assert!(
            valid && invalid,
            "{kind}: valid {valid}, invalid {invalid} among {names:?}"
        );
    }
}
