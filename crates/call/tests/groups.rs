//! XEP-0338 groups (BUNDLE) travel with the offer and the answer, both ways.

mod harness;

use harness::*;
use stox_call::{IqOutcome, SipCommand, SipEvent};

const GROUP_NS: &str = "urn:xmpp:jingle:apps:grouping:0";

/// `(semantics, content names)` of the `<group/>` children of a `<jingle/>`.
fn groups(jingle: &minidom::Element) -> Vec<(String, Vec<String>)> {
    jingle
        .children()
        .filter(|c| c.is("group", GROUP_NS))
        .map(|g| {
            let names = g
                .children()
                .filter_map(|c| c.attr("name").map(str::to_owned))
                .collect();
            (g.attr("semantics").unwrap_or_default().to_owned(), names)
        })
        .collect()
}

fn bundle_audio() -> Vec<(String, Vec<String>)> {
    vec![("BUNDLE".to_owned(), vec!["audio".to_owned()])]
}

#[test]
fn bundle_group_reaches_the_invite_and_the_200s_group_the_session_accept() {
    let mut h = Harness::new();
    let initiate = session_initiate("g1").replace(
        "</content>",
        "</content><group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'>\
         <content name='audio'/></group>",
    );
    let out = h.stanza(&initiate);
    iq(&out, "result");
    let SipCommand::Invite { sdp, .. } = one_sip(&out) else {
        panic!("expected an INVITE")
    };
    assert!(
        sdp.contains("t=0 0\r\na=group:BUNDLE audio\r\n") && sdp.contains("a=mid:audio\r\n"),
        "{sdp}"
    );

    let answer = ANSWER_SDP
        .replace("t=0 0\r\n", "t=0 0\r\na=group:BUNDLE audio\r\n")
        .replace("a=sendrecv\r\n", "a=sendrecv\r\na=mid:audio\r\n");
    let out = h.sip(SipEvent::Answered {
        call: h.key(&cid("g1@sip.example.com")),
        sdp: Some(answer),
        supported: Vec::new(),
    });
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-accept"));
    assert_eq!(groups(j), bundle_audio());
}

#[test]
fn bundle_group_reaches_the_session_initiate_and_the_accepts_group_the_200() {
    let mut h = Harness::new();
    let offer = OFFER_SDP
        .replace("t=0 0\r\n", "t=0 0\r\na=group:BUNDLE audio\r\n")
        .replace("a=sendrecv\r\n", "a=sendrecv\r\na=mid:audio\r\n");
    let out = h.sip(incoming_invite(
        "g2@127.0.0.1",
        "sip:juliet@example.com;gr=balcony",
        Some(&offer),
    ));
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-initiate"));
    assert_eq!(groups(j), bundle_audio());
    let id = iq(&out, "set").attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);

    let accept = format!(
        "{ACCEPT_CONTENT}<group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'>\
         <content name='audio'/></group>"
    );
    let out = h.stanza(&juliet_action("a1", "g2", "session-accept", &accept));
    iq(&out, "result");
    let SipCommand::Respond {
        status: 200,
        sdp: Some(sdp),
        ..
    } = one_sip(&out)
    else {
        panic!("expected a 200 with SDP: {out:#?}")
    };
    assert!(
        sdp.contains("t=0 0\r\na=group:BUNDLE audio\r\n") && sdp.contains("a=mid:audio\r\n"),
        "{sdp}"
    );
}
