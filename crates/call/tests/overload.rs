//! The call limit (`max_calls`): a new call past it is refused the way each
//! side expects — SIP 503 with Retry-After (RFC 3261 §21.5.4), Jingle
//! `resource-constraint`, XEP-0353 `<reject/>` with `<busy/>` — and the
//! calls in progress go on.

mod harness;

use harness::*;
use stox_call::{IqOutcome, SipCommand};

const NS_JMI: &str = "urn:xmpp:jingle-message:0";

fn limited(max_calls: usize) -> Harness {
    Harness::with_config(stox_call::CoreConfig {
        max_calls,
        ..config()
    })
}

#[test]
fn rfc3261_21_5_4_past_the_call_limit_an_invite_gets_503_with_retry_after() {
    let mut h = limited(1);
    let out = h.sip(incoming_invite(
        "o1@h",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
    let out = h.sip(incoming_invite(
        "o2@h",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    match one_sip(&out) {
        SipCommand::Respond {
            status: 503,
            reason: Some(reason),
            retry_after: Some(10),
            ..
        } => assert!(reason.contains("limit of calls"), "{reason}"),
        other => panic!("503 expected, got {other:?}"),
    }
    assert!(stanzas(&out).is_empty(), "juliet is not rung");
}

#[test]
fn past_the_call_limit_a_session_initiate_gets_resource_constraint() {
    let mut h = limited(1);
    let out = h.stanza(&session_initiate("o3"));
    assert!(matches!(one_sip(&out), SipCommand::Invite { .. }));
    let out = h.stanza(&session_initiate("o4"));
    assert_eq!(error_of(iq(&out, "error")).0, "resource-constraint");
    assert!(sip_commands(&out).is_empty());

    let xml = format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{JULIET}' to='{ROMEO_GW}'>\
           <propose xmlns='{NS_JMI}' id='o5'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>\
         </message>"
    );
    let out = h.stanza(&xml);
    let reject = stanzas(&out)
        .into_iter()
        .find_map(|m| m.get_child("reject", NS_JMI))
        .expect("a JMI reject");
    let reason = reject.get_child("reason", NS_JINGLE).expect("reason");
    assert!(reason.get_child("busy", NS_JINGLE).is_some(), "{reason:?}");
}
