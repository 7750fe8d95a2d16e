//! What goes into the core and what comes out of it.

use crate::time::Millis;
use minidom::Element;
use stox_mapping::ids::{CallId, Sid};

use stox_mapping::status::ErrorCondition;

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    XmppToSip,
    SipToXmpp,
}

impl Direction {
    /// The value stored in `sessions.direction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::XmppToSip => "xmpp-to-sip",
            Direction::SipToXmpp => "sip-to-xmpp",
        }
    }
}

/// The call's state as operators see it in `sessions.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Pending,
    Ringing,
    Active,
    Ended,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Pending => "pending",
            CallState::Ringing => "ringing",
            CallState::Active => "active",
            CallState::Ended => "ended",
        }
    }
}

/// Which side ended the call (`sessions.ended_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Xmpp,
    Sip,
    Gateway,
}

impl EndedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Xmpp => "xmpp",
            EndedBy::Sip => "sip",
            EndedBy::Gateway => "gateway",
        }
    }
}

/// One row of the `sessions` table, written whole on every state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Primary key, assigned by the core.
    pub id: i64,
    pub jingle_sid: Sid,
    pub sip_call_id: CallId,
    pub direction: Direction,
    pub xmpp_jid: String,
    pub sip_uri: String,
    pub gateway_jid: String,
    pub state: CallState,
    pub created_at: Millis,
    pub answered_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// Jingle reason name (`success`, `busy`, …).
    pub end_reason: Option<String>,
    pub sip_status: Option<u16>,
    pub ended_by: Option<EndedBy>,
    /// What ended the call in words, when the reason name does not say it
    /// (a SIP command that failed, what a restart told each side).
    pub end_detail: Option<String>,
    pub updated_at: Millis,
    /// The media session: the SDP the gateway last sent to the SIP side
    /// (what a session refresh is answered with, `o=` version unchanged)…
    pub local_sdp: Option<String>,
    /// … and the SDP the SIP peer last sent (offer or answer): a new offer
    /// is compared with it (a refresh, a hold or resume, or a change).
    pub remote_sdp: Option<String>,
    /// Who holds the call now (RFC 3264 §8.4, XEP-0167 §7).
    pub hold: Hold,
    /// The configured SIP peer an XMPP → SIP call went to (policy.rs).
    pub sip_peer: Option<String>,
    /// The rtpengine (NG address) anchoring the call's media; `None`: the
    /// media passes through (docs/media.md).
    pub media_relay: Option<String>,
}

/// Who has put the call on hold (`sessions.hold`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    /// The XMPP user (session-info `<hold/>`): the SIP side was offered
    /// streams we do not receive.
    pub xmpp: bool,
    /// The SIP peer (an offer whose streams it does not receive).
    pub sip: bool,
}

impl Hold {
    /// The value stored in `sessions.hold` (NULL when nobody holds).
    pub fn as_str(self) -> Option<&'static str> {
        match (self.xmpp, self.sip) {
            (false, false) => None,
            (true, false) => Some("xmpp"),
            (false, true) => Some("sip"),
            (true, true) => Some("both"),
        }
    }

    pub fn parse(s: Option<&str>) -> Option<Hold> {
        match s {
            None => Some(Hold::default()),
            Some("xmpp") => Some(Hold {
                xmpp: true,
                sip: false,
            }),
            Some("sip") => Some(Hold {
                xmpp: false,
                sip: true,
            }),
            Some("both") => Some(Hold {
                xmpp: true,
                sip: true,
            }),
            Some(_) => None,
        }
    }
}

pub use stox_sipcore::api::{
    CallKey, Command, NextHop, OfferMethod, Refresher, RequestId, SessionTimer, SipCommand,
    SipEvent,
};

/// How an IQ the gateway sent was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IqOutcome {
    Result,
    Error(ErrorCondition),
    /// No answer within the XMPP adapter's IQ timeout.
    Timeout,
    /// Never delivered: the component was offline for longer than the
    /// adapter keeps stanzas.
    Undelivered,
}

