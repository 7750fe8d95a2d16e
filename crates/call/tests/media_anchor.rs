//! Media anchored by rtpengine (docs/media.md): every SDP of an anchored
//! call passes through an NG `offer` / `answer`, in order, and the call's
//! end deletes the session; rtpengine failing ends or refuses what it must.

mod harness;

use harness::*;
use stox_call::media::{MediaMode, MediaPolicy, PeerMedia, SipMedia};
use stox_call::{
    CallState, EndedBy, Input, IqOutcome, MediaReply, MediaRequest, Output, SipCommand, SipEvent,
};

const RELAY: &str = "127.0.0.1:2223";

/// What rtpengine gives the SIP side (plain RTP on its port).
const RELAY_SIP_SDP: &str = "v=0\r\no=juliet 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 31000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=rtcp:31001\r\n";

/// What rtpengine gives the XMPP side (ICE + DTLS-SRTP on its port), as
/// rtpengine 10.5 writes it.
const RELAY_XMPP_SDP: &str = "v=0\r\no=romeo 123 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 31028 UDP/TLS/RTP/SAVPF 0 8 101\r\na=mid:1\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\na=rtcp:31028\r\n\
a=rtcp-mux\r\na=setup:actpass\r\n\
a=fingerprint:sha-256 F9:CA:1B:ED:05:06:17:BD:CB:A5:31:B7:A6:0C:AC:9B:51:2B:9D:22:65:71:76:BB:91:80:BE:0E:98:97:75:23\r\n\
a=ice-ufrag:q3YAHdmo\r\na=ice-pwd:GGjmKGRqU7TWdsmJcXu4stroz7\r\n\
a=candidate:31gpauRlSFb9JXTG 1 UDP 2130706431 127.0.0.1 31028 typ host\r\n";

/// Juliet's answer to rtpengine's ICE + DTLS offer (as a WebRTC client
/// sends it).
const ACCEPT_ICE: &str = "<content creator='initiator' name='1'>\
   <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
     <payload-type id='0' name='PCMU' clockrate='8000'/>\
     <rtcp-mux/>\
   </description>\
   <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='jul1' pwd='julietjulietjulietjuliet'>\
     <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>\
02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2</fingerprint>\
     <candidate component='1' foundation='1' generation='0' id='j1' ip='127.0.0.1' network='0' \
                port='42000' priority='2122260223' protocol='udp' type='host'/>\
   </transport>\
 </content>";

fn anchored(mode: MediaMode) -> Harness {
    Harness::with_config(stox_call::CoreConfig {
        media: MediaPolicy {
            default: mode,
            peers: vec![PeerMedia {
                name: "webrtc".into(),
                sources: vec!["127.0.0.9/32".parse().expect("net")],
                mode: MediaMode::Passthrough,
            }],
        },
        ..config()
    })
}

fn rtpengine() -> Harness {
    anchored(MediaMode::Rtpengine(SipMedia::Rtp))
}

fn media_requests(out: &[Output]) -> Vec<&MediaRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn one_media(out: &[Output]) -> MediaRequest {
    let reqs = media_requests(out);
    assert_eq!(reqs.len(), 1, "one NG request in {out:?}");
    reqs[0].clone()
}

fn option<'a>(req: &'a MediaRequest, key: &str) -> Option<&'a str> {
    req.request
        .options
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn ok(h: &mut Harness, req: &MediaRequest, sdp: Option<&str>) -> Vec<Output> {
    let body = match sdp {
        Some(sdp) => format!("d6:result2:ok3:sdp{}:{}e", sdp.len(), sdp),
        None => "d6:result2:oke".to_owned(),
    };
    let reply = stox_rtpengine::decode(format!("c {body}").as_bytes()).expect("reply");
    h.input(Input::Media {
        ticket: req.ticket,
        result: Ok(MediaReply {
            relay: RELAY.into(),
            reply,
        }),
    })
}

fn fail(h: &mut Harness, req: &MediaRequest) -> Vec<Output> {
    h.input(Input::Media {
        ticket: req.ticket,
        result: Err("rtpengine did not answer offer (3 attempts)".into()),
    })
}

