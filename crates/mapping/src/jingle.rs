//! A lossless model of the `<jingle xmlns='urn:xmpp:jingle:1'/>` element.
//!
//! We do not use xmpp-parsers' Jingle types: they drop parts real clients send.
//! Everything we do not model is kept as a [`minidom::Element`] in an `other`
//! field and written back out unchanged.
//!
//! Attributes we do not model are kept too: they travel in `other` inside one
//! carrier element `<attributes xmlns='urn:xmpp:stox:attributes:0' …/>`
//! (see [`crate::ns::STOX_ATTRIBUTES`]) that [`Jingle::to_element`] turns back
//! into attributes of the parent, never into a child.
//!
//! Parsing never panics: every malformed element or number is a
//! [`JingleError`], answered with an IQ `bad-request`.

mod media_ext;
mod parse;
#[cfg(test)]
mod tests;
mod write;

pub use media_ext::{Crypto, Encryption, RtcpFb, RtpHdrext, Source, SsrcGroup};

use crate::ids::Sid;
use crate::status::ReasonCondition;
use minidom::Element;

/// Jingle `action` attribute (XEP-0166 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ContentAccept,
    ContentAdd,
    ContentModify,
    ContentReject,
    ContentRemove,
    DescriptionInfo,
    SecurityInfo,
    SessionAccept,
    SessionInfo,
    SessionInitiate,
    SessionTerminate,
    TransportAccept,
    TransportInfo,
    TransportReject,
    TransportReplace,
}

impl Action {
    /// The wire name, e.g. `session-initiate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContentAccept => "content-accept",
            Self::ContentAdd => "content-add",
            Self::ContentModify => "content-modify",
            Self::ContentReject => "content-reject",
            Self::ContentRemove => "content-remove",
            Self::DescriptionInfo => "description-info",
            Self::SecurityInfo => "security-info",
            Self::SessionAccept => "session-accept",
            Self::SessionInfo => "session-info",
            Self::SessionInitiate => "session-initiate",
            Self::SessionTerminate => "session-terminate",
            Self::TransportAccept => "transport-accept",
            Self::TransportInfo => "transport-info",
            Self::TransportReject => "transport-reject",
            Self::TransportReplace => "transport-replace",
        }
    }
    /// Parse a wire name; `None` for an unknown action.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
    /// Every action, in XEP-0166 order.
    pub const ALL: [Action; 15] = [
        Self::ContentAccept,
        Self::ContentAdd,
        Self::ContentModify,
        Self::ContentReject,
        Self::ContentRemove,
        Self::DescriptionInfo,
        Self::SecurityInfo,
        Self::SessionAccept,
        Self::SessionInfo,
        Self::SessionInitiate,
        Self::SessionTerminate,
        Self::TransportAccept,
        Self::TransportInfo,
        Self::TransportReject,
        Self::TransportReplace,
    ];
}

/// Why a `<jingle/>` element could not be parsed. Every variant is a peer
/// fault answered with an IQ `bad-request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JingleError {
    #[error("element is not <jingle xmlns='urn:xmpp:jingle:1'/>")]
    NotJingle,
    #[error("<jingle/> has no sid attribute")]
    MissingSid,
    #[error("<jingle/> has no action attribute")]
    MissingAction,
    #[error("unknown Jingle action '{0}'")]
    UnknownAction(String),
    #[error("invalid <{element}/>: {detail}")]
    Invalid {
        element: &'static str,
        detail: String,
    },
    /// More children of one kind than [`JingleLimits`] allows.
    #[error("more than {limit} {what} (the gateway's limit)")]
    TooMany { what: &'static str, limit: usize },
}

/// How many children of each kind a `<jingle/>` may have before it is
/// refused unread (config `[xmpp.limits]`, docs/security.md). Counted per
/// parent: contents per `<jingle/>`, payload types and sources per
/// `<description/>`, candidates per `<transport/>`, and any other children
/// per element (parameters of a payload type, header extensions, groups …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JingleLimits {
    pub max_contents: usize,
    pub max_payload_types: usize,
    pub max_candidates: usize,
    pub max_sources: usize,
    pub max_children: usize,
}

