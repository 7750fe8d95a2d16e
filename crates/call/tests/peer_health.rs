//! Honest availability toward XMPP callers: a call whose every route is a
//! SIP next hop that is down (the SIP layer's probes said so) is refused at
//! once with `service-unavailable` (RFC 6120 §8.3.3.19), not sent to wait
//! 32 s for timer B; the row says why. A call no route allows stays
//! `forbidden`; a peer that is down is passed over for the next one.

mod harness;

use harness::*;
use stox_call::policy::{PeerRoute, Policy};
use stox_call::{CallState, EndedBy, Fault, Input, NextHop, Output, SipCommand};

const NS_JMI: &str = "urn:xmpp:jingle-message:0";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const PBX_GW: &str = "100\\40pbx.example@sip.example.com";

/// Peers `pbx` and `backup` both take pbx.example; other destinations go
/// to the outbound proxy.
fn harness() -> Harness {
    let pbx = |name: &str| PeerRoute {
        name: name.into(),
        domains: vec!["pbx.example".into()],
        ..PeerRoute::default()
    };
    Harness::with_config(stox_call::CoreConfig {
        policy: Some(Policy {
            callers: vec!["example.com".into()],
            outbound_proxy: true,
            registrar_domains: Vec::new(),
            peers: vec![pbx("pbx"), pbx("backup")],
        }),
        ..config()
    })
}

fn health(h: &mut Harness, hop: NextHop, down: Option<&str>) {
    let out = h.input(Input::PeerHealth {
        hop,
        down: down.map(str::to_owned),
    });
    assert!(out.is_empty(), "health changes answer nothing: {out:#?}");
}

fn peer(name: &str) -> NextHop {
    NextHop::Peer(name.into())
}

fn initiate_to(to: &str, sid: &str) -> String {
    session_initiate(sid).replace(&format!("to='{ROMEO_GW}'"), &format!("to='{to}'"))
}

fn error_text(iq: &minidom::Element) -> String {
    iq.get_child("error", "jabber:component:accept")
        .and_then(|e| e.get_child("text", STANZAS))
        .map(minidom::Element::text)
        .unwrap_or_default()
}

fn peer_down_fault(out: &[Output]) -> (Vec<NextHop>, String) {
    out.iter()
        .find_map(|o| match o {
            Output::Fault {
                fault: f @ Fault::PeerDown { hops, .. },
                ..
            } => Some((hops.clone(), f.to_string())),
            _ => None,
        })
        .expect("a PeerDown fault for the log and the metric")
}

#[test]
fn rfc6120_8_3_3_19_a_call_whose_every_peer_is_down_gets_service_unavailable_at_once() {
    let mut h = harness();
    let why = "no answer to OPTIONS within 32 s (timer F)";
    health(&mut h, peer("pbx"), Some(why));
    health(
        &mut h,
        peer("backup"),
        Some("OPTIONS answered 503 Service Unavailable"),
    );
    let out = h.stanza(&initiate_to(PBX_GW, "down1"));
    let error = iq(&out, "error");
    assert_eq!(error_of(error), ("service-unavailable".into(), None));
    assert_eq!(
        error_text(error),
        format!(
            "SIP peer pbx is down ({why}); SIP peer backup is down \
             (OPTIONS answered 503 Service Unavailable); try again later"
        )
    );
    assert!(sip_commands(&out).is_empty(), "nothing to SIP: {out:#?}");
    let (hops, line) = peer_down_fault(&out);
    assert_eq!(hops, [peer("pbx"), peer("backup")]);
    assert!(line.contains("refused: SIP peer pbx is down"), "{line}");

    // One row, ended at once, that says why.
    assert_eq!(h.rows.len(), 1, "{:#?}", h.rows);
    let row = h.last_row();
    assert_eq!(row.state, CallState::Ended);
    assert_eq!(row.end_reason.as_deref(), Some("connectivity-error"));
    assert_eq!(row.ended_by, Some(EndedBy::Gateway));
    assert_eq!(row.sip_status, None, "nothing went to SIP");
    assert_eq!(row.sip_peer.as_deref(), Some("pbx"));
    assert_eq!(row.sip_uri, "sip:100@pbx.example");
    assert!(
        row.end_detail
            .as_deref()
            .is_some_and(|d| d.starts_with("SIP peer pbx is down (no answer to OPTIONS")),
        "{:?}",
        row.end_detail
    );
    assert_eq!(row.created_at, row.ended_at.expect("ended"));
    assert_eq!(h.core.live_calls(), 0, "nothing kept in memory");
}

