//! The gateway's SIP layer, sans IO.
//!
//! [`Sip`] is one state machine: the driver (`stox-sip`) feeds it what it
//! heard — datagrams, stream bytes, WebSocket messages, connections opened
//! and closed, sends that failed — and the core's [`SipCommand`]s, with the
//! time; [`Sip::poll_output`] gives back what to transmit, the
//! [`SipEvent`]s for the core, and connections to close;
//! [`Sip::poll_timeout`] says when to call [`Sip::handle_timeout`] next.
//! Nothing here opens a socket, reads a clock or spawns a task, so every
//! rule — retransmissions, timers A–M, CANCEL matching, 2xx until ACK,
//! forks, the RFC 4475 messages — is tested on a virtual clock.
//!
//! * [`api`] — the one vocabulary between SIP and the call core.
//! * `msg` — the message crate (sipx-sip) behind one module.
//! * `check` — what a request must be before anything acts on it.
//! * `engine`, `uas`, `uac` — transactions (sipx-sip's RFC 3261 §17 machines),
//!   dialogs and the gateway's rules.
//! * [`dialog`] — dialog state and its stored form; `pending` — unanswered
//!   INVITEs across a restart.
//! * `health` — next hops (peers, the outbound proxy) probed with OPTIONS,
//!   and marked down when they stop answering.

pub mod api;
mod auth;
mod check;
pub mod dialog;
mod engine;
mod framing;
mod health;
mod msg;
mod pending;
mod rate;
pub mod registrar;
mod timer;
mod timers;
mod uac;
mod uas;

pub use api::{
    CallKey, Command, KeyGen, NextHop, OfferMethod, Refresher, RequestId, SessionTimer, SipCommand,
    SipEvent, Transport,
};
pub use engine::{Config, ConnId, Dest, Input, Output, Sip, Transmit};
pub use health::MAX_RETRY_AFTER;
pub use msg::TxTimers as Timers;
pub use timer::RFC_MIN_SE;
pub use uac::UDP_MAX;
