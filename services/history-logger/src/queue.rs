//! The uplink queue: a Redis stream with a consumer group, and the bounded
//! dead-letter list beside it.
//!
//! Ingest appends (`XADD`) and only then acknowledges to the broker; the
//! writer reads with `XREADGROUP`, and after PostgreSQL committed a batch
//! removes it (`XACK` + `XDEL`, so `XLEN` is the backlog). Entries a crashed
//! consumer had read but not written stay pending and are taken over with
//! `XAUTOCLAIM`.

use deadpool_redis::Pool;
use deadpool_redis::redis::{self, Value, cmd};

use common::redis_pool::RedisError;

// The stream is never trimmed (no `XADD … MAXLEN`): written entries are
// deleted by the writer, so everything in the stream is unwritten and a trim
// could only lose data. The bound is kept by ingest, which stops appending
// (and acknowledging) once the queue is full; one burst may overshoot it by at
// most `ingest::MAX_BURST` entries per instance.

/// Largest BLOCK of a read, below the Redis client's 500 ms response timeout.
pub const MAX_BLOCK_MS: u64 = 200;

/// A message on its way in.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub broker: String,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Milliseconds since the epoch when it arrived.
    pub received_ms: i64,
}

/// A message read back from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The stream id, `{ms}-{seq}`.
    pub id: String,
    /// `None` when the entry was deleted while pending: ack it, nothing else.
    pub message: Option<NewEntry>,
}

/// The stream, its group and the dead-letter list of one deployment.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    stream: String,
    group: String,
    dead_letter: String,
    dead_letter_max: u64,
    bound: u64,
}

impl Queue {
    pub fn new(
        pool: Pool,
        stream: &str,
        group: &str,
        dead_letter: &str,
        dead_letter_max: u64,
        bound: u64,
    ) -> Self {
        Queue {
            pool,
            stream: stream.to_owned(),
            group: group.to_owned(),
            dead_letter: dead_letter.to_owned(),
            dead_letter_max,
            bound,
        }
    }

