//! Media anchoring through rtpengine (docs/media.md).
//!
//! A call to or from a SIP peer configured with `media = "rtpengine"` has
//! every SDP rewritten by rtpengine before it leaves the gateway: the SIP
//! side sees plain RTP/AVP (or SDES RTP/SAVP) on rtpengine's ports, the
//! Jingle side sees ICE + DTLS-SRTP + rtcp-mux on rtpengine's ports, and
//! rtpengine relays (and decrypts/encrypts) the media between them. With
//! `passthrough` the SDP goes through as the mapping wrote it and the two
//! ends must meet on their own (WebRTC SIP clients do).
//!
//! This module says which calls are anchored and builds the NG requests;
//! `core/anchor.rs` holds each anchored call's requests in order.

use ipnet::IpNet;
use std::net::IpAddr;
use stox_rtpengine::Request;

/// How a SIP peer's media is handled (`media = …` in the config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MediaMode {
    /// The SDP goes through as mapped.
    #[default]
    Passthrough,
    /// rtpengine anchors the media; the SIP side gets `sip`.
    Rtpengine(SipMedia),
}

/// What the SIP side of an anchored call is offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SipMedia {
    /// Plain RTP (`RTP/AVP`): desk phones, trunks, PBXs.
    #[default]
    Rtp,
    /// SRTP keyed by SDES (`RTP/SAVP`, RFC 4568).
    Sdes,
}

impl SipMedia {
    fn protocol(self) -> &'static str {
        match self {
            SipMedia::Rtp => "RTP/AVP",
            SipMedia::Sdes => "RTP/SAVP",
        }
    }
}

/// A configured peer as media anchoring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMedia {
    pub name: String,
    /// The addresses it sends from (its INVITEs are matched by source).
    pub sources: Vec<IpNet>,
    pub mode: MediaMode,
}

/// Which calls rtpengine anchors ([`crate::CoreConfig::media`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaPolicy {
    /// `[sip] media`: the outbound proxy, registered users and any source
    /// no peer names.
    pub default: MediaMode,
    pub peers: Vec<PeerMedia>,
}

impl MediaPolicy {
    /// The mode of an XMPP → SIP call routed to `peer` (`None`: the
    /// outbound proxy or a registered user).
    pub fn for_peer(&self, peer: Option<&str>) -> MediaMode {
        peer.and_then(|name| self.peers.iter().find(|p| p.name == name))
            .map_or(self.default, |p| p.mode)
    }

    /// The mode of a SIP → XMPP call from `source` (the first peer that
    /// names the address).
    pub fn for_source(&self, source: IpAddr) -> MediaMode {
        let source = match source {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
            v4 => v4,
        };
        self.peers
            .iter()
            .find(|p| p.sources.iter().any(|n| n.contains(&source)))
            .map_or(self.default, |p| p.mode)
    }

    /// Does any call go through rtpengine?
    pub fn anchors_any(&self) -> bool {
        matches!(self.default, MediaMode::Rtpengine(_))
            || self
                .peers
                .iter()
                .any(|p| matches!(p.mode, MediaMode::Rtpengine(_)))
    }
}

/// One side of an anchored call, as rtpengine names it (its `from-tag` /
/// `to-tag`; the call itself is named by the SIP Call-ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leg {
    Xmpp,
    Sip,
}

impl Leg {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Leg::Xmpp => "xmpp",
            Leg::Sip => "sip",
        }
    }

    fn other(self) -> Leg {
        match self {
            Leg::Xmpp => Leg::Sip,
            Leg::Sip => Leg::Xmpp,
        }
    }
}

/// An `offer` from `from` (the SDP goes to the other leg; `again`: a
/// re-offer in the dialog, which names both legs), or an `answer` to an
/// offer `offerer` made (the SDP goes back to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Offer { from: Leg, again: bool },
    Answer { offerer: Leg },
}

/// The NG request that rewrites `sdp` for `step`.
///
/// Toward the SIP leg: `transport-protocol` RTP/AVP or RTP/SAVP, ICE
/// removed, no DTLS, RTCP on its own port (`rtcp-mux: demux`). Toward the
/// XMPP leg: UDP/TLS/RTP/SAVPF with ICE (`force`: rtpengine's own
/// candidates), DTLS-SRTP, rtcp-mux offered, no SDES, a mid on every m=
/// line. `trust-address`: the SDP's addresses are the endpoints' (the NG
/// request comes from the gateway, not from them).
pub(crate) fn request(call_id: &str, step: Step, sdp: &str, sip: SipMedia) -> Request {
    let (command, from_tag, to_tag, toward) = match step {
        Step::Offer { from, again } => ("offer", from, again.then(|| from.other()), from.other()),
        Step::Answer { offerer } => ("answer", offerer, Some(offerer.other()), offerer),
    };
    let mut req = Request {
        command: command.into(),
        call_id: Some(call_id.into()),
        from_tag: Some(from_tag.tag().into()),
        to_tag: to_tag.map(|t| t.tag().into()),
        sdp: Some(sdp.into()),
        flags: vec!["trust-address".into()],
        ..Request::default()
    };
    match toward {
        Leg::Sip => {
            req.options.push(("ICE".into(), "remove".into()));
            req.options.push(("DTLS".into(), "off".into()));
            req.lists.push(("rtcp-mux".into(), vec!["demux".into()]));
            if command == "offer" {
                req.options
                    .push(("transport-protocol".into(), sip.protocol().into()));
            }
            if sip == SipMedia::Rtp {
                req.lists.push(("SDES".into(), vec!["off".into()]));
            }
        }
        Leg::Xmpp => {
            req.options.push(("ICE".into(), "force".into()));
            req.lists.push(("SDES".into(), vec!["off".into()]));
            req.lists.push(("rtcp-mux".into(), vec!["offer".into()]));
            req.flags.push("generate-mid".into());
            if command == "offer" {
                req.options
                    .push(("transport-protocol".into(), "UDP/TLS/RTP/SAVPF".into()));
            }
        }
    }
    req
}

