//! Candidate batching, early media and loop detection (issue 4), through the
//! core on a virtual clock.

mod harness;

use harness::*;
use stox_call::{SipCommand, SipInput};

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
    let out = h.sip(SipInput::Provisional {
        call_id: cid.clone(),
        status: 183,
        sdp: Some(ANSWER_SDP.into()),
    });
    let j = jingle_set(&out);
    assert_eq!(
        j.attr("action"),
        Some("session-info"),
        "183 is ringing, its SDP is held"
    );
    let out = h.sip(SipInput::Answered {
        call_id: cid,
        sdp: None,
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
    // SIP → XMPP → SIP: our own Call-ID coming back in is 482.
    h.stanza(&session_initiate("l2"));
    let out = h.sip(incoming_invite(
        "l2@sip.example.com",
        "sip:juliet@example.com;gr=balcony",
        Some(OFFER_SDP),
    ));
    assert_eq!(respond_status(one_sip(&out)), 482);
}
