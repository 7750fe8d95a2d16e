//! XML namespaces (the current XEP ones; never the STOX draft's old ones).

pub const JINGLE: &str = "urn:xmpp:jingle:1";
pub const JINGLE_ERRORS: &str = "urn:xmpp:jingle:errors:1";
pub const JINGLE_RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
pub const JINGLE_RTP_INFO: &str = "urn:xmpp:jingle:apps:rtp:info:1";
pub const JINGLE_RTP_ERRORS: &str = "urn:xmpp:jingle:apps:rtp:errors:1";
pub const JINGLE_RTP_AUDIO: &str = "urn:xmpp:jingle:apps:rtp:audio";
pub const JINGLE_RTP_VIDEO: &str = "urn:xmpp:jingle:apps:rtp:video";
pub const JINGLE_ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
pub const JINGLE_RAW_UDP: &str = "urn:xmpp:jingle:transports:raw-udp:1";
pub const JINGLE_DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
pub const JINGLE_RTCP_FB: &str = "urn:xmpp:jingle:apps:rtp:rtcp-fb:0";
pub const JINGLE_RTP_HDREXT: &str = "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0";
pub const JINGLE_GROUPING: &str = "urn:xmpp:jingle:apps:grouping:0";
pub const JINGLE_SSMA: &str = "urn:xmpp:jingle:apps:rtp:ssma:0";
pub const JINGLE_MESSAGE: &str = "urn:xmpp:jingle-message:0";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const COMPONENT: &str = "jabber:component:accept";
/// Namespace of the gateway's own `<sip-status/>` child in a Jingle `<reason/>`.
pub const STOX_SIP_STATUS: &str = "urn:xmpp:stox:sip-status:0";
/// Carrier for attributes the model does not know (kept in an `other` list,
/// written back as attributes of the parent element).
pub const STOX_ATTRIBUTES: &str = "urn:xmpp:stox:attributes:0";
/// `<sdp-attribute name value/>` (and `level='session'`) for SDP attributes
/// that have no Jingle mapping yet, so they survive SDP → Jingle → SDP.
pub const STOX_SDP: &str = "urn:xmpp:stox:sdp:0";
