//! `<jingle/>` → [`Jingle`]. Strict where XEP-0166 leaves no choice (sid,
//! action, numbers), lenient where real clients omit things (a raw-udp
//! candidate without `component`, an ICE candidate without `generation`).

use super::media_ext;
use super::*;
use crate::ns;
use crate::xml::unknown_attributes;
use std::str::FromStr;

fn invalid(element: &'static str, detail: impl Into<String>) -> JingleError {
    JingleError::Invalid {
        element,
        detail: detail.into(),
    }
}

/// An optional numeric attribute: absent → `None`, malformed → error.
pub(super) fn num<T: FromStr>(
    el: &Element,
    element: &'static str,
    attr: &str,
) -> Result<Option<T>, JingleError> {
    match el.attr(attr) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|_| invalid(element, format!("bad {attr}='{v}'"))),
    }
}

/// A required numeric attribute.
fn req_num<T: FromStr>(el: &Element, element: &'static str, attr: &str) -> Result<T, JingleError> {
    num(el, element, attr)?.ok_or_else(|| invalid(element, format!("missing {attr}")))
}

fn req_str(el: &Element, element: &'static str, attr: &str) -> Result<String, JingleError> {
    el.attr(attr)
        .map(str::to_owned)
        .ok_or_else(|| invalid(element, format!("missing {attr}")))
}

pub(super) fn opt_str(el: &Element, attr: &str) -> Option<String> {
    el.attr(attr).map(str::to_owned)
}

pub(super) fn push_unknown(other: &mut Vec<Element>, el: &Element, known: &[&str]) {
    if let Some(carrier) = unknown_attributes(el, known) {
        other.push(carrier);
    }
}

/// Counts the children of every element of the tree against `limits`
/// (see [`JingleLimits`]), iteratively: no recursion on the peer's depth.
pub(super) fn check_counts(root: &Element, limits: &JingleLimits) -> Result<(), JingleError> {
    let mut stack = vec![root];
    while let Some(el) = stack.pop() {
        let (mut contents, mut payload_types, mut candidates, mut sources, mut other) =
            (0, 0, 0, 0, 0);
        for child in el.children() {
            match child.name() {
                "content" => contents += 1,
                "payload-type" => payload_types += 1,
                "candidate" => candidates += 1,
                "source" => sources += 1,
                _ => other += 1,
            }
            stack.push(child);
        }
        for (count, limit, what) in [
            (contents, limits.max_contents, "contents"),
            (payload_types, limits.max_payload_types, "payload types"),
            (candidates, limits.max_candidates, "candidates"),
            (sources, limits.max_sources, "sources"),
            (other, limits.max_children, "children of one element"),
        ] {
            if count > limit {
                return Err(JingleError::TooMany { what, limit });
            }
        }
    }
    Ok(())
}

pub(super) fn jingle(el: &Element) -> Result<Jingle, JingleError> {
    if !el.is("jingle", ns::JINGLE) {
        return Err(JingleError::NotJingle);
    }
    let action = match el.attr("action") {
        None => return Err(JingleError::MissingAction),
        Some(a) => Action::parse(a).ok_or_else(|| JingleError::UnknownAction(a.to_owned()))?,
    };
    let sid = match el.attr("sid") {
        Some(sid) if !sid.is_empty() => Sid::new(sid),
        _ => return Err(JingleError::MissingSid),
    };
    let mut j = Jingle::new(action, sid);
    j.initiator = opt_str(el, "initiator");
    j.responder = opt_str(el, "responder");
    push_unknown(
        &mut j.other,
        el,
        &["action", "sid", "initiator", "responder"],
    );
    for child in el.children() {
        if child.is("content", ns::JINGLE) {
            j.contents.push(content(child)?);
        } else if let Some(g) = group(child) {
            j.groups.push(g);
        } else if child.is("reason", ns::JINGLE) && j.reason.is_none() {
            j.reason = Some(reason(child)?);
        } else if action == Action::SessionInfo && !child.has_ns(ns::JINGLE) {
            j.info.push(child.clone());
        } else {
            j.other.push(child.clone());
        }
    }
    Ok(j)
}

