//! The command ids a node has seen lately, so that a QoS 1 redelivery of the
//! same command is answered again but never executed twice. Bounded: the
//! oldest ids are forgotten first.

use std::collections::{HashMap, VecDeque};

use proto::payloads::CommandResponse;

/// How many command ids each node remembers. A redelivery comes within
/// seconds; at 3,000 commands/s this still covers a few seconds per node.
pub const RECENT_CAPACITY: usize = 16_384;

/// What [`RecentCommands::check_in`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// First time: recorded, go ahead and execute.
    New,
    /// Seen before; carries the last response sent for it, if any yet.
    Again(Option<CommandResponse>),
}

/// Recently seen command ids and the last response sent for each.
#[derive(Debug)]
pub struct RecentCommands {
    capacity: usize,
    last_sent: HashMap<String, Option<CommandResponse>>,
    order: VecDeque<String>,
}

impl RecentCommands {
    pub fn new(capacity: usize) -> Self {
        RecentCommands {
            capacity: capacity.max(1),
            last_sent: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `cmd_id` unless it is already known.
    pub fn check_in(&mut self, cmd_id: &str) -> Seen {
        if let Some(last) = self.last_sent.get(cmd_id) {
            return Seen::Again(last.clone());
        }
        let full = self.order.len() >= self.capacity;
        if let Some(oldest) = full.then(|| self.order.pop_front()).flatten() {
            self.last_sent.remove(&oldest);
        }
        self.order.push_back(cmd_id.to_owned());
        self.last_sent.insert(cmd_id.to_owned(), None);
        Seen::New
    }

    /// Remembers the latest response sent for a known command id.
    pub fn record(&mut self, response: &CommandResponse) {
        if let Some(slot) = self.last_sent.get_mut(&response.cmd_id) {
            *slot = Some(response.clone());
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proto::payloads::ResponseStatus;

    use super::*;

    fn response(cmd_id: &str, status: ResponseStatus) -> CommandResponse {
        CommandResponse {
            cmd_id: cmd_id.into(),
            status,
            ts: 1,
            details: None,
            error_code: None,
            error_message: None,
            message: None,
        }
    }

    #[test]
    fn second_delivery_gets_the_last_response() {
        let mut r = RecentCommands::new(10);
        assert_eq!(r.check_in("a"), Seen::New);
        assert_eq!(r.check_in("a"), Seen::Again(None));
        r.record(&response("a", ResponseStatus::Ack));
        r.record(&response("a", ResponseStatus::Done));
        assert_eq!(
            r.check_in("a"),
            Seen::Again(Some(response("a", ResponseStatus::Done)))
        );
        // Unknown ids are not recorded by a response.
        r.record(&response("b", ResponseStatus::Done));
        assert_eq!(r.check_in("b"), Seen::New);
    }

    #[test]
    fn oldest_ids_are_forgotten() {
        let mut r = RecentCommands::new(3);
        for id in ["a", "b", "c", "d"] {
            assert_eq!(r.check_in(id), Seen::New);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.check_in("a"), Seen::New);
        assert_eq!(r.check_in("d"), Seen::Again(None));
    }
}
