//! [`Jingle`] → `<jingle/>`.

use super::media_ext;
use super::*;
use crate::ns;
use crate::xml::{append_other, element, set_attr};

pub(super) fn jingle(j: &Jingle) -> Element {
    let mut el = element(
        "jingle",
        ns::JINGLE,
        &[("action", j.action.as_str()), ("sid", j.sid.as_str())],
    );
    if let Some(initiator) = &j.initiator {
        set_attr(&mut el, "initiator", initiator.as_str());
    }
    if let Some(responder) = &j.responder {
        set_attr(&mut el, "responder", responder.as_str());
    }
    for c in &j.contents {
        el.append_child(content(c));
    }
    for g in &j.groups {
        let mut group = element(
            "group",
            ns::JINGLE_GROUPING,
            &[("semantics", g.semantics.as_str())],
        );
        for name in &g.contents {
            group.append_child(element(
                "content",
                ns::JINGLE_GROUPING,
                &[("name", name.as_str())],
            ));
        }
        el.append_child(group);
    }
    if let Some(r) = &j.reason {
        el.append_child(reason(r));
    }
    for info in &j.info {
        el.append_child(info.clone());
    }
    append_other(&mut el, &j.other);
    el
}

fn content(c: &Content) -> Element {
    let mut el = element(
        "content",
        ns::JINGLE,
        &[
            ("creator", c.creator.as_str()),
            ("name", c.name.as_str()),
            ("senders", c.senders.as_str()),
        ],
    );
    if let Some(d) = &c.disposition {
        set_attr(&mut el, "disposition", d.as_str());
    }
    match &c.description {
        Some(Description::Rtp(d)) => {
            el.append_child(rtp_description(d));
        }
        Some(Description::Other(d)) => {
            el.append_child(d.clone());
        }
        None => {}
    }
    match &c.transport {
        Some(Transport::IceUdp(t)) => {
            el.append_child(ice_udp(t));
        }
        Some(Transport::RawUdp(t)) => {
            el.append_child(raw_udp(t));
        }
        Some(Transport::Other(t)) => {
            el.append_child(t.clone());
        }
        None => {}
    }
    append_other(&mut el, &c.other);
    el
}

pub(crate) fn rtp_description(d: &RtpDescription) -> Element {
    let mut el = element(
        "description",
        ns::JINGLE_RTP,
        &[("media", d.media.as_str())],
    );
    if let Some(ssrc) = &d.ssrc {
        set_attr(&mut el, "ssrc", ssrc.as_str());
    }
    for pt in &d.payload_types {
        el.append_child(payload_type(pt));
    }
    if let Some(b) = &d.bandwidth {
        let mut bw = element("bandwidth", ns::JINGLE_RTP, &[("type", b.kind.as_str())]);
        bw.append_text(b.value.to_string());
        el.append_child(bw);
    }
    media_ext::write_description_children(d, &mut el);
    if d.rtcp_mux {
        el.append_child(Element::bare("rtcp-mux", ns::JINGLE_RTP));
    }
    append_other(&mut el, &d.other);
    el
}

fn payload_type(pt: &PayloadType) -> Element {
    let mut el = element(
        "payload-type",
        ns::JINGLE_RTP,
        &[("id", &pt.id.to_string())],
    );
    if let Some(name) = &pt.name {
        set_attr(&mut el, "name", name.as_str());
    }
    let numbers = [
        ("clockrate", pt.clockrate),
        ("channels", pt.channels.map(u32::from)),
        ("ptime", pt.ptime),
        ("maxptime", pt.maxptime),
    ];
    for (name, value) in numbers {
        if let Some(v) = value {
            set_attr(&mut el, name, v.to_string());
        }
    }
    for p in &pt.parameters {
        el.append_child(element(
            "parameter",
            ns::JINGLE_RTP,
            &[("name", p.name.as_str()), ("value", p.value.as_str())],
        ));
    }
    media_ext::write_payload_type_children(pt, &mut el);
    append_other(&mut el, &pt.other);
    el
}