/// Juliet calls Romeo; rtpengine rewrites the offer; returns the INVITE.
fn place_anchored_call(h: &mut Harness, sid: &str) -> SipCommand {
    let out = h.stanza(&session_initiate(sid));
    iq(&out, "result");
    assert!(sip_commands(&out).is_empty(), "no INVITE before rtpengine");
    let offer = one_media(&out);
    assert_eq!(
        offer.relay, None,
        "the first request tries the relays in order"
    );
    assert_eq!(offer.request.command, "offer");
    assert_eq!(offer.request.from_tag.as_deref(), Some("xmpp"));
    assert_eq!(
        offer.request.call_id.as_deref(),
        Some(format!("{sid}@sip.example.com").as_str())
    );
    assert_eq!(option(&offer, "transport-protocol"), Some("RTP/AVP"));
    assert!(
        offer
            .request
            .sdp
            .as_deref()
            .is_some_and(|s| s.contains("m=audio 40000")),
        "the mapped offer goes to rtpengine"
    );
    let out = ok(h, &offer, Some(RELAY_SIP_SDP));
    assert_eq!(h.last_row().media_relay.as_deref(), Some(RELAY));
    let invite = one_sip(&out).clone();
    let SipCommand::Invite { sdp, .. } = &invite else {
        panic!("INVITE expected: {out:?}")
    };
    assert_eq!(sdp, RELAY_SIP_SDP, "the INVITE carries rtpengine's SDP");
    invite
}

