//! Jingle contents ⇄ SDP (RFC 8866 / RFC 3264), after the STOX media draft.
//!
//! Role awareness: Jingle `senders` is always seen from the session
//! initiator, SDP direction from the SDP's author. [`SdpAuthor`] says who
//! wrote (or will be said to have written) the SDP.
//!
//! # Mapping decisions
//!
//! | SDP | Jingle |
//! |---|---|
//! | m= media (`audio`/`video`), fmts | `<description media>`, `<payload-type id>` in m= order |
//! | `a=rtpmap:id name/rate[/channels]` (static types 0–34 without one) | `name`, `clockrate`, `channels` |
//! | `a=fmtp` (split on `;` or `,`, bare value → `name=''`) | `<parameter name value/>` (joined with `;`) |
//! | `a=ptime` / `a=maxptime` (media level) | `ptime`/`maxptime` on **every** payload type; back to SDP from the first payload type that has one |
//! | first `b=` / further `b=` | `<bandwidth type>` / further `<bandwidth/>` elements kept in `other` |
//! | `a=rtcp-mux` | `<rtcp-mux/>` |
//! | sendrecv/sendonly/recvonly/inactive (media, else session level) | `senders`, role-aware ([`senders_from_direction`]) |
//! | `a=mid` | content `name` (no mid: `audio`, `audio-2`, …) |
//! | `a=group:SEM mid…` (session level) | XEP-0338 [`Group`] on `<jingle/>` ([`MappedSdp::groups`]); mids ⇄ content names, members without a mapped m= line left out |
//! | `o=` username | [`MappedSdp::origin_username`] / [`SdpOrigin::username`] |
//! | `a=rtcp-fb:<id> type [subtype [params]]` / `a=rtcp-fb:* …` | XEP-0293 `<rtcp-fb type subtype>` (+ `<parameter/>`) in the `<payload-type/>` / in the `<description/>` |
//! | `a=rtcp-fb:<id or *> trr-int N` | `<rtcp-fb-trr-int value='N'/>` at the same place |
//! | `a=extmap:id[/direction] uri [attributes]` (media; session level copied into every content) | XEP-0294 `<rtp-hdrext id uri senders?>`, direction role-aware like content senders (absent = both); ids 1–255 |
//! | `a=extmap-allow-mixed` (session or media level) | `<extmap-allow-mixed/>` in every content it applies to; written at media level |
//! | `a=ssrc:N name[:value]` | XEP-0339 `<source ssrc><parameter name value/></source>`, one per SSRC, attributes in order |
//! | `a=ssrc-group:SEM N…` | `<ssrc-group semantics><source ssrc/>…</ssrc-group>` |
//! | `a=msid:stream track` with sources | an `msid` parameter on every source lacking one; the form used (media level only, or also `a=ssrc:N msid:`) is kept (`sdp/sources.rs`) |
//! | `a=crypto:tag suite key-params [session-params]` | XEP-0167 `<encryption><crypto crypto-suite key-params session-params? tag/></encryption>`; `required` ⇄ `RTP/SAVP(F)`; over `RTP/AVP(F)` or `UDP/TLS/RTP/SAVPF` not required (`sdp/crypto.rs`) |
//! | `a=ice-ufrag`/`ice-pwd` (media, else session level; RFC 8839 syntax), `a=candidate` | ICE-UDP `ufrag`/`pwd`/`<candidate/>`; ids generated (`m{line}c{n}`) when mapping from SDP; `generation`, `tcptype`, `network-id` ⇄ `network` |
//! | `a=remote-candidates:c ip port …` | XEP-0176 `<remote-candidate component ip port/>` |
//! | `a=fingerprint` + `a=setup` (media, else session level) | `<fingerprint hash setup>` in the transport; roles never rewritten; written at media level |
//! | no ICE: `c=` + m= port, `a=rtcp` or port+1 | raw-UDP candidates component 1 and (without rtcp-mux) 2 |
//! | `c=`/m= port written for ICE | the component-1 UDP candidate: relay, else srflx, else prflx, else host (none: `0.0.0.0` port 9) |
//! | `a=rtcp` with ICE (or with rtcp-mux) | kept as `<sdp-attribute/>`: RTCP follows ICE / the RTP port there |
//! | `a=end-of-candidates`, `a=ice-options` (all options), `a=ice-lite`, `a=rtcp-rsize`, `a=msid-semantic`, `a=msid` without sources, `a=label` and every other `a=` line | `<sdp-attribute xmlns='urn:xmpp:stox:sdp:0' name value/>` in the description's `other` (no XEP element exists); session-level ones get `level='session'`, are copied into every content and written back once at session level |
//!
//! Profile written in an offer, from the lines actually written:
//! `UDP/TLS/RTP/SAVPF` with a DTLS fingerprint, else `RTP/SAVP` with a
//! required SDES `<encryption/>`, else `RTP/AVP`; `F` is added with RTCP
//! feedback. An answer always repeats the offered profile.
//!
//! An m= line is mapped when it is `audio` or `video` over an RTP profile with
//! a non-zero port and numeric payload types (≤ 127); any other (BFCP,
//! `m=application … DTLS/SCTP`, `m=image … t38`, port 0) becomes an index in
//! [`MappedSdp::declined`] and is answered with port 0.
//!
//! Every `a=` line written must pass ezk-sdp-types' parser for that
//! attribute; Jingle values that cannot be written as valid SDP are left
//! out, and so are malformed instances of the attributes modelled above when
//! reading SDP (an `a=ssrc` without a numeric SSRC, an `a=rtcp-fb` for a
//! format not on the m= line, an `a=extmap` id above 255 …).
//!
//! Deliberately not kept: `i=`/`k=` lines, session-level `b=`, unknown
//! candidate extensions other than generation/network-id/tcptype, the
//! profile itself (recomputed from what is present), and on the Jingle side
//! what has no SDP form: the description's `ssrc` attribute, a `<source/>`
//! without parameters, an `<encryption/>` without `<crypto/>` (and, with
//! DTLS, SDES reads back as not required), XEP-0294 ids outside 1–255, group
//! members that name no written content, and the `other` children/attributes
//! of typed elements.

