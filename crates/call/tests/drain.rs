//! A graceful stop (issue 16): while draining, new calls are refused on
//! both sides and live calls go on; when the drain time is over,
//! `Core::shut_down` ends every call with what its phase is due.

mod harness;

use harness::*;
use stox_call::{CallState, EndedBy, Input, IqOutcome, Output, SipCommand, SipEvent};

fn drain(h: &mut Harness) {
    assert!(h.input(Input::Draining { on: true }).is_empty());
}

#[test]
fn rfc3261_21_5_4_a_draining_gateway_refuses_new_invites_with_503_and_retry_after() {
    let mut h = Harness::new();
    drain(&mut h);
    let out = h.sip(incoming_invite(
        "d1@127.0.0.1",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let SipCommand::Respond {
        status: 503,
        reason: Some(reason),
        retry_after: Some(10),
        ..
    } = one_sip(&out)
    else {
        panic!("503 with Retry-After expected: {out:?}")
    };
    assert!(reason.contains("shutting down"), "{reason}");
    assert!(stanzas(&out).is_empty(), "nobody rings");
}

#[test]
fn xep0166_a_draining_gateway_refuses_a_session_initiate_with_service_unavailable() {
    let mut h = Harness::new();
    drain(&mut h);
    let out = h.stanza(&session_initiate("d2"));
    let error = iq(&out, "error");
    assert_eq!(error_of(error).0, "service-unavailable");
    assert!(
        String::from(error).contains("shutting down"),
        "the text says why"
    );
    assert!(sip_commands(&out).is_empty());
}

#[test]
fn live_calls_go_on_while_draining_and_end_cleanly_at_shut_down() {
    let mut h = Harness::new();
    // An answered SIP → XMPP call …
    let out = h.sip(incoming_invite(
        "d3@127.0.0.1",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
    h.stanza(&juliet_action(
        "acc",
        "d3",
        "session-accept",
        ACCEPT_CONTENT,
    ));
    h.sip(SipEvent::Acked {
        call: incoming_key("d3@127.0.0.1"),
    });
    // … and an XMPP → SIP call still ringing.
    h.stanza(&session_initiate("d4"));
    let ringing = cid("d4@sip.example.com");
    h.sip(SipEvent::Provisional {
        call: h.key(&ringing),
        status: 180,
        sdp: None,
        reliable: false,
        supported: Vec::new(),
    });
    drain(&mut h);
    assert_eq!(h.core.active_calls(), 2);

    // The ringing one is answered during the drain: calls go on.
    let out = h.sip(SipEvent::Answered {
        call: h.key(&ringing),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    assert_eq!(jingle_set(&out).attr("action"), Some("session-accept"));

    let out = h.core.shut_down(h.now);
    let byes: Vec<_> = sip_commands(&out)
        .into_iter()
        .filter(
            |c| matches!(c, SipCommand::Bye { reason: Some(r), .. } if r.contains("shutting down")),
        )
        .collect();
    assert_eq!(byes.len(), 2, "a BYE with a Reason for each: {out:?}");
    let terminates: Vec<_> = stanzas(&out)
        .into_iter()
        .filter(|s| {
            s.children()
                .any(|j| j.name() == "jingle" && j.attr("action") == Some("session-terminate"))
        })
        .collect();
    assert_eq!(terminates.len(), 2, "a session-terminate for each");
    let ended: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Persist { record, .. } if record.state == CallState::Ended => Some(record),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|r| r.ended_by == Some(EndedBy::Gateway)
        && r.end_detail.as_deref() == Some("the gateway is shutting down")));
    assert_eq!(h.core.active_calls(), 0);
}

#[test]
fn shut_down_cancels_an_unanswered_invite_and_answers_an_unanswered_caller_503() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("d5"));
    let out = h.sip(incoming_invite(
        "d6@127.0.0.1",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    iq(&out, "set");
    let out = h.core.shut_down(h.now);
    let cmds = sip_commands(&out);
    assert!(
        cmds.iter().any(|c| matches!(c, SipCommand::Cancel { .. })),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|c| matches!(c, SipCommand::Respond { status: 503, .. })),
        "{cmds:?}"
    );
    assert_eq!(
        h.core.active_calls(),
        0,
        "the CANCELled call only waits for its 487"
    );
}
