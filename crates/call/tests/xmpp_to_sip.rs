//! XMPP → SIP calls through the core, on a virtual clock.

mod harness;

use harness::*;
use stox_call::{CallState, EndedBy, IqOutcome, Output, SipCommand, SipEvent};

fn place_call(h: &mut Harness, sid: &str) -> SipCommand {
    let out = h.stanza(&session_initiate(sid));
    assert_eq!(
        iq(&out, "result").attr("id"),
        Some(format!("si-{sid}").as_str())
    );
    let row = h.last_row().clone();
    assert_eq!(row.state, CallState::Pending);
    assert_eq!(row.direction.as_str(), "xmpp-to-sip");
    assert_eq!(row.xmpp_jid, JULIET);
    assert_eq!(row.sip_uri, "sip:romeo@example.net");
    assert_eq!(row.gateway_jid, ROMEO_GW);
    one_sip(&out).clone()
}

#[test]
fn invite_carries_the_mapped_offer_and_stox_identifiers() {
    let mut h = Harness::new();
    let SipCommand::Invite {
        call_id,
        request_uri,
        from,
        sdp,
        ..
    } = place_call(&mut h, "a73sjjvkla37jfea")
    else {
        panic!("expected an INVITE")
    };
    assert_eq!(call_id.as_str(), "a73sjjvkla37jfea@sip.example.com");
    assert_eq!(request_uri, "sip:romeo@example.net");
    assert_eq!(from, "sip:juliet@example.com");
    for line in [
        "m=audio 40000 RTP/AVP 0 8 101",
        "c=IN IP4 127.0.0.1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=sendrecv",
    ] {
        assert!(sdp.contains(line), "{line:?} in\n{sdp}");
    }
    assert!(
        sdp.starts_with("v=0\r\no=juliet "),
        "o= username is the initiator's local part:\n{sdp}"
    );
}

