//! Streams added and removed by the XMPP user (XEP-0166 §7.2 content-add,
//! content-remove) ⇄ re-INVITEs (RFC 3264 §8.1, §8.2), through the core.

mod harness;

use harness::*;
use stox_call::{Fault, OfferMethod, Output, SipCommand, SipEvent};
use stox_mapping::sdp::session::{origin_version, sections};

const VIDEO: &str = "<content creator='initiator' name='video'>\
   <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
     <payload-type id='96' name='VP8' clockrate='90000'/>\
   </description>\
   <transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'>\
     <candidate component='1' generation='0' id='v1' ip='127.0.0.1' port='40002'/>\
   </transport>\
 </content>";

const ANSWER_WITH_VIDEO: &str = "v=0\r\no=romeo 456 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=sendrecv\r\nm=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\n";

fn answered(h: &mut Harness, sid: &str) -> (stox_mapping::ids::CallId, String) {
    let out = h.stanza(&session_initiate(sid));
    let SipCommand::Invite { sdp, .. } = one_sip(&out).clone() else {
        panic!("INVITE: {out:#?}")
    };
    let cid = cid(&format!("{sid}@sip.example.com"));
    h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    (cid, sdp)
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

fn jingle_action<'a>(out: &'a [Output], action: &str) -> &'a minidom::Element {
    stanzas(out)
        .into_iter()
        .filter_map(|s| s.get_child("jingle", NS_JINGLE))
        .find(|j| j.attr("action") == Some(action))
        .unwrap_or_else(|| panic!("no {action} in {out:#?}"))
}

#[test]
fn xep0166_7_2_1_content_add_is_offered_at_the_end_and_accepted_with_the_answer() {
    let mut h = Harness::new();
    let (cid, offer) = answered(&mut h, "c1");
    let out = h.stanza(&juliet_action("add", "c1", "content-add", VIDEO));
    iq(&out, "result");
    let added = reoffer(&out);
    let (_, before) = sections(&offer);
    let (_, after) = sections(&added);
    assert_eq!(after.len(), 2, "{added}");
    assert_eq!(
        after[0], before[0],
        "RFC 3264 §8: the audio stream unchanged"
    );
    assert!(
        after[1].starts_with("m=video 40002 RTP/AVP 96\r\n"),
        "{added}"
    );
    assert!(after[1].contains("a=mid:video"), "{added}");
    assert_eq!(
        origin_version(&added),
        origin_version(&offer).map(|v| v + 1)
    );

    let out = h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_WITH_VIDEO.into()),
    });
    let accept = jingle_action(&out, "content-accept");
    let content = accept.get_child("content", NS_JINGLE).expect("content");
    assert_eq!(
        (content.attr("name"), content.attr("creator")),
        (Some("video"), Some("initiator"))
    );
    assert_eq!(payload_types_of(content), ["96"]);
    let row = h.last_row();
    assert_eq!(row.local_sdp.as_deref(), Some(added.as_str()));
    assert_eq!(row.remote_sdp.as_deref(), Some(ANSWER_WITH_VIDEO));

    // … and removed again: port 0.
    let out = h.stanza(&juliet_action(
        "rm",
        "c1",
        "content-remove",
        "<content creator='initiator' name='video'/>",
    ));
    iq(&out, "result");
    let removed = reoffer(&out);
    assert!(removed.contains("m=video 0 RTP/AVP 96\r\n"), "{removed}");
    assert!(removed.contains("m=audio 40000 "), "{removed}");
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_WITH_VIDEO.replace("m=video 6002", "m=video 0")),
    });
    assert_eq!(h.core.live_calls(), 1);
    assert_eq!(h.last_row().local_sdp.as_deref(), Some(removed.as_str()));
}

