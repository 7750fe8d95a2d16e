//! The boundary between the SIP layer and the call core: one vocabulary of
//! events (SIP → core) and commands (core → SIP), with handles instead of
//! strings. The core never sees a SIP message, the SIP layer never sees a
//! Jingle element.

use std::fmt;
use std::net::SocketAddr;
use stox_mapping::ids::CallId;

/// A call on both sides of the boundary. Not the database row id: keys are
/// drawn from two random generators seeded apart (the core's for calls it
/// places, the SIP layer's for calls it receives), so they do not repeat and
/// do not collide between gateway instances in practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Draws [`CallKey`]s (SplitMix64: deterministic for a seed, well spread).
#[derive(Debug, Clone)]
pub struct KeyGen(u64);

impl KeyGen {
    pub fn new(seed: u64) -> KeyGen {
        KeyGen(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn key(&mut self) -> CallKey {
        CallKey(self.next_u64())
    }
}

/// An in-dialog request waiting for the core's answer ([`SipCommand::Reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Ws,
    /// SIP over TLS (RFC 3261 §26.2; default port 5061).
    Tls,
    /// SIP over secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::Tls => "tls",
            Transport::Wss => "wss",
        }
    }

    /// The token in a Via header (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Ws => "WS",
            Transport::Tls => "TLS",
            Transport::Wss => "WSS",
        }
    }

    /// From a Via transport token or a URI `transport` parameter.
    pub fn from_token(token: &[u8]) -> Option<Transport> {
        match token.to_ascii_lowercase().as_slice() {
            b"udp" => Some(Transport::Udp),
            b"tcp" => Some(Transport::Tcp),
            b"ws" => Some(Transport::Ws),
            b"tls" => Some(Transport::Tls),
            b"wss" => Some(Transport::Wss),
            _ => None,
        }
    }

    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    /// A byte stream framed by Content-Length (TCP, TLS), not one message
    /// per datagram or WebSocket message.
    pub fn is_byte_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// A WebSocket (plain or secure): the client is reachable only over
    /// the connection it opened (RFC 7118 §5).
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the SIP layer tells the core. Not `non_exhaustive` on purpose: the
/// core matches every event in every phase, so a new one must be handled
/// there before the workspace builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipEvent {
    /// A new INVITE outside any dialog; `100 Trying` has been sent. The core
    /// answers it with [`SipCommand::Respond`].
    IncomingInvite {
        call: CallKey,
        call_id: CallId,
        request_uri: String,
        /// The From URI (without display name and tag).
        from: String,
        to: String,
        sdp: Option<String>,
        transport: Transport,
        source: SocketAddr,
        /// Option tags of the `Supported` header(s), lower-cased.
        supported: Vec<String>,
    },
    /// A provisional response (101–199) to our INVITE, from any fork.
    Provisional {
        call: CallKey,
        status: u16,
        sdp: Option<String>,
        /// It carried `Require: 100rel` and an RSeq and has been PRACKed
        /// (RFC 3262): its SDP is a real answer.
        reliable: bool,
        supported: Vec<String>,
    },
    /// The first 2xx to our INVITE; the ACK has been sent. Further 2xx from
    /// other forks are ACKed and ended with BYE by the SIP layer.
    Answered {
        call: CallKey,
        sdp: Option<String>,
        supported: Vec<String>,
    },
    /// A final 3xx–6xx to our INVITE, or its timeout (408), or a CANCEL that
    /// crossed nothing (487).
    Rejected {
        call: CallKey,
        status: u16,
        reason: String,
    },
    /// The ACK for our 2xx arrived.
    Acked { call: CallKey },
    /// The caller cancelled the INVITE we had not answered, by CANCEL or by
    /// a BYE in the early dialog (RFC 3261 §15.1.2); 200 to the CANCEL or
    /// BYE and 487 to the INVITE have been sent.
    Cancelled { call: CallKey },
    /// The peer sent BYE; 200 has been sent. Before our INVITE is answered
    /// (a callee breaking RFC 3261 §15) the INVITE is still pending: the
    /// core cancels it.
    Bye { call: CallKey },
    /// An in-dialog request other than ACK, BYE and CANCEL (re-INVITE,
    /// UPDATE, INFO, OPTIONS, PRACK, …). The core answers it with
    /// [`SipCommand::Reply`] naming `request`.
    Request {
        call: CallKey,
        request: RequestId,
        method: String,
        content_type: Option<String>,
        body: Option<String>,
    },
    /// The 2xx to our re-INVITE or UPDATE ([`SipCommand::Reoffer`]), with
    /// its SDP answer; a re-INVITE's 2xx has been ACKed.
    ReofferAnswered { call: CallKey, sdp: Option<String> },
    /// Our re-INVITE or UPDATE got a final 3xx–6xx, or timed out (408), or
    /// could not be sent (503). The session is as it was before the offer
    /// (RFC 3264 §8); 491 asks for a retry later (RFC 3261 §14.1), and a
    /// 481 or 408 means the dialog is gone (RFC 5057).
    ReofferRefused {
        call: CallKey,
        status: u16,
        reason: String,
    },
    /// The session timer (RFC 4028) as negotiated by the last 2xx to an
    /// INVITE or UPDATE, either way: `None` when that 2xx set none. The core
    /// refreshes (`Refresher::Us`) or ends the call when no refresh comes.
    SessionTimer {
        call: CallKey,
        timer: Option<SessionTimer>,
    },
    /// The call's SIP side ended without a message the core must answer:
    /// no ACK for our 2xx (RFC 3261 §13.3.1.4), the peer unreachable for an
    /// in-dialog request, the connection of a WebSocket flow gone.
    Terminated { call: CallKey, reason: String },
    /// A command could not be carried out.
    CommandFailed {
        call: CallKey,
        command: Command,
        reason: String,
    },
}

