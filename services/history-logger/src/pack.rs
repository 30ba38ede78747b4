//! A pack: the messages of one ingest burst, stored as one stream entry.
//!
//! One entry per burst instead of one per message is what keeps Redis cheap
//! at tens of thousands of messages per second: one `XADD`, one read and one
//! `XACK`/`XDEL` carry a whole burst. The binary form is length-prefixed:
//! for each message `u8` broker length, broker, `u16` topic length, topic,
//! `u32` payload length, payload (all big-endian). The arrival time and the
//! message count are fields of the entry beside it.

/// A message on its way in.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub broker: String,
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
            .map(|m| 7 + m.broker.len() + m.topic.len() + m.payload.len())
            .sum();
        let mut out = Vec::with_capacity(size);
        for m in &self.messages {
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

    /// Reads back what [`Pack::encode`] wrote.
    pub fn decode(received_ms: i64, mut bytes: &[u8]) -> Result<Pack, Unreadable> {
        let mut messages = Vec::new();
        while !bytes.is_empty() {
            let broker_len = usize::from(take::<1>(&mut bytes)?[0]);
            let broker = text(take_n(&mut bytes, broker_len)?)?;
            let topic_len = usize::from(u16::from_be_bytes(take::<2>(&mut bytes)?));
            let topic = text(take_n(&mut bytes, topic_len)?)?;
            let payload_len = u32::from_be_bytes(take::<4>(&mut bytes)?) as usize;
            let payload = take_n(&mut bytes, payload_len)?.to_vec();
            messages.push(Message {
                broker,
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

    fn message(broker: &str, topic: &str, payload: &[u8]) -> Message {
        Message {
            broker: broker.into(),
            topic: topic.into(),
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn round_trips() {
        let pack = Pack {
            received_ms: 1_700_000_000_123,
            messages: vec![
                message("mqtt1", "hydro/g/z/n/c/telemetry", br#"{"value":1}"#),
                message("mqtt2", "hydro/node_hello", b""),
                message("", "", &[0, 255, 7]),
            ],
        };
        assert_eq!(Pack::decode(pack.received_ms, &pack.encode()), Ok(pack));
        assert_eq!(Pack::decode(5, &[]), Ok(Pack::default_at(5)));
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let bytes = Pack {
            received_ms: 0,
            messages: vec![message("mqtt1", "t", b"payload")],
        }
        .encode();
        for cut in 1..bytes.len() {
            assert_eq!(
                Pack::decode(0, &bytes[..cut]),
                Err(Unreadable("truncated")),
                "cut at {cut}"
            );
        }
        assert!(Pack::decode(0, &[1, 0xff, 0, 0, 0, 0, 0, 0]).is_err());
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
