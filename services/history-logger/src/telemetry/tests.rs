//! The unit tests of `telemetry`.

use super::*;

fn s(node: i64, channel: &str, metric: &'static str, ts: i64, value: f64) -> Sample {
    Sample {
        node_id: node,
        zone_id: Some(1),
        channel: channel.into(),
        metric_type: metric,
        value,
        raw: None,
        stable: None,
        ts,
    }
}

#[test]
fn newest_per_key_sorted() {
    let batch = vec![
        s(2, "ph", "PH", 10, 1.0),
        s(1, "ec", "EC", 30, 2.0),
        s(2, "ph", "PH", 20, 3.0),
        s(2, "ph", "PH", 15, 4.0),
        s(1, "ec", "EC", 30, 5.0),
        s(1, "ec", "TEMPERATURE", 5, 6.0),
    ];
    let last = latest_per_key(&batch);
    let got: Vec<(i64, &str, &str, i64, f64)> = last
        .iter()
        .map(|s| (s.node_id, s.channel.as_str(), s.metric_type, s.ts, s.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "ec", "EC", 30, 2.0),
            (1, "ec", "TEMPERATURE", 5, 6.0),
            (2, "ph", "PH", 20, 3.0),
        ]
    );
    assert!(latest_per_key(&[]).is_empty());
}

#[test]
fn the_first_reading_of_a_second_is_kept_and_a_different_one_refused() {
    let mut raw_differs = s(1, "ph", "PH", 10, 6.5);
    raw_differs.raw = Some(7);
    let batch = vec![
        s(1, "ph", "PH", 10, 6.5),
        s(1, "ph", "PH", 10, 6.5), // redelivery: dropped, not refused
        s(1, "ph", "PH", 10, 6.6), // same second, other value: refused
        s(1, "ph", "PH", 11, 6.6),
        s(1, "ph", "EC", 10, 1.0), // another metric: its own key
        raw_differs,               // same value, other raw: refused
    ];
    let (leaders, followers) = first_per_second(&batch);
    assert_eq!(leaders, vec![0, 3, 4]);
    assert_eq!(followers, vec![(1, 0), (2, 0), (5, 0)]);
    // Nothing stored before: the leaders win.
    assert_eq!(
        refusals(&batch, &leaders, &followers, &HashMap::new()),
        vec![2, 5]
    );
    // A reading of ts 10 stored earlier with 6.6: it wins, so the
    // leader and its copy are refused and the 6.6 is a redelivery.
    let stored = HashMap::from([(0, (6.6, None))]);
    assert_eq!(
        refusals(&batch, &leaders, &followers, &stored),
        vec![0, 1, 5]
    );
    // The same reading stored: a redelivery of the whole batch.
    let stored = HashMap::from([(0, (6.5, None)), (3, (6.6, None))]);
    assert_eq!(refusals(&batch, &leaders, &followers, &stored), vec![2, 5]);
    // telemetry_last gets the leaders not refused: the newest is ts 11.
    let last = latest_per_key(leaders.iter().map(|k| &batch[*k]));
    let got: Vec<(&str, i64, f64)> = last
        .iter()
        .map(|s| (s.metric_type, s.ts, s.value))
        .collect();
    assert_eq!(got, vec![("EC", 10, 1.0), ("PH", 11, 6.6)]);
}