/// A stanza the XMPP adapter dropped unread because it broke an input
/// limit, with what answering it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedStanza {
    /// `iq`, `message`, `presence` …
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub id: Option<String>,
    /// The `type` attribute.
    pub kind: Option<String>,
    /// Which limit, for the error text.
    pub reason: String,
}

/// A timer the core asked for. Stale timers (for calls that moved on) are
/// ignored when they fire, so the adapter never needs to cancel one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKey {
    /// A SIP → XMPP call that the XMPP user has not accepted in time.
    RingTimeout { call: i64 },
    /// An XMPP caller's JMI proposal the gateway proceeded to, still
    /// without its session-initiate.
    ProposalTimeout { proposal: u64 },
    /// An XMPP → SIP call gathering trickled candidates: send the INVITE now.
    CandidateWindow { call: i64 },
    /// An XMPP → SIP call whose SIP callee has not answered in time.
    AnswerTimeout { call: i64 },
    /// A re-offer refused with 491 may be sent again (RFC 3261 §14.1).
    ReofferRetry { call: i64 },
    /// Time to refresh the session (RFC 4028); `epoch` names the negotiated
    /// timer it belongs to (an older one's is stale).
    SessionRefresh { call: i64, epoch: u32 },
    /// The session expires unless refreshed since (RFC 4028).
    SessionExpiry { call: i64, epoch: u32 },
    /// Ping the XMPP user of an answered call (XEP-0199).
    PeerPing { call: i64 },
    /// An answered call reached the longest duration allowed.
    MaxDuration { call: i64 },
    /// The XMPP user has not answered a content-add for streams the SIP
    /// peer added.
    ContentAnswer { call: i64 },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A stanza (`<iq/>`, `<message/>`, `<presence/>`) received by the
    /// component, except the results and errors of IQs the gateway sent.
    Stanza(Element),
    /// The answer (or timeout) of an IQ the gateway sent, by its `id`.
    IqResponse {
        id: String,
        outcome: IqOutcome,
    },
    Sip(SipEvent),
    Timer(TimerKey),
    /// A stanza dropped unread by the XMPP adapter (over a limit).
    StanzaRejected(RejectedStanza),
    /// The component connection is up (stanzas flow) or down. The core
    /// starts offline: SIP calls are refused with 503 until it is up.
    XmppLink {
        online: bool,
    },
    /// The store's queue of unwritten rows went over its limit (`true`) or
    /// back under it: new calls are refused while it is over.
    StoreBacklog {
        over_limit: bool,
    },
    /// The gateway is stopping (`true`): new calls are refused (SIP 503
    /// with Retry-After, Jingle `service-unavailable`) while the live ones
    /// go on. See [`crate::Core::shut_down`] for the end of the drain.
    Draining {
        on: bool,
    },
    /// A SIP next hop (a peer, the outbound proxy) went down (`Some(why)`)
    /// or is usable again (`None`): the SIP layer's OPTIONS probes and
    /// failed INVITEs say so. An XMPP user's call routed to a hop that is
    /// down goes to the next route, or is refused `service-unavailable`.
    PeerHealth {
        hop: NextHop,
        down: Option<String>,
    },
    /// rtpengine's answer to [`Output::Media`] `ticket`, or why there is
    /// none (every address refused or timed out).
    Media {
        ticket: u64,
        result: Result<MediaReply, String>,
    },
}

/// An NG request for rtpengine ([`Output::Media`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRequest {
    /// Names the answer ([`Input::Media`]).
    pub ticket: u64,
    /// The rtpengine this call uses; `None`: the configured ones in order,
    /// the first that answers.
    pub relay: Option<String>,
    pub request: stox_rtpengine::Request,
}

