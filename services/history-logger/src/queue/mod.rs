//! The uplink queue: a Redis stream with a consumer group, a counter of the
//! messages in it, and the bounded dead-letter list beside it.
//!
//! Ingest appends a burst as one entry (a [`Pack`]) and only then
//! acknowledges to the broker; the writer reads with `XREADGROUP`, and after
//! PostgreSQL committed a batch removes its entries (`XACK` + `XDEL`, so the
//! stream holds only what is unwritten). Entries a crashed consumer had read
//! but not written stay pending and are taken over with `XAUTOCLAIM`.
//!
//! The queue's length is counted in messages, not entries: `{stream}:messages`
//! goes up with each append and down with each entry deleted, in the same
//! atomic step, so the bound means the same at any burst size.

use deadpool_redis::Pool;
use deadpool_redis::redis::{self, Value, cmd};

use common::store::redis::RedisError;

use crate::pack::{Pack, Unreadable};

pub use reply::id_millis;
use reply::{as_string, into_array, parse_entry, parse_read_reply};

mod reply;

// The stream is never trimmed (no `XADD … MAXLEN`): written entries are
// deleted by the writer, so everything in the stream is unwritten and a trim
// could only lose data. The bound is kept by ingest, which stops appending
// (and acknowledging) once the queue is full; one burst may overshoot it by at
// most `ingest::MAX_BURST` messages per instance.

/// Largest BLOCK of a read, below the Redis client's 500 ms response timeout.
pub const MAX_BLOCK_MS: u64 = 200;

/// Appends one pack and counts its messages; returns the count after.
/// KEYS: stream, counter. ARGV: message count, received ms, pack. The pack
/// is field `p` ([`Layout::Tagged`]); `m` held the untagged layout before.
const APPEND: &str = "\
redis.call('XADD', KEYS[1], '*', 'n', ARGV[1], 'r', ARGV[2], 'p', ARGV[3])
return redis.call('INCRBY', KEYS[2], ARGV[1])";

/// Acknowledges and deletes entries, uncounting the messages of each entry
/// this call deleted (an entry two consumers wrote is uncounted once).
/// KEYS: stream, counter. ARGV: group, then id and message count pairs.
const REMOVE: &str = "\
local gone = 0
for i = 2, #ARGV, 2 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then gone = gone + tonumber(ARGV[i + 1]) end
end
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0)
elseif gone > 0 then redis.call('DECRBY', KEYS[2], gone) end
return gone";

/// What a stream entry holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Pack(Pack),
    /// Deleted while pending (another consumer wrote it): ack it, nothing else.
    Deleted,
    /// Not a pack this code wrote: kept aside as a dead letter, then acked.
    Unreadable {
        raw: Vec<u8>,
        why: Unreadable,
    },
}

/// An entry read back from the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The stream id, `{ms}-{seq}`.
    pub id: String,
    /// Messages the entry counts for in the queue's length.
    pub count: u64,
    pub content: Content,
}

impl Entry {
    /// The messages of the entry (none unless it is a readable pack).
    pub fn pack(&self) -> Option<&Pack> {
        match &self.content {
            Content::Pack(p) => Some(p),
            _ => None,
        }
    }
}

/// The stream, its group and the dead-letter list of one deployment.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    stream: String,
    counter: String,
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
            counter: format!("{stream}:messages"),
            group: group.to_owned(),
            dead_letter: dead_letter.to_owned(),
            dead_letter_max,
            bound,
        }
    }

    /// The most messages the queue should hold.
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

    /// Appends `pack` (when it has messages) and pushes `dead` records in one
    /// round trip, and returns the number of messages queued after it.
    pub async fn push(&self, pack: &Pack, dead: &[String]) -> Result<u64, RedisError> {
        let mut pipe = redis::pipe();
        if !dead.is_empty() {
            pipe.cmd("LPUSH").arg(&self.dead_letter).arg(dead).ignore();
            pipe.cmd("LTRIM")
                .arg(&self.dead_letter)
                .arg(0)
                .arg(self.dead_letter_max.saturating_sub(1))
                .ignore();
        }
        if pack.messages.is_empty() {
            pipe.cmd("GET").arg(&self.counter);
        } else {
            pipe.cmd("EVAL")
                .arg(APPEND)
                .arg(2)
                .arg(&self.stream)
                .arg(&self.counter)
                .arg(pack.messages.len())
                .arg(pack.received_ms)
                .arg(pack.encode());
        }
        let mut c = self.conn().await?;
        let (len,): (Option<i64>,) = pipe.query_async(&mut c).await?;
        Ok(len.unwrap_or(0).max(0) as u64)
    }

    /// Pushes dead-letter records only.
    pub async fn push_dead(&self, dead: &[String]) -> Result<(), RedisError> {
        if !dead.is_empty() {
            self.push(&Pack::default(), dead).await?;
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
    pub async fn ack(&self, entries: &[&Entry]) -> Result<(), RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut remove = cmd("EVAL");
        remove
            .arg(REMOVE)
            .arg(2)
            .arg(&self.stream)
            .arg(&self.counter)
            .arg(&self.group);
        for e in entries {
            remove.arg(&e.id).arg(e.count);
        }
        let mut c = self.conn().await?;
        let _gone: i64 = remove.query_async(&mut c).await?;
        Ok(())
    }

    /// Messages waiting and the arrival time of the oldest entry (ms since
    /// the epoch).
    pub async fn stats(&self) -> Result<(u64, Option<i64>), RedisError> {
        let mut c = self.conn().await?;
        let (len, first): (Option<i64>, Value) = redis::pipe()
            .cmd("GET")
            .arg(&self.counter)
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
        Ok((len.unwrap_or(0).max(0) as u64, oldest))
    }

    /// Entries in the stream (each a burst of messages).
    pub async fn entry_count(&self) -> Result<u64, RedisError> {
        let mut c = self.conn().await?;
        Ok(cmd("XLEN").arg(&self.stream).query_async(&mut c).await?)
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

#[cfg(test)]
mod tests;
