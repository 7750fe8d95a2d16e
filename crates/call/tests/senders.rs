//! Who sends on each stream: XEP-0166 §7.2.4 content-modify `senders` ⇄
//! RFC 3264 §8.4 per-stream directions, both ways, through the core.

mod harness;

use harness::*;
use stox_call::{Hold, IqOutcome, OfferMethod, Output, SipCommand, SipEvent};
use stox_mapping::sdp::session::{MediaDirection, origin_version, stream_directions};

const NS_RTP_INFO: &str = "urn:xmpp:jingle:apps:rtp:info:1";

fn answered_from_xmpp(h: &mut Harness, sid: &str) -> (stox_mapping::ids::CallId, String) {
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

/// Juliet's content-modify of the audio content.
fn content_modify(h: &mut Harness, id: &str, sid: &str, senders: &str) -> Vec<Output> {
    let content = format!("<content creator='initiator' name='audio' senders='{senders}'/>");
    h.stanza(&juliet_action(id, sid, "content-modify", &content))
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

fn dirs(sdp: &str) -> Vec<Option<MediaDirection>> {
    stream_directions(sdp).expect("SDP parses")
}

/// The `senders` of each content of the content-modify sent, if any.
fn modified(out: &[Output]) -> Vec<(String, String)> {
    stanzas(out)
        .into_iter()
        .filter_map(|s| s.get_child("jingle", NS_JINGLE))
        .filter(|j| j.attr("action") == Some("content-modify"))
        .flat_map(|j| {
            j.children()
                .filter(|c| c.name() == "content")
                .map(|c| {
                    let name = c.attr("name").unwrap_or_default().to_owned();
                    (name, c.attr("senders").unwrap_or("both").to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn infos(out: &[Output]) -> usize {
    stanzas(out)
        .into_iter()
        .filter_map(|s| s.get_child("jingle", NS_JINGLE))
        .filter(|j| j.attr("action") == Some("session-info"))
        .count()
}

#[test]
fn xep0166_7_2_4_content_modify_senders_becomes_a_re_invite_and_outlives_a_hold() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let (cid, offer) = answered_from_xmpp(&mut h, "s1");
    let v = origin_version(&offer).expect("version");

    // Juliet (the initiator) only sends from now on.
    let out = content_modify(&mut h, "m1", "s1", "initiator");
    iq(&out, "result");
    let one_way = reoffer(&out);
    assert_eq!(dirs(&one_way), [Some(SendOnly)]);
    assert_eq!(origin_version(&one_way), Some(v + 1));
    let answer = ANSWER_SDP.replace("a=sendrecv", "a=recvonly");
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(answer),
    });
    assert_eq!(h.last_row().local_sdp.as_deref(), Some(one_way.as_str()));

    // A hold and a resume come back to sendonly, not sendrecv.
    let hold = format!("<hold xmlns='{NS_RTP_INFO}'/>");
    let out = h.stanza(&juliet_action("h", "s1", "session-info", &hold));
    assert_eq!(dirs(&reoffer(&out)), [Some(SendOnly)]);
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.replace("a=sendrecv", "a=recvonly")),
    });
    let active = format!("<active xmlns='{NS_RTP_INFO}'/>");
    let out = h.stanza(&juliet_action("a", "s1", "session-info", &active));
    assert_eq!(dirs(&reoffer(&out)), [Some(SendOnly)]);
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.replace("a=sendrecv", "a=recvonly")),
    });

    // Back to both; and none is inactive.
    let out = content_modify(&mut h, "m2", "s1", "both");
    assert_eq!(dirs(&reoffer(&out)), [Some(SendRecv)]);
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
    });
    let out = content_modify(&mut h, "m3", "s1", "none");
    assert_eq!(dirs(&reoffer(&out)), [Some(Inactive)]);
}

#[test]
fn xep0166_7_2_4_content_modify_refusals_are_specific() {
    let mut h = Harness::new();
    let (cid, _) = answered_from_xmpp(&mut h, "s2");
    let unknown = "<content creator='initiator' name='video' senders='none'/>";
    let out = h.stanza(&juliet_action("u", "s2", "content-modify", unknown));
    assert_eq!(error_of(iq(&out, "error")).0, "bad-request");
    assert!(sip_commands(&out).is_empty());

    // Nothing to change: result, no re-INVITE.
    let out = content_modify(&mut h, "same", "s2", "both");
    iq(&out, "result");
    assert!(sip_commands(&out).is_empty());

    // One offer at a time: a second change while ours is in flight.
    let out = content_modify(&mut h, "m1", "s2", "initiator");
    reoffer(&out);
    let out = content_modify(&mut h, "m2", "s2", "none");
    assert_eq!(
        error_of(iq(&out, "error")),
        ("conflict".into(), Some("tie-break".into()))
    );
    // Refused by the SIP side: the session stays as it was.
    h.sip(SipEvent::ReofferRefused {
        call: h.key(&cid),
        status: 488,
        reason: "Not Acceptable Here".into(),
    });
    let out = content_modify(&mut h, "m3", "s2", "both");
    iq(&out, "result");
    assert!(sip_commands(&out).is_empty(), "still both: {out:#?}");
}

#[test]
fn rfc3264_8_4_a_one_way_sip_offer_is_content_modify_not_hold() {
    use MediaDirection::*;
    let mut h = Harness::new();
    let cid = answered_from_sip(&mut h, "s3@h");
    // Romeo (the initiator) stops sending: he only receives.
    let one_way = OFFER_SDP
        .replace("o=romeo 123 1 ", "o=romeo 123 2 ")
        .replace("a=sendrecv", "a=recvonly");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&one_way));
    let SipCommand::Reply {
        status: 200,
        sdp: Some(answer),
        ..
    } = one_sip(&out).clone()
    else {
        panic!("200 with SDP: {out:#?}")
    };
    assert_eq!(dirs(&answer), [Some(SendOnly)]);
    assert_eq!(modified(&out), [("audio".into(), "responder".into())]);
    assert_eq!(infos(&out), 0, "not a hold");
    assert_eq!(h.last_row().hold, Hold::default());

    // The same offer again (a refresh): nothing new to tell.
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&one_way));
    assert!(modified(&out).is_empty());

    // Both again.
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(OFFER_SDP));
    assert_eq!(modified(&out), [("audio".into(), "both".into())]);

    // A full hold stays session-info <hold/>; its resume is <active/> only.
    let hold = OFFER_SDP.replace("a=sendrecv", "a=sendonly");
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(&hold));
    assert!(modified(&out).is_empty());
    assert_eq!(infos(&out), 1);
    let (_, out) = h.request(&cid, "INVITE", Some("application/sdp"), Some(OFFER_SDP));
    assert!(modified(&out).is_empty());
    assert_eq!(infos(&out), 1);
}