fn payload_types_of(content: &minidom::Element) -> Vec<String> {
    content
        .get_child("description", "urn:xmpp:jingle:apps:rtp:1")
        .map(|d| {
            d.children()
                .filter_map(|p| p.attr("id").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn xep0166_7_2_2_a_declined_or_refused_stream_gets_content_reject() {
    // Declined in the answer (port 0) …
    let mut h = Harness::new();
    let (cid, _) = answered(&mut h, "c2");
    reoffer(&h.stanza(&juliet_action("add", "c2", "content-add", VIDEO)));
    let out = h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_WITH_VIDEO.replace("m=video 6002", "m=video 0")),
    });
    let reject = jingle_action(&out, "content-reject");
    assert_eq!(reason_of(reject), "failed-application");
    // … or the whole re-INVITE refused: the session is as it was.
    let mut h = Harness::new();
    let (cid, offer) = answered(&mut h, "c3");
    reoffer(&h.stanza(&juliet_action("add", "c3", "content-add", VIDEO)));
    let out = h.sip(SipEvent::ReofferRefused {
        call: h.key(&cid),
        status: 488,
        reason: "Not Acceptable Here".into(),
    });
    jingle_action(&out, "content-reject");
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Fault {
                fault: Fault::ChangeRefused {
                    change: "content-add",
                    status: 488,
                    ..
                },
                ..
            }
        )),
        "{out:#?}"
    );
    assert_eq!(h.last_row().local_sdp.as_deref(), Some(offer.as_str()));
    assert_eq!(h.core.live_calls(), 1);
}

#[test]
fn xep0166_7_2_16_a_content_action_while_our_offer_is_in_flight_gets_tie_break() {
    let mut h = Harness::new();
    answered(&mut h, "c4");
    h.stanza(&juliet_action(
        "hold",
        "c4",
        "session-info",
        "<hold xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>",
    ));
    let out = h.stanza(&juliet_action("add", "c4", "content-add", VIDEO));
    let (cond, app) = error_of(iq(&out, "error"));
    assert_eq!(
        (cond.as_str(), app.as_deref()),
        ("conflict", Some("tie-break"))
    );
    assert!(sip_commands(&out).is_empty());
}

#[test]
fn xep0166_7_2_content_actions_that_name_nothing_are_bad_requests() {
    let mut h = Harness::new();
    answered(&mut h, "c5");
    let audio_again = VIDEO.replace("name='video'", "name='audio'");
    for (action, inner) in [
        ("content-add", audio_again.as_str()),
        ("content-add", ""),
        (
            "content-remove",
            "<content creator='initiator' name='nope'/>",
        ),
    ] {
        let out = h.stanza(&juliet_action("x", "c5", action, inner));
        let (cond, _) = error_of(iq(&out, "error"));
        assert_eq!(cond, "bad-request", "{action} {inner}");
        assert!(sip_commands(&out).is_empty());
    }
}

#[test]
fn xep0166_7_2_6_removing_the_last_content_ends_the_session() {
    let mut h = Harness::new();
    let (cid, _) = answered(&mut h, "c6");
    let out = h.stanza(&juliet_action(
        "rm",
        "c6",
        "content-remove",
        "<content creator='initiator' name='audio'/>",
    ));
    iq(&out, "result");
    assert_eq!(
        sip_commands(&out),
        [&SipCommand::Bye {
            call: h.key(&cid),
            reason: None
        }]
    );
    assert_eq!(h.core.live_calls(), 0);
}

// ---- streams the SIP peer adds or removes ----------------------------------

const OFFER_WITH_VIDEO: &str = "v=0\r\no=romeo 123 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n\
m=video 6002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\n";

const JULIET_VIDEO: &str = "<content creator='initiator' name='video'>\
   <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
     <payload-type id='96' name='VP8' clockrate='90000'/>\
   </description>\
   <transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'>\
     <candidate component='1' generation='0' id='jv' ip='127.0.0.1' port='42002'/>\
   </transport>\
 </content>";

