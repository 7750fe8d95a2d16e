//! Pure mapping between Jingle (XEP-0166/0167/0176/0177/0320) and SIP/SDP
//! (RFC 3261/3264/8866), following the STOX media mapping and RFC 7247.
//!
//! Nothing in this crate performs IO or reads the clock: every function takes
//! its inputs and returns values, so it is tested in microseconds.
//!
//! * [`ids`] — newtypes for the identifiers that tie a call together.
//! * [`jingle`] — a lossless model of the `<jingle/>` element (unknown
//!   children are kept in `other` fields) with parse / serialise.
//! * [`sdp`] — Jingle contents ⇄ SDP offers and answers.
//! * [`address`] — JID ⇄ SIP URI (RFC 7247, XEP-0106).
//! * [`status`] — SIP status ⇄ Jingle `<reason/>` ⇄ IQ error condition.
//! * [`tables`] — keeping the per-call maps small after a burst.
//! * [`lograte`] — rate limits for log lines about peer faults, and
//!   escaping what peers sent before it is logged.

pub mod address;
pub mod ids;
pub mod jingle;
pub mod lograte;
pub mod ns;
pub mod sdp;
pub mod status;
pub mod tables;
mod xml;
