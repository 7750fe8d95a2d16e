//! The pure call core of stox-gateway.
//!
//! The run loop is: the adapters turn what they hear into an [`Input`], call
//! [`Core::handle`] with the current time, and carry out every [`Output`]:
//!
//! ```text
//!  XMPP component ──Stanza/IqResponse──┐                 ┌──Xmpp(Element)──▶ XMPP component
//!  SIP endpoint ──────────Sip(..)──────┼──▶ Core::handle ─┼──Sip(SipCommand)─▶ SIP endpoint
//!  timers ───────────────Timer(..)─────┘     (now)        ├──Persist(record)─▶ SQLite store
//!                                                         └──SetTimer(..)────▶ timers
//! ```
//!
//! Nothing here touches a socket, a file or the clock: time is passed in as
//! [`Millis`] since the UNIX epoch, timers are data. A whole call in both
//! directions is therefore tested in microseconds (see `tests/`).
//!
//! * [`Core`] routes inputs to calls by Jingle `sid` + XMPP peer or by SIP
//!   Call-ID, answers bad input (IQ errors, SIP 4xx) and owns the calls.
//! * `call` holds the per-call state machine for both directions.

mod call;
mod core;
pub mod jmi;
pub mod media;
pub mod policy;
mod stanza;
mod time;
mod types;

pub use crate::core::{Core, CoreConfig};
pub use crate::stanza::error_condition;
pub use crate::time::{Millis, iso8601};
pub use crate::types::{
    CallKey, CallState, Command, Direction, EndedBy, Fault, Hold, Input, IqOutcome, MediaReply,
    MediaRequest, NextHop, OfferMethod, Output, Refresher, RejectedStanza, RequestId,
    SessionRecord, SessionTimer, SipCommand, SipEvent, TimerKey,
};