/// rtpengine's answer ([`Input::Media`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MediaReply {
    /// The address that answered.
    pub relay: String,
    pub reply: stox_rtpengine::Reply,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this stanza. IQs of type `set`/`get` are tracked by the adapter,
    /// which reports their outcome as [`Input::IqResponse`].
    Xmpp(Element),
    Sip(SipCommand),
    /// Write this row; `call` is the call's key on the SIP side, if it has
    /// one (its dialog or pending INVITE is stored with the row).
    Persist {
        record: SessionRecord,
        call: Option<CallKey>,
    },
    SetTimer {
        key: TimerKey,
        at: Millis,
    },
    /// Send this NG request to rtpengine; its answer comes back as
    /// [`Input::Media`].
    Media(MediaRequest),
    /// rtpengine's figures for row `id`'s media, from the `delete` that
    /// ended its session (`sessions.media_*`).
    MediaStats {
        id: i64,
        stats: crate::media::MediaStats,
    },
    /// An input the call's phase did not expect, when nothing is due on the
    /// wire for it (what was due, an IQ error or a SIP reply, has been
    /// sent). The adapter logs it (rate-limited) and counts it.
    Fault {
        call: i64,
        fault: Fault,
    },
}

/// What a call did not expect (see [`Output::Fault`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A SIP event the phase has no use for (a response for the other
    /// direction, a provisional after the answer, …).
    UnexpectedSip {
        event: &'static str,
        phase: &'static str,
    },
    /// A XEP-0353 message the phase has no use for (a device's `<ringing/>`
    /// after another one proceeded, a `<proceed/>` from a bare JID, …).
    UnexpectedJmi {
        kind: &'static str,
        from: String,
        phase: &'static str,
    },
    /// An IQ the call sent was answered with an error (or not at all) where
    /// XEP-0166 asks nothing more of the gateway.
    IqFailed {
        purpose: &'static str,
        outcome: IqOutcome,
        phase: &'static str,
    },
    /// The SIP peer refused a change the XMPP user asked for (hold,
    /// resume): the session stays as it was (RFC 3264 §8).
    ChangeRefused {
        change: &'static str,
        status: u16,
        reason: String,
    },
    /// A SIP command failed where the call goes on (INFO, PRACK, a reply)
    /// or had already ended.
    CommandFailed {
        command: Command,
        reason: String,
        phase: &'static str,
    },
    /// rtpengine failed a request where the call goes on, or after it
    /// ended (a `delete`).
    MediaRelay { command: String, reason: String },
    /// The call policy refused an XMPP user's call (policy.rs): nothing
    /// went to SIP.
    Forbidden {
        caller: String,
        target: String,
        why: String,
    },
    /// An XMPP user's call was refused because every next hop it could
    /// take is down (`hops`; policy.rs): nothing went to SIP, the caller
    /// got `service-unavailable` (or a JMI `<reject/>`), a row says why.
    PeerDown {
        caller: String,
        target: String,
        hops: Vec<NextHop>,
        why: String,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::UnexpectedSip { event, phase } => {
                write!(f, "SIP {event} not expected while {phase}; ignored")
            }
            Fault::UnexpectedJmi { kind, from, phase } => {
                write!(
                    f,
                    "JMI <{kind}/> from {from} not expected while {phase}; ignored"
                )
            }
            Fault::IqFailed {
                purpose,
                outcome,
                phase,
            } => write!(
                f,
                "{purpose} answered {outcome:?} while {phase}; the call goes on"
            ),
            Fault::MediaRelay { command, reason } => {
                write!(f, "rtpengine {command} failed: {reason}")
            }
            Fault::Forbidden {
                caller,
                target,
                why,
            }
            | Fault::PeerDown {
                caller,
                target,
                why,
                ..
            } => write!(f, "call from {caller} to {target} refused: {why}"),
            Fault::CommandFailed {
                command,
                reason,
                phase,
            } => write!(
                f,
                "SIP {command} failed ({reason}) while {phase}; the call goes on"
            ),
            Fault::ChangeRefused {
                change,
                status,
                reason,
            } => write!(
                f,
                "the SIP peer refused the {change}: {status} {reason}; the session is unchanged"
            ),
        }
    }
}
