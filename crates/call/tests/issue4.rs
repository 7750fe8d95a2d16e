//! Candidate batching, early media and loop detection (issue 4), through the
//! core on a virtual clock.

mod harness;

use harness::*;
use stox_call::{SipCommand, SipEvent};

const ICE_NO_CANDIDATES: &str = "<content creator='initiator' name='audio'>\
   <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
     <payload-type id='111' name='opus' clockrate='48000' channels='2'/>\
   </description>\
   <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'>\
     <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2</fingerprint>\
   </transport>\
 </content>";

fn candidate(id: &str, port: u16) -> String {
    format!(
        "<content creator='initiator' name='audio'>\
           <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='8hhY' pwd='asd88fgpdd777uzjYhagZg'>\
             <candidate component='1' foundation='1' generation='0' id='{id}' ip='127.0.0.1' port='{port}' priority='2122260223' protocol='udp' type='host'/>\
           </transport></content>"
    )
}

fn initiate_trickling(h: &mut Harness, sid: &str) {
    let xml = format!(
        "<iq xmlns='jabber:component:accept' type='set' id='si' from='{JULIET}' to='{ROMEO_GW}'>\
           <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='{sid}' initiator='{JULIET}'>{ICE_NO_CANDIDATES}</jingle></iq>"
    );
    let out = h.stanza(&xml);
    iq(&out, "result");
    assert!(
        sip_commands(&out).is_empty(),
        "no INVITE before the candidates"
    );
}

#[test]
fn trickled_candidates_are_batched_into_the_invite() {
    let mut h = Harness::new();
    initiate_trickling(&mut h, "t1");
    for (id, port) in [("c1", 40000), ("c2", 40002), ("c1", 40000)] {
        let out = h.stanza(&juliet_action(
            "ti",
            "t1",
            "transport-info",
            &candidate(id, port),
        ));
        iq(&out, "result");
        assert!(sip_commands(&out).is_empty());
    }
    h.advance(299);
    assert!(h.fire_timers().is_empty());
    h.advance(1);
    let out = h.fire_timers();
    let SipCommand::Invite { sdp, .. } = one_sip(&out) else {
        panic!("expected the INVITE: {out:#?}")
    };
    let candidates: Vec<_> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert_eq!(
        candidates.len(),
        2,
        "both candidates, the repeated one once:\n{sdp}"
    );
    assert!(
        sdp.contains(" 40000 typ host") && sdp.contains(" 40002 typ host"),
        "{sdp}"
    );
    assert!(
        sdp.contains("m=audio 40000 "),
        "the default candidate goes to m=:\n{sdp}"
    );
}

#[test]
fn hanging_up_while_gathering_reaches_no_sip() {
    let mut h = Harness::new();
    initiate_trickling(&mut h, "t2");
    let out = h.stanza(&juliet_action(
        "t",
        "t2",
        "session-terminate",
        "<reason><cancel/></reason>",
    ));
    iq(&out, "result");
    assert!(sip_commands(&out).is_empty());
    assert_eq!(h.last_row().end_reason.as_deref(), Some("cancel"));
    h.advance(1_000);
    assert!(h.fire_timers().is_empty());
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn early_sdp_is_held_and_used_for_a_2xx_without_sdp() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("e1"));
    let cid = cid("e1@sip.example.com");
    let out = h.sip(SipEvent::Provisional {
        reliable: false,
        call: h.key(&cid),
        status: 183,
        sdp: Some(ANSWER_SDP.into()),
        supported: Vec::new(),
    });
    let j = jingle_set(&out);
    assert_eq!(
        j.attr("action"),
        Some("session-info"),
        "183 is ringing, its SDP is held"
    );
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: None,
        supported: Vec::new(),
    });
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-accept"));
    let ids: Vec<_> = j
        .get_child("content", NS_JINGLE)
        .and_then(|c| c.get_child("description", "urn:xmpp:jingle:apps:rtp:1"))
        .map(|d| d.children().filter_map(|p| p.attr("id")).collect())
        .unwrap_or_default();
    assert_eq!(
        ids,
        ["8", "101"],
        "the answer from the provisional response"
    );
}

