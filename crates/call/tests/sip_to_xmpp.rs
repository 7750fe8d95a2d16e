//! SIP → XMPP calls through the core, on a virtual clock.

mod harness;

use harness::*;
use stox_call::{CallState, EndedBy, IqOutcome, SipCommand, SipEvent};
use stox_mapping::status::ErrorCondition;

/// Delivers an INVITE for Juliet's balcony resource; returns the
/// session-initiate IQ id.
fn ring_juliet(h: &mut Harness, call_id: &str) -> String {
    let out = h.sip(incoming_invite(
        call_id,
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let set = iq(&out, "set");
    assert_eq!(set.attr("to"), Some(JULIET));
    assert_eq!(set.attr("from"), Some(ROMEO_GW));
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-initiate"));
    assert_eq!(j.attr("initiator"), Some(ROMEO_GW));
    assert_eq!(j.attr("sid"), call_id.split('@').next());
    let row = h.last_row();
    assert_eq!(row.state, CallState::Pending);
    assert_eq!(row.direction.as_str(), "sip-to-xmpp");
    assert_eq!(row.sip_uri, "sip:romeo@example.net");
    assert_eq!(h.timers.len(), 1, "ring timer armed");
    set.attr("id").expect("id").to_owned()
}

#[test]
fn invite_ringing_accept_ack_and_bye() {
    let mut h = Harness::new();
    let id = ring_juliet(&mut h, "abc123@127.0.0.1");
    let cid = cid("abc123@127.0.0.1");
    assert!(h.iq_response(&id, IqOutcome::Result).is_empty());

    let out = h.stanza(&juliet_action(
        "r1",
        "abc123",
        "session-info",
        "<ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>",
    ));
    iq(&out, "result");
    assert_eq!(respond_status(one_sip(&out)), 180);
    assert_eq!(h.last_state(), CallState::Ringing);

    let out = h.stanza(&juliet_action(
        "a1",
        "abc123",
        "session-accept",
        ACCEPT_CONTENT,
    ));
    iq(&out, "result");
    let SipCommand::Respond {
        status: 200,
        sdp: Some(sdp),
        ..
    } = one_sip(&out)
    else {
        panic!("expected 200 with SDP: {out:#?}")
    };
    for line in [
        "m=audio 42000 RTP/AVP 8 101",
        "c=IN IP4 127.0.0.1",
        "a=sendrecv",
    ] {
        assert!(sdp.contains(line), "{line:?} in\n{sdp}");
    }
    assert!(
        sdp.contains("o=juliet "),
        "o= username is the answerer's local part:\n{sdp}"
    );
    assert_eq!(h.last_state(), CallState::Active);
    assert_eq!(h.last_row().sip_status, Some(200));

    let out = h.sip(SipEvent::Acked { call: h.key(&cid) });
    assert!(
        stanzas(&out).is_empty() && sip_commands(&out).is_empty(),
        "{out:#?}"
    );
    assert_eq!(
        h.last_state(),
        CallState::Active,
        "rewritten once confirmed"
    );
    let out = h.sip(SipEvent::Bye { call: h.key(&cid) });
    assert_eq!(reason_of(jingle_set(&out)), "success");
    assert_eq!(h.last_row().ended_by, Some(EndedBy::Sip));
    assert_eq!(h.core.live_calls(), 0);

    // The ring timer firing later finds nothing to do.
    h.advance(120_000);
    assert!(h.fire_timers().is_empty());
}

#[test]
fn xmpp_hangs_up_after_answer_with_bye() {
    let mut h = Harness::new();
    let id = ring_juliet(&mut h, "c2");
    h.iq_response(&id, IqOutcome::Result);
    h.stanza(&juliet_action("a1", "c2", "session-accept", ACCEPT_CONTENT));
    h.sip(SipEvent::Acked {
        call: h.key(&cid("c2")),
    });
    let out = h.stanza(&juliet_action(
        "t1",
        "c2",
        "session-terminate",
        "<reason><success/></reason>",
    ));
    iq(&out, "result");
    assert_eq!(
        one_sip(&out),
        &SipCommand::Bye {
            call: h.key(&cid("c2")),
            reason: None
        }
    );
    assert_eq!(h.last_row().ended_by, Some(EndedBy::Xmpp));
}

#[test]
fn caller_cancels_before_answer() {
    let mut h = Harness::new();
    ring_juliet(&mut h, "c3");
    let out = h.sip(SipEvent::Cancelled {
        call: h.key(&cid("c3")),
    });
    assert_eq!(reason_of(jingle_set(&out)), "cancel");
    let row = h.last_row();
    assert_eq!(
        (row.end_reason.as_deref(), row.sip_status),
        (Some("cancel"), Some(487))
    );
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn callee_rejects_with_a_reason() {
    for (reason, status) in [("busy", 486), ("decline", 603)] {
        let mut h = Harness::new();
        ring_juliet(&mut h, "c4");
        let out = h.stanza(&juliet_action(
            "t1",
            "c4",
            "session-terminate",
            &format!("<reason><{reason}/></reason>"),
        ));
        iq(&out, "result");
        assert_eq!(respond_status(one_sip(&out)), status);
        let row = h.last_row();
        assert_eq!(
            (row.end_reason.as_deref(), row.sip_status),
            (Some(reason), Some(status))
        );
        assert_eq!(row.ended_by, Some(EndedBy::Xmpp));
    }
}

#[test]
fn iq_errors_and_timeouts_on_session_initiate_become_sip_finals() {
    for (outcome, status) in [
        (IqOutcome::Error(ErrorCondition::ItemNotFound), 404),
        (IqOutcome::Error(ErrorCondition::ServiceUnavailable), 405),
        (IqOutcome::Error(ErrorCondition::FeatureNotImplemented), 405),
        (IqOutcome::Error(ErrorCondition::RecipientUnavailable), 480),
        (IqOutcome::Timeout, 408),
    ] {
        let mut h = Harness::new();
        let id = ring_juliet(&mut h, "c5");
        let out = h.iq_response(&id, outcome.clone());
        assert_eq!(respond_status(one_sip(&out)), status, "for {outcome:?}");
        assert_eq!(h.last_row().sip_status, Some(status));
        assert_eq!(h.last_state(), CallState::Ended);
        assert_eq!(h.core.live_calls(), 0);
    }
}

#[test]
fn unanswered_call_times_out_with_480() {
    let mut h = Harness::new();
    let id = ring_juliet(&mut h, "c6");
    h.iq_response(&id, IqOutcome::Result);
    h.advance(59_999);
    assert!(h.fire_timers().is_empty());
    h.advance(1);
    let out = h.fire_timers();
    assert_eq!(respond_status(one_sip(&out)), 480);
    assert_eq!(reason_of(jingle_set(&out)), "timeout");
    assert_eq!(h.last_row().ended_by, Some(stox_call::EndedBy::Gateway));
}

#[test]
fn invites_that_cannot_be_routed_are_refused_and_recorded() {
    let bfcp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                m=application 50000 TCP/WS/BFCP *\r\na=floorctrl:c-s\r\n";
    for (uri, sdp, status) in [
        ("sip:bob@other.org;gr=x", Some(OFFER_SDP), 404),
        ("sip:juliet@example.com;gr=balcony", None, 488),
        (
            "sip:juliet@example.com;gr=balcony",
            Some("this is not SDP"),
            488,
        ),
        ("sip:juliet@example.com;gr=balcony", Some(bfcp), 488),
        ("not a uri", Some(OFFER_SDP), 400),
    ] {
        let mut h = Harness::new();
        let out = h.sip(incoming_invite("x1@h", uri, sdp));
        assert_eq!(respond_status(one_sip(&out)), status, "for {uri} / {sdp:?}");
        assert!(stanzas(&out).is_empty());
        let row = h.last_row();
        assert_eq!(
            (row.state, row.sip_status),
            (CallState::Ended, Some(status))
        );
        assert_eq!(h.core.live_calls(), 0);
        // The next valid call still works.
        ring_juliet(&mut h, "next@h");
    }
}

/// RFC 4028 / RFC 3261 §12.2.2: every in-dialog request reaches the core.
/// A session refresh — a re-INVITE with the same SDP (its `o=` version
/// bumped or not), one without SDP, an UPDATE without SDP — is answered 200
/// with the SDP the gateway sent last; a media change other than hold or
/// resume (here a new port) is refused 488 until it is mapped; OPTIONS 200,
/// PRACK 481, others 501.
#[test]
fn rfc4028_session_refreshes_get_200_with_the_current_sdp_and_changes_488() {
    let mut h = Harness::new();
    let id = ring_juliet(&mut h, "ref1@h");
    h.iq_response(&id, IqOutcome::Result);
    let out = h.stanza(&juliet_action(
        "a",
        "ref1",
        "session-accept",
        ACCEPT_CONTENT,
    ));
    let SipCommand::Respond {
        sdp: Some(answer), ..
    } = one_sip(&out).clone()
    else {
        panic!("200 with SDP expected")
    };
    h.sip(SipEvent::Acked {
        call: h.key(&cid("ref1@h")),
    });
    let cid = cid("ref1@h");
    let reply = |out: &[stox_call::Output]| match one_sip(out) {
        SipCommand::Reply {
            status,
            sdp,
            reason,
            ..
        } => (*status, sdp.clone(), reason.clone().unwrap_or_default()),
        other => panic!("a reply expected, got {other:?}"),
    };
    let same = OFFER_SDP.replace("o=romeo 123 1 ", "o=romeo 123 2 ");
    for (method, ct, body) in [
        ("INVITE", Some("application/sdp"), Some(OFFER_SDP)),
        ("INVITE", Some("application/sdp"), Some(same.as_str())),
        ("INVITE", None, None),
    ] {
        let (_, out) = h.request(&cid, method, ct, body);
        assert_eq!(reply(&out).0, 200, "{method} {body:?}");
        assert_eq!(
            reply(&out).1.as_deref(),
            Some(answer.as_str()),
            "the same answer, same version"
        );
    }
    let (_, out) = h.request(&cid, "UPDATE", None, None);
    assert_eq!((reply(&out).0, reply(&out).1), (200, None));
    let changed = OFFER_SDP.replace("m=audio 6000", "m=audio 6100");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&changed));
    let (status, sdp, reason) = reply(&out);
    assert_eq!((status, sdp), (488, None));
    assert!(reason.contains("not supported"), "{reason}");
    let (_, out) = h.request(&cid, "OPTIONS", None, None);
    assert_eq!(reply(&out).0, 200);
    let (_, out) = h.request(&cid, "PRACK", None, None);
    assert_eq!(reply(&out).0, 481);
    let (_, out) = h.request(&cid, "REFER", None, None);
    assert_eq!(reply(&out).0, 501);
    assert_eq!(
        h.last_state(),
        CallState::Active,
        "nothing changed the call"
    );

    // The media session is in the stored row: a call resumed after a
    // restart answers a refresh the same way, and still refuses a change.
    let row = h.last_row().clone();
    assert_eq!(row.local_sdp.as_deref(), Some(answer.as_str()));
    let mut h2 = Harness::new();
    assert_eq!(h2.core.restore(vec![(h.key(&cid), row)]), 1);
    let (_, out) = h2.request(&cid, "INVITE", Some("application/sdp"), Some(&same));
    assert_eq!(
        (reply(&out).0, reply(&out).1.as_deref()),
        (200, Some(answer.as_str())),
        "resumed: the same answer"
    );
    let (_, out) = h2.request(&cid, "INVITE", Some("application/sdp"), Some(&changed));
    assert_eq!(reply(&out).0, 488);
}
