//! Bookkeeping for QoS 1 publishes between `publish()` and the broker's PUBACK.
//!
//! rumqttc tells us neither which packet id a publish got nor when it was
//! acknowledged, and it silently drops its unacknowledged publishes when it
//! reconnects without a session. This tracker closes both gaps with no I/O of
//! its own, so every rule here is unit-tested:
//! - requests enter rumqttc's channel in the order they were enqueued here, and
//!   rumqttc takes them in that order, so each `Outgoing::Publish(pkid)` for a
//!   new packet id belongs to the oldest unassigned entry;
//! - an `Outgoing::Publish(pkid)` for an id already in flight is rumqttc
//!   retransmitting after a session resume, not a new publish;
//! - `Outgoing::AwaitAck(pkid)` means the next entry collided with an id still
//!   in flight and will be sent (as `Outgoing::Publish(pkid)`) once it is acked;
//! - after a reconnect without a session every entry still wanted is handed
//!   back, oldest first, to be published again.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::mqtt::error::{Delivery, MqttError};

/// Where a publish's outcome is reported.
pub type Outcome = oneshot::Sender<Result<Delivery, MqttError>>;

/// A QoS 1 publish the broker has not acknowledged yet.
#[derive(Debug)]
pub struct Pending {
    pub seq: u64,
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    pub outcome: Outcome,
}

impl Pending {
    /// Whether the publisher still waits for the outcome (it gives up on
    /// timeout; such a publish is not sent again after a reconnect).
    pub fn wanted(&self) -> bool {
        !self.outcome.is_closed()
    }
}

#[derive(Debug, Default)]
pub struct PublishTracker {
    next_seq: u64,
    unassigned: VecDeque<Pending>,
    inflight: HashMap<u16, Pending>,
    collided: Option<(u16, Pending)>,
}

impl PublishTracker {
    /// Records a publish that is about to be handed to rumqttc.
    pub fn enqueue(&mut self, topic: String, payload: Bytes, retain: bool, outcome: Outcome) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unassigned.push_back(Pending {
            seq,
            topic,
            payload,
            retain,
            outcome,
        });
    }

    /// Re-records a publish handed back by [`Self::take_all`].
    pub fn requeue(&mut self, pending: Pending) {
        self.unassigned.push_back(pending);
    }

    /// rumqttc wrote a publish with this packet id.
    pub fn on_outgoing_publish(&mut self, pkid: u16) {
        if pkid == 0 || self.inflight.contains_key(&pkid) {
            return; // QoS 0, or a retransmission of one already tracked
        }
        let next = match self.collided.take() {
            Some((id, p)) if id == pkid => Some(p),
            other => {
                self.collided = other;
                self.unassigned.pop_front()
            }
        };
        if let Some(p) = next {
            self.inflight.insert(pkid, p);
        }
    }

    /// rumqttc holds the next publish until `pkid` is acknowledged.
    pub fn on_await_ack(&mut self, pkid: u16) {
        if let Some(p) = self.unassigned.pop_front() {
            self.collided = Some((pkid, p));
        }
    }

    /// The broker acknowledged `pkid`: what it said, or why it refused.
    pub fn on_puback(&mut self, pkid: u16, result: Result<Delivery, MqttError>) {
        if let Some(p) = self.inflight.remove(&pkid) {
            let _ = p.outcome.send(result);
        }
    }

    /// Everything not yet acknowledged and still wanted, oldest first; the
    /// tracker is left empty.
    pub fn take_all(&mut self) -> Vec<Pending> {
        let mut all: Vec<Pending> = self.inflight.drain().map(|(_, p)| p).collect();
        all.extend(self.collided.take().map(|(_, p)| p));
        all.extend(self.unassigned.drain(..));
        all.retain(Pending::wanted);
        all.sort_by_key(|p| p.seq);
        all
    }

    /// Publishes awaiting their PUBACK, sent or not.
    pub fn len(&self) -> usize {
        self.unassigned.len() + self.inflight.len() + usize::from(self.collided.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(t: &mut PublishTracker, name: &str) -> oneshot::Receiver<Result<Delivery, MqttError>> {
        let (tx, rx) = oneshot::channel();
        t.enqueue(name.into(), Bytes::new(), false, tx);
        rx
    }

    fn resolved(rx: &mut oneshot::Receiver<Result<Delivery, MqttError>>) -> Option<bool> {
        rx.try_recv().ok().map(|r| r.is_ok())
    }

    #[test]
    fn acks_resolve_in_any_order() {
        let mut t = PublishTracker::default();
        let mut a = add(&mut t, "a");
        let mut b = add(&mut t, "b");
        t.on_outgoing_publish(1);
        t.on_outgoing_publish(2);
        t.on_puback(2, Ok(Delivery::Matched));
        assert_eq!(resolved(&mut b), Some(true));
        assert_eq!(resolved(&mut a), None);
        t.on_puback(1, Err(MqttError::Refused("NotAuthorized".into())));
        assert_eq!(resolved(&mut a), Some(false));
        assert!(t.is_empty());
    }

    #[test]
    fn qos0_and_retransmissions_do_not_consume_entries() {
        let mut t = PublishTracker::default();
        let mut a = add(&mut t, "a");
        let mut b = add(&mut t, "b");
        t.on_outgoing_publish(0); // a QoS 0 publish in between
        t.on_outgoing_publish(1); // a
        t.on_outgoing_publish(1); // a again, retransmitted on session resume
        t.on_outgoing_publish(2); // b
        t.on_puback(1, Ok(Delivery::Matched));
        t.on_puback(2, Ok(Delivery::Matched));
        assert_eq!(resolved(&mut a), Some(true));
        assert_eq!(resolved(&mut b), Some(true));
    }

    #[test]
    fn collision_keeps_the_held_entry_for_its_id() {
        let mut t = PublishTracker::default();
        let mut a = add(&mut t, "a");
        let mut b = add(&mut t, "b");
        let mut c = add(&mut t, "c");
        t.on_outgoing_publish(1); // a
        t.on_await_ack(1); // b collides with a's id
        t.on_puback(1, Ok(Delivery::Matched)); // a acked; b goes out with id 1
        t.on_outgoing_publish(1);
        t.on_outgoing_publish(2); // c
        t.on_puback(1, Ok(Delivery::Matched));
        t.on_puback(2, Ok(Delivery::Matched));
        for rx in [&mut a, &mut b, &mut c] {
            assert_eq!(resolved(rx), Some(true));
        }
    }

    #[test]
    fn take_all_returns_wanted_entries_oldest_first() {
        let mut t = PublishTracker::default();
        let _a = add(&mut t, "a");
        let b = add(&mut t, "b");
        let _c = add(&mut t, "c");
        let _d = add(&mut t, "d");
        t.on_outgoing_publish(7); // a in flight
        t.on_outgoing_publish(3); // b in flight
        drop(b); // b's publisher gave up
        let topics: Vec<String> = t.take_all().into_iter().map(|p| p.topic).collect();
        assert_eq!(topics, ["a", "c", "d"]);
        assert!(t.is_empty());
    }

    #[test]
    fn requeued_entries_correlate_again() {
        let mut t = PublishTracker::default();
        let mut a = add(&mut t, "a");
        t.on_outgoing_publish(5);
        for p in t.take_all() {
            t.requeue(p);
        }
        t.on_outgoing_publish(1);
        t.on_puback(5, Ok(Delivery::Matched)); // an ack from the old session changes nothing
        assert_eq!(resolved(&mut a), None);
        t.on_puback(1, Ok(Delivery::Matched));
        assert_eq!(resolved(&mut a), Some(true));
    }
}
