//! Unit tests of the link: the broker candidates and the move checks.

use proto::payloads::ConfigUpdate;
use proto::signing;

use super::{Stored, check_move};

#[test]
fn candidates_are_the_stored_broker_then_the_fallbacks_once() {
    let s = Stored {
        url: "mqtt://b:1".into(),
        fallback: vec![
            "mqtt://c:1".into(),
            "mqtt://b:1".into(),
            "mqtt://a:1".into(),
        ],
        ts: 5,
    };
    assert_eq!(s.candidates(), ["mqtt://b:1", "mqtt://c:1", "mqtt://a:1"]);
}

#[test]
fn a_move_must_be_signed_and_fresh_unless_replayed() {
    let now = 1_800_000_000;
    let config = |ts| ConfigUpdate {
        mqtt_broker: "mqtt://b:1".into(),
        broker_id: "b".into(),
        fallback: vec![],
        ts,
        sig: String::new(),
    };
    let signed = |ts| signing::sign_config_update(b"k", config(ts));
    assert_eq!(check_move(&config(now), b"k", false, now), Err("unsigned"));
    assert_eq!(
        check_move(&signed(now), b"other", false, now),
        Err("bad_signature")
    );
    let mut forged = signed(now);
    forged.mqtt_broker = "mqtt://127.0.0.1:1".into();
    assert_eq!(check_move(&forged, b"k", false, now), Err("bad_signature"));
    assert_eq!(check_move(&signed(now), b"k", false, now), Ok(()));
    assert_eq!(check_move(&signed(now - 9), b"k", false, now), Ok(()));
    assert_eq!(
        check_move(&signed(now - 10), b"k", false, now),
        Err("stale")
    );
    assert_eq!(
        check_move(&signed(now + 10), b"k", false, now),
        Err("future")
    );
    // A retained copy replayed on subscribe may be old, not from the future.
    assert_eq!(check_move(&signed(now - 86_400), b"k", true, now), Ok(()));
    assert_eq!(
        check_move(&signed(now + 10), b"k", true, now),
        Err("future")
    );
    assert_eq!(
        check_move(&config(now - 5), b"k", true, now),
        Err("unsigned")
    );
}
