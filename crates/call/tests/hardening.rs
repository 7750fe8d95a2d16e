//! The core when something is wrong outside it: the component offline, the
//! store behind, stanzas over a limit, a SIP command that cannot be carried
//! out, a callee that never answers. Each case ends or refuses the call with
//! the answer due on the wire and a row that says why.

mod harness;

use harness::*;
use stox_call::{
    CallKey, CallState, EndedBy, Input, IqOutcome, Output, RejectedStanza, SipCommand, SipEvent,
    TimerKey,
};

const BOB_URI: &str = "sip:juliet@example.com;gr=balcony";

fn respond_of(out: &[Output]) -> (u16, Option<String>, Option<u32>) {
    match one_sip(out) {
        SipCommand::Respond {
            status,
            reason,
            retry_after,
            ..
        } => (*status, reason.clone(), *retry_after),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// RFC 3261 §21.5.4 / §20.33: while the component is not connected an
/// INVITE gets 503 with Retry-After at once (not 408 after an IQ timeout),
/// nothing goes to XMPP, and the attempt is a row.
#[test]
fn rfc3261_21_5_4_invite_while_xmpp_offline_gets_503_with_retry_after() {
    let mut h = Harness::offline();
    let out = h.sip(incoming_invite("c1", BOB_URI, Some(OFFER_SDP)));
    let (status, reason, retry_after) = respond_of(&out);
    assert_eq!((status, retry_after), (503, Some(10)));
    assert!(
        reason.unwrap_or_default().contains("XMPP"),
        "a reason that says why"
    );
    assert!(stanzas(&out).is_empty());
    let row = h.last_row();
    assert_eq!(row.state, CallState::Ended);
    assert_eq!(row.sip_status, Some(503));
    assert_eq!(row.ended_by, Some(EndedBy::Gateway));
    assert_eq!(row.end_reason.as_deref(), Some("connectivity-error"));
    assert_eq!(h.core.live_calls(), 0);

    // Back online: the next INVITE rings the XMPP user.
    h.input(Input::XmppLink { online: true });
    let out = h.sip(incoming_invite("c2", BOB_URI, Some(OFFER_SDP)));
    assert_eq!(jingle_set(&out).attr("action"), Some("session-initiate"));
    // And down again.
    h.input(Input::XmppLink { online: false });
    let out = h.sip(incoming_invite("c3", BOB_URI, Some(OFFER_SDP)));
    assert_eq!(respond_of(&out).0, 503);
}

#[test]
fn while_the_store_is_behind_new_calls_are_refused_both_ways() {
    let mut h = Harness::new();
    h.input(Input::StoreBacklog { over_limit: true });
    let out = h.sip(incoming_invite("c1", BOB_URI, Some(OFFER_SDP)));
    let (status, reason, retry_after) = respond_of(&out);
    assert_eq!((status, retry_after), (503, Some(10)));
    assert!(reason.unwrap_or_default().contains("store"));

    let out = h.stanza(&session_initiate("s1"));
    assert!(sip_commands(&out).is_empty(), "nothing reaches SIP");
    assert_eq!(
        error_of(iq(&out, "error")).0,
        "resource-constraint",
        "RFC 6120 §8.3.3.18"
    );

    h.input(Input::StoreBacklog { over_limit: false });
    let out = h.stanza(&session_initiate("s2"));
    assert!(matches!(one_sip(&out), SipCommand::Invite { .. }));
}

/// RFC 6120 §8.3.3.12: an IQ request the adapter dropped unread gets
/// `policy-violation`; other stanzas need no answer.
#[test]
fn rfc6120_8_3_3_12_a_rejected_iq_gets_policy_violation() {
    let mut h = Harness::new();
    let rejected = |name: &str, kind: &str| RejectedStanza {
        name: name.into(),
        from: Some("mallory@example.com/x".into()),
        to: Some(ROMEO_GW.into()),
        id: Some("big1".into()),
        kind: Some(kind.into()),
        reason: "elements nested deeper than 32".into(),
    };
    let out = h.input(Input::StanzaRejected(rejected("iq", "set")));
    let err = iq(&out, "error");
    assert_eq!(err.attr("id"), Some("big1"));
    assert_eq!(err.attr("to"), Some("mallory@example.com/x"));
    assert_eq!(err.attr("from"), Some(ROMEO_GW));
    assert_eq!(error_of(err).0, "policy-violation");
    for (name, kind) in [
        ("iq", "result"),
        ("iq", "error"),
        ("message", "chat"),
        ("presence", ""),
    ] {
        assert!(
            h.input(Input::StanzaRejected(rejected(name, kind)))
                .is_empty()
        );
    }
    let no_id = RejectedStanza {
        id: None,
        ..rejected("iq", "get")
    };
    assert!(h.input(Input::StanzaRejected(no_id)).is_empty());
}

#[test]
fn xep0166_a_session_initiate_over_the_jingle_limits_gets_policy_violation() {
    let mut h = Harness::new();
    let pts: String = (0..200)
        .map(|i| format!("<payload-type id='{}' name='x' clockrate='8000'/>", i % 128))
        .collect();
    let out = h.stanza(&juliet_action(
        "big",
        "s9",
        "session-initiate",
        &format!("<content creator='initiator' name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>{pts}</description></content>"),
    ));
    assert!(sip_commands(&out).is_empty());
    let err = iq(&out, "error");
    assert_eq!(error_of(err).0, "policy-violation");
    assert_eq!(h.core.live_calls(), 0);
    assert!(h.rows.is_empty(), "nothing started, nothing stored");
}

/// RFC 3261 §9.1: the SIP callee rang but never answered: at the ring
/// timeout the gateway CANCELs it and tells the XMPP caller `<timeout/>`;
/// the 487 that follows completes the row.
#[test]
fn rfc3261_9_1_xmpp_to_sip_ring_timeout_cancels_the_invite() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("s1"));
    let cid = cid("s1@sip.example.com");
    h.sip(SipEvent::Provisional {
        reliable: false,
        call: h.key(&cid),
        status: 180,
        sdp: None,
        supported: Vec::new(),
    });
    assert!(
        h.timers
            .iter()
            .any(|(k, _)| matches!(k, TimerKey::AnswerTimeout { .. }))
    );
    h.advance(59_999);
    assert!(h.fire_timers().is_empty());
    h.advance(1);
    let out = h.fire_timers();
    assert_eq!(
        sip_commands(&out),
        vec![&SipCommand::Cancel { call: h.key(&cid) }]
    );
    let term = jingle_set(&out);
    assert_eq!(term.attr("action"), Some("session-terminate"));
    assert_eq!(reason_of(term), "timeout");
    let row = h.last_row().clone();
    assert_eq!(row.state, CallState::Ended);
    assert_eq!(
        (row.end_reason.as_deref(), row.ended_by),
        (Some("timeout"), Some(EndedBy::Gateway))
    );

    h.sip(SipEvent::Rejected {
        call: h.key(&cid),
        status: 487,
        reason: "Request Terminated".into(),
    });
    assert_eq!(h.last_row().sip_status, Some(487));
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn a_2xx_that_crosses_the_timeout_cancel_is_ended_with_bye() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("s1"));
    let cid = cid("s1@sip.example.com");
    h.advance(60_000);
    h.fire_timers();
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    assert_eq!(
        sip_commands(&out),
        vec![&SipCommand::Bye {
            call: h.key(&cid),
            reason: None
        }]
    );
    assert!(stanzas(&out).is_empty(), "the XMPP caller was already told");
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn an_answered_call_is_not_touched_by_its_stale_answer_timer() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("s1"));
    h.sip(SipEvent::Answered {
        call: h.key(&cid("s1@sip.example.com")),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    h.advance(60_000);
    assert!(h.fire_timers().is_empty());
    assert_eq!(h.last_state(), CallState::Active);
}

/// An INVITE the SIP layer cannot send (too large for UDP and no TCP, no
/// route …) ends the call at once: nothing stays pending.
#[test]
fn an_invite_that_cannot_be_sent_ends_the_call_at_once() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("s1"));
    let out = h.sip(SipEvent::CommandFailed {
        call: h.key(&cid("s1@sip.example.com")),
        command: stox_call::Command::Invite,
        reason: "request of 70000 bytes is too large for UDP".into(),
    });
    let term = jingle_set(&out);
    assert_eq!(reason_of(term), "connectivity-error");
    let text = term
        .get_child("reason", NS_JINGLE)
        .and_then(|r| r.get_child("text", NS_JINGLE))
        .map(|t| t.text())
        .unwrap_or_default();
    assert!(text.contains("too large for UDP"), "{text}");
    let row = h.last_row();
    assert_eq!(row.state, CallState::Ended);
    assert_eq!(row.ended_by, Some(EndedBy::Gateway));
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn a_response_that_cannot_be_sent_ends_a_sip_to_xmpp_call() {
    let mut h = Harness::new();
    let out = h.sip(incoming_invite("c1", BOB_URI, Some(OFFER_SDP)));
    let si_id = iq(&out, "set").attr("id").unwrap_or_default().to_owned();
    h.iq_response(&si_id, IqOutcome::Result);
    h.stanza(&format!(
        "<iq xmlns='jabber:component:accept' type='set' id='acc' from='{JULIET}' to='romeo@sip.example.com'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='c1'>{ACCEPT_CONTENT}</jingle></iq>"
    ));
    let out = h.sip(SipEvent::CommandFailed {
        call: h.key(&cid("c1")),
        command: stox_call::Command::Response,
        reason: "transport closed".into(),
    });
    assert_eq!(reason_of(jingle_set(&out)), "connectivity-error");
    assert_eq!(h.last_row().state, CallState::Ended);
    assert_eq!(h.core.live_calls(), 0);
    // A failed INFO does not end anything.
    let mut h = Harness::new();
    h.stanza(&session_initiate("s2"));
    let out = h.sip(SipEvent::CommandFailed {
        call: h.key(&cid("s2@sip.example.com")),
        command: stox_call::Command::Info,
        reason: "x".into(),
    });
    assert!(
        matches!(
            out.as_slice(),
            [Output::Fault {
                fault: stox_call::Fault::CommandFailed {
                    command: stox_call::Command::Info,
                    ..
                },
                ..
            }]
        ),
        "only noted: {out:?}"
    );
    assert_eq!(h.core.live_calls(), 1);
}