fn content(el: &Element) -> Result<Content, JingleError> {
    let creator = match el.attr("creator") {
        None => Creator::Initiator,
        Some(c) => {
            Creator::parse(c).ok_or_else(|| invalid("content", format!("bad creator='{c}'")))?
        }
    };
    let name = req_str(el, "content", "name")?;
    let senders = match el.attr("senders") {
        None => Senders::Both,
        Some(s) => {
            Senders::parse(s).ok_or_else(|| invalid("content", format!("bad senders='{s}'")))?
        }
    };
    let mut c = Content::new(name);
    c.creator = creator;
    c.senders = senders;
    c.disposition = opt_str(el, "disposition");
    push_unknown(
        &mut c.other,
        el,
        &["creator", "name", "senders", "disposition"],
    );
    for child in el.children() {
        if child.name() == "description" && c.description.is_none() {
            c.description = Some(if child.has_ns(ns::JINGLE_RTP) {
                Description::Rtp(rtp_description(child)?)
            } else {
                Description::Other(child.clone())
            });
        } else if child.name() == "transport" && c.transport.is_none() {
            c.transport = Some(if child.has_ns(ns::JINGLE_ICE_UDP) {
                Transport::IceUdp(ice_udp(child)?)
            } else if child.has_ns(ns::JINGLE_RAW_UDP) {
                Transport::RawUdp(raw_udp(child)?)
            } else {
                Transport::Other(child.clone())
            });
        } else {
            c.other.push(child.clone());
        }
    }
    Ok(c)
}

fn rtp_description(el: &Element) -> Result<RtpDescription, JingleError> {
    let mut d = RtpDescription {
        media: el.attr("media").unwrap_or_default().to_owned(),
        ssrc: opt_str(el, "ssrc"),
        ..RtpDescription::default()
    };
    push_unknown(&mut d.other, el, &["media", "ssrc"]);
    for child in el.children() {
        if child.is("payload-type", ns::JINGLE_RTP) {
            d.payload_types.push(payload_type(child)?);
        } else if child.is("bandwidth", ns::JINGLE_RTP) && d.bandwidth.is_none() {
            d.bandwidth = Some(bandwidth(child)?);
        } else if child.is("rtcp-mux", ns::JINGLE_RTP) {
            d.rtcp_mux = true;
        } else if !media_ext::description_child(&mut d, child) {
            d.other.push(child.clone());
        }
    }
    Ok(d)
}

pub(crate) fn bandwidth(el: &Element) -> Result<Bandwidth, JingleError> {
    let kind = req_str(el, "bandwidth", "type")?;
    let text = el.text();
    let value = text
        .trim()
        .parse::<u32>()
        .map_err(|_| invalid("bandwidth", format!("bad value '{text}'")))?;
    Ok(Bandwidth { kind, value })
}

fn payload_type(el: &Element) -> Result<PayloadType, JingleError> {
    let id: u8 = req_num(el, "payload-type", "id")?;
    if id > 127 {
        return Err(invalid(
            "payload-type",
            format!("id {id} is not an RTP payload type"),
        ));
    }
    let mut pt = PayloadType {
        id,
        name: opt_str(el, "name"),
        clockrate: num(el, "payload-type", "clockrate")?,
        channels: num(el, "payload-type", "channels")?,
        ptime: num(el, "payload-type", "ptime")?,
        maxptime: num(el, "payload-type", "maxptime")?,
        ..PayloadType::default()
    };
    push_unknown(
        &mut pt.other,
        el,
        &["id", "name", "clockrate", "channels", "ptime", "maxptime"],
    );
    for child in el.children() {
        if child.is("parameter", ns::JINGLE_RTP) {
            pt.parameters.push(Parameter {
                name: child.attr("name").unwrap_or_default().to_owned(),
                value: child.attr("value").unwrap_or_default().to_owned(),
            });
        } else if !media_ext::payload_type_child(&mut pt, child) {
            pt.other.push(child.clone());
        }
    }
    Ok(pt)
}

fn ice_udp(el: &Element) -> Result<IceUdpTransport, JingleError> {
    let mut t = IceUdpTransport {
        ufrag: opt_str(el, "ufrag"),
        pwd: opt_str(el, "pwd"),
        ..IceUdpTransport::default()
    };
    push_unknown(&mut t.other, el, &["ufrag", "pwd"]);
    for child in el.children() {
        if child.is("candidate", ns::JINGLE_ICE_UDP) {
            t.candidates.push(ice_candidate(child)?);
        } else if let Some(r) = child
            .is("remote-candidate", ns::JINGLE_ICE_UDP)
            .then(|| remote_candidate(child))
            .flatten()
        {
            t.remote_candidates.push(r);
        } else if child.is("fingerprint", ns::JINGLE_DTLS) {
            t.fingerprints.push(Fingerprint {
                hash: req_str(child, "fingerprint", "hash")?,
                setup: opt_str(child, "setup"),
                value: child.text().trim().to_owned(),
            });
        } else {
            t.other.push(child.clone());
        }
    }
    Ok(t)
}

