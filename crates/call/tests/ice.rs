//! ICE restarts both ways (RFC 8839 §4.4.1.1.1 ⇄ XEP-0176 §2.4), through
//! the core.

mod harness;

use harness::*;
use stox_call::{OfferMethod, Output, SipCommand, SipEvent};
use stox_mapping::sdp::session::{ice_ufrag, origin_version};

const NS_ICE: &str = "urn:xmpp:jingle:transports:ice-udp:1";

fn ice_content(ufrag: &str, pwd: &str, port: u16) -> String {
    format!(
        "<content creator='initiator' name='audio'>\
           <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
             <payload-type id='111' name='opus' clockrate='48000' channels='2'/>\
           </description>\
           <transport xmlns='{NS_ICE}' ufrag='{ufrag}' pwd='{pwd}'>\
             <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2</fingerprint>\
             <candidate component='1' foundation='1' generation='0' id='c{port}' ip='127.0.0.1' port='{port}' priority='2122260223' protocol='udp' type='host'/>\
           </transport></content>"
    )
}

fn transport_only(ufrag: &str, pwd: &str, port: u16) -> String {
    format!(
        "<content creator='initiator' name='audio'>\
           <transport xmlns='{NS_ICE}' ufrag='{ufrag}' pwd='{pwd}'>\
             <candidate component='1' foundation='2' generation='0' id='n{port}' ip='127.0.0.1' port='{port}' priority='2122260223' protocol='udp' type='host'/>\
           </transport></content>"
    )
}

fn sip_answer(ufrag: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio {port} UDP/TLS/RTP/SAVPF 111\r\n\
         c=IN IP4 127.0.0.1\r\na=rtpmap:111 opus/48000/2\r\na=mid:audio\r\na=ice-ufrag:{ufrag}\r\n\
         a=ice-pwd:r4gVKd7bDhUMjWbd0JoiL9xA\r\na=setup:active\r\n\
         a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F4:70:03:E7:43:91:73:23:5E\r\n\
         a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host generation 0\r\na=sendrecv\r\n"
    )
}

/// An XMPP → SIP call with ICE, answered.
fn answered(h: &mut Harness, sid: &str) -> (stox_mapping::ids::CallId, String) {
    let xml = format!(
        "<iq xmlns='jabber:component:accept' type='set' id='si' from='{JULIET}' to='{ROMEO_GW}'>\
           <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='{sid}' initiator='{JULIET}'>{}</jingle></iq>",
        ice_content("8hhY", "asd88fgpdd777uzjYhagZg", 40000)
    );
    let out = h.stanza(&xml);
    let SipCommand::Invite { sdp, .. } = one_sip(&out).clone() else {
        panic!("INVITE: {out:#?}")
    };
    let cid = cid(&format!("{sid}@sip.example.com"));
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(sip_answer("Ns7Q", 6000)),
        supported: Vec::new(),
    });
    assert_eq!(jingle_set(&out).attr("action"), Some("session-accept"));
    (cid, sdp)
}

fn transport_ufrag(out: &[Output]) -> Option<String> {
    stanzas(out)
        .into_iter()
        .filter_map(|s| s.get_child("jingle", NS_JINGLE))
        .filter(|j| j.attr("action") == Some("transport-info"))
        .flat_map(|j| j.children())
        .filter_map(|c| c.get_child("transport", NS_ICE))
        .find_map(|t| t.attr("ufrag").map(str::to_owned))
}

#[test]
fn rfc8839_4_4_1_1_1_a_sip_ice_restart_waits_for_the_xmpp_users_credentials() {
    let mut h = Harness::new();
    let (cid, offer) = answered(&mut h, "i1");
    let (_, out) = h.request(
        &cid,
        "INVITE",
        Some("application/sdp"),
        Some(&sip_answer("n3wQ", 6100)),
    );
    assert!(sip_commands(&out).is_empty(), "no answer yet");
    assert_eq!(transport_ufrag(&out).as_deref(), Some("n3wQ"));
    let out = h.stanza(&juliet_action(
        "ti",
        "i1",
        "transport-info",
        &transport_only("jNew", "zzzzzzzzzzzzzzzzzzzzzzzz", 40100),
    ));
    iq(&out, "result");
    let SipCommand::Reply {
        status: 200,
        sdp: Some(answer),
        ..
    } = one_sip(&out)
    else {
        panic!("200 with SDP: {out:#?}")
    };
    assert_eq!(ice_ufrag(answer).as_deref(), Some("jNew"));
    assert!(answer.contains("a=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\n"));
    assert!(answer.contains("127.0.0.1 40100 typ host"), "{answer}");
    assert!(!answer.contains("127.0.0.1 40000 typ host"), "{answer}");
    assert_eq!(
        origin_version(answer),
        origin_version(&offer).map(|v| v + 1)
    );
    assert_eq!(h.core.live_calls(), 1);
}

#[test]
fn xep0176_2_4_an_xmpp_ice_restart_is_re_invited_and_answered_with_transport_info() {
    let mut h = Harness::new();
    let (cid, _) = answered(&mut h, "i2");
    // A trickled candidate with the same credentials is no restart.
    let out = h.stanza(&juliet_action(
        "t0",
        "i2",
        "transport-info",
        &transport_only("8hhY", "asd88fgpdd777uzjYhagZg", 40002),
    ));
    assert!(
        !sip_commands(&out)
            .iter()
            .any(|c| matches!(c, SipCommand::Reoffer { .. })),
        "{out:#?}"
    );
    let out = h.stanza(&juliet_action(
        "t1",
        "i2",
        "transport-info",
        &transport_only("jNew", "zzzzzzzzzzzzzzzzzzzzzzzz", 40100),
    ));
    iq(&out, "result");
    let SipCommand::Reoffer {
        method: OfferMethod::Invite,
        sdp: Some(offer),
        ..
    } = one_sip(&out)
    else {
        panic!("re-INVITE: {out:#?}")
    };
    assert_eq!(ice_ufrag(offer).as_deref(), Some("jNew"));
    let out = h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(sip_answer("n3wQ", 6100)),
    });
    assert_eq!(transport_ufrag(&out).as_deref(), Some("n3wQ"));
}

#[test]
fn rfc8839_a_sip_ice_restart_the_xmpp_user_never_answers_gets_488() {
    let mut h = Harness::new();
    let (cid, _) = answered(&mut h, "i3");
    h.request(
        &cid,
        "INVITE",
        Some("application/sdp"),
        Some(&sip_answer("n3wQ", 6100)),
    );
    h.advance(15_000);
    let out = h.fire_timers();
    assert!(matches!(
        one_sip(&out),
        SipCommand::Reply { status: 488, .. }
    ));
    assert_eq!(h.core.live_calls(), 1, "the call goes on as it was");
}
