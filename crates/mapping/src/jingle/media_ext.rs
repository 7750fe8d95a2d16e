//! The RTP description's extensions: XEP-0293 RTCP feedback, XEP-0294
//! header extensions, XEP-0339 sources and XEP-0167 SDES `<encryption/>`.
//!
//! Parsing is lenient and lossless: an element that does not fit the model
//! (an `<rtcp-fb/>` without `type`, a `<source/>` whose `ssrc` is not a
//! 32-bit number …) is not an error; it stays whole in the parent's `other`
//! and is written back unchanged. Attributes and children of a typed element
//! that the model does not know go to that element's own `other`.

use super::parse::{num, opt_str, push_unknown};
use super::{Parameter, PayloadType, RtpDescription, Senders};
use crate::ns;
use crate::xml::{append_other, element, set_attr};
use minidom::Element;

/// XEP-0293 `<rtcp-fb type subtype?>` ⇄ `a=rtcp-fb:<pt|*> type [subtype [params]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtcpFb {
    /// `type` (`nack`, `ccm`, `goog-remb`, `transport-cc` …).
    pub kind: String,
    pub subtype: Option<String>,
    /// Further SDP tokens: `a=b` → name/value, a bare token → name with an
    /// empty value (XEP-0293 §3).
    pub parameters: Vec<Parameter>,
    pub other: Vec<Element>,
}

/// XEP-0294 `<rtp-hdrext id uri senders?>` ⇄ `a=extmap:id[/direction] uri [attributes]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpHdrext {
    pub id: u16,
    pub uri: String,
    /// Seen from the initiator like content `senders`; absent = both.
    pub senders: Senders,
    /// Extension attributes (same convention as [`RtcpFb::parameters`]).
    pub parameters: Vec<Parameter>,
    pub other: Vec<Element>,
}

/// XEP-0339 `<source ssrc><parameter name value/></source>` ⇄ `a=ssrc:<ssrc> name[:value]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub ssrc: u32,
    /// Source attributes in order; an empty value is an attribute without
    /// one (`a=ssrc:1 foo`).
    pub parameters: Vec<Parameter>,
    pub other: Vec<Element>,
}

/// XEP-0339 `<ssrc-group semantics><source ssrc/>…</ssrc-group>` ⇄ `a=ssrc-group:FID 1 2`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SsrcGroup {
    pub semantics: String,
    pub sources: Vec<u32>,
    pub other: Vec<Element>,
}

/// XEP-0167 §7 `<encryption required?><crypto/>…</encryption>` (SDES, RFC 4568).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encryption {
    /// `required='1'`/`'true'` ⇄ an `RTP/SAVP(F)` profile.
    pub required: bool,
    pub cryptos: Vec<Crypto>,
    /// Other children (e.g. XEP-0262 `<zrtp-hash/>`), kept.
    pub other: Vec<Element>,
}

/// `<crypto crypto-suite key-params session-params? tag/>` ⇄ `a=crypto:tag suite key-params [session-params]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Crypto {
    pub suite: String,
    pub key_params: String,
    pub session_params: Option<String>,
    pub tag: String,
    pub other: Vec<Element>,
}

// ---------------------------------------------------------------- parsing

/// Types a child of `<description/>`; `false` when it is none of ours or
/// does not fit (the caller then keeps it in `other`).
pub(super) fn description_child(d: &mut RtpDescription, child: &Element) -> bool {
    if child.is("rtcp-fb", ns::JINGLE_RTCP_FB) {
        rtcp_fb(child).map(|f| d.rtcp_fb.push(f)).is_some()
    } else if child.is("rtcp-fb-trr-int", ns::JINGLE_RTCP_FB) && d.rtcp_fb_trr_int.is_none() {
        d.rtcp_fb_trr_int = trr_int(child);
        d.rtcp_fb_trr_int.is_some()
    } else if child.is("rtp-hdrext", ns::JINGLE_RTP_HDREXT) {
        hdrext(child).map(|h| d.hdrexts.push(h)).is_some()
    } else if child.is("extmap-allow-mixed", ns::JINGLE_RTP_HDREXT) && is_bare(child) {
        d.extmap_allow_mixed = true;
        true
    } else if child.is("source", ns::JINGLE_SSMA) {
        source(child).map(|s| d.sources.push(s)).is_some()
    } else if child.is("ssrc-group", ns::JINGLE_SSMA) {
        ssrc_group(child).map(|g| d.ssrc_groups.push(g)).is_some()
    } else if child.is("encryption", ns::JINGLE_RTP) && d.encryption.is_none() {
        d.encryption = encryption(child);
        d.encryption.is_some()
    } else {
        false
    }
}

