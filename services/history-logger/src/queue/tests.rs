//! The unit tests of `queue`.

use super::reply::parse_read_reply;
use super::*;
use proto::topics::TopicKind;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn parses_a_read_reply() {
    let pack = Pack {
        received_ms: 1_700_000_000_001,
        messages: vec![crate::pack::Message {
            broker: "mqtt1".into(),
            kind: TopicKind::Telemetry,
            topic: "hydro/a/b/c/d/telemetry".into(),
            payload: b"{}".to_vec(),
        }],
    };
    let entry = |id: &str, fields: Vec<Value>| Value::Array(vec![bulk(id), Value::Array(fields)]);
    let reply = Value::Array(vec![Value::Array(vec![
        bulk("s"),
        Value::Array(vec![
            entry(
                "1700000000000-0",
                vec![
                    bulk("n"),
                    bulk("1"),
                    bulk("r"),
                    bulk("1700000000001"),
                    bulk("p"),
                    Value::BulkString(pack.encode()),
                ],
            ),
            Value::Array(vec![bulk("1700000000000-1"), Value::Nil]),
            entry("1700000000000-2", vec![bulk("b"), bulk("mqtt1")]),
            entry(
                "1700000000000-3",
                vec![
                    bulk("n"),
                    bulk("1"),
                    bulk("r"),
                    bulk("1"),
                    bulk("m"),
                    bulk("xyz"),
                ],
            ),
        ]),
    ])]);
    let entries = parse_read_reply(reply);
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0].pack(), Some(&pack));
    assert_eq!(entries[0].count, 1);
    assert_eq!(entries[1].content, Content::Deleted);
    assert!(matches!(
        entries[2].content,
        Content::Unreadable {
            why: Unreadable("not a pack entry"),
            ..
        }
    ));
    assert!(matches!(
        &entries[3].content,
        Content::Unreadable { raw, .. } if raw == b"xyz"
    ));
    assert!(parse_read_reply(Value::Nil).is_empty());
    assert_eq!(id_millis("1700000000000-1"), Some(1_700_000_000_000));
}
