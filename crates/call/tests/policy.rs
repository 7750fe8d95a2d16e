//! The outbound call policy through the core: who may call out, where each
//! call goes, and that a refused call sends nothing to SIP.

mod harness;

use harness::*;
use stox_call::policy::{PeerRoute, Policy};
use stox_call::{Fault, Output, SipCommand};

const NS_JMI: &str = "urn:xmpp:jingle-message:0";

fn with_policy(outbound_proxy: bool) -> Harness {
    Harness::with_config(stox_call::CoreConfig {
        policy: Some(Policy {
            callers: vec!["example.com".into()],
            outbound_proxy,
            registrar_domains: Vec::new(),
            peers: vec![PeerRoute {
                name: "trunk".into(),
                domains: vec!["trunk.example".into()],
                ..PeerRoute::default()
            }],
        }),
        ..config()
    })
}

fn initiate(from: &str, to: &str, sid: &str) -> String {
    session_initiate(sid)
        .replace(&format!("from='{JULIET}'"), &format!("from='{from}'"))
        .replace(
            &format!("initiator='{JULIET}'"),
            &format!("initiator='{from}'"),
        )
        .replace(&format!("to='{ROMEO_GW}'"), &format!("to='{to}'"))
}

fn forbidden(out: &[Output]) -> String {
    let (cond, _) = error_of(iq(out, "error"));
    assert_eq!(cond, "forbidden", "{out:#?}");
    assert!(sip_commands(out).is_empty(), "nothing to SIP: {out:#?}");
    out.iter()
        .find_map(|o| match o {
            Output::Fault {
                fault: f @ Fault::Forbidden { .. },
                ..
            } => Some(f.to_string()),
            _ => None,
        })
        .expect("a log line says why")
}

#[test]
fn a_caller_outside_the_policy_gets_forbidden_and_nothing_reaches_sip() {
    let mut h = with_policy(true);
    let out = h.stanza(&initiate("eve@evil.example/x", ROMEO_GW, "p1"));
    let why = forbidden(&out);
    assert!(why.contains("eve@evil.example may not call out"), "{why}");
    assert!(h.rows.is_empty(), "no row for a refused call");
}

#[test]
fn without_a_proxy_only_a_peers_domains_are_reachable() {
    let mut h = with_policy(false);
    // victim\40203.0.113.9@sip.example.com → sip:victim@203.0.113.9
    let out = h.stanza(&initiate(
        JULIET,
        "victim\\40203.0.113.9@sip.example.com",
        "p2",
    ));
    let why = forbidden(&out);
    assert!(why.contains("no route to 203.0.113.9"), "{why}");

    let out = h.stanza(&initiate(
        JULIET,
        "+4930123\\40trunk.example@sip.example.com",
        "p3",
    ));
    iq(&out, "result");
    match one_sip(&out) {
        SipCommand::Invite {
            peer, request_uri, ..
        } => {
            assert_eq!(peer.as_deref(), Some("trunk"));
            assert_eq!(request_uri, "sip:+4930123@trunk.example");
        }
        other => panic!("INVITE expected, got {other:?}"),
    }
    assert_eq!(h.last_row().sip_peer.as_deref(), Some("trunk"));
}

#[test]
fn with_a_proxy_other_destinations_go_to_it() {
    let mut h = with_policy(true);
    let out = h.stanza(&session_initiate("p4"));
    match one_sip(&out) {
        SipCommand::Invite { peer, .. } => assert_eq!(peer, &None),
        other => panic!("INVITE expected, got {other:?}"),
    }
    assert_eq!(h.last_row().sip_peer, None);
}

#[test]
fn xep0353_a_propose_outside_the_policy_is_rejected() {
    let mut h = with_policy(false);
    let xml = format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{JULIET}' to='victim\\40203.0.113.9@sip.example.com'>\
           <propose xmlns='{NS_JMI}' id='p5'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>\
         </message>"
    );
    let out = h.stanza(&xml);
    let reject = stanzas(&out)
        .into_iter()
        .find_map(|m| m.get_child("reject", NS_JMI))
        .expect("a JMI reject");
    assert_eq!(reject.attr("id"), Some("p5"));
    let reason = reject
        .get_child("reason", "urn:xmpp:jingle:1")
        .expect("a reason");
    assert!(
        reason.get_child("decline", "urn:xmpp:jingle:1").is_some(),
        "{reason:?}"
    );
    assert!(sip_commands(&out).is_empty());
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Fault {
            fault: Fault::Forbidden { .. },
            ..
        }
    )));
}
