//! An independent, semantic view of an SDP body, built with ezk-sdp-types
//! (not with the mapper's own line model), so that a round trip is judged by
//! what the SDP means rather than by how it is laid out.
//!
//! Normalisations, each an equivalence the SDP RFCs define:
//! * session-level ICE credentials, fingerprints, setup, extmaps and
//!   direction apply to every m= line that does not set its own;
//! * a static payload type without `a=rtpmap` has its RFC 3551 encoding;
//!   audio without a channel count has one channel; encoding names are
//!   case-insensitive;
//! * fmtp is a set of parameters (split on `;` or `,`); telephone-event
//!   without fmtp means `0-15` (RFC 4733 §2.4.1);
//! * a candidate without `generation` has generation 0; transport names are
//!   case-insensitive;
//! * without rtcp-mux and ICE, RTCP goes to port + 1 on the c= address
//!   unless `a=rtcp` says otherwise (RFC 3605);
//! * an offerer's m= line without `a=mid` may gain one (the content name).

use bytesstr::BytesStr;
use ezk_sdp_types::{
    Direction, ExtMap, MediaDescription, RtcpFeedbackPt, SessionDescription, SourceAttribute,
    TaggedAddress, UntaggedAddress,
};
use std::collections::{BTreeMap, BTreeSet};

/// Candidate extensions the mapper drops on purpose (`crates/mapping/src/sdp/mod.rs`,
/// "Deliberately not kept": unknown candidate extensions other than
/// generation/network-id/tcptype). Everything else must survive.
const DROPPED_CANDIDATE_EXTENSIONS: &[&str] = &["network-cost"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpView {
    pub groups: Vec<(String, Vec<String>)>,
    pub ice_lite: bool,
    pub ice_options: BTreeSet<String>,
    /// Unknown session-level attributes, `name[:value]`, with their count.
    pub attributes: BTreeMap<String, usize>,
    pub media: Vec<MediaView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaView {
    pub media: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<u8>,
    /// pt → (lower-case encoding, clock rate, channels).
    pub rtpmap: BTreeMap<u8, (String, u32, u32)>,
    /// pt → parameter set.
    pub fmtp: BTreeMap<u8, BTreeSet<(String, String)>>,
    pub rtcp_fb: BTreeSet<String>,
    pub extmap: BTreeSet<String>,
    pub extmap_allow_mixed: bool,
    pub direction: String,
    /// The c= address. With ICE it only names the default candidate
    /// (RFC 8839 §4.2.1.2), so it and the m= port are compared only when they
    /// are one of the line's component-1 candidates.
    pub connection: Option<String>,
    pub default_is_candidate: bool,
    pub bandwidth: BTreeSet<String>,
    pub rtcp_mux: bool,
    pub rtcp_rsize: bool,
    /// Effective RTCP (port, address) for non-ICE, non-muxed lines.
    pub rtcp: Option<(u16, String)>,
    pub ptime: Option<String>,
    pub maxptime: Option<String>,
    pub ice_ufrag: Option<String>,
    pub ice_pwd: Option<String>,
    pub candidates: BTreeSet<String>,
    pub end_of_candidates: bool,
    pub fingerprints: BTreeSet<String>,
    pub setup: Option<String>,
    pub crypto: BTreeSet<String>,
    pub ssrc: BTreeSet<String>,
    pub ssrc_groups: BTreeSet<String>,
    pub msid: Option<String>,
    pub mid: Option<String>,
    /// Unknown media-level attributes, `name[:value]`, with their count.
    pub attributes: BTreeMap<String, usize>,
}

/// Parses `sdp` with ezk and builds the view; panics with the reason when
/// ezk refuses it (every capture and every mapper output must parse).
pub fn view(sdp: &str, what: &str) -> SdpView {
    let parsed = SessionDescription::parse(&BytesStr::from(sdp.to_owned()))
        .unwrap_or_else(|e| panic!("{what}: ezk cannot parse the SDP: {e}\n{sdp}"));
    let session_c = parsed.connection.as_ref().map(|c| address(&c.address));
    let mut attributes = BTreeMap::new();
    for a in &parsed.attributes {
        *attributes
            .entry(attr_text(&a.name, a.value.as_deref()))
            .or_default() += 1;
    }
    SdpView {
        groups: parsed
            .group
            .iter()
            .map(|g| {
                (
                    g.typ.to_string(),
                    g.mids.iter().map(|m| m.to_string()).collect(),
                )
            })
            .collect(),
        ice_lite: parsed.ice_lite,
        ice_options: parsed
            .ice_options
            .options
            .iter()
            .map(|o| o.to_string())
            .collect(),
        attributes,
        media: parsed
            .media_descriptions
            .iter()
            .map(|m| media_view(&parsed, m, session_c.clone()))
            .collect(),
    }
}

fn attr_text(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{name}:{}", v.trim()),
        None => name.to_owned(),
    }
}

fn address(a: &TaggedAddress) -> String {
    match a {
        TaggedAddress::IP4(a) => a.to_string(),
        TaggedAddress::IP6(a) => a.to_string(),
        TaggedAddress::IP4FQDN(n) | TaggedAddress::IP6FQDN(n) => n.to_string(),
    }
}

fn untagged(a: &UntaggedAddress) -> String {
    a.to_string()
}

fn direction(d: Direction) -> String {
    d.to_string()
}

/// RFC 3551 §6 static payload types used by the captures (encoding, rate).
fn static_rtpmap(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("pcmu", 8000),
        3 => ("gsm", 8000),
        8 => ("pcma", 8000),
        9 => ("g722", 8000),
        13 => ("cn", 8000),
        18 => ("g729", 8000),
        31 => ("h261", 90000),
        34 => ("h263", 90000),
        _ => return None,
    })
}