fn ice_udp(t: &IceUdpTransport) -> Element {
    let mut el = Element::bare("transport", ns::JINGLE_ICE_UDP);
    if let Some(ufrag) = &t.ufrag {
        set_attr(&mut el, "ufrag", ufrag.as_str());
    }
    if let Some(pwd) = &t.pwd {
        set_attr(&mut el, "pwd", pwd.as_str());
    }
    for f in &t.fingerprints {
        let mut fp = element("fingerprint", ns::JINGLE_DTLS, &[("hash", f.hash.as_str())]);
        if let Some(setup) = &f.setup {
            set_attr(&mut fp, "setup", setup.as_str());
        }
        fp.append_text(f.value.clone());
        el.append_child(fp);
    }
    for c in &t.candidates {
        el.append_child(ice_candidate(c));
    }
    for r in &t.remote_candidates {
        el.append_child(element(
            "remote-candidate",
            ns::JINGLE_ICE_UDP,
            &[
                ("component", &r.component.to_string()),
                ("ip", r.ip.as_str()),
                ("port", &r.port.to_string()),
            ],
        ));
    }
    append_other(&mut el, &t.other);
    el
}

fn ice_candidate(c: &IceCandidate) -> Element {
    let mut el = element(
        "candidate",
        ns::JINGLE_ICE_UDP,
        &[
            ("component", &c.component.to_string()),
            ("foundation", c.foundation.as_str()),
            // Strict parsers (Conversations) require generation: always sent.
            ("generation", &c.generation.to_string()),
        ],
    );
    if !c.id.is_empty() {
        set_attr(&mut el, "id", c.id.as_str());
    }
    set_attr(&mut el, "ip", c.ip.as_str());
    if let Some(network) = &c.network {
        set_attr(&mut el, "network", network.as_str());
    }
    set_attr(&mut el, "port", c.port.to_string());
    set_attr(&mut el, "priority", c.priority.to_string());
    set_attr(&mut el, "protocol", c.protocol.as_str());
    if let Some(a) = &c.rel_addr {
        set_attr(&mut el, "rel-addr", a.as_str());
    }
    if let Some(p) = c.rel_port {
        set_attr(&mut el, "rel-port", p.to_string());
    }
    if let Some(t) = &c.tcptype {
        set_attr(&mut el, "tcptype", t.as_str());
    }
    set_attr(&mut el, "type", c.kind.as_str());
    el
}

fn raw_udp(t: &RawUdpTransport) -> Element {
    let mut el = Element::bare("transport", ns::JINGLE_RAW_UDP);
    for c in &t.candidates {
        let mut cand = element(
            "candidate",
            ns::JINGLE_RAW_UDP,
            &[
                ("component", &c.component.to_string()),
                ("generation", &c.generation.to_string()),
            ],
        );
        if !c.id.is_empty() {
            set_attr(&mut cand, "id", c.id.as_str());
        }
        set_attr(&mut cand, "ip", c.ip.as_str());
        set_attr(&mut cand, "port", c.port.to_string());
        el.append_child(cand);
    }
    append_other(&mut el, &t.other);
    el
}

fn reason(r: &Reason) -> Element {
    let mut el = Element::bare("reason", ns::JINGLE);
    let name = r.condition.as_str();
    // A condition element kept whole in `other` replaces the bare one.
    let kept = r.other.iter().any(|o| o.is(name, ns::JINGLE));
    if !kept {
        el.append_child(Element::bare(name, ns::JINGLE));
    }
    if let Some(text) = &r.text {
        let mut t = Element::bare("text", ns::JINGLE);
        t.append_text(text.clone());
        el.append_child(t);
    }
    if let Some(code) = r.sip_status {
        el.append_child(element(
            "sip-status",
            ns::STOX_SIP_STATUS,
            &[("code", &code.to_string())],
        ));
    }
    append_other(&mut el, &r.other);
    el
}