#[test]
fn sessions_re_entering_the_gateway_are_refused() {
    let mut h = Harness::new();
    // From one of the gateway's own JIDs.
    let out =
        h.stanza(&session_initiate("l1").replace(JULIET, "bob\\40example.org@sip.example.com/x"));
    let (cond, _) = error_of(iq(&out, "error"));
    assert_eq!(cond, "conflict");
    // With the sid of a live SIP → XMPP call (SIP → XMPP → SIP).
    h.sip(incoming_invite(
        "loop7@10.0.0.1",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    let out = h.stanza(&session_initiate("loop7").replace(JULIET, "mallory@example.com/m"));
    let (cond, _) = error_of(iq(&out, "error"));
    assert_eq!(cond, "conflict");
    assert!(sip_commands(&out).is_empty());
    // SIP → XMPP → SIP (our own Call-ID coming back in) is refused 482 by
    // the SIP layer: `stox-sipcore` tests/rfc3261.rs.
}

fn trickled_call_answered(
    h: &mut Harness,
    sid: &str,
    peer_supports: bool,
) -> stox_mapping::ids::CallId {
    initiate_trickling(h, sid);
    h.stanza(&juliet_action(
        "ti",
        sid,
        "transport-info",
        &candidate("c1", 40000),
    ));
    h.advance(300);
    let out = h.fire_timers();
    let SipCommand::Invite { supported, .. } = one_sip(&out) else {
        panic!("INVITE expected")
    };
    assert_eq!(
        supported,
        &["trickle-ice".to_owned()],
        "the XMPP side trickles: say so"
    );
    let cid = cid(&format!("{sid}@sip.example.com"));
    let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 6000 UDP/TLS/RTP/SAVPF 111\r\n\
        c=IN IP4 127.0.0.1\r\na=rtpmap:111 opus/48000/2\r\na=mid:audio\r\na=ice-ufrag:Ns7Q\r\n\
        a=ice-pwd:r4gVKd7bDhUMjWbd0JoiL9xA\r\na=setup:active\r\n\
        a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n";
    let supported = if peer_supports {
        vec!["trickle-ice".to_owned()]
    } else {
        vec![]
    };
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(answer.into()),
        supported,
    });
    assert_eq!(jingle_set(&out).attr("action"), Some("session-accept"));
    cid
}

#[test]
fn late_candidates_go_by_info_to_a_trickle_peer_and_are_held_otherwise() {
    let mut h = Harness::new();
    let cid = trickled_call_answered(&mut h, "tr1", true);
    let out = h.stanza(&juliet_action(
        "ti2",
        "tr1",
        "transport-info",
        &candidate("c9", 40004),
    ));
    iq(&out, "result");
    let SipCommand::Info {
        call,
        content_type,
        body,
    } = one_sip(&out)
    else {
        panic!("INFO expected: {out:#?}")
    };
    assert_eq!(*call, h.key(&cid));
    assert_eq!(content_type, "application/trickle-ice-sdpfrag");
    assert!(
        body.contains("a=mid:audio") && body.contains(" 40004 typ host"),
        "{body}"
    );

    let mut h = Harness::new();
    trickled_call_answered(&mut h, "tr2", false);
    let out = h.stanza(&juliet_action(
        "ti2",
        "tr2",
        "transport-info",
        &candidate("c9", 40004),
    ));
    iq(&out, "result");
    assert!(
        sip_commands(&out).is_empty(),
        "held for the next offer/answer"
    );
}

#[test]
fn sdpfrag_info_from_sip_becomes_transport_info() {
    let mut h = Harness::new();
    let cid = trickled_call_answered(&mut h, "tr3", true);
    let (request, out) = h.request(
        &cid,
        "INFO",
        Some("application/trickle-ice-sdpfrag"),
        Some("a=ice-ufrag:Ns7Q\r\na=ice-pwd:r4gVKd7bDhUMjWbd0JoiL9xA\r\nm=audio 9 RTP/AVP 0\r\na=mid:audio\r\n\
               a=candidate:7 1 udp 1845501695 127.0.0.1 6002 typ srflx raddr 10.0.0.2 rport 6002\r\na=end-of-candidates\r\n"),
    );
    assert!(
        sip_commands(&out).contains(&&SipCommand::Reply {
            call: h.key(&cid),
            request,
            status: 200,
            reason: None,
            sdp: None
        }),
        "the INFO is answered 200: {out:#?}"
    );
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("transport-info"));
    let cand = j
        .get_child("content", NS_JINGLE)
        .and_then(|c| c.get_child("transport", "urn:xmpp:jingle:transports:ice-udp:1"))
        .and_then(|t| t.get_child("candidate", "urn:xmpp:jingle:transports:ice-udp:1"))
        .expect("candidate");
    assert_eq!(
        (cand.attr("port"), cand.attr("type")),
        (Some("6002"), Some("srflx"))
    );
    assert_eq!(cand.attr("generation"), Some("0"));
}

#[test]
fn callee_candidates_wait_for_the_ack_then_go_by_info() {
    let mut h = Harness::new();
    let mut invite = incoming_invite(
        "tc1@h",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    );
    if let SipEvent::IncomingInvite { supported, .. } = &mut invite {
        supported.push("trickle-ice".into());
    }
    let out = h.sip(invite);
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, stox_call::IqOutcome::Result);
    h.stanza(&juliet_action("a", "tc1", "session-accept", ACCEPT_CONTENT));
    let out = h.stanza(&juliet_action(
        "ti",
        "tc1",
        "transport-info",
        &candidate("x1", 42002),
    ));
    assert!(sip_commands(&out).is_empty(), "no INFO before the ACK");
    let out = h.sip(SipEvent::Acked {
        call: h.key(&cid("tc1@h")),
    });
    let SipCommand::Info { body, .. } = one_sip(&out) else {
        panic!("INFO expected after the ACK: {out:#?}")
    };
    assert!(body.contains(" 42002 typ host"), "{body}");
}