#[test]
fn a_session_initiate_not_delivered_because_xmpp_went_offline_gets_503() {
    let mut h = Harness::new();
    let out = h.sip(incoming_invite("c1", BOB_URI, Some(OFFER_SDP)));
    let si_id = iq(&out, "set").attr("id").unwrap_or_default().to_owned();
    let out = h.iq_response(&si_id, IqOutcome::Undelivered);
    assert_eq!(respond_of(&out).0, 503);
    assert_eq!(respond_of(&out).2, Some(10));
    assert_eq!(h.last_row().sip_status, Some(503));
}

fn leftover(
    id: i64,
    direction: stox_call::Direction,
    state: CallState,
    xmpp_jid: &str,
) -> stox_call::SessionRecord {
    stox_call::SessionRecord {
        id,
        jingle_sid: stox_mapping::ids::Sid::new(format!("s{id}")),
        sip_call_id: cid(&format!("s{id}@sip.example.com")),
        direction,
        xmpp_jid: xmpp_jid.into(),
        sip_uri: "sip:romeo@example.net".into(),
        gateway_jid: ROMEO_GW.into(),
        state,
        created_at: stox_call::Millis(1_795_296_000_000),
        answered_at: None,
        ended_at: None,
        end_reason: None,
        sip_status: None,
        ended_by: None,
        end_detail: None,
        local_sdp: None,
        remote_sdp: None,
        hold: stox_call::Hold::default(),
        sip_peer: None,
        media_relay: None,
        updated_at: stox_call::Millis(1_795_296_000_000),
    }
}

