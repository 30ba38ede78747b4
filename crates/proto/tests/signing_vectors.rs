//! The signer against golden vectors computed independently, the way the
//! hydro2.0 firmware checks a command (scripts/signing_vectors.py): integral
//! floats, 0.5, 1e21, -0.0, unicode, nested params, large integers.

use proto::payloads::Command;
use proto::signing;
use serde_json::{Map, Value};

#[derive(serde::Deserialize)]
struct Vector {
    name: String,
    command: String,
    canonical: String,
    sig: String,
}

#[derive(serde::Deserialize)]
struct Vectors {
    secret: String,
    vectors: Vec<Vector>,
}

fn vectors() -> Vectors {
    let text = include_str!("golden/signing_vectors.json");
    serde_json::from_str(text).expect("signing_vectors.json parses")
}

#[test]
fn signer_matches_every_golden_vector() {
    let golden = vectors();
    assert!(golden.vectors.len() >= 9);
    for v in &golden.vectors {
        let command: Map<String, Value> = serde_json::from_str(&v.command).unwrap();
        let params = command["params"].as_object().unwrap().clone();
        let cmd_id = command["cmd_id"].as_str().unwrap();
        let cmd = command["cmd"].as_str().unwrap();
        let ts = command["ts"].as_i64().unwrap();
        let canonical = signing::canonical_bytes(cmd_id, cmd, &params, ts);
        assert_eq!(
            String::from_utf8(canonical).unwrap(),
            v.canonical,
            "canonical form of `{}`",
            v.name
        );
        let signed = signing::sign(golden.secret.as_bytes(), cmd_id, cmd, params, ts);
        assert_eq!(signed.sig, v.sig, "signature of `{}`", v.name);
        assert!(signing::verify(golden.secret.as_bytes(), &signed));
    }
}

#[test]
fn published_payload_verifies_after_a_round_trip() {
    // What a node receives is the published JSON, parsed again: the
    // signature must survive serde's printing of 2.0 as `2.0`.
    let golden = vectors();
    for v in &golden.vectors {
        let command: Map<String, Value> = serde_json::from_str(&v.command).unwrap();
        let signed = signing::sign(
            golden.secret.as_bytes(),
            command["cmd_id"].as_str().unwrap(),
            command["cmd"].as_str().unwrap(),
            command["params"].as_object().unwrap().clone(),
            command["ts"].as_i64().unwrap(),
        );
        let wire = serde_json::to_vec(&signed).unwrap();
        let received = Command::decode(&wire).unwrap();
        assert!(
            signing::verify(golden.secret.as_bytes(), &received),
            "`{}` after the wire",
            v.name
        );
    }
}