impl Default for JingleLimits {
    fn default() -> Self {
        JingleLimits {
            max_contents: 16,
            max_payload_types: 128,
            max_candidates: 128,
            max_sources: 128,
            max_children: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Jingle {
    pub action: Action,
    pub sid: Sid,
    /// `initiator` attribute (a full or bare JID, as text).
    pub initiator: Option<String>,
    /// `responder` attribute.
    pub responder: Option<String>,
    pub contents: Vec<Content>,
    /// XEP-0338 `<group xmlns='urn:xmpp:jingle:apps:grouping:0'/>` children
    /// (BUNDLE, LS …). A `<group/>` carrying anything this model does not
    /// know (no `semantics`, other attributes or children) stays in `other`.
    pub groups: Vec<Group>,
    pub reason: Option<Reason>,
    /// Payload children of session-info (`<ringing/>`, `<hold/>`, `<active/>`,
    /// `<mute/>` … in `urn:xmpp:jingle:apps:rtp:info:1`), kept as elements.
    pub info: Vec<Element>,
    /// Children we do not model.
    pub other: Vec<Element>,
}

/// XEP-0338 `<group semantics='BUNDLE'><content name='0'/>…</group>` ⇄
/// SDP `a=group:BUNDLE 0 …` (RFC 5888 / RFC 8843).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub semantics: String,
    /// The grouped content names, in order.
    pub contents: Vec<String>,
}

impl Jingle {
    pub fn new(action: Action, sid: Sid) -> Self {
        Jingle {
            action,
            sid,
            initiator: None,
            responder: None,
            contents: Vec::new(),
            groups: Vec::new(),
            reason: None,
            info: Vec::new(),
            other: Vec::new(),
        }
    }
    pub fn parse(element: &Element) -> Result<Self, JingleError> {
        parse::jingle(element)
    }
    /// [`Jingle::parse`] after counting the children against `limits`
    /// (nothing is parsed when a count is over).
    pub fn parse_limited(element: &Element, limits: &JingleLimits) -> Result<Self, JingleError> {
        parse::check_counts(element, limits)?;
        parse::jingle(element)
    }
    pub fn to_element(&self) -> Element {
        write::jingle(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Creator {
    #[default]
    Initiator,
    Responder,
}

impl Creator {
    pub fn as_str(self) -> &'static str {
        match self {
            Creator::Initiator => "initiator",
            Creator::Responder => "responder",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "initiator" => Some(Creator::Initiator),
            "responder" => Some(Creator::Responder),
            _ => None,
        }
    }
}

/// `senders`, always seen from the session initiator (XEP-0166). Absent = `Both`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Senders {
    #[default]
    Both,
    Initiator,
    Responder,
    None,
}

impl Senders {
    pub fn as_str(self) -> &'static str {
        match self {
            Senders::Both => "both",
            Senders::Initiator => "initiator",
            Senders::Responder => "responder",
            Senders::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "both" => Some(Senders::Both),
            "initiator" => Some(Senders::Initiator),
            "responder" => Some(Senders::Responder),
            "none" => Some(Senders::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub creator: Creator,
    pub name: String,
    pub senders: Senders,
    pub disposition: Option<String>,
    pub description: Option<Description>,
    pub transport: Option<Transport>,
    pub other: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Description {
    Rtp(RtpDescription),
    /// A description in another namespace: kept, never mapped to SDP.
    Other(Element),
}

/// XEP-0167 `<description xmlns='urn:xmpp:jingle:apps:rtp:1'/>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RtpDescription {
    pub media: String,
    pub ssrc: Option<String>,
    pub payload_types: Vec<PayloadType>,
    /// `<bandwidth type='AS'>128</bandwidth>` ⇄ `b=AS:128`.
    pub bandwidth: Option<Bandwidth>,
    pub rtcp_mux: bool,
    /// XEP-0293 `<rtcp-fb/>` for every payload type (SDP `a=rtcp-fb:*`).
    pub rtcp_fb: Vec<RtcpFb>,
    /// XEP-0293 `<rtcp-fb-trr-int value/>` for every payload type.
    pub rtcp_fb_trr_int: Option<u32>,
    /// XEP-0294 `<rtp-hdrext/>` (SDP `a=extmap`).
    pub hdrexts: Vec<RtpHdrext>,
    /// XEP-0294 `<extmap-allow-mixed/>`.
    pub extmap_allow_mixed: bool,
    /// XEP-0339 `<source/>` (SDP `a=ssrc`).
    pub sources: Vec<Source>,
    /// XEP-0339 `<ssrc-group/>` (SDP `a=ssrc-group`).
    pub ssrc_groups: Vec<SsrcGroup>,
    /// XEP-0167 SDES `<encryption/>` (SDP `a=crypto`).
    pub encryption: Option<Encryption>,
    /// Unmodelled children, and modelled ones that do not fit the model
    /// (an `<rtcp-fb/>` without `type`, a `<source/>` without a numeric
    /// `ssrc` …), kept whole.
    pub other: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    pub kind: String,
    pub value: u32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PayloadType {
    pub id: u8,
    pub name: Option<String>,
    pub clockrate: Option<u32>,
    pub channels: Option<u8>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    pub parameters: Vec<Parameter>,
    /// XEP-0293 `<rtcp-fb/>` for this payload type (SDP `a=rtcp-fb:<id>`).
    pub rtcp_fb: Vec<RtcpFb>,
    /// XEP-0293 `<rtcp-fb-trr-int value/>` for this payload type.
    pub rtcp_fb_trr_int: Option<u32>,
    pub other: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    IceUdp(IceUdpTransport),
    RawUdp(RawUdpTransport),
    /// A transport in another namespace: kept, never mapped to SDP.
    Other(Element),
}

/// XEP-0176 `<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'/>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IceUdpTransport {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    pub candidates: Vec<IceCandidate>,
    /// XEP-0176 `<remote-candidate component ip port/>` (SDP `a=remote-candidates`).
    pub remote_candidates: Vec<RemoteCandidate>,
    /// XEP-0320 `<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0'/>`.
    pub fingerprints: Vec<Fingerprint>,
    pub other: Vec<Element>,
}

/// XEP-0176 `<remote-candidate/>`: the candidate the controlling agent
/// selected on the peer's side, for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCandidate {
    pub component: u8,
    pub ip: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    pub component: u8,
    pub foundation: String,
    pub generation: u32,
    pub id: String,
    /// Kept as text: IPv4, IPv6 or (for mDNS candidates) a host name.
    pub ip: String,
    pub port: u16,
    pub priority: u32,
    pub protocol: String,
    /// `host`, `prflx`, `srflx`, `relay`.
    pub kind: String,
    pub rel_addr: Option<String>,
    pub rel_port: Option<u16>,
    pub tcptype: Option<String>,
    pub network: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: String,
    /// `actpass`, `active`, `passive`, `holdconn`.
    pub setup: Option<String>,
    pub value: String,
}

/// XEP-0177 `<transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'/>`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawUdpTransport {
    pub candidates: Vec<RawUdpCandidate>,
    pub other: Vec<Element>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawUdpCandidate {
    pub component: u8,
    pub generation: u32,
    pub id: String,
    pub ip: String,
    pub port: u16,
}

/// `<reason><busy/><text>…</text></reason>`, plus the gateway's optional
/// `<sip-status xmlns='urn:xmpp:stox:sip-status:0' code='486'/>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub condition: ReasonCondition,
    pub text: Option<String>,
    pub sip_status: Option<u16>,
    pub other: Vec<Element>,
}

impl Reason {
    pub fn new(condition: ReasonCondition) -> Self {
        Reason {
            condition,
            text: None,
            sip_status: None,
            other: Vec::new(),
        }
    }
}

impl Content {
    /// A content with no description or transport yet (creator initiator,
    /// senders both).
    pub fn new(name: impl Into<String>) -> Self {
        Content {
            creator: Creator::Initiator,
            name: name.into(),
            senders: Senders::Both,
            disposition: None,
            description: None,
            transport: None,
            other: Vec::new(),
        }
    }

    /// The RTP description, if the content has one.
    pub fn rtp(&self) -> Option<&RtpDescription> {
        match &self.description {
            Some(Description::Rtp(rtp)) => Some(rtp),
            _ => None,
        }
    }
}

impl PayloadType {
    pub fn new(id: u8, name: &str, clockrate: u32) -> Self {
        PayloadType {
            id,
            name: Some(name.to_owned()),
            clockrate: Some(clockrate),
            ..PayloadType::default()
        }
    }
}

impl Parameter {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Parameter {
            name: name.into(),
            value: value.into(),
        }
    }
}