/// A restart while calls were ringing: each side is told what the stored
/// state allows, and each row says what was done.
#[test]
fn restart_recovery_tells_both_sides_of_calls_that_were_ringing() {
    use stox_call::Direction::{SipToXmpp, XmppToSip};
    let mut h = Harness::new();
    let out = h.core.recover(
        h.now,
        vec![
            (
                CallKey(5),
                leftover(5, XmppToSip, CallState::Ringing, JULIET),
                true,
            ),
            (
                CallKey(6),
                leftover(6, SipToXmpp, CallState::Ringing, JULIET),
                true,
            ),
            (
                CallKey(7),
                leftover(7, SipToXmpp, CallState::Pending, "juliet@example.com"),
                true,
            ),
            (
                CallKey(8),
                leftover(8, XmppToSip, CallState::Pending, JULIET),
                false,
            ),
        ],
    );
    let sip = sip_commands(&out);
    assert_eq!(sip[0], &SipCommand::Cancel { call: CallKey(5) });
    assert!(matches!(sip[1], SipCommand::Respond { status: 500, .. }));
    assert!(matches!(sip[2], SipCommand::Respond { status: 500, .. }));
    assert_eq!(sip.len(), 3, "row 8 never sent its INVITE");
    let sent = stanzas(&out);
    let terminates = sent
        .iter()
        .filter(|s| s.name() == "iq")
        .map(|s| s.get_child("jingle", NS_JINGLE).expect("jingle"))
        .filter(|j| j.attr("action") == Some("session-terminate"))
        .count();
    assert_eq!(terminates, 3);
    let retracts = sent
        .iter()
        .filter(|s| s.name() == "message" && s.has_child("retract", "urn:xmpp:jingle-message:0"))
        .count();
    assert_eq!(retracts, 1, "the bare-JID proposal is retracted");
    let rows: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Persist { record, .. } => Some(record),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r.state, CallState::Ended);
        assert_eq!(r.end_reason.as_deref(), Some("connectivity-error"));
        assert_eq!(r.ended_by, Some(EndedBy::Gateway));
    }
    assert_eq!(rows[1].sip_status, Some(500));
    let detail = rows[0].end_detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("CANCEL to the SIP callee") && detail.contains("session-terminate"),
        "{detail}"
    );
    assert_eq!(h.core.live_calls(), 0);
    // New calls get fresh ids.
    let out = h.stanza(&session_initiate("new"));
    assert!(matches!(one_sip(&out), SipCommand::Invite { .. }));
    assert_eq!(h.last_row().id, 9);
}