/// fmtp as a parameter set: split on `;` or `,`, `name=value` or a bare value.
pub fn fmtp_set(params: &str) -> BTreeSet<(String, String)> {
    params
        .split([';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
            None => (String::new(), t.to_owned()),
        })
        .collect()
}

fn extmap_text(e: &ExtMap) -> String {
    let mut s = format!("{} {} {}", e.id, direction(e.direction), e.extension_name);
    for a in &e.extension_attributes {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn media_view(
    session: &SessionDescription,
    m: &MediaDescription,
    session_c: Option<String>,
) -> MediaView {
    let mut v = MediaView {
        media: m.media.media_type.to_string(),
        port: m.media.port,
        proto: m.media.proto.to_string(),
        formats: m.media.fmts.clone(),
        direction: direction(m.direction),
        connection: m
            .connection
            .as_ref()
            .map(|c| address(&c.address))
            .or(session_c),
        rtcp_mux: m.rtcp_mux,
        rtcp_rsize: m.rtcp_rsize,
        extmap_allow_mixed: m.extmap_allow_mixed || session.extmap_allow_mixed,
        end_of_candidates: m.ice_end_of_candidates,
        mid: m.mid.as_ref().map(|s| s.to_string()),
        msid: m.msid.as_ref().map(|s| s.to_string()),
        ..MediaView::default()
    };
    // rtpmap: explicit, else static.
    for &pt in &m.media.fmts {
        let explicit = m.rtpmap.iter().find(|r| r.payload == pt);
        let entry = match explicit {
            Some(r) => {
                let channels = r
                    .params
                    .as_ref()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(1);
                Some((r.encoding.to_lowercase(), r.clock_rate, channels))
            }
            None => static_rtpmap(pt).map(|(n, r)| (n.to_owned(), r, 1)),
        };
        if let Some(e) = entry {
            v.rtpmap.insert(pt, e);
        }
    }
    for f in &m.fmtp {
        v.fmtp.insert(f.format, fmtp_set(&f.params));
    }
    for (pt, (name, _, _)) in &v.rtpmap {
        if name == "telephone-event" && !v.fmtp.contains_key(pt) {
            v.fmtp.insert(*pt, fmtp_set("0-15"));
        }
    }
    for fb in &m.rtcp_fb {
        let pt = match fb.pt {
            RtcpFeedbackPt::Pt(pt) => pt.to_string(),
            RtcpFeedbackPt::Any => "*".to_owned(),
        };
        v.rtcp_fb.insert(format!("{pt} {:?}", fb.kind));
    }
    for e in m.extmap.iter().chain(&session.extmap) {
        v.extmap.insert(extmap_text(e));
    }
    for b in &m.bandwidth {
        v.bandwidth.insert(b.to_string());
    }
    let ufrag = m.ice_ufrag.as_ref().or(session.ice_ufrag.as_ref());
    v.ice_ufrag = ufrag.map(|u| u.ufrag.to_string());
    v.ice_pwd = m
        .ice_pwd
        .as_ref()
        .or(session.ice_pwd.as_ref())
        .map(|p| p.pwd.to_string());
    for c in &m.ice_candidates {
        let mut s = format!(
            "{} {} {} {} {} {} typ {}",
            c.foundation,
            c.component,
            c.transport.to_lowercase(),
            c.priority,
            untagged(&c.address),
            c.port,
            c.typ
        );
        if let Some(a) = &c.rel_addr {
            s.push_str(&format!(" raddr {}", untagged(a)));
        }
        if let Some(p) = c.rel_port {
            s.push_str(&format!(" rport {p}"));
        }
        let mut ext: BTreeMap<String, String> = c
            .unknown
            .iter()
            .filter(|(k, _)| !DROPPED_CANDIDATE_EXTENSIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ext.entry("generation".to_owned())
            .or_insert_with(|| "0".to_owned());
        for (k, val) in ext {
            s.push_str(&format!(" {k} {val}"));
        }
        v.candidates.insert(s);
    }
    let fingerprints = if m.fingerprint.is_empty() {
        &session.fingerprint
    } else {
        &m.fingerprint
    };
    v.default_is_candidate = m.ice_candidates.iter().any(|c| {
        c.component == 1 && c.port == v.port && Some(untagged(&c.address)) == v.connection
    });
    v.fingerprints = fingerprints
        .iter()
        .map(|f| f.to_string().to_uppercase())
        .collect();
    v.setup = m.setup.or(session.setup).map(|s| s.to_string());
    v.crypto = m.crypto.iter().map(|c| c.to_string()).collect();
    for s in &m.ssrc {
        let attr = match &s.attribute {
            SourceAttribute::CName { cname } => format!("cname:{cname}"),
            SourceAttribute::PreviousSsrc { ssrc } => format!("previous-ssrc:{ssrc}"),
            SourceAttribute::Fmtp { pt, params } => format!("fmtp:{pt} {params}"),
            SourceAttribute::Other { name, value } => attr_text(name, value.as_deref()),
        };
        v.ssrc.insert(format!("{} {attr}", s.ssrc));
    }
    for a in &m.attributes {
        let value = a.value.as_deref().map(str::trim);
        match a.name.as_str() {
            "ssrc-group" => {
                v.ssrc_groups.insert(value.unwrap_or_default().to_owned());
            }
            "ptime" => v.ptime = value.map(str::to_owned),
            "maxptime" => v.maxptime = value.map(str::to_owned),
            _ => *v.attributes.entry(attr_text(&a.name, value)).or_default() += 1,
        }
    }
    if !v.rtcp_mux && v.ice_ufrag.is_none() && v.port != 0 {
        let c = v.connection.clone().unwrap_or_default();
        v.rtcp = match &m.rtcp {
            Some(r) => Some((r.port, r.address.as_ref().map(address).unwrap_or(c))),
            None => v.port.checked_add(1).map(|p| (p, c)),
        };
    }
    v
}

/// The RFC 3264 answer direction for an offered one.
pub fn answer_direction(offered: &str) -> &'static str {
    match offered {
        "sendonly" => "recvonly",
        "recvonly" => "sendonly",
        "inactive" => "inactive",
        _ => "sendrecv",
    }
}

/// One difference between two views, for the failure message.
#[derive(Debug)]
pub struct Diff {
    pub feature: &'static str,
    pub at: String,
    pub input: String,
    pub output: String,
}

pub struct Differ {
    pub diffs: Vec<Diff>,
}

impl Differ {
    pub fn new() -> Self {
        Differ { diffs: Vec::new() }
    }
    pub fn check<T: PartialEq + std::fmt::Debug>(
        &mut self,
        feature: &'static str,
        at: &str,
        input: &T,
        output: &T,
    ) {
        if input != output {
            self.diffs.push(Diff {
                feature,
                at: at.to_owned(),
                input: format!("{input:?}"),
                output: format!("{output:?}"),
            });
        }
    }
    /// Panics with every difference, one per line, grouped by feature.
    pub fn assert_none(&self, what: &str) {
        if self.diffs.is_empty() {
            return;
        }
        let mut msg = format!("{what}: {} semantic difference(s)\n", self.diffs.len());
        for d in &self.diffs {
            msg.push_str(&format!(
                "  [{}] {}\n     in:  {}\n     out: {}\n",
                d.feature, d.at, d.input, d.output
            ));
        }
        panic!("{msg}");
    }
}

/// Compares one m= line of the input with the output's, feature by feature.
/// Features the mapper does not type yet are marked where they are checked.
pub fn compare_media(d: &mut Differ, at: &str, input: &MediaView, output: &MediaView) {
    d.check("media", at, &input.media, &output.media);
    if input.ice_ufrag.is_none() || input.default_is_candidate {
        d.check("port", at, &input.port, &output.port);
        d.check("connection", at, &input.connection, &output.connection);
    }
    d.check("proto", at, &input.proto, &output.proto);
    d.check("formats", at, &input.formats, &output.formats);
    d.check("rtpmap", at, &input.rtpmap, &output.rtpmap);
    d.check("fmtp", at, &input.fmtp, &output.fmtp);
    d.check("ptime", at, &input.ptime, &output.ptime);
    d.check("maxptime", at, &input.maxptime, &output.maxptime);
    d.check("bandwidth", at, &input.bandwidth, &output.bandwidth);
    d.check("rtcp-fb", at, &input.rtcp_fb, &output.rtcp_fb);
    d.check("extmap", at, &input.extmap, &output.extmap);
    d.check(
        "extmap-allow-mixed",
        at,
        &input.extmap_allow_mixed,
        &output.extmap_allow_mixed,
    );
    d.check("direction", at, &input.direction, &output.direction);
    d.check("rtcp-mux", at, &input.rtcp_mux, &output.rtcp_mux);
    d.check("rtcp-rsize", at, &input.rtcp_rsize, &output.rtcp_rsize);
    d.check("rtcp", at, &input.rtcp, &output.rtcp);
    d.check("ice-ufrag", at, &input.ice_ufrag, &output.ice_ufrag);
    d.check("ice-pwd", at, &input.ice_pwd, &output.ice_pwd);
    d.check("candidates", at, &input.candidates, &output.candidates);
    d.check(
        "end-of-candidates",
        at,
        &input.end_of_candidates,
        &output.end_of_candidates,
    );
    d.check("fingerprint", at, &input.fingerprints, &output.fingerprints);
    d.check("setup", at, &input.setup, &output.setup);
    d.check("crypto", at, &input.crypto, &output.crypto);
    // Fails for chrome-answer, firefox-offer, webrtc-offer: a media-level
    // `a=msid` comes back with an added `a=ssrc:<id> msid:…` per source.
    d.check("ssrc", at, &input.ssrc, &output.ssrc);
    d.check("ssrc-group", at, &input.ssrc_groups, &output.ssrc_groups);
    d.check("msid", at, &input.msid, &output.msid);
    if input.mid.is_some() {
        d.check("mid", at, &input.mid, &output.mid);
    }
    d.check(
        "other attributes",
        at,
        &input.attributes,
        &output.attributes,
    );
}

/// Session-level comparison.
pub fn compare_session(d: &mut Differ, input: &SdpView, output: &SdpView) {
    d.check("group", "session", &input.groups, &output.groups);
    d.check("ice-lite", "session", &input.ice_lite, &output.ice_lite);
    d.check(
        "ice-options",
        "session",
        &input.ice_options,
        &output.ice_options,
    );
    d.check(
        "other attributes",
        "session",
        &input.attributes,
        &output.attributes,
    );
}