    pub fn bound(&self) -> u64 {
        self.bound
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, RedisError> {
        Ok(self.pool.get().await?)
    }

    /// Creates the stream and its consumer group if they do not exist.
    pub async fn ensure_group(&self) -> Result<(), RedisError> {
        let mut c = self.conn().await?;
        let created: Result<Value, _> = cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends `entries` and pushes `dead` records in one round trip, and
    /// returns the stream's length after it.
    pub async fn push(&self, entries: &[NewEntry], dead: &[String]) -> Result<u64, RedisError> {
        let mut pipe = redis::pipe();
        for e in entries {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("b")
                .arg(&e.broker)
                .arg("t")
                .arg(&e.topic)
                .arg("p")
                .arg(&e.payload)
                .arg("r")
                .arg(e.received_ms)
                .ignore();
        }
        if !dead.is_empty() {
            pipe.cmd("LPUSH").arg(&self.dead_letter).arg(dead).ignore();
            pipe.cmd("LTRIM")
                .arg(&self.dead_letter)
                .arg(0)
                .arg(self.dead_letter_max.saturating_sub(1))
                .ignore();
        }
        pipe.cmd("XLEN").arg(&self.stream);
        let mut c = self.conn().await?;
        let (len,): (u64,) = pipe.query_async(&mut c).await?;
        Ok(len)
    }

    /// Pushes dead-letter records only.
    pub async fn push_dead(&self, dead: &[String]) -> Result<(), RedisError> {
        if !dead.is_empty() {
            self.push(&[], dead).await?;
        }
        Ok(())
    }

    /// New entries for `consumer`, at most `count`, waiting up to `block_ms`
    /// (capped at [`MAX_BLOCK_MS`]) when there are none.
    pub async fn read_new(
        &self,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<Entry>, RedisError> {
        self.read_group(consumer, count, Some(block_ms.clamp(1, MAX_BLOCK_MS)), ">")
            .await
    }

    /// Entries `consumer` itself read before and never acknowledged (after a
    /// restart under the same name), from after `after`.
    pub async fn read_own_pending(
        &self,
        consumer: &str,
        count: usize,
        after: &str,
    ) -> Result<Vec<Entry>, RedisError> {
        self.read_group(consumer, count, None, after).await
    }

    /// `XREADGROUP` from id `from` (`>`: entries never delivered).
    async fn read_group(
        &self,
        consumer: &str,
        count: usize,
        block_ms: Option<u64>,
        from: &str,
    ) -> Result<Vec<Entry>, RedisError> {
        let mut read = cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(&self.group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(ms) = block_ms {
            read.arg("BLOCK").arg(ms);
        }
        read.arg("STREAMS").arg(&self.stream).arg(from);
        let mut c = self.conn().await?;
        let reply: Value = read.query_async(&mut c).await?;
        Ok(parse_read_reply(reply))
    }

    /// Takes over entries pending for at least `min_idle_ms` with any
    /// consumer, scanning from `cursor`; returns the next cursor (`0-0` when
    /// the scan is complete) and the entries.
    pub async fn autoclaim(
        &self,
        consumer: &str,
        min_idle_ms: u64,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Vec<Entry>), RedisError> {
        let mut c = self.conn().await?;
        let reply: Value = cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(consumer)
            .arg(min_idle_ms)
            .arg(cursor)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut c)
            .await?;
        let mut parts = into_array(reply).into_iter();
        let next = parts
            .next()
            .and_then(as_string)
            .unwrap_or_else(|| "0-0".into());
        let entries = parts
            .next()
            .map(|v| into_array(v).into_iter().filter_map(parse_entry).collect())
            .unwrap_or_default();
        Ok((next, entries))
    }

    /// Acknowledges and deletes written entries.
    pub async fn ack(&self, ids: &[String]) -> Result<(), RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(ids)
            .ignore();
        pipe.cmd("XDEL").arg(&self.stream).arg(ids).ignore();
        let mut c = self.conn().await?;
        let () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// Entries waiting and the time of the oldest (ms since the epoch).
    pub async fn stats(&self) -> Result<(u64, Option<i64>), RedisError> {
        let mut c = self.conn().await?;
        let (len, first): (u64, Value) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.stream)
            .cmd("XRANGE")
            .arg(&self.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await?;
        let oldest = into_array(first)
            .into_iter()
            .next()
            .and_then(parse_entry)
            .and_then(|e| id_millis(&e.id));
        Ok((len, oldest))
    }

    /// Entries read by some consumer and not yet acknowledged.
    pub async fn pending_count(&self) -> Result<u64, RedisError> {
        let mut c = self.conn().await?;
        let reply: Value = cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .query_async(&mut c)
            .await?;
        Ok(match into_array(reply).into_iter().next() {
            Some(Value::Int(n)) => u64::try_from(n).unwrap_or(0),
            _ => 0,
        })
    }
}

/// The milliseconds part of a stream id.
pub fn id_millis(id: &str) -> Option<i64> {
    id.split_once('-').map_or(id, |(ms, _)| ms).parse().ok()
}

fn into_array(v: Value) -> Vec<Value> {
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

fn as_string(v: Value) -> Option<String> {
    as_bytes(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `XREADGROUP` reply: `[[stream, [entry, …]]]`, or nil on timeout.
fn parse_read_reply(reply: Value) -> Vec<Entry> {
    into_array(reply)
        .into_iter()
        .flat_map(|stream| into_array(stream).into_iter().nth(1))
        .flat_map(into_array)
        .filter_map(parse_entry)
        .collect()
}

/// `[id, [field, value, …]]`; the fields are nil for an entry deleted while pending.
fn parse_entry(v: Value) -> Option<Entry> {
    let mut parts = into_array(v).into_iter();
    let id = as_string(parts.next()?)?;
    let fields = into_array(parts.next().unwrap_or(Value::Nil));
    if fields.is_empty() {
        return Some(Entry { id, message: None });
    }
    let mut message = NewEntry {
        broker: String::new(),
        topic: String::new(),
        payload: Vec::new(),
        received_ms: 0,
    };
    let mut fields = fields.into_iter();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        let (Some(k), Some(v)) = (as_bytes(k), as_bytes(v)) else {
            continue;
        };
        match k.as_slice() {
            b"b" => message.broker = String::from_utf8_lossy(&v).into_owned(),
            b"t" => message.topic = String::from_utf8_lossy(&v).into_owned(),
            b"p" => message.payload = v,
            b"r" => message.received_ms = String::from_utf8_lossy(&v).parse().unwrap_or(0),
            _ => {}
        }
    }
    Some(Entry {
        id,
        message: Some(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_a_read_reply() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1700000000000-0"),
                    Value::Array(vec![
                        bulk("b"),
                        bulk("mqtt1"),
                        bulk("t"),
                        bulk("hydro/a/b/c/d/telemetry"),
                        bulk("p"),
                        bulk("{}"),
                        bulk("r"),
                        bulk("1700000000001"),
                    ]),
                ]),
                Value::Array(vec![bulk("1700000000000-1"), Value::Nil]),
            ]),
        ])]);
        let entries = parse_read_reply(reply);
        assert_eq!(entries.len(), 2);
        let m = entries[0].message.as_ref().unwrap();
        assert_eq!(m.broker, "mqtt1");
        assert_eq!(m.payload, b"{}");
        assert_eq!(m.received_ms, 1_700_000_000_001);
        assert!(entries[1].message.is_none());
        assert!(parse_read_reply(Value::Nil).is_empty());
        assert_eq!(id_millis("1700000000000-1"), Some(1_700_000_000_000));
    }
}
