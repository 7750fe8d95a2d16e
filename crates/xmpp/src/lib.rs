//! The gateway's connection to its XMPP server as an external component
//! (XEP-0114).
//!
//! tokio-xmpp's own `Component` stream ends on the first idle period or the
//! first stanza it cannot parse, and never reconnects. This crate keeps
//! tokio-xmpp's XML stream and handshake types but runs its own loop:
//!
//! * stanzas are read as plain [`minidom::Element`]s, so a stanza that
//!   xmpp-parsers would reject never ends the stream — the core answers it;
//! * after `keepalive` of silence it pings the server (XEP-0199), so idle
//!   periods do not trip the stream's read timeout;
//! * when the connection drops (or the server refuses the handshake) it
//!   reconnects with exponential backoff, and stanzas queued meanwhile are
//!   sent once it is back;
//! * every `<iq type='get|set'/>` sent is tracked by id: its result or error
//!   comes back as [`XmppEvent::IqResponse`], or `IqFailure::Timeout` after
//!   `iq_timeout`.

mod connection;
mod filtered;
pub mod limits;
mod tracker;

pub use connection::{ComponentConfig, XmppEvent, XmppHandle, spawn};
pub use tracker::IqFailure;

/// `jabber:component:accept`, the stream's default namespace.
pub const NS_COMPONENT: &str = "jabber:component:accept";
