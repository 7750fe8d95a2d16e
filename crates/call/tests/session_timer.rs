//! RFC 4028 §10 in the core: the refresher refreshes every half interval;
//! a session nobody refreshed in time ends on both sides.

mod harness;

use harness::*;
use stox_call::{
    CallState, EndedBy, IqOutcome, OfferMethod, Output, Refresher, SessionTimer, SipCommand,
    SipEvent, TimerKey,
};

fn answered_from_xmpp(h: &mut Harness, sid: &str) -> (stox_mapping::ids::CallId, String) {
    let out = h.stanza(&session_initiate(sid));
    let SipCommand::Invite { sdp, .. } = one_sip(&out).clone() else {
        panic!("INVITE: {out:#?}")
    };
    let cid = cid(&format!("{sid}@sip.example.com"));
    h.sip(SipEvent::Answered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
        supported: vec!["timer".into()],
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

fn timer(h: &mut Harness, cid: &stox_mapping::ids::CallId, interval: u32, refresher: Refresher) {
    h.sip(SipEvent::SessionTimer {
        call: h.key(cid),
        timer: Some(SessionTimer {
            interval,
            refresher,
        }),
    });
}

fn due_in(h: &Harness, pick: fn(&TimerKey) -> bool) -> u64 {
    let (_, at) = h
        .timers
        .iter()
        .rev()
        .find(|(k, _)| pick(k))
        .expect("the timer is set");
    at.0 - h.now.0
}

#[test]
fn rfc4028_10_the_refresher_refreshes_every_half_interval_with_the_same_sdp() {
    let mut h = Harness::new();
    let (cid, offer) = answered_from_xmpp(&mut h, "st1");
    timer(&mut h, &cid, 600, Refresher::Us);
    assert_eq!(
        due_in(&h, |k| matches!(k, TimerKey::SessionRefresh { .. })),
        300_000
    );
    h.advance(300_000);
    let out = h.fire_timers();
    assert_eq!(
        one_sip(&out),
        &SipCommand::Reoffer {
            call: h.key(&cid),
            method: OfferMethod::Invite,
            sdp: Some(offer.clone()),
        },
        "RFC 3264 §8: a refresh is our SDP, same o= version"
    );
    h.sip(SipEvent::ReofferAnswered {
        call: h.key(&cid),
        sdp: Some(ANSWER_SDP.into()),
    });
    timer(&mut h, &cid, 600, Refresher::Us);
    // The first timer's expiry (600 s after it was set) is stale now.
    h.advance(300_000);
    let out = h.fire_timers();
    assert!(
        matches!(one_sip(&out), SipCommand::Reoffer { .. }),
        "only the next refresh: {out:#?}"
    );
    assert_eq!(h.core.live_calls(), 1);
    assert_eq!(h.last_row().local_sdp.as_deref(), Some(offer.as_str()));
}

#[test]
fn rfc4028_10_a_session_the_peer_does_not_refresh_ends_on_both_sides() {
    let mut h = Harness::new();
    let cid = answered_from_sip(&mut h, "st2@h");
    timer(&mut h, &cid, 90, Refresher::Peer);
    // BYE a third of the interval (at most 32 s) before it runs out.
    assert_eq!(
        due_in(&h, |k| matches!(k, TimerKey::SessionExpiry { .. })),
        60_000
    );
    // A refresh from the peer at 50 s starts it again.
    h.advance(50_000);
    timer(&mut h, &cid, 90, Refresher::Peer);
    h.advance(10_000);
    assert!(h.fire_timers().is_empty(), "the old expiry is stale");
    h.advance(50_000);
    let out = h.fire_timers();
    let call = h.key(&cid);
    let Some(SipCommand::Bye {
        call: bye_call,
        reason: Some(reason),
    }) = sip_commands(&out).first().copied()
    else {
        panic!("BYE with a Reason: {out:#?}")
    };
    assert_eq!(*bye_call, call);
    assert!(reason.starts_with("SIP;cause=408"), "{reason}");
    assert_eq!(reason_of(jingle_set(&out)), "expired");
    let row = h.last_row();
    assert_eq!(
        (row.state, row.ended_by, row.end_reason.as_deref()),
        (CallState::Ended, Some(EndedBy::Gateway), Some("expired"))
    );
    assert!(
        row.end_detail
            .as_deref()
            .is_some_and(|d| d.contains("RFC 4028"))
    );
}

#[test]
fn rfc4028_10_a_refresh_refused_with_491_is_sent_again() {
    let mut h = Harness::new();
    let (cid, _) = answered_from_xmpp(&mut h, "st3");
    timer(&mut h, &cid, 600, Refresher::Us);
    h.advance(300_000);
    h.fire_timers();
    h.sip(SipEvent::ReofferRefused {
        call: h.key(&cid),
        status: 491,
        reason: "Request Pending".into(),
    });
    let wait = due_in(&h, |k| matches!(k, TimerKey::ReofferRetry { .. }));
    h.advance(wait);
    let out: Vec<Output> = h.fire_timers();
    assert!(matches!(
        one_sip(&out),
        SipCommand::Reoffer {
            method: OfferMethod::Invite,
            ..
        }
    ));
}

#[test]
fn rfc4028_7_2_no_timer_negotiated_means_no_refresh_and_no_expiry() {
    let mut h = Harness::new();
    let (cid, _) = answered_from_xmpp(&mut h, "st4");
    timer(&mut h, &cid, 90, Refresher::Peer);
    h.sip(SipEvent::SessionTimer {
        call: h.key(&cid),
        timer: None,
    });
    h.advance(3_600_000);
    assert!(h.fire_timers().is_empty());
    assert_eq!(h.core.live_calls(), 1);
}

#[test]
fn rfc4028_a_changed_timer_rewrites_the_row_so_a_restart_keeps_it() {
    let mut h = Harness::new();
    let cid = answered_from_sip(&mut h, "st9@h");
    let persisted = |out: &[Output]| out.iter().any(|o| matches!(o, Output::Persist { .. }));
    let tell = |h: &mut Harness, interval, refresher| {
        h.sip(SipEvent::SessionTimer {
            call: h.key(&cid),
            timer: Some(SessionTimer {
                interval,
                refresher,
            }),
        })
    };
    // The first timer came with the 2xx whose row already holds it.
    assert!(!persisted(&tell(&mut h, 1800, Refresher::Peer)));
    assert!(
        !persisted(&tell(&mut h, 1800, Refresher::Peer)),
        "a refresh"
    );
    assert!(
        persisted(&tell(&mut h, 600, Refresher::Us)),
        "a new interval"
    );
    let out = h.sip(SipEvent::SessionTimer {
        call: h.key(&cid),
        timer: None,
    });
    assert!(persisted(&out), "timers off");
}
