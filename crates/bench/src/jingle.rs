//! The Jingle stanzas a bench call sends, and a flat view of what the
//! gateway sends back. Plain audio over raw-udp, as in the e2e tests.

use crate::xml::{attr, escape, start_tag};

pub const NS_JINGLE: &str = "urn:xmpp:jingle:1";
const NS_RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
const NS_RTP_INFO: &str = "urn:xmpp:jingle:apps:rtp:info:1";
const NS_RAW_UDP: &str = "urn:xmpp:jingle:transports:raw-udp:1";

/// The XMPP user of bench call `n`.
pub fn user_jid(n: u64, domain: &str) -> String {
    format!("user{n}@{domain}/res")
}

/// The gateway JID standing for SIP user `romeo{n}@example.net` (XEP-0106 `\40`).
pub fn gateway_jid(n: u64, component: &str) -> String {
    format!("romeo{n}\\40example.net@{component}")
}

fn content(pts: &[(u8, &str)], port: u16) -> String {
    let mut pt = String::new();
    for (id, name) in pts {
        pt.push_str(&format!(
            "<payload-type id='{id}' name='{name}' clockrate='8000'/>"
        ));
    }
    format!(
        "<content creator='initiator' name='audio' senders='both'>\
         <description xmlns='{NS_RTP}' media='audio'>{pt}</description>\
         <transport xmlns='{NS_RAW_UDP}'><candidate id='c1' component='1' generation='0' \
         ip='127.0.0.1' port='{port}'/></transport></content>"
    )
}

fn iq_set(id: &str, from: &str, to: &str, jingle: &str) -> String {
    format!(
        "<iq type='set' id='{}' from='{}' to='{}'>{jingle}</iq>",
        escape(id),
        escape(from),
        escape(to)
    )
}

pub fn session_initiate(id: &str, sid: &str, from: &str, to: &str) -> String {
    let body = content(&[(0, "PCMU"), (8, "PCMA"), (101, "telephone-event")], 40000);
    let j = format!(
        "<jingle xmlns='{NS_JINGLE}' action='session-initiate' sid='{}' initiator='{}'>{body}</jingle>",
        escape(sid),
        escape(from)
    );
    iq_set(id, from, to, &j)
}

pub fn session_accept(id: &str, sid: &str, from: &str, to: &str) -> String {
    let body = content(&[(8, "PCMA"), (101, "telephone-event")], 41000);
    let j = format!(
        "<jingle xmlns='{NS_JINGLE}' action='session-accept' sid='{}' responder='{}'>{body}</jingle>",
        escape(sid),
        escape(from)
    );
    iq_set(id, from, to, &j)
}

pub fn ringing(id: &str, sid: &str, from: &str, to: &str) -> String {
    let j = format!(
        "<jingle xmlns='{NS_JINGLE}' action='session-info' sid='{}'><ringing xmlns='{NS_RTP_INFO}'/></jingle>",
        escape(sid)
    );
    iq_set(id, from, to, &j)
}

pub fn session_terminate(id: &str, sid: &str, from: &str, to: &str) -> String {
    let j = format!(
        "<jingle xmlns='{NS_JINGLE}' action='session-terminate' sid='{}'><reason><success/></reason></jingle>",
        escape(sid)
    );
    iq_set(id, from, to, &j)
}

pub fn result(id: &str, from: &str, to: &str) -> String {
    format!(
        "<iq type='result' id='{}' from='{}' to='{}'/>",
        escape(id),
        escape(from),
        escape(to)
    )
}

/// What the driver needs to know about an `<iq/>` from the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Iq {
    pub ty: String,
    pub id: String,
    pub from: String,
    pub to: String,
    /// The Jingle action, if the IQ carries `<jingle/>`.
    pub action: Option<String>,
    pub sid: Option<String>,
    pub ringing: bool,
    /// The first child of `<reason/>` (e.g. `success`).
    pub reason: Option<String>,
}

/// `None` if `el` is not an `<iq/>`.
pub fn parse_iq(el: &str) -> Option<Iq> {
    let head = start_tag(el, "iq").filter(|h| el.starts_with(h))?;
    let mut iq = Iq {
        ty: attr(head, "type").unwrap_or_default(),
        id: attr(head, "id").unwrap_or_default(),
        from: attr(head, "from").unwrap_or_default(),
        to: attr(head, "to").unwrap_or_default(),
        ..Iq::default()
    };
    if let Some(j) = start_tag(el, "jingle") {
        iq.action = attr(j, "action");
        iq.sid = attr(j, "sid");
        iq.ringing = start_tag(el, "ringing").is_some();
        iq.reason = reason(el);
    }
    Some(iq)
}

fn reason(el: &str) -> Option<String> {
    let r = start_tag(el, "reason")?;
    let after = &el[el.find(r)? + r.len()..];
    let lt = after.find('<')?;
    let name: String = after[lt + 1..]
        .chars()
        .take_while(|c| !c.is_ascii_whitespace() && *c != '/' && *c != '>')
        .collect();
    (!name.is_empty() && !name.starts_with('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_stanzas_parse_back() {
        let from = user_jid(7, "example.com");
        let to = gateway_jid(7, "sip.example.com");
        assert_eq!(to, "romeo7\\40example.net@sip.example.com");
        let si = session_initiate("si7", "b7", &from, &to);
        let iq = parse_iq(&si).expect("iq");
        assert_eq!(iq.ty, "set");
        assert_eq!(iq.id, "si7");
        assert_eq!(iq.to, to);
        assert_eq!(iq.action.as_deref(), Some("session-initiate"));
        assert_eq!(iq.sid.as_deref(), Some("b7"));
        assert!(!iq.ringing);
        assert!(si.contains("port='40000'") && si.contains("name='PCMU'"));

        let r = parse_iq(&ringing("r1", "b7", &from, &to)).expect("iq");
        assert!(r.ringing);
        let t = parse_iq(&session_terminate("t1", "b7", &from, &to)).expect("iq");
        assert_eq!(t.reason.as_deref(), Some("success"));
        let a = parse_iq(&session_accept("a1", "b7", &from, &to)).expect("iq");
        assert_eq!(a.action.as_deref(), Some("session-accept"));
        let res = parse_iq(&result("si7", &to, &from)).expect("iq");
        assert_eq!((res.ty.as_str(), res.action), ("result", None));
    }

    #[test]
    fn gateway_style_terminate() {
        let el = "<iq xmlns=\"jabber:component:accept\" type=\"set\" id=\"g1\" from=\"a\" to=\"b\">\
            <jingle xmlns=\"urn:xmpp:jingle:1\" action=\"session-terminate\" sid=\"x\">\
            <reason><busy/><text>486 Busy Here</text></reason></jingle></iq>";
        let iq = parse_iq(el).expect("iq");
        assert_eq!(iq.reason.as_deref(), Some("busy"));
        assert!(parse_iq("<message/>").is_none());
    }
}