#[test]
fn xmpp_to_sip_offer_answer_and_delete_go_through_rtpengine() {
    let mut h = rtpengine();
    place_anchored_call(&mut h, "m1");
    let key = h.key(&cid("m1@sip.example.com"));

    // The phone's plain-RTP answer goes to rtpengine before the XMPP user.
    let out = h.sip(SipEvent::Answered {
        call: key,
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    assert!(stanzas(&out).is_empty(), "nothing to XMPP before rtpengine");
    let answer = one_media(&out);
    assert_eq!(answer.relay.as_deref(), Some(RELAY), "the call's relay");
    assert_eq!(answer.request.command, "answer");
    assert_eq!(answer.request.from_tag.as_deref(), Some("xmpp"));
    assert_eq!(answer.request.to_tag.as_deref(), Some("sip"));
    assert_eq!(option(&answer, "ICE"), Some("force"));
    let out = ok(&mut h, &answer, Some(RELAY_XMPP_SDP));
    let accept = jingle_set(&out);
    assert_eq!(accept.attr("action"), Some("session-accept"));
    let text = String::from(accept);
    assert!(text.contains("31028"), "rtpengine's candidate: {text}");
    assert!(text.contains("urn:xmpp:jingle:apps:dtls:0"), "DTLS: {text}");
    assert_eq!(h.last_state(), CallState::Active);

    // BYE from the phone: the row ends, then rtpengine's session goes and
    // its figures land in the row.
    let out = h.sip(SipEvent::Bye { call: key });
    assert_eq!(h.last_state(), CallState::Ended);
    let delete = one_media(&out);
    assert_eq!(delete.request.command, "delete");
    assert_eq!(delete.relay.as_deref(), Some(RELAY));
    assert_eq!(option(&delete, "delete-delay"), Some("0"), "gone at once");
    let id = h.last_row().id;
    let body = "d6:result2:ok4:tagsd3:sipd6:mediasld7:streamsld5:statsd7:packetsi61e6:errorsi0eeeeeee4:xmppd6:mediasld7:streamsld5:statsd7:packetsi58e6:errorsi2eeeeeeeee";
    let reply = stox_rtpengine::decode(format!("c {body}").as_bytes()).expect("reply");
    let out = h.input(Input::Media {
        ticket: delete.ticket,
        result: Ok(MediaReply {
            relay: RELAY.into(),
            reply,
        }),
    });
    let [Output::MediaStats { id: got, stats }] = out.as_slice() else {
        panic!("media figures expected: {out:?}")
    };
    assert_eq!(*got, id);
    assert_eq!(stats.packets_from_sip, 61);
    assert_eq!(stats.packets_from_xmpp, 58);
    assert_eq!(stats.errors, 2);
    assert_eq!(h.core.anchored_calls(), 0, "nothing left of the anchor");
}

#[test]
fn sip_to_xmpp_offer_and_answer_go_through_rtpengine() {
    let mut h = rtpengine();
    let out = h.sip(incoming_invite(
        "in1@127.0.0.1",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    assert!(stanzas(&out).is_empty(), "nothing to XMPP before rtpengine");
    let offer = one_media(&out);
    assert_eq!(offer.request.command, "offer");
    assert_eq!(offer.request.from_tag.as_deref(), Some("sip"));
    assert_eq!(
        option(&offer, "transport-protocol"),
        Some("UDP/TLS/RTP/SAVPF")
    );
    let out = ok(&mut h, &offer, Some(RELAY_XMPP_SDP));
    let si = jingle_set(&out);
    assert_eq!(si.attr("action"), Some("session-initiate"));
    assert_eq!(h.last_row().media_relay.as_deref(), Some(RELAY));
    assert!(String::from(si).contains("31028"));
    let si_id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&si_id, IqOutcome::Result);

    // Juliet accepts: the answer goes to rtpengine, the 200 carries its SDP.
    let out = h.stanza(&juliet_action("a1", "in1", "session-accept", ACCEPT_ICE));
    iq(&out, "result");
    assert!(sip_commands(&out).is_empty(), "no 200 before rtpengine");
    let answer = one_media(&out);
    assert_eq!(answer.request.command, "answer");
    assert_eq!(answer.request.from_tag.as_deref(), Some("sip"));
    assert_eq!(answer.request.to_tag.as_deref(), Some("xmpp"));
    assert_eq!(option(&answer, "ICE"), Some("remove"));
    let out = ok(&mut h, &answer, Some(RELAY_SIP_SDP));
    let SipCommand::Respond {
        status: 200,
        sdp: Some(sdp),
        ..
    } = one_sip(&out)
    else {
        panic!("200 expected: {out:?}")
    };
    assert_eq!(sdp, RELAY_SIP_SDP);
}

#[test]
fn commands_wait_in_order_behind_an_offer_at_rtpengine() {
    let mut h = rtpengine();
    let out = h.stanza(&session_initiate("m2"));
    let offer = one_media(&out);
    // Juliet hangs up while rtpengine has the offer: the CANCEL waits.
    let out = h.stanza(&juliet_action(
        "t1",
        "m2",
        "session-terminate",
        "<reason><success/></reason>",
    ));
    iq(&out, "result");
    assert!(sip_commands(&out).is_empty(), "{out:?}");
    let out = ok(&mut h, &offer, Some(RELAY_SIP_SDP));
    let cmds = sip_commands(&out);
    assert!(
        matches!(
            cmds.as_slice(),
            [SipCommand::Invite { .. }, SipCommand::Cancel { .. }]
        ),
        "INVITE, then CANCEL: {cmds:?}"
    );
    // The row ended with the hang-up; the session is deleted after the
    // CANCEL went.
    let delete = one_media(&out);
    assert_eq!(delete.request.command, "delete");
}

#[test]
fn rtpengine_unreachable_for_our_offer_ends_the_call_with_failed_application() {
    let mut h = rtpengine();
    let out = h.stanza(&session_initiate("m3"));
    let offer = one_media(&out);
    let out = fail(&mut h, &offer);
    assert!(sip_commands(&out).is_empty(), "no INVITE left: {out:?}");
    let t = jingle_set(&out);
    assert_eq!(t.attr("action"), Some("session-terminate"));
    assert_eq!(reason_of(t), "failed-application");
    let row = h.last_row();
    assert_eq!(row.state, CallState::Ended);
    assert_eq!(row.ended_by, Some(EndedBy::Gateway));
    assert!(
        row.end_detail
            .as_deref()
            .is_some_and(|d| d.contains("media relay")),
        "{row:?}"
    );
    assert!(media_requests(&out).is_empty(), "no session to delete");
    assert_eq!(h.core.anchored_calls(), 0);
}

#[test]
fn rtpengine_unreachable_for_a_sip_invite_answers_503() {
    let mut h = rtpengine();
    let out = h.sip(incoming_invite(
        "in2@127.0.0.1",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let offer = one_media(&out);
    let out = fail(&mut h, &offer);
    assert!(stanzas(&out).is_empty(), "the XMPP user never rings");
    let SipCommand::Respond {
        status: 503,
        retry_after: Some(_),
        ..
    } = one_sip(&out)
    else {
        panic!("503 with Retry-After expected: {out:?}")
    };
    assert_eq!(h.last_row().sip_status, Some(503));
    assert!(out.iter().any(|o| matches!(o, Output::Fault { .. })));
    assert_eq!(h.core.anchored_calls(), 0);
}

#[test]
fn rtpengine_failing_on_the_callee_answer_ends_both_sides() {
    let mut h = rtpengine();
    place_anchored_call(&mut h, "m4");
    let key = h.key(&cid("m4@sip.example.com"));
    let out = h.sip(SipEvent::Answered {
        call: key,
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    let answer = one_media(&out);
    let out = fail(&mut h, &answer);
    assert!(
        matches!(one_sip(&out), SipCommand::Bye { reason: Some(r), .. } if r.contains("503")),
        "{out:?}"
    );
    assert_eq!(reason_of(jingle_set(&out)), "failed-application");
    assert_eq!(h.last_state(), CallState::Ended);
    // rtpengine had the session from the offer: it is deleted.
    assert_eq!(one_media(&out).request.command, "delete");
}

/// SIP → XMPP call, answered and confirmed, through rtpengine.
fn active_incoming(h: &mut Harness, call_id: &str) {
    let out = h.sip(incoming_invite(
        call_id,
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let offer = one_media(&out);
    let out = ok(h, &offer, Some(RELAY_XMPP_SDP));
    let si_id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&si_id, IqOutcome::Result);
    let sid = call_id.split('@').next().expect("sid");
    let out = h.stanza(&juliet_action("a1", sid, "session-accept", ACCEPT_ICE));
    let answer = one_media(&out);
    ok(h, &answer, Some(RELAY_SIP_SDP));
    h.sip(SipEvent::Acked {
        call: incoming_key(call_id),
    });
    assert_eq!(h.last_state(), CallState::Active);
}

#[test]
fn a_sip_reoffer_goes_through_rtpengine_and_is_refused_when_it_fails() {
    let mut h = rtpengine();
    active_incoming(&mut h, "in3@127.0.0.1");
    let held = OFFER_SDP
        .replace("o=romeo 123 1", "o=romeo 123 2")
        .replace("a=sendrecv", "a=sendonly");
    let (request, out) = h.request(
        &cid("in3@127.0.0.1"),
        "INVITE",
        Some("application/sdp"),
        Some(&held),
    );
    let reoffer = one_media(&out);
    assert_eq!(reoffer.request.command, "offer");
    assert_eq!(reoffer.request.from_tag.as_deref(), Some("sip"));
    assert_eq!(
        reoffer.request.to_tag.as_deref(),
        Some("xmpp"),
        "in the dialog"
    );
    let out = fail(&mut h, &reoffer);
    let SipCommand::Reply {
        request: answered,
        status: 503,
        ..
    } = one_sip(&out)
    else {
        panic!("503 to the re-INVITE expected: {out:?}")
    };
    assert_eq!(*answered, request);
    assert!(stanzas(&out).is_empty(), "the XMPP side hears nothing");
    assert_eq!(h.last_state(), CallState::Active, "the call goes on");
}

#[test]
fn a_passthrough_peer_and_the_default_mode_never_ask_rtpengine() {
    let mut h = anchored(MediaMode::Passthrough);
    let out = h.stanza(&session_initiate("p1"));
    assert!(media_requests(&out).is_empty());
    assert!(matches!(one_sip(&out), SipCommand::Invite { .. }));

    // A peer set to passthrough under an rtpengine default.
    let mut h = rtpengine();
    let mut invite = incoming_invite(
        "in4@127.0.0.9",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    );
    if let SipEvent::IncomingInvite { source, .. } = &mut invite {
        *source = "127.0.0.9:5060".parse().expect("address");
    }
    let out = h.sip(invite);
    assert!(media_requests(&out).is_empty(), "{out:?}");
    assert_eq!(
        jingle_set(&out).attr("action"),
        Some("session-initiate"),
        "the offer goes through as it came"
    );
}

#[test]
fn a_restart_deletes_the_session_of_a_call_it_cannot_resume() {
    let mut h = rtpengine();
    place_anchored_call(&mut h, "m5");
    let row = h.last_row().clone();
    assert_eq!(row.media_relay.as_deref(), Some(RELAY));
    // A new core (after a restart) finds the row unanswered.
    let mut fresh = rtpengine();
    let out = fresh
        .core
        .recover(fresh.now, [(stox_call::CallKey(99), row, true)]);
    let delete = one_media(&out);
    assert_eq!(delete.request.command, "delete");
    assert_eq!(delete.relay.as_deref(), Some(RELAY), "the row's relay");
    assert_eq!(
        delete.request.call_id.as_deref(),
        Some("m5@sip.example.com")
    );
}

/// XMPP → SIP call through rtpengine, answered.
fn active_outgoing(h: &mut Harness, sid: &str) -> stox_call::CallKey {
    place_anchored_call(h, sid);
    let key = h.key(&cid(&format!("{sid}@sip.example.com")));
    let out = h.sip(SipEvent::Answered {
        call: key,
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    let answer = one_media(&out);
    ok(h, &answer, Some(RELAY_XMPP_SDP));
    assert_eq!(h.last_state(), CallState::Active);
    key
}

#[test]
fn xep0167_7_an_xmpp_hold_goes_through_rtpengine_both_ways() {
    let mut h = rtpengine();
    let key = active_outgoing(&mut h, "m6");
    let out = h.stanza(&juliet_action(
        "si-hold",
        "m6",
        "session-info",
        "<hold xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>",
    ));
    iq(&out, "result");
    assert!(
        sip_commands(&out).is_empty(),
        "no re-INVITE before rtpengine"
    );
    let offer = one_media(&out);
    assert_eq!(offer.request.command, "offer");
    assert_eq!(offer.request.from_tag.as_deref(), Some("xmpp"));
    assert_eq!(offer.request.to_tag.as_deref(), Some("sip"));
    let sent = offer.request.sdp.clone().expect("sdp");
    assert!(sent.contains("a=sendonly"), "{sent}");
    let relayed = RELAY_SIP_SDP
        .replace("o=juliet 1 1", "o=juliet 1 2")
        .replace("a=sendrecv", "a=sendonly");
    let out = ok(&mut h, &offer, Some(&relayed));
    let SipCommand::Reoffer { sdp: Some(sdp), .. } = one_sip(&out) else {
        panic!("re-INVITE expected: {out:?}")
    };
    assert_eq!(sdp, &relayed, "rtpengine's SDP goes to the phone");

    // The phone's answer goes back through rtpengine.
    let out = h.sip(SipEvent::ReofferAnswered {
        call: key,
        sdp: Some(ANSWER_SDP.replace("a=sendrecv", "a=recvonly")),
    });
    let answer = one_media(&out);
    assert_eq!(answer.request.command, "answer");
    assert_eq!(answer.request.from_tag.as_deref(), Some("xmpp"));
    ok(
        &mut h,
        &answer,
        Some(&RELAY_XMPP_SDP.replace("a=sendrecv", "a=recvonly")),
    );
    assert!(h.last_row().hold.xmpp, "{:?}", h.last_row());
}

#[test]
fn rfc3262_early_media_goes_through_rtpengine_and_serves_the_answer() {
    let mut h = rtpengine();
    place_anchored_call(&mut h, "m7");
    let key = h.key(&cid("m7@sip.example.com"));
    let out = h.sip(SipEvent::Provisional {
        call: key,
        status: 183,
        sdp: Some(ANSWER_SDP.into()),
        reliable: true,
        supported: Vec::new(),
    });
    assert!(stanzas(&out).is_empty(), "nothing to XMPP before rtpengine");
    let early = one_media(&out);
    assert_eq!(early.request.command, "answer");
    let out = ok(&mut h, &early, Some(RELAY_XMPP_SDP));
    assert_eq!(jingle_set(&out).attr("action"), Some("session-info"));
    // The 2xx carries no SDP: the early answer (rewritten) is the answer.
    let out = h.sip(SipEvent::Answered {
        call: key,
        sdp: None,
        supported: Vec::new(),
    });
    assert!(
        media_requests(&out).is_empty(),
        "nothing more for rtpengine"
    );
    let accept = jingle_set(&out);
    assert_eq!(accept.attr("action"), Some("session-accept"));
    assert!(String::from(accept).contains("31028"), "rtpengine's port");

    // rtpengine failing on an early SDP loses the early media only.
    let mut h = rtpengine();
    place_anchored_call(&mut h, "m8");
    let key = h.key(&cid("m8@sip.example.com"));
    let out = h.sip(SipEvent::Provisional {
        call: key,
        status: 183,
        sdp: Some(ANSWER_SDP.into()),
        reliable: false,
        supported: Vec::new(),
    });
    let early = one_media(&out);
    let out = fail(&mut h, &early);
    assert_eq!(jingle_set(&out).attr("action"), Some("session-info"));
    assert_eq!(h.last_state(), CallState::Ringing, "the call goes on");
}
