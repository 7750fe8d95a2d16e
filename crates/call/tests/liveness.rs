//! The XMPP side's liveness (issue 13): an XMPP user who vanishes mid-call
//! (IQ errors, XEP-0199 ping unanswered, unavailable presence) ends the SIP
//! side with the answer due in its phase; a call ends after the longest
//! duration configured.

mod harness;

use harness::*;
use stox_call::{CallState, EndedBy, IqOutcome, Output, SipCommand, SipEvent, TimerKey};
use stox_mapping::status::ErrorCondition;

fn harness() -> Harness {
    Harness::with_config(stox_call::CoreConfig {
        peer_ping_ms: 30_000,
        max_duration_ms: 3_600_000,
        ..config()
    })
}

fn answered_from_sip(h: &mut Harness, call_id: &str) -> stox_mapping::ids::CallId {
    let out = h.sip(incoming_invite(
        call_id,
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
    let sid = call_id.split('@').next().expect("sid");
    h.stanza(&juliet_action("acc", sid, "session-accept", ACCEPT_CONTENT));
    let cid = cid(call_id);
    h.sip(SipEvent::Acked { call: h.key(&cid) });
    cid
}

fn ping_id(out: &[Output]) -> String {
    let ping = iq(out, "get");
    assert!(
        ping.get_child("ping", "urn:xmpp:ping").is_some(),
        "{ping:?}"
    );
    assert_eq!(ping.attr("to"), Some(JULIET));
    ping.attr("id").expect("id").to_owned()
}

fn bye_reason(out: &[Output]) -> String {
    match sip_commands(out).as_slice() {
        [
            SipCommand::Bye {
                reason: Some(reason),
                ..
            },
        ] => reason.clone(),
        other => panic!("one BYE with a Reason: {other:#?}"),
    }
}

#[test]
fn xep0199_an_xmpp_user_who_answers_pings_keeps_the_call() {
    let mut h = harness();
    answered_from_sip(&mut h, "l1@h");
    for _ in 0..3 {
        h.advance(30_000);
        let out = h.fire_timers();
        let id = ping_id(&out);
        // A client without XEP-0199 answers an error: it is there all the same.
        h.iq_response(&id, IqOutcome::Error(ErrorCondition::FeatureNotImplemented));
    }
    assert_eq!(h.core.live_calls(), 1);
    assert_eq!(h.last_state(), CallState::Active);
}

#[test]
fn xep0199_an_unanswered_ping_hangs_up_the_sip_side() {
    for outcome in [
        IqOutcome::Timeout,
        IqOutcome::Error(ErrorCondition::ServiceUnavailable),
        IqOutcome::Error(ErrorCondition::RecipientUnavailable),
    ] {
        let mut h = harness();
        answered_from_sip(&mut h, "l2@h");
        h.advance(30_000);
        let id = ping_id(&h.fire_timers());
        let out = h.iq_response(&id, outcome.clone());
        assert!(bye_reason(&out).starts_with("SIP;cause=480"));
        assert!(stanzas(&out).is_empty(), "nobody to tell on XMPP");
        let row = h.last_row();
        assert_eq!(
            (row.state, row.ended_by, row.end_reason.as_deref()),
            (
                CallState::Ended,
                Some(EndedBy::Gateway),
                Some("connectivity-error")
            )
        );
        assert!(
            row.end_detail
                .as_deref()
                .is_some_and(|d| d.contains("ping")),
            "{:?}",
            row.end_detail
        );
    }
}

#[test]
fn rfc6121_4_5_unavailable_presence_of_the_full_jid_ends_its_calls() {
    let mut h = harness();
    answered_from_sip(&mut h, "l3@h");
    // The bare JID's presence, or another resource's, changes nothing.
    for from in ["juliet@example.com", "juliet@example.com/phone"] {
        let out = h.stanza(&format!(
            "<presence xmlns='jabber:component:accept' type='unavailable' from='{from}' to='{ROMEO_GW}'/>"
        ));
        assert!(out.is_empty(), "{from}: {out:#?}");
    }
    let out = h.stanza(&format!(
        "<presence xmlns='jabber:component:accept' type='unavailable' from='{JULIET}' to='{ROMEO_GW}'/>"
    ));
    bye_reason(&out);
    assert_eq!(h.core.live_calls(), 0);
    assert!(
        h.last_row()
            .end_detail
            .as_deref()
            .is_some_and(|d| d.contains("unavailable presence"))
    );
}

#[test]
fn an_xmpp_callee_gone_before_answering_gets_the_sip_caller_480() {
    let mut h = harness();
    let out = h.sip(incoming_invite(
        "l4@h",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
    let out = h.stanza(&format!(
        "<presence xmlns='jabber:component:accept' type='unavailable' from='{JULIET}' to='{ROMEO_GW}'/>"
    ));
    assert_eq!(respond_status(one_sip(&out)), 480);
    assert_eq!(h.last_row().sip_status, Some(480));
}

#[test]
fn an_xmpp_caller_gone_while_inviting_cancels_the_invite() {
    let mut h = harness();
    let out = h.stanza(&session_initiate("l5"));
    let call = match one_sip(&out) {
        SipCommand::Invite { call, .. } => *call,
        other => panic!("{other:?}"),
    };
    let out = h.sip(SipEvent::Provisional {
        call,
        status: 180,
        sdp: None,
        reliable: false,
        supported: Vec::new(),
    });
    let ringing = iq(&out, "set").attr("id").expect("id").to_owned();
    let out = h.iq_response(
        &ringing,
        IqOutcome::Error(ErrorCondition::ServiceUnavailable),
    );
    assert_eq!(sip_commands(&out), [&SipCommand::Cancel { call }]);
}

#[test]
fn the_longest_call_duration_ends_the_call_on_both_sides() {
    let mut h = harness();
    answered_from_sip(&mut h, "l6@h");
    let (_, at) = *h
        .timers
        .iter()
        .find(|(k, _)| matches!(k, TimerKey::MaxDuration { .. }))
        .expect("the longest-duration timer");
    assert_eq!(at.0 - h.now.0, 3_600_000);
    h.timers
        .retain(|(k, _)| matches!(k, TimerKey::MaxDuration { .. }));
    h.advance(3_600_000);
    let out = h.fire_timers();
    assert!(bye_reason(&out).contains("maximum duration"));
    assert_eq!(reason_of(jingle_set(&out)), "expired");
    assert_eq!(h.last_row().end_reason.as_deref(), Some("expired"));
}