/// Types a child of `<payload-type/>` (XEP-0293 only).
pub(super) fn payload_type_child(pt: &mut PayloadType, child: &Element) -> bool {
    if child.is("rtcp-fb", ns::JINGLE_RTCP_FB) {
        rtcp_fb(child).map(|f| pt.rtcp_fb.push(f)).is_some()
    } else if child.is("rtcp-fb-trr-int", ns::JINGLE_RTCP_FB) && pt.rtcp_fb_trr_int.is_none() {
        pt.rtcp_fb_trr_int = trr_int(child);
        pt.rtcp_fb_trr_int.is_some()
    } else {
        false
    }
}

fn is_bare(el: &Element) -> bool {
    el.attrs().is_empty() && el.children().next().is_none()
}

/// `<parameter name value/>` in the element's own namespace or XEP-0167's.
fn is_parameter(child: &Element, own_ns: &str) -> bool {
    child.name() == "parameter" && (child.has_ns(own_ns) || child.has_ns(ns::JINGLE_RTP))
}

fn parameter(child: &Element) -> Parameter {
    Parameter::new(
        child.attr("name").unwrap_or_default(),
        child.attr("value").unwrap_or_default(),
    )
}

/// Parameters and unknown children of `el`.
fn parameters_and_other(el: &Element, own_ns: &str, other: &mut Vec<Element>) -> Vec<Parameter> {
    let mut parameters = Vec::new();
    for child in el.children() {
        if is_parameter(child, own_ns) {
            parameters.push(parameter(child));
        } else {
            other.push(child.clone());
        }
    }
    parameters
}

fn rtcp_fb(el: &Element) -> Option<RtcpFb> {
    let mut f = RtcpFb {
        kind: el.attr("type").filter(|t| !t.is_empty())?.to_owned(),
        subtype: opt_str(el, "subtype"),
        ..RtcpFb::default()
    };
    push_unknown(&mut f.other, el, &["type", "subtype"]);
    f.parameters = parameters_and_other(el, ns::JINGLE_RTCP_FB, &mut f.other);
    Some(f)
}

fn trr_int(el: &Element) -> Option<u32> {
    let only_value = el.attrs().iter().count() == 1 && el.children().next().is_none();
    only_value
        .then(|| num::<u32>(el, "rtcp-fb-trr-int", "value").ok().flatten())
        .flatten()
}

fn hdrext(el: &Element) -> Option<RtpHdrext> {
    let senders = match el.attr("senders") {
        None => Senders::Both,
        Some(s) => Senders::parse(s)?,
    };
    let mut h = RtpHdrext {
        id: num(el, "rtp-hdrext", "id").ok()??,
        uri: el.attr("uri").filter(|u| !u.is_empty())?.to_owned(),
        senders,
        ..RtpHdrext::default()
    };
    push_unknown(&mut h.other, el, &["id", "uri", "senders"]);
    h.parameters = parameters_and_other(el, ns::JINGLE_RTP_HDREXT, &mut h.other);
    Some(h)
}

fn source(el: &Element) -> Option<Source> {
    let mut s = Source {
        ssrc: num(el, "source", "ssrc").ok()??,
        ..Source::default()
    };
    push_unknown(&mut s.other, el, &["ssrc"]);
    s.parameters = parameters_and_other(el, ns::JINGLE_SSMA, &mut s.other);
    Some(s)
}

fn ssrc_group(el: &Element) -> Option<SsrcGroup> {
    let mut g = SsrcGroup {
        semantics: el.attr("semantics").filter(|s| !s.is_empty())?.to_owned(),
        ..SsrcGroup::default()
    };
    push_unknown(&mut g.other, el, &["semantics"]);
    for child in el.children() {
        if child.is("source", ns::JINGLE_SSMA) {
            g.sources.push(num(child, "source", "ssrc").ok()??);
        } else {
            g.other.push(child.clone());
        }
    }
    Some(g)
}

fn encryption(el: &Element) -> Option<Encryption> {
    let required = match el.attr("required") {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => return None,
    };
    let mut e = Encryption {
        required,
        ..Encryption::default()
    };
    push_unknown(&mut e.other, el, &["required"]);
    for child in el.children() {
        match crypto(child) {
            Some(c) => e.cryptos.push(c),
            None => e.other.push(child.clone()),
        }
    }
    Some(e)
}

