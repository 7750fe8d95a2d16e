//! XEP-0353 Jingle Message Initiation through the core, both directions.

mod harness;

use harness::*;
use minidom::Element;
use stox_call::{CallState, EndedBy, IqOutcome, Output, SipCommand, SipEvent};

const NS_JMI: &str = "urn:xmpp:jingle-message:0";
const GW_DEVICE: &str = "romeo\\40example.net@sip.example.com/stox-gateway";

fn messages(out: &[Output]) -> Vec<&Element> {
    stanzas(out)
        .into_iter()
        .filter(|e| e.name() == "message")
        .collect()
}

/// (kind, to, reason) of each JMI message in `out`.
fn jmi_sent(out: &[Output]) -> Vec<(String, String, Option<String>)> {
    messages(out)
        .into_iter()
        .filter_map(|m| {
            let el = m.children().find(|c| c.ns() == NS_JMI)?;
            let reason = el
                .get_child("reason", NS_JINGLE)
                .and_then(|r| r.children().find(|c| c.name() != "text"))
                .map(|c| c.name().to_owned());
            Some((el.name().to_owned(), m.attr("to")?.to_owned(), reason))
        })
        .collect()
}

fn jmi_from(from: &str, kind: &str, id: &str, inner: &str) -> String {
    format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{from}' to='{ROMEO_GW}'>\
           <{kind} xmlns='{NS_JMI}' id='{id}'>{inner}</{kind}></message>"
    )
}

// ---- SIP → XMPP: a bare JID is rung with <propose/> ------------------------

fn ring_bare(h: &mut Harness, call_id: &str) {
    let out = h.sip(incoming_invite(
        call_id,
        "sip:juliet@example.com",
        Some(OFFER_SDP),
    ));
    assert!(sip_commands(&out).is_empty(), "no SIP answer yet: {out:#?}");
    let sent = jmi_sent(&out);
    assert_eq!(
        sent,
        [("propose".into(), "juliet@example.com".into(), None)]
    );
    let propose = messages(&out)[0];
    assert_eq!(propose.attr("type"), Some("chat"));
    assert!(propose.has_child("store", "urn:xmpp:hints"));
    let media: Vec<_> = propose
        .children()
        .flat_map(|p| p.children())
        .filter_map(|d| d.attr("media"))
        .collect();
    assert_eq!(media, ["audio"], "one <description/> per offered medium");
    assert_eq!(h.last_state(), CallState::Pending);
}

#[test]
fn two_devices_ring_one_proceeds_the_other_is_told() {
    let mut h = Harness::new();
    ring_bare(&mut h, "j1@h");
    let out = h.stanza(&jmi_from("juliet@example.com/phone", "ringing", "j1", ""));
    assert_eq!(respond_status(one_sip(&out)), 180);
    assert_eq!(h.last_state(), CallState::Ringing);
    let out = h.stanza(&jmi_from("juliet@example.com/laptop", "ringing", "j1", ""));
    assert!(out.is_empty(), "one 180 only: {out:#?}");

    let out = h.stanza(&jmi_from("juliet@example.com/phone", "proceed", "j1", ""));
    let set = iq(&out, "set");
    assert_eq!(set.attr("to"), Some("juliet@example.com/phone"));
    assert_eq!(jingle_set(&out).attr("action"), Some("session-initiate"));
    assert_eq!(jingle_set(&out).attr("sid"), Some("j1"));
    assert_eq!(
        jmi_sent(&out),
        [(
            "retract".into(),
            "juliet@example.com/laptop".into(),
            Some("cancel".into())
        )],
        "the other ringing device is told the call was answered elsewhere"
    );
    assert_eq!(h.last_row().xmpp_jid, "juliet@example.com/phone");

    // From here on it is an ordinary Jingle session with the phone.
    let id = set.attr("id").expect("id").to_owned();
    h.iq_response(&id, IqOutcome::Result);
    let accept = ACCEPT_CONTENT;
    let out = h.stanza(
        &juliet_action("a1", "j1", "session-accept", accept)
            .replace(JULIET, "juliet@example.com/phone"),
    );
    assert_eq!(respond_status(one_sip(&out)), 200);
    h.sip(SipEvent::Acked {
        call: h.key(&cid("j1@h")),
    });
    let out = h.sip(SipEvent::Bye {
        call: h.key(&cid("j1@h")),
    });
    assert_eq!(reason_of(jingle_set(&out)), "success");
    assert_eq!(
        jmi_sent(&out),
        [(
            "finish".into(),
            "juliet@example.com/phone".into(),
            Some("success".into())
        )]
    );
    assert_eq!(h.core.live_calls(), 0);
}

#[test]
fn reject_maps_to_a_sip_status() {
    for (inner, status, reason) in [
        (
            "<reason xmlns='urn:xmpp:jingle:1'><busy/></reason>",
            486,
            "busy",
        ),
        (
            "<reason xmlns='urn:xmpp:jingle:1'><decline/></reason>",
            603,
            "decline",
        ),
        ("", 603, "decline"),
    ] {
        let mut h = Harness::new();
        ring_bare(&mut h, "j2@h");
        let out = h.stanza(&jmi_from("juliet@example.com/phone", "reject", "j2", inner));
        assert_eq!(respond_status(one_sip(&out)), status);
        let row = h.last_row();
        assert_eq!(
            (row.end_reason.as_deref(), row.sip_status),
            (Some(reason), Some(status))
        );
        assert_eq!(row.ended_by, Some(EndedBy::Xmpp));
        assert_eq!(h.core.live_calls(), 0);
    }
}

