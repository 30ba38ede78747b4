//! The command lifecycle (contract section 4) as a type: QUEUED → SENT → ACK
//! → one final status. A status only moves to a higher rank, so responses may
//! be applied in any order and a duplicate changes nothing. The same rank is
//! [`rank_sql`] for the statements that write statuses.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use proto::payloads::ResponseStatus;

proto::text_enum! {
    /// A command's status (`commands.status`, the same text in JSON).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum CommandStatus {
        Queued => "QUEUED",
        Sent => "SENT",
        Ack => "ACK",
        Done => "DONE",
        Error => "ERROR",
        Invalid => "INVALID",
        Busy => "BUSY",
        NoEffect => "NO_EFFECT",
        Timeout => "TIMEOUT",
        SendFailed => "SEND_FAILED",
    }
    impl Display;
}

impl CommandStatus {
    /// 0 QUEUED, 1 SENT, 2 ACK, 3 any final status.
    pub fn rank(self) -> u8 {
        match self {
            CommandStatus::Queued => 0,
            CommandStatus::Sent => 1,
            CommandStatus::Ack => 2,
            _ => 3,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 3
    }

    /// The status after `next` is applied: `next` if it moves forward, else
    /// unchanged (no going back, no change between final statuses).
    pub fn advance(self, next: CommandStatus) -> CommandStatus {
        if next.rank() > self.rank() {
            next
        } else {
            self
        }
    }
}

impl From<ResponseStatus> for CommandStatus {
    fn from(s: ResponseStatus) -> Self {
        match s {
            ResponseStatus::Ack => CommandStatus::Ack,
            ResponseStatus::Done => CommandStatus::Done,
            ResponseStatus::Error => CommandStatus::Error,
            ResponseStatus::Invalid => CommandStatus::Invalid,
            ResponseStatus::Busy => CommandStatus::Busy,
            ResponseStatus::NoEffect => CommandStatus::NoEffect,
            ResponseStatus::Timeout => CommandStatus::Timeout,
        }
    }
}

// By hand: its error has another shape than `text_enum!`'s.
impl FromStr for CommandStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CommandStatus::from_text(s).ok_or_else(|| format!("unknown command status `{s}`"))
    }
}

/// What a batch of status updates says about one command, all of them
/// folded together (see `status_writer::fold`; the store writes it).
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    pub status: CommandStatus,
    pub sent_at: Option<DateTime<Utc>>,
    pub ack_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::CommandStatus::*;
    use super::*;

    #[test]
    fn forward_only_and_finals_are_final() {
        // (status, next, the status after next is applied)
        let cases = [
            (Queued, Sent, Sent),
            (Sent, Ack, Ack),
            (Ack, Done, Done),
            // A response may overtake the SENT update.
            (Queued, Ack, Ack),
            (Queued, Done, Done),
            // Never backwards; a final status is final.
            (Ack, Sent, Ack),
            (Done, Ack, Done),
            (Done, Error, Done),
            (Timeout, Done, Timeout),
            (SendFailed, Done, SendFailed),
            (Done, Done, Done),
        ];
        for (status, next, after) in cases {
            assert_eq!(status.advance(next), after, "{status} then {next}");
        }
    }

    #[test]
    fn strings_round_trip() {
        for s in CommandStatus::ALL {
            assert_eq!(s.as_str().parse::<CommandStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("DONE ".parse::<CommandStatus>().is_err());
        assert_eq!(
            "DONE ".parse::<CommandStatus>(),
            Err("unknown command status `DONE `".to_owned())
        );
        assert_eq!(CommandStatus::NoEffect.to_string(), "NO_EFFECT");
    }
}