mod check;
mod codecs;
mod crypto;
mod feedback;
mod groups;
mod hdrext;
mod raw;
mod read;
pub mod session;
mod sources;
#[cfg(test)]
mod tests;
mod transport;
pub mod trickle;
mod write;

pub use codecs::{TELEPHONE_EVENT_DEFAULT_FMTP, format_fmtp, parse_fmtp, static_payload_type};

use crate::jingle::{Content, Group, Senders};
use raw::{MLine, RawMedia, RawSdp};

/// Which Jingle party the SDP speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpAuthor {
    Initiator,
    Responder,
}

/// `o=` line values for SDP the gateway writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpOrigin {
    /// The initiator's local part (STOX: initiator local part ⇄ o= username).
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP does not parse: {0}")]
    Parse(String),
    #[error("nothing in the session can be mapped: {0}")]
    NothingMappable(String),
    #[error("answer does not match the offer: {0}")]
    AnswerMismatch(String),
    /// Over one of the limits of `raw` (`MAX_MEDIA`, `MAX_FORMATS` …).
    #[error("more than {limit} {what} (the gateway's limit)")]
    TooMany { what: &'static str, limit: usize },
}

/// What an SDP became on the Jingle side.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSdp {
    /// One content per mappable m= line, in m= order.
    pub contents: Vec<Content>,
    /// Session-level `a=group` lines, with mids replaced by content names
    /// (members whose m= line was not mapped are left out).
    pub groups: Vec<Group>,
    /// The `o=` username.
    pub origin_username: String,
    /// Indices of m= lines that could not be mapped (declined with port 0 in
    /// any answer we write for this offer).
    pub declined: Vec<usize>,
}

/// Maps an SDP offer to Jingle contents (creator = initiator). Content names
/// come from `a=mid`, else the media type (`audio`, `video`, deduplicated
/// with a numeric suffix), so mapping the same offer twice gives the same names.
pub fn sdp_offer_to_jingle(sdp: &str, author: SdpAuthor) -> Result<MappedSdp, SdpError> {
    read::offer(&RawSdp::parse(sdp)?, author)
}

/// Maps an SDP answer to Jingle contents, naming the m= lines after the
/// `offered` contents in order (RFC 3264: one m= line per offered one).
/// Rejected m= lines (port 0) are left out of `contents`.
///
/// `offered` is the list given to [`jingle_to_sdp_offer`]: contents that
/// were not written as m= lines (no RTP description, foreign transport) are
/// skipped when matching by position.
pub fn sdp_answer_to_jingle(
    sdp: &str,
    offered: &[Content],
    author: SdpAuthor,
) -> Result<MappedSdp, SdpError> {
    read::answer(&RawSdp::parse(sdp)?, offered, author)
}

