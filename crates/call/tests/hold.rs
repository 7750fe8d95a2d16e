//! Hold and resume both ways (RFC 3264 §8.4 ⇄ XEP-0167 §7), glare (RFC 3261
//! §14.1) and a re-INVITE's failures (RFC 5057), through the core on a
//! virtual clock.

mod harness;

use harness::*;
use stox_call::{
    CallState, Fault, Hold, IqOutcome, OfferMethod, Output, SipCommand, SipEvent, TimerKey,
};
use stox_mapping::sdp::session::{MediaDirection, origin_version, stream_directions};

const NS_RTP_INFO: &str = "urn:xmpp:jingle:apps:rtp:info:1";

/// A SIP → XMPP call, answered and ACKed; returns its Call-ID and our SDP.
fn answered_from_sip(h: &mut Harness, call_id: &str) -> (stox_mapping::ids::CallId, String) {
    let out = h.sip(incoming_invite(
        call_id,
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
    let sid = call_id.split('@').next().expect("sid");
    let out = h.stanza(&juliet_action("acc", sid, "session-accept", ACCEPT_CONTENT));
    let SipCommand::Respond { sdp: Some(sdp), .. } = one_sip(&out).clone() else {
        panic!("200 with SDP: {out:#?}")
    };
    let cid = cid(call_id);
    h.sip(SipEvent::Acked { call: h.key(&cid) });
    (cid, sdp)
}

/// An XMPP → SIP call, answered; returns its Call-ID and our offer.
fn answered_from_xmpp(h: &mut Harness, sid: &str) -> (stox_mapping::ids::CallId, String) {
    let out = h.stanza(&session_initiate(sid));
    let SipCommand::Invite { sdp, .. } = one_sip(&out).clone() else {
        panic!("INVITE: {out:#?}")
    };
    let cid = cid(&format!("{sid}@sip.example.com"));
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    assert_eq!(jingle_set(&out).attr("action"), Some("session-accept"));
    (cid, sdp)
}

fn reply(out: &[Output]) -> (u16, Option<String>) {
    match one_sip(out) {
        SipCommand::Reply { status, sdp, .. } => (*status, sdp.clone()),
        other => panic!("a reply expected, got {other:?}"),
    }
}

fn info_sent(out: &[Output]) -> Vec<String> {
    stanzas(out)
        .into_iter()
        .filter_map(|s| s.get_child("jingle", NS_JINGLE))
        .filter(|j| j.attr("action") == Some("session-info"))
        .flat_map(|j| {
            j.children()
                .filter(|c| c.ns() == NS_RTP_INFO)
                .map(|c| c.name().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn dirs(sdp: &str) -> Vec<Option<MediaDirection>> {
    stream_directions(sdp).expect("our SDP parses")
}

fn reoffer(out: &[Output]) -> String {
    match one_sip(out) {
        SipCommand::Reoffer {
            method: OfferMethod::Invite,
            sdp: Some(sdp),
            ..
        } => sdp.clone(),
        other => panic!("a re-INVITE expected, got {other:?}"),
    }
}

fn session_info(h: &mut Harness, sid: &str, what: &str) -> Vec<Output> {
    let out = h.stanza(&juliet_action(
        &format!("si-{what}"),
        sid,
        "session-info",
        &format!("<{what} xmlns='{NS_RTP_INFO}'/>"),
    ));
    iq(&out, "result");
    out
}

#[test]
fn rfc3264_8_4_a_sip_hold_and_resume_reach_xmpp_as_hold_and_active() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, ours) = answered_from_sip(&mut h, "h1@h");
    let v = origin_version(&ours).expect("o= version");
    let hold = OFFER_SDP
        .replace("o=romeo 123 1 ", "o=romeo 123 2 ")
        .replace("a=sendrecv", "a=sendonly");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&hold));
    let (status, answer) = reply(&out);
    let answer = answer.expect("an SDP answer");
    assert_eq!(status, 200);
    assert_eq!(dirs(&answer), [Some(RecvOnly)]);
    assert_eq!(origin_version(&answer), Some(v + 1), "RFC 3264 §8: one up");
    assert_eq!(info_sent(&out), ["hold"]);
    assert_eq!(
        h.last_row().hold,
        Hold {
            xmpp: false,
            sip: true
        }
    );
    assert_eq!(h.last_row().local_sdp.as_deref(), Some(answer.as_str()));

    // The same hold again (a refresh while held): same answer, same version,
    // nothing to XMPP.
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&hold));
    assert_eq!(reply(&out).1.as_deref(), Some(answer.as_str()));
    assert!(info_sent(&out).is_empty());

    // Resumed by an UPDATE (RFC 3311) with sendrecv.
    let (_, out) = h.request(&cid, "UPDATE", Some("application/sdp"), Some(OFFER_SDP));
    let resumed = reply(&out).1.expect("an SDP answer");
    assert_eq!(dirs(&resumed), [Some(SendRecv)]);
    assert_eq!(origin_version(&resumed), Some(v + 2));
    assert_eq!(info_sent(&out), ["active"]);
    assert_eq!(h.last_row().hold, Hold::default());
    assert_eq!(h.last_state(), CallState::Active);
}

