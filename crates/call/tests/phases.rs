//! The call as an enum per direction and phase: every input a phase does
//! not expect gets the wire answer that is due, or is noted as a
//! [`Fault`] when nothing is due — never dropped without a trace.

mod harness;

use harness::*;
use stox_call::{CallState, EndedBy, Fault, IqOutcome, Output, SipCommand, SipEvent};

fn faults(out: &[Output]) -> Vec<&Fault> {
    out.iter()
        .filter_map(|o| match o {
            Output::Fault { fault, .. } => Some(fault),
            _ => None,
        })
        .collect()
}

fn error_text(iq: &minidom::Element) -> String {
    iq.children()
        .find(|c| c.name() == "error")
        .and_then(|e| e.children().find(|c| c.name() == "text"))
        .map(|t| t.text())
        .unwrap_or_default()
}

fn ice_candidate(id: &str, port: u16) -> String {
    format!(
        "<content creator='initiator' name='audio'>\
           <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'>\
             <candidate component='1' foundation='1' generation='0' id='{id}' ip='127.0.0.1' port='{port}' priority='2122260223' protocol='udp' type='host'/>\
           </transport></content>"
    )
}

/// SIP → XMPP up to the session-initiate's acknowledgement.
fn offered(h: &mut Harness, call_id: &str) {
    let out = h.sip(incoming_invite(
        call_id,
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
}

#[test]
fn rfc3261_13_2_2_responses_for_the_other_direction_are_noted_not_acted_on() {
    let mut h = Harness::new();
    offered(&mut h, "p1@h");
    let call = h.key(&cid("p1@h"));
    for event in [
        SipEvent::Answered {
            call,
            sdp: Some(ANSWER_SDP.into()),
            supported: Vec::new(),
        },
        SipEvent::Rejected {
            call,
            status: 486,
            reason: "Busy Here".into(),
        },
        SipEvent::Acked { call },
    ] {
        let name = event.name();
        let out = h.sip(event);
        assert_eq!(
            faults(&out),
            [&Fault::UnexpectedSip {
                event: name,
                phase: "offered"
            }],
            "{out:#?}"
        );
        assert_eq!(out.len(), 1, "nothing on the wire, no row: {out:#?}");
    }
    assert_eq!(h.core.live_calls(), 1, "the call goes on");
    assert_eq!(h.last_state(), CallState::Pending);
}

#[test]
fn rfc3261_15_a_callee_bye_before_answering_cancels_the_invite_and_tells_the_caller() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("p2"));
    let call = h.key(&cid("p2@sip.example.com"));
    h.sip(SipEvent::Provisional {
        call,
        status: 180,
        sdp: None,
        reliable: false,
        supported: Vec::new(),
    });
    let out = h.sip(SipEvent::Bye { call });
    assert_eq!(sip_commands(&out), [&SipCommand::Cancel { call }]);
    assert_eq!(reason_of(jingle_set(&out)), "gone");
    assert_eq!(h.last_row().ended_by, Some(EndedBy::Sip));
    assert_eq!(
        h.core.live_calls(),
        1,
        "kept until the INVITE's final answer"
    );
    h.sip(SipEvent::Rejected {
        call,
        status: 487,
        reason: "Request Terminated".into(),
    });
    assert_eq!(h.core.live_calls(), 0);
    assert_eq!(h.last_row().sip_status, Some(487));
}

#[test]
fn rfc3261_15_1_2_an_early_bye_from_the_caller_ends_like_a_cancel() {
    // The SIP layer turns the early BYE into `Cancelled` (stox-sipcore
    // tests/rfc3261.rs); the core tells the XMPP callee.
    let mut h = Harness::new();
    offered(&mut h, "p3@h");
    let out = h.sip(SipEvent::Cancelled {
        call: h.key(&cid("p3@h")),
    });
    assert_eq!(reason_of(jingle_set(&out)), "cancel");
    let row = h.last_row();
    assert_eq!(
        (row.state, row.ended_by, row.sip_status),
        (CallState::Ended, Some(EndedBy::Sip), Some(487))
    );
}

#[test]
fn xep0176_candidates_held_for_a_peer_without_trickle_are_capped() {
    let mut h = Harness::new();
    offered(&mut h, "p4@h");
    // 64 contents are held (the peer said nothing of trickle ICE, the
    // dialog is not confirmed); the 65th is refused.
    for i in 0..64 {
        let out = h.stanza(&juliet_action(
            &format!("t{i}"),
            "p4",
            "transport-info",
            &ice_candidate(&format!("c{i}"), 40000 + i),
        ));
        iq(&out, "result");
    }
    let out = h.stanza(&juliet_action(
        "t64",
        "p4",
        "transport-info",
        &ice_candidate("c64", 41000),
    ));
    let (cond, _) = error_of(iq(&out, "error"));
    assert_eq!(cond, "resource-constraint");
    assert!(error_text(iq(&out, "error")).contains("64"));
    assert_eq!(h.core.live_calls(), 1, "the call goes on");
}

