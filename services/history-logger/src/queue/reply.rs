//! Reading the replies of `XREADGROUP`, `XAUTOCLAIM` and `XRANGE` into
//! [`Entry`]s.

use deadpool_redis::redis::Value;

use super::{Content, Entry};
use crate::pack::{Layout, Pack, Unreadable};

/// The milliseconds part of a stream id.
pub fn id_millis(id: &str) -> Option<i64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

pub(super) fn into_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

fn as_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

pub(super) fn as_string(v: Value) -> Option<String> {
    as_bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `XREADGROUP` reply: `[[stream, [entry, …]]]`, or nil on timeout.
pub(super) fn parse_read_reply(reply: Value) -> Vec<Entry> {
    into_array(reply)
        .into_iter()
        .flat_map(|stream| into_array(stream).into_iter().nth(1))
        .flat_map(into_array)
        .filter_map(parse_entry)
        .collect()
}

/// `[id, [field, value, …]]`; the fields are nil for an entry deleted while pending.
pub(super) fn parse_entry(v: Value) -> Option<Entry> {
    let mut parts = into_array(v).into_iter();
    let id = as_string(parts.next()?)?;
    let fields = into_array(parts.next().unwrap_or(Value::Nil));
    if fields.is_empty() {
        return Some(Entry {
            id,
            count: 0,
            content: Content::Deleted,
        });
    }
    let (mut count, mut received_ms, mut raw) = (None, None, None);
    let mut layout = Layout::Tagged;
    let mut fields = fields.into_iter();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        let (Some(k), Some(v)) = (as_bytes(k), as_bytes(v)) else {
            continue;
        };
        let number = || std::str::from_utf8(&v).ok()?.parse::<i64>().ok();
        match k.as_slice() {
            b"n" => count = number(),
            b"r" => received_ms = number(),
            b"p" => raw = Some(v),
            b"m" => {
                raw = Some(v);
                layout = Layout::Untagged;
            }
            _ => {}
        }
    }
    let count = count.map_or(0, |n| n.max(0) as u64);
    let content = match (received_ms, raw) {
        (Some(ms), Some(raw)) => match Pack::decode(ms, &raw, layout) {
            Ok(pack) => Content::Pack(pack),
            Err(why) => Content::Unreadable { raw, why },
        },
        (_, raw) => Content::Unreadable {
            raw: raw.unwrap_or_default(),
            why: Unreadable("not a pack entry"),
        },
    };
    Some(Entry { id, count, content })
}