#[test]
fn cancel_and_no_answer_retract_the_proposal() {
    let mut h = Harness::new();
    ring_bare(&mut h, "j3@h");
    let out = h.sip(SipEvent::Cancelled {
        call: h.key(&cid("j3@h")),
    });
    assert_eq!(
        jmi_sent(&out),
        [(
            "retract".into(),
            "juliet@example.com".into(),
            Some("cancel".into())
        )]
    );
    assert_eq!(h.last_row().sip_status, Some(487));

    let mut h = Harness::new();
    ring_bare(&mut h, "j4@h");
    h.advance(60_000);
    let out = h.fire_timers();
    assert_eq!(
        jmi_sent(&out),
        [(
            "retract".into(),
            "juliet@example.com".into(),
            Some("timeout".into())
        )]
    );
    assert_eq!(respond_status(one_sip(&out)), 480);
    assert_eq!(h.core.live_calls(), 0);
    // A late proceed finds nothing.
    assert!(
        h.stanza(&jmi_from("juliet@example.com/phone", "proceed", "j4", ""))
            .is_empty()
    );
}

// ---- XMPP → SIP: the gateway proceeds at once --------------------------------

fn propose_to_romeo(h: &mut Harness, sid: &str) {
    let xml = format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{JULIET}' to='{ROMEO_GW}'>\
           <propose xmlns='{NS_JMI}' id='{sid}'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose>\
         </message>"
    );
    let out = h.stanza(&xml);
    assert_eq!(jmi_sent(&out), [("proceed".into(), JULIET.into(), None)]);
    assert_eq!(messages(&out)[0].attr("from"), Some(GW_DEVICE));
    assert!(
        sip_commands(&out).is_empty(),
        "nothing reaches SIP before the session-initiate"
    );
}

#[test]
fn proposal_then_session_initiate_to_the_proceeding_resource() {
    let mut h = Harness::new();
    propose_to_romeo(&mut h, "p1");
    let out = h.stanza(
        &session_initiate("p1").replace(&format!("to='{ROMEO_GW}'"), &format!("to='{GW_DEVICE}'")),
    );
    iq(&out, "result");
    let SipCommand::Invite { request_uri, .. } = one_sip(&out) else {
        panic!("expected an INVITE: {out:#?}")
    };
    assert_eq!(
        request_uri, "sip:romeo@example.net",
        "the gateway's resource is not a GRUU"
    );
    let out = h.sip(SipEvent::Rejected {
        call: h.key(&cid("p1@sip.example.com")),
        status: 486,
        reason: "Busy Here".into(),
    });
    assert_eq!(reason_of(jingle_set(&out)), "busy");
    assert_eq!(
        jmi_sent(&out),
        [("finish".into(), JULIET.into(), Some("busy".into()))]
    );
}

#[test]
fn retract_before_session_initiate_reaches_nothing_but_the_log() {
    let mut h = Harness::new();
    propose_to_romeo(&mut h, "p2");
    let out = h.stanza(&format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{JULIET}' to='{ROMEO_GW}'>\
           <retract xmlns='{NS_JMI}' id='p2'><reason xmlns='urn:xmpp:jingle:1'><cancel/></reason></retract></message>"
    ));
    assert!(sip_commands(&out).is_empty());
    let row = h.last_row();
    assert_eq!(
        (row.state, row.end_reason.as_deref()),
        (CallState::Ended, Some("cancel"))
    );
    assert_eq!((row.sip_status, row.ended_by), (None, Some(EndedBy::Xmpp)));
    assert_eq!(row.sip_uri, "sip:romeo@example.net");
}

#[test]
fn proposals_to_unmappable_addresses_are_rejected_and_stale_ones_expire() {
    let mut h = Harness::new();
    let out = h.stanza(&format!(
        "<message xmlns='jabber:component:accept' type='chat' from='{JULIET}' to='sip.example.com'>\
           <propose xmlns='{NS_JMI}' id='p3'/></message>"
    ));
    assert_eq!(
        jmi_sent(&out),
        [("reject".into(), JULIET.into(), Some("gone".into()))]
    );

    propose_to_romeo(&mut h, "p4");
    h.advance(60_000);
    h.fire_timers();
    let row = h.last_row();
    assert_eq!(
        (row.end_reason.as_deref(), row.ended_by),
        (Some("timeout"), Some(EndedBy::Gateway))
    );
}

#[test]
fn xep0353_a_device_message_after_another_took_the_call_is_noted_only() {
    let mut h = Harness::new();
    ring_bare(&mut h, "j9@h");
    h.stanza(&jmi_from("juliet@example.com/phone", "proceed", "j9", ""));
    // The phone's call is now keyed by its full JID; a JMI message about
    // the same sid reaches the call only while it is proposed, so one that
    // arrives later is answered by the routing (not a call fault) …
    let out = h.stanza(&jmi_from("juliet@example.com/laptop", "ringing", "j9", ""));
    assert!(sip_commands(&out).is_empty(), "no second 180: {out:#?}");
    // … and a <proceed/> from a bare JID while proposed names no device.
    let mut h = Harness::new();
    ring_bare(&mut h, "j10@h");
    let out = h.stanza(&jmi_from("juliet@example.com", "proceed", "j10", ""));
    assert!(
        matches!(
            out.as_slice(),
            [Output::Fault {
                fault: stox_call::Fault::UnexpectedJmi {
                    kind: "proceed",
                    phase: "proposing",
                    ..
                },
                ..
            }]
        ),
        "{out:#?}"
    );
    assert_eq!(h.core.live_calls(), 1, "still ringing the devices");
}