#[test]
fn rfc3264_8_3_2_a_hold_offering_only_the_codecs_in_use_is_a_hold() {
    // baresip's hold: its re-INVITE offers only the formats of our answer.
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, _) = answered_from_sip(&mut h, "h9@h");
    let narrowed = OFFER_SDP
        .replace("o=romeo 123 1 ", "o=romeo 123 2 ")
        .replace("RTP/AVP 0 8 101", "RTP/AVP 8 101")
        .replace("a=rtpmap:0 PCMU/8000\r\n", "");
    let hold = narrowed.replace("a=sendrecv", "a=sendonly");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&hold));
    let (status, answer) = reply(&out);
    assert_eq!(status, 200);
    assert_eq!(dirs(&answer.expect("an SDP answer")), [Some(RecvOnly)]);
    assert_eq!(info_sent(&out), ["hold"]);
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&narrowed));
    assert_eq!(dirs(&reply(&out).1.expect("answer")), [Some(SendRecv)]);
    assert_eq!(info_sent(&out), ["active"]);
    // Dropping the codec in use is a codec change: refused, nothing told.
    let pcmu_only = OFFER_SDP
        .replace("RTP/AVP 0 8 101", "RTP/AVP 0 101")
        .replace("a=rtpmap:8 PCMA/8000\r\n", "");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&pcmu_only));
    assert_eq!(reply(&out).0, 488);
    assert!(info_sent(&out).is_empty());
    assert_eq!(h.last_row().hold, Hold::default());
}

#[test]
fn rfc3264_8_4_the_old_hold_with_a_null_address_and_inactive_are_holds_too() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, _) = answered_from_xmpp(&mut h, "h2");
    let null = ANSWER_SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&null));
    assert_eq!(dirs(&reply(&out).1.expect("answer")), [Some(RecvOnly)]);
    assert_eq!(info_sent(&out), ["hold"]);
    let inactive = ANSWER_SDP.replace("a=sendrecv", "a=inactive");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&inactive));
    assert_eq!(dirs(&reply(&out).1.expect("answer")), [Some(Inactive)]);
    assert!(info_sent(&out).is_empty(), "still on hold");
    assert_eq!(
        h.last_row().hold,
        Hold {
            xmpp: false,
            sip: true
        }
    );
}

#[test]
fn xep0167_7_an_xmpp_hold_and_resume_become_re_invites() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, offer) = answered_from_xmpp(&mut h, "h3");
    let v = origin_version(&offer).expect("version");
    let out = session_info(&mut h, "h3", "hold");
    let held = reoffer(&out);
    assert_eq!(dirs(&held), [Some(SendOnly)]);
    assert_eq!(origin_version(&held), Some(v + 1));
    assert_eq!(h.last_row().hold, Hold::default(), "not before the answer");
    let answer = ANSWER_SDP.replace("a=sendrecv", "a=recvonly");
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(answer.clone()),
    });
    let row = h.last_row();
    assert_eq!(
        row.hold,
        Hold {
            xmpp: true,
            sip: false
        }
    );
    assert_eq!(row.local_sdp.as_deref(), Some(held.as_str()));
    assert_eq!(row.remote_sdp.as_deref(), Some(answer.as_str()));

    // A second <hold/> changes nothing; <active/> resumes with sendrecv.
    let out = session_info(&mut h, "h3", "hold");
    assert!(sip_commands(&out).is_empty());
    let out = session_info(&mut h, "h3", "active");
    let resumed = reoffer(&out);
    assert_eq!(dirs(&resumed), [Some(SendRecv)]);
    assert_eq!(origin_version(&resumed), Some(v + 2));
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
    });
    assert_eq!(h.last_row().hold, Hold::default());
    // Mute is acknowledged and not mapped.
    let out = session_info(&mut h, "h3", "mute");
    assert!(sip_commands(&out).is_empty());
}

#[test]
fn rfc3264_8_4_mutual_hold_answers_inactive() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, _) = answered_from_sip(&mut h, "h4@h");
    let out = session_info(&mut h, "h4", "hold");
    reoffer(&out);
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(OFFER_SDP.replace("a=sendrecv", "a=recvonly")),
    });
    let hold = OFFER_SDP.replace("a=sendrecv", "a=sendonly");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&hold));
    assert_eq!(dirs(&reply(&out).1.expect("answer")), [Some(Inactive)]);
    assert_eq!(
        h.last_row().hold,
        Hold {
            xmpp: true,
            sip: true
        }
    );
}