impl SipEvent {
    /// The event's name, for logs and faults.
    pub fn name(&self) -> &'static str {
        match self {
            SipEvent::IncomingInvite { .. } => "INVITE",
            SipEvent::Provisional { .. } => "provisional response",
            SipEvent::Answered { .. } => "2xx",
            SipEvent::Rejected { .. } => "final non-2xx",
            SipEvent::Acked { .. } => "ACK",
            SipEvent::Cancelled { .. } => "CANCEL",
            SipEvent::Bye { .. } => "BYE",
            SipEvent::Request { .. } => "in-dialog request",
            SipEvent::ReofferAnswered { .. } => "2xx to our re-offer",
            SipEvent::ReofferRefused { .. } => "refusal of our re-offer",
            SipEvent::SessionTimer { .. } => "session timer",
            SipEvent::Terminated { .. } => "dialog termination",
            SipEvent::CommandFailed { .. } => "command failure",
        }
    }

    /// The call the event is about.
    pub fn call(&self) -> CallKey {
        match self {
            SipEvent::IncomingInvite { call, .. }
            | SipEvent::Provisional { call, .. }
            | SipEvent::Answered { call, .. }
            | SipEvent::Rejected { call, .. }
            | SipEvent::Acked { call }
            | SipEvent::Cancelled { call }
            | SipEvent::Bye { call }
            | SipEvent::Request { call, .. }
            | SipEvent::ReofferAnswered { call, .. }
            | SipEvent::ReofferRefused { call, .. }
            | SipEvent::SessionTimer { call, .. }
            | SipEvent::Terminated { call, .. }
            | SipEvent::CommandFailed { call, .. } => *call,
        }
    }
}

/// What the core asks the SIP layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SipCommand {
    /// Send an INVITE. `call` is the core's new key for it.
    Invite {
        call: CallKey,
        call_id: CallId,
        /// Request-URI and To.
        request_uri: String,
        /// From URI (a tag is added).
        from: String,
        sdp: String,
        /// Option tags besides `100rel` (always advertised), e.g.
        /// `trickle-ice`.
        supported: Vec<String>,
        /// The configured peer (by name) it goes to: its `uri` is the next
        /// hop (else the Request-URI's host), its credentials answer its
        /// challenges. `None`: the outbound proxy, else the Request-URI.
        peer: Option<String>,
    },
    /// Answer the incoming INVITE of `call`: 1xx (with or without SDP), 2xx
    /// with the SDP answer, or a final 3xx–6xx.
    Respond {
        call: CallKey,
        status: u16,
        reason: Option<String>,
        sdp: Option<String>,
        /// Seconds for a `Retry-After` header (RFC 3261 §20.33).
        retry_after: Option<u32>,
    },
    /// Answer an in-dialog request ([`SipEvent::Request`]).
    Reply {
        call: CallKey,
        request: RequestId,
        status: u16,
        reason: Option<String>,
        sdp: Option<String>,
    },
    /// CANCEL our pending INVITE (RFC 3261 §9.1; deferred until a
    /// provisional arrives when none has).
    Cancel { call: CallKey },
    /// BYE in the call's dialog (either role), with a `Reason` header
    /// (RFC 3326) when given, e.g. `SIP;cause=408;text="session expired"`.
    Bye {
        call: CallKey,
        reason: Option<String>,
    },
    /// INFO in the call's confirmed dialog (refused in an early one).
    Info {
        call: CallKey,
        content_type: String,
        body: String,
    },
    /// A new offer in the confirmed dialog (RFC 3264 §8): a re-INVITE or an
    /// UPDATE (RFC 3311) with `sdp` — or, for a session refresh (RFC 4028),
    /// an UPDATE without one. One at a time: refused while one is pending.
    /// Answered by [`SipEvent::ReofferAnswered`] or
    /// [`SipEvent::ReofferRefused`]; the ACK of a re-INVITE's 2xx is sent
    /// by the SIP layer. It carries the session timer with the gateway as
    /// refresher.
    Reoffer {
        call: CallKey,
        method: OfferMethod,
        sdp: Option<String>,
    },
}