/// A SIP → XMPP call, answered; returns its Call-ID and our answer.
fn answered_from_sip(h: &mut Harness, call_id: &str) -> (stox_mapping::ids::CallId, String) {
    let out = h.sip(incoming_invite(
        call_id,
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, stox_call::IqOutcome::Result);
    let sid = call_id.split('@').next().expect("sid");
    let out = h.stanza(&juliet_action("acc", sid, "session-accept", ACCEPT_CONTENT));
    let SipCommand::Respond { sdp: Some(sdp), .. } = one_sip(&out).clone() else {
        panic!("200 with SDP: {out:#?}")
    };
    let cid = cid(call_id);
    h.sip(SipEvent::Acked { call: h.key(&cid) });
    (cid, sdp)
}

fn reply(out: &[Output]) -> (u16, Option<String>) {
    match one_sip(out) {
        SipCommand::Reply { status, sdp, .. } => (*status, sdp.clone()),
        other => panic!("a reply expected, got {other:?}"),
    }
}

#[test]
fn rfc3264_8_1_a_sip_re_invite_adding_video_waits_for_content_accept() {
    let mut h = Harness::new();
    let (cid, ours) = answered_from_sip(&mut h, "s1@h");
    let (_, out) = h.request(
        &cid,
        "INVITE",
        Some("application/sdp"),
        Some(OFFER_WITH_VIDEO),
    );
    assert!(
        sip_commands(&out).is_empty(),
        "no answer before the XMPP user's"
    );
    let add = jingle_action(&out, "content-add");
    let content = add.get_child("content", NS_JINGLE).expect("content");
    assert_eq!(content.attr("creator"), Some("initiator"));
    let name = content.attr("name").expect("name").to_owned();
    assert_eq!(payload_types_of(content), ["96"]);

    let out = h.stanza(&juliet_action(
        "ca",
        "s1",
        "content-accept",
        &JULIET_VIDEO.replace("name='video'", &format!("name='{name}'")),
    ));
    iq(&out, "result");
    let (status, answer) = reply(&out);
    let answer = answer.expect("SDP");
    assert_eq!(status, 200);
    let (_, before) = sections(&ours);
    let (_, after) = sections(&answer);
    assert_eq!(after.len(), 2, "{answer}");
    assert_eq!(after[0], before[0], "the audio answer unchanged");
    assert!(
        after[1].starts_with("m=video 42002 RTP/AVP 96\r\n"),
        "{answer}"
    );
    assert_eq!(
        origin_version(&answer),
        origin_version(&ours).map(|v| v + 1)
    );
    assert_eq!(h.last_row().remote_sdp.as_deref(), Some(OFFER_WITH_VIDEO));

    // The SIP peer removes it again (port 0): content-remove to XMPP.
    let removal = OFFER_WITH_VIDEO
        .replace("m=video 6002", "m=video 0")
        .replace("123 2", "123 3");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&removal));
    let remove = jingle_action(&out, "content-remove");
    assert_eq!(
        remove
            .get_child("content", NS_JINGLE)
            .and_then(|c| c.attr("name")),
        Some(name.as_str())
    );
    let (status, answer) = reply(&out);
    assert_eq!(status, 200);
    assert!(answer.expect("SDP").contains("m=video 0 RTP/AVP 96\r\n"));
}

#[test]
fn rfc3264_8_1_streams_the_xmpp_user_rejects_or_ignores_are_answered_port_0() {
    for how in ["reject", "timeout", "error"] {
        let mut h = Harness::new();
        let (cid, _) = answered_from_sip(&mut h, "s2@h");
        let (_, out) = h.request(
            &cid,
            "INVITE",
            Some("application/sdp"),
            Some(OFFER_WITH_VIDEO),
        );
        let add_id = iq(&out, "set").attr("id").expect("id").to_owned();
        let out = match how {
            "reject" => h.stanza(&juliet_action(
                "cr",
                "s2",
                "content-reject",
                "<content creator='initiator' name='video'/>",
            )),
            "timeout" => {
                h.advance(15_000);
                h.fire_timers()
            }
            _ => h.iq_response(
                &add_id,
                stox_call::IqOutcome::Error(
                    stox_mapping::status::ErrorCondition::FeatureNotImplemented,
                ),
            ),
        };
        let (status, answer) = reply(&out);
        assert_eq!(status, 200, "{how}");
        let answer = answer.expect("SDP");
        assert!(answer.contains("m=video 0 "), "{how}: {answer}");
        assert!(answer.contains("m=audio 42000 "), "{how}: {answer}");
        assert_eq!(h.core.live_calls(), 1, "{how}");
    }
}

#[test]
fn xep0166_7_2_16_a_content_add_while_the_sip_peer_adds_gets_tie_break() {
    let mut h = Harness::new();
    let (cid, _) = answered_from_sip(&mut h, "s3@h");
    h.request(
        &cid,
        "INVITE",
        Some("application/sdp"),
        Some(OFFER_WITH_VIDEO),
    );
    let out = h.stanza(&juliet_action(
        "add",
        "s3",
        "content-add",
        VIDEO.replace("video", "cam").as_str(),
    ));
    let (cond, app) = error_of(iq(&out, "error"));
    assert_eq!(
        (cond.as_str(), app.as_deref()),
        ("conflict", Some("tie-break"))
    );
}
