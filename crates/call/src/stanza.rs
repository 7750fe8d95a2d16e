//! Building and reading the stanzas the core exchanges. The component stream's
//! default namespace is `jabber:component:accept`.

use minidom::Element;
use minidom::rxml::NcName;
use stox_mapping::ns;
use stox_mapping::status::ErrorCondition;

pub(crate) const NS_PING: &str = "urn:xmpp:ping";
pub(crate) const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// An attribute name. Only ever called with literal names.
fn name(s: &'static str) -> NcName {
    NcName::try_from(s).expect("attribute names in this module are valid NCNames")
}

/// The routing attributes of a received IQ.
#[derive(Debug, Clone)]
pub(crate) struct IqHeader {
    pub id: String,
    pub from: String,
    pub to: String,
}

impl IqHeader {
    /// `None` when the stanza lacks what an answer needs (`id`, `from`, `to`).
    pub fn of(iq: &Element) -> Option<IqHeader> {
        Some(IqHeader {
            id: iq.attr("id")?.to_owned(),
            from: iq.attr("from")?.to_owned(),
            to: iq.attr("to")?.to_owned(),
        })
    }
}

fn iq(kind: &str, id: &str, from: &str, to: &str) -> Element {
    Element::builder("iq", ns::COMPONENT)
        .attr(name("type"), kind)
        .attr(name("id"), id)
        .attr(name("from"), from)
        .attr(name("to"), to)
        .build()
}

pub(crate) fn iq_result(req: &IqHeader) -> Element {
    iq("result", &req.id, &req.to, &req.from)
}

pub(crate) fn iq_result_with(req: &IqHeader, payload: Element) -> Element {
    let mut el = iq_result(req);
    el.append_child(payload);
    el
}

pub(crate) fn iq_get(id: &str, from: &str, to: &str, payload: Element) -> Element {
    let mut el = iq("get", id, from, to);
    el.append_child(payload);
    el
}

pub(crate) fn iq_set(id: &str, from: &str, to: &str, payload: Element) -> Element {
    let mut el = iq("set", id, from, to);
    el.append_child(payload);
    el
}

/// An IQ error answering `req`: `condition` (RFC 6120), a human-readable
/// `text`, and an optional application-specific condition.
pub(crate) fn iq_error(
    req: &IqHeader,
    condition: ErrorCondition,
    text: &str,
    app_error: Option<AppError>,
) -> Element {
    let mut error = Element::builder("error", ns::COMPONENT)
        .attr(name("type"), condition.default_type().as_str())
        .append(Element::bare(condition.as_str(), ns::STANZAS))
        .build();
    if !text.is_empty() {
        error.append_child(Element::builder("text", ns::STANZAS).append(text).build());
    }
    if let Some(app) = app_error {
        error.append_child(Element::bare(app.name(), app.ns()));
    }
    let mut el = iq("error", &req.id, &req.to, &req.from);
    el.append_child(error);
    el
}

/// Application-specific error conditions (XEP-0166 §10, XEP-0167 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppError {
    UnknownSession,
    OutOfOrder,
    /// XEP-0166 §7.2.16: sent while a similar request of ours is pending.
    TieBreak,
    UnsupportedInfo,
}

impl AppError {
    fn name(self) -> &'static str {
        match self {
            AppError::UnknownSession => "unknown-session",
            AppError::OutOfOrder => "out-of-order",
            AppError::TieBreak => "tie-break",
            AppError::UnsupportedInfo => "unsupported-info",
        }
    }
    fn ns(self) -> &'static str {
        match self {
            AppError::UnknownSession | AppError::OutOfOrder | AppError::TieBreak => {
                ns::JINGLE_ERRORS
            }
            AppError::UnsupportedInfo => ns::JINGLE_RTP_ERRORS,
        }
    }
}

/// The first element child of an IQ (its payload).
pub(crate) fn payload(iq: &Element) -> Option<&Element> {
    iq.children().next()
}

/// The condition of a received `<iq type='error'/>`.
pub fn error_condition(iq: &Element) -> ErrorCondition {
    iq.get_child("error", ns::COMPONENT)
        .or_else(|| iq.children().find(|c| c.name() == "error"))
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
        })
        .and_then(|c| ErrorCondition::parse(c.name()))
        .unwrap_or(ErrorCondition::UndefinedCondition)
}

/// The features the gateway really implements, for disco#info.
pub(crate) const FEATURES: &[&str] = &[
    NS_DISCO_INFO,
    NS_PING,
    ns::JINGLE,
    ns::JINGLE_RTP,
    ns::JINGLE_RTP_AUDIO,
    ns::JINGLE_RTP_VIDEO,
    ns::JINGLE_RAW_UDP,
    ns::JINGLE_ICE_UDP,
    ns::JINGLE_DTLS,
    ns::JINGLE_RTCP_FB,
    ns::JINGLE_RTP_HDREXT,
    ns::JINGLE_GROUPING,
    ns::JINGLE_SSMA,
    ns::JINGLE_MESSAGE,
    // "send all candidates at once": clients then gather before they offer.
    "urn:ietf:rfc:3264",
];

pub(crate) fn disco_info(node: Option<&str>) -> Element {
    let mut query = Element::builder("query", NS_DISCO_INFO).build();
    if let Some(node) = node {
        query = Element::builder("query", NS_DISCO_INFO)
            .attr(name("node"), node)
            .build();
    }
    query.append_child(
        Element::builder("identity", NS_DISCO_INFO)
            .attr(name("category"), "gateway")
            .attr(name("type"), "sip")
            .attr(name("name"), "stox-gateway")
            .build(),
    );
    for feature in FEATURES {
        query.append_child(
            Element::builder("feature", NS_DISCO_INFO)
                .attr(name("var"), *feature)
                .build(),
        );
    }
    query
}