fn crypto(el: &Element) -> Option<Crypto> {
    if !el.is("crypto", ns::JINGLE_RTP) {
        return None;
    }
    let mut c = Crypto {
        suite: el.attr("crypto-suite")?.to_owned(),
        key_params: el.attr("key-params")?.to_owned(),
        session_params: opt_str(el, "session-params"),
        tag: el.attr("tag")?.to_owned(),
        ..Crypto::default()
    };
    push_unknown(
        &mut c.other,
        el,
        &["crypto-suite", "key-params", "session-params", "tag"],
    );
    c.other.extend(el.children().cloned());
    Some(c)
}

// ---------------------------------------------------------------- writing

/// Appends the typed extension children of a `<description/>`.
pub(super) fn write_description_children(d: &RtpDescription, el: &mut Element) {
    write_feedback(&d.rtcp_fb, d.rtcp_fb_trr_int, el);
    for h in &d.hdrexts {
        let mut x = element(
            "rtp-hdrext",
            ns::JINGLE_RTP_HDREXT,
            &[("id", &h.id.to_string()), ("uri", h.uri.as_str())],
        );
        if h.senders != Senders::Both {
            set_attr(&mut x, "senders", h.senders.as_str());
        }
        write_parameters(&h.parameters, ns::JINGLE_RTP_HDREXT, &mut x);
        append_other(&mut x, &h.other);
        el.append_child(x);
    }
    if d.extmap_allow_mixed {
        el.append_child(Element::bare("extmap-allow-mixed", ns::JINGLE_RTP_HDREXT));
    }
    for s in &d.sources {
        let mut x = element("source", ns::JINGLE_SSMA, &[("ssrc", &s.ssrc.to_string())]);
        write_parameters(&s.parameters, ns::JINGLE_SSMA, &mut x);
        append_other(&mut x, &s.other);
        el.append_child(x);
    }
    for g in &d.ssrc_groups {
        let mut x = element(
            "ssrc-group",
            ns::JINGLE_SSMA,
            &[("semantics", g.semantics.as_str())],
        );
        for ssrc in &g.sources {
            x.append_child(element(
                "source",
                ns::JINGLE_SSMA,
                &[("ssrc", &ssrc.to_string())],
            ));
        }
        append_other(&mut x, &g.other);
        el.append_child(x);
    }
    if let Some(e) = &d.encryption {
        let mut x = Element::bare("encryption", ns::JINGLE_RTP);
        if e.required {
            set_attr(&mut x, "required", "1");
        }
        for c in &e.cryptos {
            let mut y = element(
                "crypto",
                ns::JINGLE_RTP,
                &[
                    ("crypto-suite", c.suite.as_str()),
                    ("key-params", c.key_params.as_str()),
                ],
            );
            if let Some(p) = &c.session_params {
                set_attr(&mut y, "session-params", p.as_str());
            }
            set_attr(&mut y, "tag", c.tag.as_str());
            append_other(&mut y, &c.other);
            x.append_child(y);
        }
        append_other(&mut x, &e.other);
        el.append_child(x);
    }
}

/// Appends the XEP-0293 children of a `<payload-type/>`.
pub(super) fn write_payload_type_children(pt: &PayloadType, el: &mut Element) {
    write_feedback(&pt.rtcp_fb, pt.rtcp_fb_trr_int, el);
}

fn write_feedback(feedback: &[RtcpFb], trr_int: Option<u32>, el: &mut Element) {
    for f in feedback {
        let mut x = element("rtcp-fb", ns::JINGLE_RTCP_FB, &[("type", f.kind.as_str())]);
        if let Some(subtype) = &f.subtype {
            set_attr(&mut x, "subtype", subtype.as_str());
        }
        write_parameters(&f.parameters, ns::JINGLE_RTCP_FB, &mut x);
        append_other(&mut x, &f.other);
        el.append_child(x);
    }
    if let Some(value) = trr_int {
        el.append_child(element(
            "rtcp-fb-trr-int",
            ns::JINGLE_RTCP_FB,
            &[("value", &value.to_string())],
        ));
    }
}

fn write_parameters(parameters: &[Parameter], namespace: &str, el: &mut Element) {
    for p in parameters {
        el.append_child(element(
            "parameter",
            namespace,
            &[("name", p.name.as_str()), ("value", p.value.as_str())],
        ));
    }
}