fn ice_candidate(el: &Element) -> Result<IceCandidate, JingleError> {
    const E: &str = "candidate";
    Ok(IceCandidate {
        component: req_num(el, E, "component")?,
        foundation: req_str(el, E, "foundation")?,
        generation: num(el, E, "generation")?.unwrap_or(0),
        id: el.attr("id").unwrap_or_default().to_owned(),
        ip: req_str(el, E, "ip")?,
        port: req_num(el, E, "port")?,
        priority: req_num(el, E, "priority")?,
        protocol: el.attr("protocol").unwrap_or("udp").to_owned(),
        kind: el.attr("type").unwrap_or("host").to_owned(),
        rel_addr: opt_str(el, "rel-addr"),
        rel_port: num(el, E, "rel-port")?,
        tcptype: opt_str(el, "tcptype"),
        network: opt_str(el, "network"),
    })
}

/// A `<remote-candidate/>` with exactly component, ip and port; anything
/// else stays in the transport's `other`.
fn remote_candidate(el: &Element) -> Option<RemoteCandidate> {
    const E: &str = "remote-candidate";
    let known = ["component", "ip", "port"];
    let fits = el.children().next().is_none()
        && el
            .attrs()
            .iter()
            .all(|((namespace, name), _)| namespace.is_none() && known.contains(&name.as_str()));
    fits.then_some(())?;
    Some(RemoteCandidate {
        component: num(el, E, "component").ok()??,
        ip: el.attr("ip").filter(|ip| !ip.is_empty())?.to_owned(),
        port: num(el, E, "port").ok()??,
    })
}

/// An XEP-0338 `<group/>` that fits [`Group`] exactly (`semantics` and
/// `<content name/>` children, nothing else); `None` otherwise, so that the
/// element is kept whole in `other`.
fn group(el: &Element) -> Option<Group> {
    if !el.is("group", ns::JINGLE_GROUPING) {
        return None;
    }
    let only = |el: &Element, attr: &str| {
        el.attrs()
            .iter()
            .all(|((namespace, name), _)| namespace.is_none() && name.as_str() == attr)
    };
    let semantics = el.attr("semantics").filter(|s| !s.is_empty())?;
    if !only(el, "semantics") {
        return None;
    }
    let mut contents = Vec::new();
    for child in el.children() {
        let fits = child.is("content", ns::JINGLE_GROUPING)
            && only(child, "name")
            && child.children().next().is_none();
        contents.push(fits.then(|| child.attr("name")).flatten()?.to_owned());
    }
    Some(Group {
        semantics: semantics.to_owned(),
        contents,
    })
}

fn raw_udp(el: &Element) -> Result<RawUdpTransport, JingleError> {
    let mut t = RawUdpTransport::default();
    push_unknown(&mut t.other, el, &[]);
    for child in el.children() {
        if child.is("candidate", ns::JINGLE_RAW_UDP) {
            const E: &str = "candidate";
            t.candidates.push(RawUdpCandidate {
                component: num(child, E, "component")?.unwrap_or(1),
                generation: num(child, E, "generation")?.unwrap_or(0),
                id: child.attr("id").unwrap_or_default().to_owned(),
                ip: req_str(child, E, "ip")?,
                port: req_num(child, E, "port")?,
            });
        } else {
            t.other.push(child.clone());
        }
    }
    Ok(t)
}

fn reason(el: &Element) -> Result<Reason, JingleError> {
    let mut condition = None;
    let mut r = Reason::new(ReasonCondition::GeneralError);
    for child in el.children() {
        if child.is("text", ns::JINGLE) && r.text.is_none() {
            r.text = Some(child.text());
        } else if child.is("sip-status", ns::STOX_SIP_STATUS) && r.sip_status.is_none() {
            r.sip_status = Some(req_num(child, "sip-status", "code")?);
        } else if let (None, Some(c), true) = (
            condition,
            ReasonCondition::parse(child.name()),
            child.has_ns(ns::JINGLE),
        ) {
            condition = Some(c);
            // A condition with content (alternative-session's <sid/>) is
            // kept whole; the writer then emits it instead of a bare one.
            if child.children().next().is_some() || !child.attrs().is_empty() {
                r.other.push(child.clone());
            }
        } else {
            r.other.push(child.clone());
        }
    }
    // A reason without a known condition still ends the session: treat it as
    // general-error and keep whatever was there in `other`.
    r.condition = condition.unwrap_or(ReasonCondition::GeneralError);
    Ok(r)
}