#[test]
fn ringing_answer_and_bye_from_sip() {
    let mut h = Harness::new();
    place_call(&mut h, "s1");
    let cid = cid("s1@sip.example.com");

    // The SIP layer never passes a 100 on; one that came would change
    // nothing on the wire and only be noted.
    let out = h.sip(SipEvent::Provisional {
        reliable: false,
        call: h.key(&cid),
        status: 100,
        sdp: None,
        supported: Vec::new(),
    });
    assert!(matches!(out.as_slice(), [Output::Fault { .. }]), "{out:?}");
    let out = h.sip(SipEvent::Provisional {
        reliable: false,
        call: h.key(&cid),
        status: 180,
        sdp: None,
        supported: Vec::new(),
    });
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-info"));
    assert!(j.has_child("ringing", "urn:xmpp:jingle:apps:rtp:info:1"));
    assert_eq!(iq(&out, "set").attr("to"), Some(JULIET));
    assert_eq!(iq(&out, "set").attr("from"), Some(ROMEO_GW));
    assert_eq!(h.last_state(), CallState::Ringing);

    // A second provisional (another fork) does not reach XMPP again.
    assert!(
        h.sip(SipEvent::Provisional {
            reliable: false,
            call: h.key(&cid),
            status: 180,
            sdp: None,
            supported: Vec::new()
        })
        .is_empty()
    );

    h.advance(2_000);
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-accept"));
    assert_eq!(j.attr("responder"), Some(ROMEO_GW));
    let desc = j
        .get_child("content", NS_JINGLE)
        .and_then(|c| c.get_child("description", "urn:xmpp:jingle:apps:rtp:1"))
        .expect("content/description");
    let ids: Vec<_> = desc.children().filter_map(|p| p.attr("id")).collect();
    assert_eq!(
        ids,
        ["8", "101"],
        "responder's payload types in the responder's order"
    );
    let cand = j
        .get_child("content", NS_JINGLE)
        .and_then(|c| c.get_child("transport", "urn:xmpp:jingle:transports:raw-udp:1"))
        .and_then(|t| t.get_child("candidate", "urn:xmpp:jingle:transports:raw-udp:1"))
        .expect("raw-udp candidate");
    assert_eq!(
        (cand.attr("ip"), cand.attr("port")),
        (Some("127.0.0.1"), Some("6000"))
    );
    let row = h.last_row().clone();
    assert_eq!(row.state, CallState::Active);
    assert_eq!(row.answered_at, Some(h.now));
    assert_eq!(row.sip_status, Some(200));

    h.advance(30_000);
    let out = h.sip(SipEvent::Bye { call: h.key(&cid) });
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-terminate"));
    assert_eq!(reason_of(j), "success");
    let row = h.last_row();
    assert_eq!(row.state, CallState::Ended);
    assert_eq!(row.end_reason.as_deref(), Some("success"));
    assert_eq!(row.ended_by, Some(EndedBy::Sip));
    assert_eq!(row.ended_at, Some(h.now));
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn xmpp_hangs_up_after_answer_with_bye() {
    let mut h = Harness::new();
    place_call(&mut h, "s2");
    let cid = cid("s2@sip.example.com");
    h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    let out = h.stanza(&juliet_action(
        "t1",
        "s2",
        "session-terminate",
        "<reason><success/></reason>",
    ));
    iq(&out, "result");
    assert_eq!(
        one_sip(&out),
        &SipCommand::Bye {
            call: h.key(&cid),
            reason: None
        }
    );
    assert_eq!(h.last_row().ended_by, Some(EndedBy::Xmpp));
    assert_eq!(h.last_row().end_reason.as_deref(), Some("success"));
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn xmpp_hangs_up_before_answer_with_cancel() {
    let mut h = Harness::new();
    place_call(&mut h, "s3");
    let cid = cid("s3@sip.example.com");
    h.sip(SipEvent::Provisional {
        reliable: false,
        call: h.key(&cid),
        status: 180,
        sdp: None,
        supported: Vec::new(),
    });
    let out = h.stanza(&juliet_action(
        "t1",
        "s3",
        "session-terminate",
        "<reason><cancel/></reason>",
    ));
    iq(&out, "result");
    assert_eq!(one_sip(&out), &SipCommand::Cancel { call: h.key(&cid) });
    assert_eq!(h.last_state(), CallState::Ended);
    assert_eq!(h.last_row().end_reason.as_deref(), Some("cancel"));
    // The 487 closes it; nothing more is sent to XMPP.
    let out = h.sip(SipEvent::Rejected {
        call: h.key(&cid),
        status: 487,
        reason: "Request Terminated".into(),
    });
    assert!(stanzas(&out).is_empty());
    assert_eq!(h.last_row().sip_status, Some(487));
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn a_2xx_racing_our_cancel_is_ended_with_bye() {
    let mut h = Harness::new();
    place_call(&mut h, "s4");
    let cid = cid("s4@sip.example.com");
    h.stanza(&juliet_action("t1", "s4", "session-terminate", ""));
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    assert_eq!(
        one_sip(&out),
        &SipCommand::Bye {
            call: h.key(&cid),
            reason: None
        }
    );
    assert!(stanzas(&out).is_empty());
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn final_errors_map_to_reasons_with_the_sip_status() {
    for (status, reason) in [
        (486, "busy"),
        (600, "busy"),
        (603, "decline"),
        (408, "timeout"),
        (488, "incompatible-parameters"),
    ] {
        let mut h = Harness::new();
        place_call(&mut h, "s5");
        let out = h.sip(SipEvent::Rejected {
            call: h.key(&cid("s5@sip.example.com")),
            status,
            reason: "Some Phrase".into(),
        });
        let j = jingle_set(&out);
        assert_eq!(j.attr("action"), Some("session-terminate"));
        assert_eq!(reason_of(j), reason, "for {status}");
        let code = j
            .get_child("reason", NS_JINGLE)
            .and_then(|r| r.get_child("sip-status", "urn:xmpp:stox:sip-status:0"))
            .and_then(|s| s.attr("code"));
        assert_eq!(code, Some(status.to_string().as_str()));
        let row = h.last_row();
        assert_eq!(
            (row.state, row.sip_status),
            (CallState::Ended, Some(status))
        );
        assert_eq!(row.end_reason.as_deref(), Some(reason));
        assert_eq!(row.answered_at, None);
        assert_eq!(h.core.live_calls(), 0);
    }
}

#[test]
fn losing_the_caller_after_the_answer_hangs_up_sip() {
    let mut h = Harness::new();
    place_call(&mut h, "s6");
    let cid = cid("s6@sip.example.com");
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    let accept_id = iq(&out, "set").attr("id").expect("id").to_owned();
    let out = h.iq_response(&accept_id, IqOutcome::Timeout);
    assert_eq!(
        one_sip(&out),
        &SipCommand::Bye {
            call: h.key(&cid),
            reason: None
        }
    );
    assert_eq!(
        h.last_row().end_reason.as_deref(),
        Some("connectivity-error")
    );
}

#[test]
fn answer_without_sdp_is_refused_on_both_sides() {
    let mut h = Harness::new();
    place_call(&mut h, "s7");
    let cid = cid("s7@sip.example.com");
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: None,
        supported: Vec::new(),
    });
    assert_eq!(
        one_sip(&out),
        &SipCommand::Bye {
            call: h.key(&cid),
            reason: None
        }
    );
    assert_eq!(reason_of(jingle_set(&out)), "incompatible-parameters");
    assert_eq!(h.last_state(), CallState::Ended);
}

#[test]
fn calls_answered_before_a_restart_are_resumed_and_can_end_either_way() {
    // First life: an answered call, both directions.
    let mut h = Harness::new();
    place_call(&mut h, "r1");
    h.sip(SipEvent::Answered {
        call: h.key(&cid("r1@sip.example.com")),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    let out = h.sip(incoming_invite(
        "r2@h",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
    h.stanza(&juliet_action("a", "r2", "session-accept", ACCEPT_CONTENT));
    let out = h.sip(SipEvent::Acked {
        call: h.key(&cid("r2@h")),
    });
    assert_eq!(
        h.last_state(),
        CallState::Active,
        "the ACK writes the row again (dialog stored)"
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, stox_call::Output::Persist { .. }))
    );
    let rows: Vec<_> = {
        let mut latest = std::collections::BTreeMap::new();
        for r in &h.rows {
            latest.insert(r.id, r.clone());
        }
        latest.into_values().collect()
    };

    // Second life: a new core resumes both.
    let mut h2 = Harness::new();
    let keyed: Vec<_> = rows
        .into_iter()
        .map(|r| (h.key(&r.sip_call_id), r))
        .collect();
    assert_eq!(h2.core.restore(keyed), 2);
    assert_eq!(h2.core.live_calls(), 2);
    let out = h2.sip(SipEvent::Bye {
        call: h.key(&cid("r1@sip.example.com")),
    });
    let j = jingle_set(&out);
    assert_eq!(
        (j.attr("action"), iq(&out, "set").attr("to")),
        (Some("session-terminate"), Some(JULIET))
    );
    let out = h2.stanza(&juliet_action(
        "t",
        "r2",
        "session-terminate",
        "<reason><success/></reason>",
    ));
    assert_eq!(
        one_sip(&out),
        &SipCommand::Bye {
            call: h.key(&cid("r2@h")),
            reason: None
        }
    );
    assert_eq!(h2.core.live_calls(), 0);
    // New calls get fresh ids after the resumed ones.
    h2.stanza(&session_initiate("r3"));
    assert!(h2.last_row().id > 2);
}
