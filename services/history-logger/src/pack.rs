//! A pack: the messages of one ingest burst, stored as one stream entry.
//!
//! One entry per burst instead of one per message is what keeps Redis cheap
//! at tens of thousands of messages per second: one `XADD`, one read and one
//! `XACK`/`XDEL` carry a whole burst. The binary form is length-prefixed:
//! for each message `u8` kind tag ([`tag`]), `u8` broker length, broker,
//! `u16` topic length, topic, `u32` payload length, payload (all
//! big-endian). The arrival time and the message count are fields of the
//! entry beside it.
//!
//! The kind is the one ingest parsed from the topic, so the writer never
//! parses it again. Packs of the version before the tag ([`Layout::Untagged`],
//! still in a stream at an upgrade) have theirs read from the topic's last
//! level once, as they are read back.
//!
//! Raw payloads, not their decoded form, travel, and the writer decodes them
//! again (by the stored kind): a message the writer refuses is dead-lettered
//! with its bytes, so a pack would have to carry both. Measured (issue 13):
//! the second decode of a reading costs about 1.2 µs, of the about 12 µs of
//! logger CPU per message in `make bench-ingest` (21,000 msg/s at 25 % of a
//! core), and old and new runs of the bench differ by more than that.

use proto::topics::{NodeTopic, TopicKind};

/// A message on its way in.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub broker: String,
    /// What the topic says it is, as ingest parsed it.
    pub kind: TopicKind,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// The messages of one burst and when they arrived.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pack {
    /// Milliseconds since the epoch when the burst arrived.
    pub received_ms: i64,
    pub messages: Vec<Message>,
}

/// How a stored pack is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Each message starts with its kind tag (this version).
    Tagged,
    /// No tag: the kind is the topic's (packs of the version before).
    Untagged,
}

/// The uplink kinds this service stores. Hellos and config reports are
/// device-registry's. A pack stores each message's kind as its index here
/// plus one ([`tag`]): add kinds at the end, never reorder.
pub const KINDS: [TopicKind; 6] = [
    TopicKind::Telemetry,
    TopicKind::Status,
    TopicKind::Lwt,
    TopicKind::Heartbeat,
    TopicKind::Event,
    TopicKind::Error,
];

/// The tag byte of a kind: its index in [`KINDS`] plus one (0 for a kind
/// that is never stored).
pub fn tag(kind: TopicKind) -> u8 {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i as u8 + 1)
}

fn kind_of_tag(tag: u8) -> Option<TopicKind> {
    KINDS.get(usize::from(tag).checked_sub(1)?).copied()
}

/// Why a stored pack cannot be read back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unreadable pack: {0}")]
pub struct Unreadable(pub &'static str);

impl Pack {
    /// The binary form of the messages. Broker ids and topics longer than
    /// their length prefix allow never reach here: broker ids are short and
    /// MQTT topics are at most 65,535 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self
            .messages
            .iter()
            .map(|m| 8 + m.broker.len() + m.topic.len() + m.payload.len())
            .sum();
        let mut out = Vec::with_capacity(size);
        for m in &self.messages {
            out.push(tag(m.kind));
            let broker = &m.broker.as_bytes()[..m.broker.len().min(u8::MAX.into())];
            let topic = &m.topic.as_bytes()[..m.topic.len().min(u16::MAX.into())];
            out.push(broker.len() as u8);
            out.extend_from_slice(broker);
            out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
            out.extend_from_slice(topic);
            out.extend_from_slice(&(m.payload.len() as u32).to_be_bytes());
            out.extend_from_slice(&m.payload);
        }
        out
    }

    /// Reads back what [`Pack::encode`] wrote (or, [`Layout::Untagged`],
    /// the version before).
    pub fn decode(received_ms: i64, mut bytes: &[u8], layout: Layout) -> Result<Pack, Unreadable> {
        let mut messages = Vec::new();
        while !bytes.is_empty() {
            let tagged = match layout {
                Layout::Tagged => Some(
                    kind_of_tag(take::<1>(&mut bytes)?[0]).ok_or(Unreadable("unknown kind tag"))?,
                ),
                Layout::Untagged => None,
            };
            let broker_len = usize::from(take::<1>(&mut bytes)?[0]);
            let broker = text(take_n(&mut bytes, broker_len)?)?;
            let topic_len = usize::from(u16::from_be_bytes(take::<2>(&mut bytes)?));
            let topic = text(take_n(&mut bytes, topic_len)?)?;
            let payload_len = u32::from_be_bytes(take::<4>(&mut bytes)?) as usize;
            let payload = take_n(&mut bytes, payload_len)?.to_vec();
            let kind = match tagged {
                Some(kind) => kind,
                None => {
                    NodeTopic::parse(&topic)
                        .map_err(|_| Unreadable("an untagged message's topic is not a node topic"))?
                        .kind
                }
            };
            messages.push(Message {
                broker,
                kind,
                topic,
                payload,
            });
        }
        Ok(Pack {
            received_ms,
            messages,
        })
    }
}

fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], Unreadable> {
    let head = take_n(bytes, N)?;
    Ok(head.try_into().expect("take_n returned N bytes"))
}

fn take_n<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], Unreadable> {
    if bytes.len() < n {
        return Err(Unreadable("truncated"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn text(bytes: &[u8]) -> Result<String, Unreadable> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Unreadable("broker or topic is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(broker: &str, kind: TopicKind, topic: &str, payload: &[u8]) -> Message {
        Message {
            broker: broker.into(),
            kind,
            topic: topic.into(),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn round_trips() {
        let pack = Pack {
            received_ms: 1_700_000_000_123,
            messages: vec![
                message(
                    "mqtt1",
                    TopicKind::Telemetry,
                    "hydro/g/z/n/c/telemetry",
                    br#"{"value":1}"#,
                ),
                message("mqtt2", TopicKind::Lwt, "hydro/node_hello", b""),
                message("", TopicKind::Error, "", &[0, 255, 7]),
            ],
        };
        assert_eq!(
            Pack::decode(pack.received_ms, &pack.encode(), Layout::Tagged),
            Ok(pack)
        );
        assert_eq!(
            Pack::decode(5, &[], Layout::Tagged),
            Ok(Pack::default_at(5))
        );
        for kind in KINDS {
            assert_eq!(kind_of_tag(tag(kind)), Some(kind));
        }
    }

    #[test]
    fn reads_the_untagged_packs_of_the_version_before() {
        let tagged = Pack {
            received_ms: 1,
            messages: vec![
                message(
                    "mqtt1",
                    TopicKind::Telemetry,
                    "hydro/g/z/n/c/telemetry",
                    b"{}",
                ),
                message("mqtt1", TopicKind::Status, "hydro/g/z/n/status", b"{}"),
            ],
        };
        // The old layout is the new one without the tag bytes.
        let mut old = tagged.encode();
        old.remove(0);
        old.remove(1 + 5 + 2 + 23 + 4 + 2);
        assert_eq!(Pack::decode(1, &old, Layout::Untagged), Ok(tagged));
        let stray = Pack {
            received_ms: 1,
            messages: vec![message("mqtt1", TopicKind::Status, "hydro/node_hello", b"")],
        };
        let mut old = stray.encode();
        old.remove(0);
        assert!(Pack::decode(1, &old, Layout::Untagged).is_err());
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let bytes = Pack {
            received_ms: 0,
            messages: vec![message("mqtt1", TopicKind::Heartbeat, "t", b"payload")],
        }
        .encode();
        for cut in 1..bytes.len() {
            assert_eq!(
                Pack::decode(0, &bytes[..cut], Layout::Tagged),
                Err(Unreadable("truncated")),
                "cut at {cut}"
            );
        }
        assert!(Pack::decode(0, &[1, 1, 0xff, 0, 0, 0, 0, 0, 0], Layout::Tagged).is_err());
        assert_eq!(
            Pack::decode(0, &[0, 0, 0, 0, 0, 0, 0, 0], Layout::Tagged),
            Err(Unreadable("unknown kind tag"))
        );
    }

    impl Pack {
        fn default_at(received_ms: i64) -> Pack {
            Pack {
                received_ms,
                messages: Vec::new(),
            }
        }
    }
}