/// A configured SIP peer (a trunk, a proxy, a PBX), as the SIP layer needs
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// Where INVITEs routed to it go (`sip:host[:port][;transport=…]`).
    pub uri: Option<String>,
    /// Answers its 401/407 challenges (RFC 3261 §22, RFC 8760).
    pub credentials: Option<Credentials>,
    /// The identity shown to it ([`Identity`]).
    pub identity: Identity,
    /// Probed with OPTIONS while [`crate::Config::probe_interval`] is set
    /// (it needs a `uri`); false: never marked down (health.rs).
    pub probe: bool,
}

/// A next hop whose health the SIP layer watches with OPTIONS probes
/// (health.rs): a configured peer with a `uri`, or the outbound proxy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// The configured peer of this name.
    Peer(String),
    OutboundProxy,
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Peer(name) => write!(f, "SIP peer {name}"),
            NextHop::OutboundProxy => f.write_str("the outbound proxy"),
        }
    }
}

/// What a peer is shown as the caller of an INVITE (RFC 3261 §8.1.1.3
/// From, RFC 3325 P-Asserted-Identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The From user part instead of the caller's (a trunk account or DID).
    pub from_user: Option<String>,
    /// The From host instead of the caller's domain (the trunk's domain).
    pub from_domain: Option<String>,
    /// Adds `P-Asserted-Identity: <sip:caller@domain>` with the caller as the
    /// gateway knows it (for trunks inside a trust domain, RFC 3325).
    pub asserted_identity: bool,
}

/// A username and password for digest authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Only challenges of this realm are answered, when set.
    pub realm: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"…")
            .field("realm", &self.realm)
            .finish()
    }
}

/// A negotiated session timer (RFC 4028).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session-Expires, in seconds.
    pub interval: u32,
    pub refresher: Refresher,
}

/// Who refreshes the session (RFC 4028 §7, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// The gateway: a re-INVITE or UPDATE every half interval.
    Us,
    /// The SIP peer: the gateway ends the call when no refresh comes.
    Peer,
}

/// How a new offer in a dialog is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferMethod {
    Invite,
    Update,
}

impl OfferMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferMethod::Invite => "INVITE",
            OfferMethod::Update => "UPDATE",
        }
    }
}

impl SipCommand {
    pub fn call(&self) -> CallKey {
        match self {
            SipCommand::Invite { call, .. }
            | SipCommand::Respond { call, .. }
            | SipCommand::Reply { call, .. }
            | SipCommand::Cancel { call }
            | SipCommand::Bye { call, .. }
            | SipCommand::Info { call, .. }
            | SipCommand::Reoffer { call, .. } => *call,
        }
    }

    /// What failed, in a [`SipEvent::CommandFailed`].
    pub fn kind(&self) -> Command {
        match self {
            SipCommand::Invite { .. } => Command::Invite,
            SipCommand::Respond { .. } => Command::Response,
            SipCommand::Reply { .. } => Command::Reply,
            SipCommand::Cancel { .. } => Command::Cancel,
            SipCommand::Bye { .. } => Command::Bye,
            SipCommand::Info { .. } => Command::Info,
            SipCommand::Reoffer { .. } => Command::Reoffer,
        }
    }
}

/// What the SIP layer sends for the core: a request, or an answer to one.
/// Named in [`SipEvent::CommandFailed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Invite,
    /// The PRACK for a reliable provisional (RFC 3262), sent on our own.
    Prack,
    Cancel,
    Bye,
    Info,
    /// A response to the INVITE or to an in-dialog request.
    Response,
    /// A reply to an in-dialog request ([`SipCommand::Reply`]).
    Reply,
    /// A re-INVITE or UPDATE ([`SipCommand::Reoffer`]).
    Reoffer,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Invite => "INVITE",
            Command::Prack => "PRACK",
            Command::Cancel => "CANCEL",
            Command::Bye => "BYE",
            Command::Info => "INFO",
            Command::Reoffer => "re-offer",
            Command::Response => "response",
            Command::Reply => "reply",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