/// `delete`: the whole call (both legs) goes now (`delete-delay` 0:
/// rtpengine otherwise keeps the session and its ports 30 s).
pub(crate) fn delete(call_id: &str) -> Request {
    Request {
        command: "delete".into(),
        call_id: Some(call_id.into()),
        from_tag: Some(Leg::Xmpp.tag().into()),
        options: vec![("delete-delay".into(), "0".into())],
        ..Request::default()
    }
}

/// What rtpengine counted for a call, from a `delete` answer
/// (`sessions.media_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Packets rtpengine received from the XMPP side (RTP and RTCP).
    pub packets_from_xmpp: i64,
    /// Packets rtpengine received from the SIP side.
    pub packets_from_sip: i64,
    /// Packets it could not relay (bad SRTP, unknown source, …).
    pub errors: i64,
}

impl MediaStats {
    pub fn of(reply: &stox_rtpengine::Reply) -> MediaStats {
        MediaStats {
            packets_from_xmpp: reply.tag_stats(Leg::Xmpp.tag()).packets,
            packets_from_sip: reply.tag_stats(Leg::Sip.tag()).packets,
            errors: reply.tag_stats(Leg::Xmpp.tag()).errors
                + reply.tag_stats(Leg::Sip.tag()).errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> MediaPolicy {
        MediaPolicy {
            default: MediaMode::Passthrough,
            peers: vec![PeerMedia {
                name: "pbx".into(),
                sources: vec!["192.0.2.0/24".parse().expect("test address")],
                mode: MediaMode::Rtpengine(SipMedia::Rtp),
            }],
        }
    }

    #[test]
    fn a_peer_mode_overrides_the_default_by_name_and_by_source() {
        let p = policy();
        assert_eq!(p.for_peer(Some("pbx")), MediaMode::Rtpengine(SipMedia::Rtp));
        assert_eq!(p.for_peer(None), MediaMode::Passthrough);
        assert_eq!(p.for_peer(Some("other")), MediaMode::Passthrough);
        assert_eq!(
            p.for_source("192.0.2.7".parse().expect("test address")),
            MediaMode::Rtpengine(SipMedia::Rtp)
        );
        assert_eq!(
            p.for_source("::ffff:192.0.2.7".parse().expect("test address")),
            MediaMode::Rtpengine(SipMedia::Rtp),
            "an IPv4-mapped source is its IPv4 address"
        );
        assert_eq!(
            p.for_source("198.51.100.1".parse().expect("test address")),
            MediaMode::Passthrough
        );
        assert!(p.anchors_any());
        assert!(!MediaPolicy::default().anchors_any());
    }

    fn option<'a>(req: &'a Request, key: &str) -> Option<&'a str> {
        req.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_offer_toward_sip_asks_for_plain_rtp_without_ice_or_dtls() {
        let req = request(
            "c1",
            Step::Offer {
                from: Leg::Xmpp,
                again: false,
            },
            "v=0",
            SipMedia::Rtp,
        );
        assert_eq!(req.command, "offer");
        assert_eq!(req.from_tag.as_deref(), Some("xmpp"));
        assert_eq!(req.to_tag, None);
        assert_eq!(option(&req, "transport-protocol"), Some("RTP/AVP"));
        assert_eq!(option(&req, "ICE"), Some("remove"));
        assert_eq!(option(&req, "DTLS"), Some("off"));
        assert!(req.flags.contains(&"trust-address".to_owned()));
        let sdes = request(
            "c1",
            Step::Offer {
                from: Leg::Xmpp,
                again: false,
            },
            "v=0",
            SipMedia::Sdes,
        );
        assert_eq!(option(&sdes, "transport-protocol"), Some("RTP/SAVP"));
        assert!(!sdes.lists.iter().any(|(k, _)| k == "SDES"));
    }

    #[test]
    fn an_answer_names_the_offerer_first_and_goes_back_to_it() {
        // The SIP peer offered (SIP → XMPP); the XMPP user's answer goes
        // back to the SIP leg.
        let req = request(
            "c1",
            Step::Answer { offerer: Leg::Sip },
            "v=0",
            SipMedia::Rtp,
        );
        assert_eq!(req.command, "answer");
        assert_eq!(req.from_tag.as_deref(), Some("sip"));
        assert_eq!(req.to_tag.as_deref(), Some("xmpp"));
        assert_eq!(option(&req, "ICE"), Some("remove"));
        assert_eq!(
            option(&req, "transport-protocol"),
            None,
            "an answer mirrors the offer's protocol"
        );
        // Our offer to SIP was answered: the answer goes to the XMPP leg.
        let req = request(
            "c1",
            Step::Answer { offerer: Leg::Xmpp },
            "v=0",
            SipMedia::Rtp,
        );
        assert_eq!(option(&req, "ICE"), Some("force"));
        assert!(req.flags.contains(&"generate-mid".to_owned()));
    }

    #[test]
    fn an_offer_toward_xmpp_asks_for_ice_and_dtls_srtp() {
        let req = request(
            "c1",
            Step::Offer {
                from: Leg::Sip,
                again: false,
            },
            "v=0",
            SipMedia::Rtp,
        );
        assert_eq!(
            option(&req, "transport-protocol"),
            Some("UDP/TLS/RTP/SAVPF")
        );
        assert_eq!(option(&req, "ICE"), Some("force"));
        assert!(
            req.lists
                .contains(&("rtcp-mux".into(), vec!["offer".into()]))
        );
    }
}
