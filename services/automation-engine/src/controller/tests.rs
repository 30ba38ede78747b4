//! The unit tests of `controller`.

use chrono::{Duration, TimeZone};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
}

fn ph() -> (Setpoint, Limits) {
    (
        Setpoint {
            target: 5.8,
            min: None,
            max: None,
        },
        Limits::defaults(Quantity::Ph),
    )
}

fn reading(value: f64) -> Reading {
    Reading {
        node_id: 1,
        value,
        ts: now() - Duration::seconds(5),
        stable: Some(true),
    }
}

fn dose(d: Decision) -> Dose {
    match d {
        Decision::Dose(d) => d,
        other => panic!("expected a dose, got {other:?}"),
    }
}

fn skip(d: Decision) -> Skip {
    match d {
        Decision::Skip(s) => s,
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[test]
fn high_ph_gets_acid_and_low_ph_gets_base() {
    let (s, l) = ph();
    let high = dose(decide(&s, &l, Some(&reading(6.3)), None, now()));
    assert_eq!(
        (high.direction, high.channel.as_str()),
        (Direction::Down, "pump_acid")
    );
    assert!((high.error - 0.5).abs() < 1e-9);
    let low = dose(decide(&s, &l, Some(&reading(5.3)), None, now()));
    assert_eq!(
        (low.direction, low.channel.as_str()),
        (Direction::Up, "pump_base")
    );
}

#[test]
fn high_ec_gets_dilution_and_low_ec_gets_nutrients() {
    let s = Setpoint {
        target: 1.8,
        min: None,
        max: None,
    };
    let l = Limits::defaults(Quantity::Ec);
    let high = dose(decide(&s, &l, Some(&reading(2.2)), None, now()));
    assert_eq!(high.channel, "pump_dilution");
    let low = dose(decide(&s, &l, Some(&reading(1.4)), None, now()));
    assert_eq!(low.channel, "pump_nutrients");
    assert_eq!(low.direction, Direction::Up);
}

#[test]
fn the_dose_is_proportional_to_the_error() {
    let (s, l) = ph();
    let small = dose(decide(&s, &l, Some(&reading(6.0)), None, now()));
    let large = dose(decide(&s, &l, Some(&reading(6.2)), None, now()));
    assert_eq!(small.duration_ms, (l.ms_per_unit * 0.2).round() as u64);
    assert_eq!(large.duration_ms, (l.ms_per_unit * 0.4).round() as u64);
    assert!(!small.capped && !large.capped);
}

#[test]
fn the_dose_is_bounded_by_its_minimum_and_maximum() {
    let (s, mut l) = ph();
    let far = dose(decide(&s, &l, Some(&reading(8.8)), None, now()));
    assert_eq!(far.duration_ms, l.max_dose_ms);
    assert!(far.capped);
    l.dead_band = 0.01;
    let near = dose(decide(&s, &l, Some(&reading(5.82)), None, now()));
    assert_eq!(near.duration_ms, l.min_dose_ms);
    assert!(!near.capped);
}

#[test]
fn nothing_inside_the_dead_band_edges_included() {
    let (s, l) = ph();
    for v in [5.8, 5.75, 5.85, 5.8 - l.dead_band, 5.8 + l.dead_band] {
        assert_eq!(
            skip(decide(&s, &l, Some(&reading(v)), None, now())).reason(),
            "in_dead_band",
            "{v}"
        );
    }
    dose(decide(
        &s,
        &l,
        Some(&reading(5.8 + l.dead_band + 0.001)),
        None,
        now(),
    ));
}

#[test]
fn the_recipes_min_and_max_narrow_the_band() {
    let (_, l) = ph();
    let s = Setpoint {
        target: 5.8,
        min: Some(5.78),
        max: Some(6.5),
    };
    // Below min though inside the default band: dosed.
    let d = dose(decide(&s, &l, Some(&reading(5.75)), None, now()));
    assert_eq!(d.direction, Direction::Up);
    match skip(decide(&s, &l, Some(&reading(5.85)), None, now())) {
        Skip::InDeadBand { low, high } => assert_eq!((low, high), (5.78, 5.8 + l.dead_band)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_unstable_and_missing_readings_are_not_dosed() {
    let (s, l) = ph();
    assert_eq!(skip(decide(&s, &l, None, None, now())), Skip::NoReading);
    let mut old = reading(6.8);
    old.ts = now() - Duration::seconds(l.max_reading_age_sec + 1);
    assert_eq!(
        skip(decide(&s, &l, Some(&old), None, now())),
        Skip::StaleReading {
            age_sec: l.max_reading_age_sec + 1
        }
    );
    let mut settling = reading(6.8);
    settling.stable = Some(false);
    assert_eq!(
        skip(decide(&s, &l, Some(&settling), None, now())),
        Skip::UnstableReading
    );
    // Not saying is not unstable; a node clock a little ahead is not stale.
    let mut unsaid = reading(6.8);
    unsaid.stable = None;
    unsaid.ts = now() + Duration::seconds(FUTURE_TOLERANCE_SEC);
    dose(decide(&s, &l, Some(&unsaid), None, now()));
}

#[test]
fn a_reading_from_the_future_is_never_acted_on() {
    let (s, l) = ph();
    for ahead in [FUTURE_TOLERANCE_SEC + 1, 600, 86_400 * 365 * 7000] {
        let mut r = reading(6.8);
        r.ts = now() + Duration::seconds(ahead);
        let skipped = skip(decide(&s, &l, Some(&r), None, now()));
        assert_eq!(skipped, Skip::FutureReading { ahead_sec: ahead });
        assert_eq!(skipped.reason(), "future_reading");
        assert_eq!(skipped.details(), json!({ "ahead_sec": ahead }));
    }
}

#[test]
fn no_dose_while_the_last_one_is_open_or_too_recent() {
    let (s, l) = ph();
    let open = LastDose {
        cmd_id: "c1".into(),
        at: now() - Duration::hours(1),
        open: true,
    };
    assert_eq!(
        skip(decide(&s, &l, Some(&reading(6.8)), Some(&open), now())),
        Skip::PreviousDosePending {
            cmd_id: "c1".into()
        }
    );
    let recent = LastDose {
        cmd_id: "c1".into(),
        at: now() - Duration::seconds(l.min_interval_sec - 10),
        open: false,
    };
    assert_eq!(
        skip(decide(&s, &l, Some(&reading(6.8)), Some(&recent), now())),
        Skip::MinInterval { wait_sec: 10 }
    );
    let old_enough = LastDose {
        at: now() - Duration::seconds(l.min_interval_sec),
        ..recent
    };
    dose(decide(
        &s,
        &l,
        Some(&reading(6.8)),
        Some(&old_enough),
        now(),
    ));
}

#[test]
fn setpoints_are_checked() {
    let ok = Setpoint::parse(&json!({"target": 5.8, "min": 5.6, "max": 6.0})).unwrap();
    assert_eq!(ok.target, 5.8);
    assert!(
        Setpoint::parse(&json!({"target": 5.8}))
            .unwrap()
            .min
            .is_none()
    );
    for (bad, needle) in [
        (json!({"min": 5.6}), "target"),
        (json!({"target": "5.8"}), "target"),
        (json!({"target": 5.8, "min": 6.0}), "min ≤ target ≤ max"),
        (json!({"target": 5.8, "max": 5.0}), "min ≤ target ≤ max"),
        (json!(5.8), "not"),
    ] {
        let e = Setpoint::parse(&bad).unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}