/// Writes an SDP offer for the RTP contents (one m= line each, `a=mid` =
/// content name) and the session's XEP-0338 `groups` (`a=group`).
pub fn jingle_to_sdp_offer(
    contents: &[Content],
    groups: &[Group],
    author: SdpAuthor,
    origin: &SdpOrigin,
) -> Result<String, SdpError> {
    write::offer(contents, groups, author, origin)
}

/// Writes an SDP answer to `offer`: one m= line per offered m= line, in the
/// offer's order, matched to `contents` by name as [`sdp_offer_to_jingle`]
/// named them; an offered m= line with no accepted content gets port 0.
/// `groups` are written with the offer's mids of the accepted contents.
pub fn jingle_to_sdp_answer(
    contents: &[Content],
    groups: &[Group],
    author: SdpAuthor,
    origin: &SdpOrigin,
    offer: &str,
) -> Result<String, SdpError> {
    write::answer(contents, groups, author, origin, &RawSdp::parse(offer)?)
}

/// SDP direction attribute → Jingle `senders`, for SDP written by `author`.
///
/// | direction | author = initiator | author = responder |
/// |---|---|---|
/// | sendrecv | both | both |
/// | sendonly | initiator | responder |
/// | recvonly | responder | initiator |
/// | inactive | none | none |
pub fn senders_from_direction(direction: &str, author: SdpAuthor) -> Option<Senders> {
    let (me, peer) = match author {
        SdpAuthor::Initiator => (Senders::Initiator, Senders::Responder),
        SdpAuthor::Responder => (Senders::Responder, Senders::Initiator),
    };
    Some(match direction {
        "sendrecv" => Senders::Both,
        "sendonly" => me,
        "recvonly" => peer,
        "inactive" => Senders::None,
        _ => return None,
    })
}

/// Jingle `senders` → the direction attribute `author` writes (inverse of
/// [`senders_from_direction`]).
pub fn direction_for_senders(senders: Senders, author: SdpAuthor) -> &'static str {
    match (senders, author) {
        (Senders::Both, _) => "sendrecv",
        (Senders::None, _) => "inactive",
        (Senders::Initiator, SdpAuthor::Initiator) | (Senders::Responder, SdpAuthor::Responder) => {
            "sendonly"
        }
        (Senders::Initiator, SdpAuthor::Responder) | (Senders::Responder, SdpAuthor::Initiator) => {
            "recvonly"
        }
    }
}

/// Is this an RTP profile Jingle RTP sessions can carry?
fn is_rtp_proto(proto: &str) -> bool {
    matches!(
        proto,
        "RTP/AVP"
            | "RTP/AVPF"
            | "RTP/SAVP"
            | "RTP/SAVPF"
            | "UDP/TLS/RTP/SAVP"
            | "UDP/TLS/RTP/SAVPF"
    )
}

/// The payload type numbers of an m= line when every one is a valid RTP
/// payload type; `None` otherwise (`*`, `webrtc-datachannel`, `t38`, 200 …).
fn rtp_fmts(m: &MLine) -> Option<Vec<u8>> {
    let ids = m
        .fmts
        .iter()
        .map(|f| f.parse::<u8>().ok().filter(|id| *id <= 127))
        .collect::<Option<Vec<u8>>>()?;
    (!ids.is_empty()).then_some(ids)
}

/// Can this m= line become a Jingle RTP content?
fn is_mappable(m: &RawMedia) -> bool {
    matches!(m.mline.media.as_str(), "audio" | "video")
        && m.mline.port != 0
        && is_rtp_proto(&m.mline.proto)
        && rtp_fmts(&m.mline).is_some()
}

/// Content names for the mappable m= lines of `sdp`, by m= index:
/// `a=mid`, else the media type, deduplicated (`audio`, `audio-2`, …).
fn content_names(sdp: &RawSdp) -> Vec<Option<String>> {
    let mut used: Vec<String> = Vec::new();
    sdp.media
        .iter()
        .map(|m| {
            if !is_mappable(m) {
                return None;
            }
            // RFC 5888: identification-tag = token; anything else is ignored.
            let base = raw::attribute(&m.lines, "mid")
                .map(str::trim)
                .filter(|mid| check::is_token(mid))
                .unwrap_or(&m.mline.media)
                .to_owned();
            let mut name = base.clone();
            let mut n = 2;
            while used.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            used.push(name.clone());
            Some(name)
        })
        .collect()
}