#[test]
fn xep0176_a_transport_info_for_an_unknown_content_is_bad_request_while_gathering() {
    let mut h = Harness::new();
    let xml = format!(
        "<iq xmlns='jabber:component:accept' type='set' id='si' from='{JULIET}' to='{ROMEO_GW}'>\
           <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='p5' initiator='{JULIET}'>\
             <content creator='initiator' name='audio'>\
               <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
                 <payload-type id='111' name='opus' clockrate='48000' channels='2'/>\
               </description>\
               <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'/>\
             </content></jingle></iq>"
    );
    iq(&h.stanza(&xml), "result");
    let out = h.stanza(&juliet_action(
        "ti",
        "p5",
        "transport-info",
        &ice_candidate("c1", 40000).replace("name='audio'", "name='video'"),
    ));
    let (cond, _) = error_of(iq(&out, "error"));
    assert_eq!(cond, "bad-request");
    assert!(error_text(iq(&out, "error")).contains("'video'"));
}

#[test]
fn rfc8840_and_rfc6086_info_bodies_that_cannot_be_used_are_refused() {
    // While only proposed to a bare JID there is no session for it: 488.
    let mut h = Harness::new();
    h.sip(incoming_invite(
        "p6@h",
        "sip:juliet@example.com",
        Some(OFFER_SDP),
    ));
    let (request, out) = h.request(
        &cid("p6@h"),
        "INFO",
        Some("application/trickle-ice-sdpfrag"),
        Some("a=ice-ufrag:x1y2\r\na=ice-pwd:asd88fgpdd777uzjYhagZg\r\nm=audio 9 RTP/AVP 0\r\na=mid:audio\r\n"),
    );
    let SipCommand::Reply { status, reason, .. } = one_sip(&out) else {
        panic!("a reply: {out:#?}")
    };
    assert_eq!(*status, 488);
    assert!(
        reason.as_deref().unwrap_or_default().contains("proposing"),
        "{reason:?}"
    );
    let _ = request;
    // A fragment without any m= section is a 400.
    let mut h = Harness::new();
    offered(&mut h, "p7@h");
    let (_, out) = h.request(
        &cid("p7@h"),
        "INFO",
        Some("application/trickle-ice-sdpfrag"),
        Some("a=ice-ufrag:x1y2\r\n"),
    );
    let SipCommand::Reply { status, .. } = one_sip(&out) else {
        panic!("a reply: {out:#?}")
    };
    assert_eq!(*status, 400);
    // RFC 6086 legacy INFO with another body (DTMF): 415, so the sender
    // knows the digits went nowhere; an INFO without a body is a probe: 200.
    for (ct, body) in [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
        ("application/dtmf", "5"),
    ] {
        let (_, out) = h.request(&cid("p7@h"), "INFO", Some(ct), Some(body));
        let SipCommand::Reply { status, reason, .. } = one_sip(&out) else {
            panic!("a reply: {out:#?}")
        };
        assert_eq!(*status, 415, "{ct}");
        assert!(reason.as_deref().is_some_and(|r| r.contains("RFC 4733")));
        assert!(stanzas(&out).is_empty());
    }
    let (_, out) = h.request(&cid("p7@h"), "INFO", None, None);
    assert!(matches!(
        one_sip(&out),
        SipCommand::Reply { status: 200, .. }
    ));
}

#[test]
fn xep0353_a_sip_side_gone_while_proposing_retracts_instead_of_terminating() {
    let mut h = Harness::new();
    h.sip(incoming_invite(
        "p8@h",
        "sip:juliet@example.com",
        Some(OFFER_SDP),
    ));
    let out = h.sip(SipEvent::Terminated {
        call: h.key(&cid("p8@h")),
        reason: "the WebSocket flow closed".into(),
    });
    let sent = stanzas(&out);
    assert_eq!(sent.len(), 1, "{out:#?}");
    assert_eq!(sent[0].name(), "message", "a JMI retract, not an IQ");
    assert!(
        sent[0]
            .get_child("retract", "urn:xmpp:jingle-message:0")
            .is_some()
    );
    assert_eq!(h.core.live_calls(), 0);
    assert_eq!(
        h.last_row().end_detail.as_deref(),
        Some("the WebSocket flow closed")
    );
}

#[test]
fn xep0166_an_error_to_a_session_info_is_noted_and_the_call_goes_on() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("p9"));
    let call = h.key(&cid("p9@sip.example.com"));
    let out = h.sip(SipEvent::Provisional {
        call,
        status: 180,
        sdp: None,
        reliable: false,
        supported: Vec::new(),
    });
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    let out = h.iq_response(
        &id,
        IqOutcome::Error(stox_mapping::status::ErrorCondition::FeatureNotImplemented),
    );
    assert!(
        matches!(
            faults(&out).as_slice(),
            [Fault::IqFailed {
                purpose: "session-info",
                phase: "alerting",
                ..
            }]
        ),
        "{out:#?}"
    );
    assert_eq!(h.core.live_calls(), 1);
}