#[test]
fn rfc3264_4_one_offer_at_a_time_the_latest_wish_follows_the_answer() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, _) = answered_from_xmpp(&mut h, "h5");
    reoffer(&session_info(&mut h, "h5", "hold"));
    let out = session_info(&mut h, "h5", "active");
    assert!(sip_commands(&out).is_empty(), "no second offer in flight");
    let out = h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.replace("a=sendrecv", "a=recvonly")),
    });
    assert_eq!(dirs(&reoffer(&out)), [Some(SendRecv)], "then the resume");
}

#[test]
fn rfc3261_14_1_a_491_is_offered_again_after_the_glare_wait() {
    // We placed the call (own the Call-ID): 2.1–4 s.
    let mut h = Harness::new();
    let (cid, _) = answered_from_xmpp(&mut h, "h6");
    let first = reoffer(&session_info(&mut h, "h6", "hold"));
    h.sip(SipEvent::ReofferRefused {
        call: h.key(&cid),
        status: 491,
        reason: "Request Pending".into(),
    });
    let (key, at) = *h.timers.last().expect("a retry timer");
    assert_eq!(
        key,
        TimerKey::ReofferRetry {
            call: h.last_row().id
        }
    );
    let wait = at.0 - h.now.0;
    assert!(
        (2_100..=4_000).contains(&wait) && wait.is_multiple_of(10),
        "{wait} ms"
    );
    h.advance(wait);
    let out = h.fire_timers();
    assert_eq!(reoffer(&out), first, "the same offer again");
    // The peer placed the call: 0–2 s.
    let mut h = Harness::new();
    let (cid, _) = answered_from_sip(&mut h, "h7@h");
    reoffer(&session_info(&mut h, "h7", "hold"));
    h.sip(SipEvent::ReofferRefused {
        call: h.key(&cid),
        status: 491,
        reason: "Request Pending".into(),
    });
    let (_, at) = *h.timers.last().expect("a retry timer");
    assert!(at.0 - h.now.0 <= 2_000);
}

#[test]
fn rfc5057_5_1_a_481_or_408_to_a_re_invite_ends_the_call_and_others_change_nothing() {
    for (status, bye) in [(481, false), (408, true)] {
        let mut h = Harness::new();
        let (cid, _) = answered_from_xmpp(&mut h, "h8");
        reoffer(&session_info(&mut h, "h8", "hold"));
        let call = h.key(&cid);
        let out = h.sip(SipEvent::ReofferRefused {
            call,
            status,
            reason: "x".into(),
        });
        assert_eq!(reason_of(jingle_set(&out)), "connectivity-error");
        assert_eq!(
            sip_commands(&out).contains(&&SipCommand::Bye { call, reason: None }),
            bye,
            "{status}"
        );
        assert_eq!(h.core.live_calls(), 0);
    }
    let mut h = Harness::new();
    let (cid, offer) = answered_from_xmpp(&mut h, "h9");
    reoffer(&session_info(&mut h, "h9", "hold"));
    let out = h.sip(SipEvent::ReofferRefused {
        call: h.key(&cid),
        status: 488,
        reason: "Not Acceptable Here".into(),
    });
    assert!(
        matches!(
            out.as_slice(),
            [Output::Fault {
                fault: Fault::ChangeRefused {
                    change: "hold",
                    status: 488,
                    ..
                },
                ..
            }]
        ),
        "{out:#?}"
    );
    assert_eq!(h.last_row().hold, Hold::default());
    assert_eq!(h.last_row().local_sdp.as_deref(), Some(offer.as_str()));
    assert_eq!(h.core.live_calls(), 1);
}

#[test]
fn a_held_call_keeps_its_hold_across_a_restart() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, _) = answered_from_sip(&mut h, "h10@h");
    let hold = OFFER_SDP.replace("a=sendrecv", "a=sendonly");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&hold));
    let answer = reply(&out).1.expect("answer");
    let row = h.last_row().clone();
    let mut h2 = Harness::new();
    assert_eq!(h2.core.restore(vec![(h.key(&cid), row)]), 1);
    let (_, out) = h2.request(&cid, "INVITE", Some("application/sdp"), Some(&hold));
    assert_eq!(
        reply(&out).1.as_deref(),
        Some(answer.as_str()),
        "still held"
    );
    let (_, out) = h2.request(&cid, "INVITE", Some("application/sdp"), Some(OFFER_SDP));
    assert_eq!(dirs(&reply(&out).1.expect("answer")), [Some(SendRecv)]);
    assert_eq!(info_sent(&out), ["active"]);
}
