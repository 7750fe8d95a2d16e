//! XEP-0353 Jingle Message Initiation (urn:xmpp:jingle-message:0), as the
//! messages the core reads and writes.

use minidom::Element;
use minidom::rxml::NcName;
use stox_mapping::ids::Sid;
use stox_mapping::ns;
use stox_mapping::status::ReasonCondition;

/// The resource the gateway answers `<propose/>` from, so that the client's
/// session-initiate (sent to the full JID that proceeded) comes back to it. A
/// session-initiate to this resource maps to the SIP user without `;gr=`.
pub const GATEWAY_RESOURCE: &str = "stox-gateway";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JmiKind {
    Propose,
    Ringing,
    Proceed,
    Accept,
    Reject,
    Retract,
    Finish,
}

impl JmiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JmiKind::Propose => "propose",
            JmiKind::Ringing => "ringing",
            JmiKind::Proceed => "proceed",
            JmiKind::Accept => "accept",
            JmiKind::Reject => "reject",
            JmiKind::Retract => "retract",
            JmiKind::Finish => "finish",
        }
    }

    fn parse(s: &str) -> Option<JmiKind> {
        Some(match s {
            "propose" => JmiKind::Propose,
            "ringing" => JmiKind::Ringing,
            "proceed" => JmiKind::Proceed,
            "accept" => JmiKind::Accept,
            "reject" => JmiKind::Reject,
            "retract" => JmiKind::Retract,
            "finish" => JmiKind::Finish,
            _ => return None,
        })
    }
}

/// A received JMI message.
#[derive(Debug, Clone, PartialEq)]
pub struct Jmi {
    pub kind: JmiKind,
    pub id: Sid,
    pub from: String,
    pub to: String,
    /// The `<reason/>` condition, when present.
    pub reason: Option<ReasonCondition>,
    /// `media` of each `<description/>` of a propose.
    pub media: Vec<String>,
}

impl Jmi {
    /// `None` when the message carries no (well-formed) JMI element.
    pub fn parse(message: &Element) -> Option<Jmi> {
        let el = message.children().find(|c| c.ns() == ns::JINGLE_MESSAGE)?;
        let kind = JmiKind::parse(el.name())?;
        let id = el.attr("id").filter(|id| !id.is_empty())?;
        let reason = el
            .get_child("reason", ns::JINGLE)
            .and_then(|r| r.children().find(|c| c.name() != "text"))
            .and_then(|c| ReasonCondition::parse(c.name()));
        let media = el
            .children()
            .filter(|c| c.name() == "description")
            .filter_map(|c| c.attr("media").map(str::to_owned))
            .collect();
        Some(Jmi {
            kind,
            id: Sid::new(id),
            from: message.attr("from")?.to_owned(),
            to: message.attr("to")?.to_owned(),
            reason,
            media,
        })
    }
}

fn name(s: &'static str) -> NcName {
    NcName::try_from(s).expect("attribute names in this module are valid NCNames")
}

/// A `type='chat'` message with one JMI element and a store hint.
pub fn message(
    kind: JmiKind,
    id: &Sid,
    from: &str,
    to: &str,
    reason: Option<(ReasonCondition, Option<&str>)>,
    media: &[String],
) -> Element {
    let mut jmi = Element::builder(kind.as_str(), ns::JINGLE_MESSAGE)
        .attr(name("id"), id.as_str())
        .build();
    for m in media {
        jmi.append_child(
            Element::builder("description", ns::JINGLE_RTP)
                .attr(name("media"), m.as_str())
                .build(),
        );
    }
    if let Some((condition, text)) = reason {
        let mut r = Element::builder("reason", ns::JINGLE)
            .append(Element::bare(condition.as_str(), ns::JINGLE))
            .build();
        if let Some(text) = text {
            r.append_child(Element::builder("text", ns::JINGLE).append(text).build());
        }
        jmi.append_child(r);
    }
    Element::builder("message", ns::COMPONENT)
        .attr(name("type"), "chat")
        .attr(name("from"), from)
        .attr(name("to"), to)
        .append(jmi)
        .append(Element::bare("store", "urn:xmpp:hints"))
        .build()
}

/// `user@domain/resource` → `user@domain`.
pub fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_every_kind() {
        let out = message(
            JmiKind::Reject,
            &Sid::new("abc"),
            "juliet@example.com/phone",
            "romeo\\40example.net@sip.example.com",
            Some((ReasonCondition::Busy, Some("Busy"))),
            &[],
        );
        let back = Jmi::parse(&out).expect("parses");
        assert_eq!(back.kind, JmiKind::Reject);
        assert_eq!(back.id.as_str(), "abc");
        assert_eq!(back.reason, Some(ReasonCondition::Busy));
        assert!(out.has_child("store", "urn:xmpp:hints"));
        assert_eq!(out.attr("type"), Some("chat"));

        let propose = message(
            JmiKind::Propose,
            &Sid::new("p1"),
            "a@b",
            "c@d",
            None,
            &["audio".to_owned(), "video".to_owned()],
        );
        assert_eq!(
            Jmi::parse(&propose).expect("parses").media,
            ["audio", "video"]
        );
    }

    #[test]
    fn ignores_messages_without_jmi_or_id() {
        let plain: Element = "<message xmlns='jabber:component:accept' from='a@b/c' to='d@e'><body>hi</body></message>"
            .parse()
            .expect("xml");
        assert_eq!(Jmi::parse(&plain), None);
        let no_id: Element = "<message xmlns='jabber:component:accept' from='a@b/c' to='d@e'><proceed xmlns='urn:xmpp:jingle-message:0'/></message>"
            .parse()
            .expect("xml");
        assert_eq!(Jmi::parse(&no_id), None);
    }
}
