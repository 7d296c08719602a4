//! The letter's state machine (`docs/CHAIN.md`, "Statuses at the sender"):
//!
//! ```text
//! created ─▶ sent ─▶ delivered ─▶ opened
//!              │         ├──────▶ notification_failed ─▶ opened
//!              │         └──────▶ returned            (print: after delivered)
//!              └─▶ received_by_print ─▶ delivered
//! created | sent ─▶ failed (with the error)
//! ```
//!
//! `notification_failed` is recorded when a provider reports a failed e-mail/SMS notification;
//! it does not end the letter (an `aapningskvittering` may still follow). Every other
//! transition is refused, so a receipt that arrives out of order or twice leaves the letter
//! as it was.

use serde::{Deserialize, Serialize};

/// Where a letter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Sent,
    Delivered,
    Opened,
    NotificationFailed,
    ReceivedByPrint,
    Returned,
    Failed,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Created,
        Status::Sent,
        Status::Delivered,
        Status::Opened,
        Status::NotificationFailed,
        Status::ReceivedByPrint,
        Status::Returned,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Opened => "opened",
            Status::NotificationFailed => "notification_failed",
            Status::ReceivedByPrint => "received_by_print",
            Status::Returned => "returned",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The access point accepted the letter (201).
    Sent,
    /// `mottakskvittering` from the print provider.
    Mottak,
    /// `leveringskvittering`.
    Levering,
    /// `aapningskvittering`.
    Aapning,
    /// `varslingfeiletkvittering`.
    VarslingFeilet,
    /// `returpostkvittering`.
    Returpost,
    /// A `feil` receipt, or a refusal on our side (no print address, sealing failed, the
    /// access point refused the letter).
    Feil,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::Sent,
        Event::Mottak,
        Event::Levering,
        Event::Aapning,
        Event::VarslingFeilet,
        Event::Returpost,
        Event::Feil,
    ];

    /// The event a receipt type stands for.
    pub fn of_receipt(t: dpi::message::MessageType) -> Option<Event> {
        use dpi::message::MessageType as M;
        Some(match t {
            M::Leveringskvittering => Event::Levering,
            M::Aapningskvittering => Event::Aapning,
            M::Mottakskvittering => Event::Mottak,
            M::Varslingfeiletkvittering => Event::VarslingFeilet,
            M::Returpostkvittering => Event::Returpost,
            M::Feil => Event::Feil,
            M::Digital | M::Utskrift | M::Flyttet => return None,
        })
    }
}

/// A transition the state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a letter that is {from} cannot take {event:?}")]
pub struct Impossible {
    pub from: Status,
    pub event: Event,
}

/// The status after `event`, or [`Impossible`].
pub fn next(from: Status, event: Event) -> Result<Status, Impossible> {
    use Status as S;
    let to = match (from, event) {
        (S::Created, Event::Sent) => S::Sent,
        (S::Sent, Event::Mottak) => S::ReceivedByPrint,
        (S::Sent | S::ReceivedByPrint, Event::Levering) => S::Delivered,
        (S::Delivered | S::NotificationFailed, Event::Aapning) => S::Opened,
        (S::Delivered | S::NotificationFailed, Event::VarslingFeilet) => S::NotificationFailed,
        (S::Delivered, Event::Returpost) => S::Returned,
        (S::Created | S::Sent, Event::Feil) => S::Failed,
        _ => return Err(Impossible { from, event }),
    };
    Ok(to)
}

/// The transitions a receipt causes: a receipt for a letter still `created` proves it was
/// sent (the access point's 201 was lost, e.g. in a crash), so `sent` is recorded first.
pub fn path(from: Status, event: Event) -> Result<Vec<Status>, Impossible> {
    if from == Status::Created && !matches!(event, Event::Sent | Event::Feil) {
        let sent = next(from, Event::Sent)?;
        return Ok(vec![sent, next(sent, event)?]);
    }
    Ok(vec![next(from, event)?])
}

/// Whether some sequence of events (none included) takes a letter from `from` to `to`.
pub fn leads_to(from: Status, to: Status) -> bool {
    let mut seen = vec![from];
    let mut todo = vec![from];
    while let Some(s) = todo.pop() {
        for t in Event::ALL.iter().filter_map(|e| next(s, *e).ok()) {
            if !seen.contains(&t) {
                seen.push(t);
                todo.push(t);
            }
        }
    }
    seen.contains(&to)
}

/// Whether the letter will not change any more.
pub fn is_final(s: Status) -> bool {
    matches!(s, Status::Opened | Status::Returned | Status::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digital_and_print_lifecycles() {
        let mut s = Status::Created;
        for e in [
            Event::Sent,
            Event::Levering,
            Event::VarslingFeilet,
            Event::Aapning,
        ] {
            s = next(s, e).unwrap();
        }
        assert_eq!(s, Status::Opened);
        let mut s = Status::Created;
        for e in [
            Event::Sent,
            Event::Mottak,
            Event::Levering,
            Event::Returpost,
        ] {
            s = next(s, e).unwrap();
        }
        assert_eq!(s, Status::Returned);
    }

    #[test]
    fn impossible_transitions_are_refused() {
        assert!(next(Status::Created, Event::Levering).is_err());
        assert!(next(Status::Delivered, Event::Levering).is_err());
        assert!(next(Status::Delivered, Event::Feil).is_err());
        assert!(next(Status::Failed, Event::Sent).is_err());
        assert!(next(Status::Opened, Event::Aapning).is_err());
        assert!(next(Status::Sent, Event::Aapning).is_err());
        assert!(next(Status::Sent, Event::Returpost).is_err());
        assert!(next(Status::Sent, Event::Sent).is_err());
        // Every final status refuses every event.
        for s in Status::ALL.into_iter().filter(|s| is_final(*s)) {
            for e in Event::ALL {
                assert!(next(s, e).is_err(), "{s} took {e:?}");
            }
        }
    }

    #[test]
    fn reachability_follows_the_transitions() {
        assert!(leads_to(Status::Created, Status::Opened));
        assert!(leads_to(Status::Sent, Status::Returned));
        assert!(
            leads_to(Status::Delivered, Status::Delivered),
            "in zero steps"
        );
        assert!(!leads_to(Status::Delivered, Status::ReceivedByPrint));
        assert!(!leads_to(Status::Delivered, Status::Failed));
        assert!(!leads_to(Status::Failed, Status::Sent));
    }

    #[test]
    fn a_receipt_for_a_created_letter_implies_sent() {
        assert_eq!(
            path(Status::Created, Event::Levering).unwrap(),
            vec![Status::Sent, Status::Delivered]
        );
        assert_eq!(
            path(Status::Created, Event::Feil).unwrap(),
            vec![Status::Failed]
        );
        assert!(path(Status::Created, Event::Aapning).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
