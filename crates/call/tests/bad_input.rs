//! Bad input gets a specific answer, and the next call still works.

mod harness;

use harness::*;

fn assert_next_call_works(h: &mut Harness) {
    let out = h.stanza(&session_initiate("after-bad-input"));
    iq(&out, "result");
    assert_eq!(sip_commands(&out).len(), 1);
}

#[test]
fn jingle_without_sid_or_with_unknown_action_is_bad_request() {
    let mut h = Harness::new();
    for jingle in [
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate'/>",
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-dance' sid='x'/>",
        "<jingle xmlns='urn:xmpp:jingle:1' sid='x'/>",
    ] {
        let out = h.stanza(&format!(
            "<iq xmlns='jabber:component:accept' type='set' id='b1' from='{JULIET}' to='{ROMEO_GW}'>{jingle}</iq>"
        ));
        assert_eq!(error_of(iq(&out, "error")).0, "bad-request", "{jingle}");
        assert!(h.rows.is_empty());
    }
    assert_next_call_works(&mut h);
}

#[test]
fn unknown_sid_is_item_not_found_with_unknown_session() {
    let mut h = Harness::new();
    let out = h.stanza(&juliet_action(
        "u1",
        "nope",
        "session-terminate",
        "<reason><success/></reason>",
    ));
    let (cond, app) = error_of(iq(&out, "error"));
    assert_eq!(
        (cond.as_str(), app.as_deref()),
        ("item-not-found", Some("unknown-session"))
    );
    assert_next_call_works(&mut h);
}

#[test]
fn out_of_order_actions_are_unexpected_request() {
    let mut h = Harness::new();
    h.stanza(&session_initiate("o1"));
    // The initiator cannot accept its own session, nor initiate it twice.
    for action in ["session-accept", "session-initiate"] {
        let out = h.stanza(&juliet_action("x", "o1", action, ""));
        let (cond, app) = error_of(iq(&out, "error"));
        assert_eq!(
            (cond.as_str(), app.as_deref()),
            ("unexpected-request", Some("out-of-order"))
        );
    }
    assert_eq!(h.core.live_calls(), 1, "the call itself is unharmed");
    assert_next_call_works(&mut h);
}

#[test]
fn session_initiate_with_nothing_mappable_is_acked_then_terminated() {
    let mut h = Harness::new();
    let out = h.stanza(&format!(
        "<iq xmlns='jabber:component:accept' type='set' id='ft' from='{JULIET}' to='{ROMEO_GW}'>\
           <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='ft1' initiator='{JULIET}'>\
             <content creator='initiator' name='file'>\
               <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file/></description>\
               <transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='x'/>\
             </content>\
           </jingle></iq>"
    ));
    iq(&out, "result");
    let j = jingle_set(&out);
    assert_eq!(j.attr("action"), Some("session-terminate"));
    assert_eq!(reason_of(j), "unsupported-applications");
    assert!(sip_commands(&out).is_empty(), "nothing reaches SIP");
    let row = h.last_row();
    assert_eq!(row.end_reason.as_deref(), Some("unsupported-applications"));
    assert_eq!(row.state, stox_call::CallState::Ended);
    assert_eq!(h.core.live_calls(), 0);
    assert_next_call_works(&mut h);
}

#[test]
fn unmappable_gateway_addresses_are_item_not_found() {
    let mut h = Harness::new();
    for to in ["romeo@sip.example.com", "sip.example.com"] {
        let xml = session_initiate("g1").replace(ROMEO_GW, to);
        let out = h.stanza(&xml);
        assert_eq!(error_of(iq(&out, "error")).0, "item-not-found", "{to}");
    }
    assert!(h.rows.is_empty());
    assert_next_call_works(&mut h);
}

#[test]
fn the_component_answers_ping_disco_and_refuses_other_iqs() {
    let mut h = Harness::new();
    let out = h.stanza("<iq xmlns='jabber:component:accept' type='get' id='p' from='juliet@example.com/b' to='sip.example.com'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(iq(&out, "result").attr("to"), Some("juliet@example.com/b"));
    let out = h.stanza("<iq xmlns='jabber:component:accept' type='get' id='d' from='juliet@example.com/b' to='sip.example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    let q = iq(&out, "result")
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("query");
    let features: Vec<_> = q.children().filter_map(|f| f.attr("var")).collect();
    assert!(
        features.contains(&"urn:xmpp:jingle:1") && features.contains(&"urn:xmpp:jingle:apps:rtp:1")
    );
    let out = h.stanza("<iq xmlns='jabber:component:accept' type='get' id='v' from='juliet@example.com/b' to='sip.example.com'><query xmlns='jabber:iq:version'/></iq>");
    assert_eq!(error_of(iq(&out, "error")).0, "service-unavailable");
}