#[test]
fn a_peer_that_is_down_is_passed_over_and_used_again_once_up() {
    let mut h = harness();
    health(&mut h, peer("pbx"), Some("timer F"));
    let out = h.stanza(&initiate_to(PBX_GW, "over1"));
    iq(&out, "result");
    match one_sip(&out) {
        SipCommand::Invite { peer, .. } => assert_eq!(peer.as_deref(), Some("backup")),
        other => panic!("INVITE expected, got {other:?}"),
    }
    health(&mut h, peer("pbx"), None);
    let out = h.stanza(&initiate_to(PBX_GW, "over2"));
    match one_sip(&out) {
        SipCommand::Invite { peer, .. } => assert_eq!(peer.as_deref(), Some("pbx")),
        other => panic!("INVITE expected, got {other:?}"),
    }
}

#[test]
fn rfc6120_8_3_3_19_a_call_to_the_outbound_proxy_that_is_down_gets_service_unavailable() {
    let mut h = harness();
    health(
        &mut h,
        NextHop::OutboundProxy,
        Some("OPTIONS could not be sent: connection refused"),
    );
    let out = h.stanza(&session_initiate("proxy1"));
    let error = iq(&out, "error");
    assert_eq!(error_of(error).0, "service-unavailable");
    assert!(
        error_text(error).starts_with(
            "the outbound proxy is down (OPTIONS could not be sent: connection refused)"
        ),
        "{}",
        error_text(error)
    );
    assert_eq!(peer_down_fault(&out).0, [NextHop::OutboundProxy]);
    assert_eq!(h.last_row().sip_peer, None);
    assert_eq!(h.last_row().state, CallState::Ended);

    // A peer's destination does not depend on the proxy.
    let out = h.stanza(&initiate_to(PBX_GW, "proxy2"));
    assert!(matches!(one_sip(&out), SipCommand::Invite { .. }));
}

#[test]
fn rfc6120_8_3_3_4_a_call_no_route_allows_stays_forbidden_whatever_is_down() {
    let mut h = harness();
    health(&mut h, NextHop::OutboundProxy, Some("timer F"));
    let from = "eve@evil.example/x";
    let xml = session_initiate("eve1")
        .replace(&format!("from='{JULIET}'"), &format!("from='{from}'"))
        .replace(
            &format!("initiator='{JULIET}'"),
            &format!("initiator='{from}'"),
        );
    let out = h.stanza(&xml);
    assert_eq!(error_of(iq(&out, "error")).0, "forbidden");
    assert!(h.rows.is_empty(), "a forbidden call writes no row");
}

#[test]
fn xep0353_a_propose_to_a_peer_that_is_down_is_rejected_with_a_row() {
    let mut h = harness();
    health(&mut h, peer("pbx"), Some("timer F"));
    health(&mut h, peer("backup"), Some("timer F"));
    let xml = format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{JULIET}' to='{PBX_GW}'>\
           <propose xmlns='{NS_JMI}' id='jd1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>\
         </message>"
    );
    let out = h.stanza(&xml);
    let reject = stanzas(&out)
        .into_iter()
        .find_map(|m| m.get_child("reject", NS_JMI))
        .expect("a JMI reject, not a proceed");
    let reason = reject.get_child("reason", NS_JINGLE).expect("a reason");
    assert!(
        reason.get_child("connectivity-error", NS_JINGLE).is_some(),
        "{reason:?}"
    );
    assert!(
        reason
            .get_child("text", NS_JINGLE)
            .is_some_and(|t| t.text().starts_with("SIP peer pbx is down (timer F)")),
        "{reason:?}"
    );
    assert!(sip_commands(&out).is_empty());
    assert_eq!(peer_down_fault(&out).0, [peer("pbx"), peer("backup")]);
    let row = h.last_row();
    assert_eq!(row.state, CallState::Ended);
    assert_eq!(row.end_reason.as_deref(), Some("connectivity-error"));
    assert_eq!(row.sip_peer.as_deref(), Some("pbx"));
    assert!(row.end_detail.is_some());

    // Up again: proceeded.
    health(&mut h, peer("backup"), None);
    let out = h.stanza(&xml.replace("jd1", "jd2"));
    assert!(
        stanzas(&out)
            .into_iter()
            .any(|m| m.get_child("proceed", NS_JMI).is_some()),
        "{out:#?}"
    );
}

/// A proposal proceeded while the peer was up, whose session-initiate
/// comes after it went down, is refused then.
#[test]
fn xep0353_a_session_initiate_after_the_peer_went_down_is_refused() {
    let mut h = harness();
    let xml = format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{JULIET}' to='{PBX_GW}'>\
           <propose xmlns='{NS_JMI}' id='jd3'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>\
         </message>"
    );
    h.stanza(&xml);
    health(&mut h, peer("pbx"), Some("timer F"));
    health(&mut h, peer("backup"), Some("timer F"));
    let to = format!("{PBX_GW}/stox-gateway");
    let out = h.stanza(&initiate_to(&to, "jd3"));
    assert_eq!(error_of(iq(&out, "error")).0, "service-unavailable");
    assert_eq!(h.last_row().state, CallState::Ended);
}
