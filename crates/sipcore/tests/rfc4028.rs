//! RFC 4028 session timers, the header side: what the SIP layer asks for,
//! answers and refuses, and what it tells the core. Tests are named by the
//! section they check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use stox_sipcore::{Config, OfferMethod, Refresher, SessionTimer, SipCommand, SipEvent, Transport};

fn timers(local: &str, seed: u64, session_expires: u32) -> Config {
    Config {
        session_expires,
        min_se: 90,
        ..config(local, seed)
    }
}

fn net() -> Net {
    Net::with(
        timers("127.0.0.1:5060", 1, 1800),
        timers("127.0.0.2:5060", 2, 600),
    )
}

fn invite_from(peer: &str, extra: &str) -> String {
    format!(
        "INVITE sip:juliet@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {peer};branch=z9hG4bK{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:romeo@example.net>;tag=r{n}\r\nTo: <sip:juliet@example.com>\r\n\
         Call-ID: timer-{n}@x\r\nCSeq: 1 INVITE\r\nContact: <sip:romeo@{peer}>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{OFFER}",
        n = extra.len(),
        len = OFFER.len(),
    )
}

#[test]
fn rfc4028_7_1_and_9_the_callee_picks_its_interval_and_the_caller_refreshes() {
    let mut net = net();
    let (a, b) = net.call("timer@test", Transport::Udp);
    let invite = net.sent("INVITE")[0].text.clone();
    assert!(header(&invite, "Supported").is_some_and(|s| s.contains("timer")));
    assert_eq!(header(&invite, "Session-Expires").as_deref(), Some("1800"));
    assert_eq!(header(&invite, "Min-SE").as_deref(), Some("90"));
    net.respond(b, 200, Some(ANSWER));
    net.settle();
    let ok = net.sent("SIP/2.0 200")[0].text.clone();
    // B's own limit is 600 s: it lowers the interval (never below Min-SE);
    // A said it supports timers, so A refreshes and B requires the option.
    assert_eq!(
        header(&ok, "Session-Expires").as_deref(),
        Some("600;refresher=uac")
    );
    assert_eq!(header(&ok, "Require").as_deref(), Some("timer"));
    assert_eq!(
        net.event_b(),
        SipEvent::SessionTimer {
            call: b,
            timer: Some(SessionTimer {
                interval: 600,
                refresher: Refresher::Peer
            })
        }
    );
    assert!(matches!(net.event_a(), SipEvent::Answered { .. }));
    assert_eq!(
        net.event_a(),
        SipEvent::SessionTimer {
            call: a,
            timer: Some(SessionTimer {
                interval: 600,
                refresher: Refresher::Us
            })
        }
    );
}

#[test]
fn rfc4028_7_4_a_refresh_names_us_refresher_and_its_2xx_restarts_the_timer() {
    let mut net = net();
    let (a, b) = net.establish_with_timers("refresh@test");
    net.command(
        true,
        SipCommand::Reoffer {
            call: a,
            method: OfferMethod::Update,
            sdp: None,
        },
    );
    net.settle();
    let update = net.sent("UPDATE")[0].text.clone();
    assert_eq!(
        header(&update, "Session-Expires").as_deref(),
        Some("600;refresher=uac")
    );
    assert_eq!(header(&update, "Content-Length").as_deref(), Some("0"));
    let SipEvent::Request { request, .. } = net.event_b() else {
        panic!("B hears the UPDATE")
    };
    net.command(
        false,
        SipCommand::Reply {
            call: b,
            request,
            status: 200,
            reason: None,
            sdp: None,
        },
    );
    net.settle();
    assert!(matches!(
        net.event_b(),
        SipEvent::SessionTimer {
            timer: Some(SessionTimer {
                refresher: Refresher::Peer,
                ..
            }),
            ..
        }
    ));
    assert_eq!(
        net.event_a(),
        SipEvent::ReofferAnswered { call: a, sdp: None }
    );
    assert!(matches!(
        net.event_a(),
        SipEvent::SessionTimer {
            timer: Some(SessionTimer {
                interval: 600,
                refresher: Refresher::Us
            }),
            ..
        }
    ));
}

#[test]
fn rfc4028_8_1_too_short_an_interval_gets_422_with_our_min_se() {
    let mut net = net();
    net.inject(
        addr("127.0.0.9:5060"),
        &invite_from(
            "127.0.0.9:5060",
            "Supported: timer\r\nSession-Expires: 30\r\n",
        ),
    );
    let refused = net.sent("SIP/2.0 422");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].header("Min-SE").as_deref(), Some("90"));
    assert!(net.a.events.is_empty(), "nothing reaches the core");
}

#[test]
fn rfc4028_9_a_caller_without_timers_leaves_the_refreshing_to_us() {
    let mut net = net();
    // `Require: timer` is honoured (no 420) while timers are on.
    for extra in ["", "Require: timer\r\nSession-Expires: 120\r\n"] {
        net.inject(
            addr("127.0.0.9:5060"),
            &invite_from("127.0.0.9:5060", extra),
        );
        let call = match net.a.events.pop_front() {
            Some(SipEvent::IncomingInvite { call, .. }) => call,
            other => panic!("{other:?}"),
        };
        net.command(
            true,
            SipCommand::Respond {
                call,
                status: 200,
                reason: None,
                sdp: Some(ANSWER.into()),
                retry_after: None,
            },
        );
        let ok = net.sent("SIP/2.0 200").last().expect("200").text.clone();
        let timer = net.a.events.pop_front();
        if extra.is_empty() {
            assert_eq!(
                header(&ok, "Session-Expires").as_deref(),
                Some("1800;refresher=uas")
            );
            assert_eq!(header(&ok, "Require"), None);
            assert!(matches!(
                timer,
                Some(SipEvent::SessionTimer {
                    timer: Some(SessionTimer {
                        interval: 1800,
                        refresher: Refresher::Us
                    }),
                    ..
                })
            ));
        } else {
            assert_eq!(
                header(&ok, "Session-Expires").as_deref(),
                Some("120;refresher=uac")
            );
            assert_eq!(header(&ok, "Require").as_deref(), Some("timer"));
        }
    }
    assert_eq!(net.count("SIP/2.0 420"), 0);
}

#[test]
fn rfc3261_8_2_2_3_require_timer_is_420_while_session_timers_are_off() {
    let mut net = Net::with(
        timers("127.0.0.1:5060", 1, 0),
        timers("127.0.0.2:5060", 2, 0),
    );
    net.inject(
        addr("127.0.0.9:5060"),
        &invite_from("127.0.0.9:5060", "Require: timer\r\n"),
    );
    assert_eq!(net.count("SIP/2.0 420"), 1);
}

fn callee_min_se(min_se: u32) -> Net {
    Net::with(
        timers("127.0.0.1:5060", 1, 1800),
        Config {
            min_se,
            ..timers("127.0.0.2:5060", 2, min_se)
        },
    )
}

#[test]
fn rfc4028_7_4_a_422_to_our_invite_is_sent_again_once_with_the_peers_min_se() {
    let mut net = callee_min_se(3600);
    let (a, b) = net.call("retry422@test", Transport::Udp);
    assert_eq!(net.count("SIP/2.0 422"), 1);
    assert_eq!(net.count("ACK "), 1, "the 422 is ACKed by its transaction");
    let invites: Vec<String> = net.sent("INVITE").iter().map(|w| w.text.clone()).collect();
    assert_eq!(invites.len(), 2);
    let (first, again) = (&invites[0], &invites[1]);
    assert_eq!(header(again, "CSeq").as_deref(), Some("2 INVITE"));
    assert_eq!(header(again, "Session-Expires").as_deref(), Some("3600"));
    assert_eq!(header(again, "Min-SE").as_deref(), Some("3600"));
    assert_eq!(header(first, "Call-ID"), header(again, "Call-ID"));
    assert_eq!(header(first, "From"), header(again, "From"));
    assert_ne!(header(first, "Via"), header(again, "Via"), "a new branch");
    net.respond(b, 200, Some(ANSWER));
    net.settle();
    assert!(matches!(net.event_a(), SipEvent::Answered { call, .. } if call == a));
    assert!(matches!(
        net.event_a(),
        SipEvent::SessionTimer {
            timer: Some(SessionTimer { interval: 3600, .. }),
            ..
        }
    ));
    let ack = net
        .sent("ACK ")
        .last()
        .map(|w| w.text.clone())
        .expect("ACK");
    assert_eq!(header(&ack, "CSeq").as_deref(), Some("2 ACK"));
}

#[test]
fn rfc4028_7_4_a_422_asking_for_more_than_a_day_ends_the_call() {
    let mut net = callee_min_se(100_000);
    net.command(
        true,
        SipCommand::Invite {
            call: stox_sipcore::CallKey(7),
            call_id: stox_mapping::ids::CallId::new("day422@test"),
            request_uri: format!("sip:bob@{}", net.b.addr),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    net.settle();
    assert_eq!(net.count("INVITE"), 1, "not sent again");
    assert!(matches!(
        net.event_a(),
        SipEvent::Rejected { status: 422, .. }
    ));
}

#[test]
fn rfc4028_a_session_timer_outlives_a_restart_with_its_dialog() {
    let mut net = net();
    let (a, b) = net.establish_with_timers("restart@test");
    let ours = net.a.sip.dialog_snapshot(a).expect("A's dialog");
    let theirs = net.b.sip.dialog_snapshot(b).expect("B's dialog");
    assert!(ours.contains("session-timer: 600;refresher=us\n"), "{ours}");
    assert!(
        theirs.contains("session-timer: 600;refresher=peer\n"),
        "{theirs}"
    );

    // A restarted engine takes the dialog back and tells the core again.
    let mut restarted =
        stox_sipcore::Sip::new(timers("127.0.0.1:5060", 9, 1800), net.now).expect("config");
    let key = stox_sipcore::CallKey(99);
    restarted
        .restore_dialog(key, &stox_mapping::ids::CallId::new("restart@test"), &ours)
        .expect("restored");
    let events: Vec<SipEvent> = std::iter::from_fn(|| restarted.poll_output())
        .filter_map(|o| match o {
            stox_sipcore::Output::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        [SipEvent::SessionTimer {
            call: key,
            timer: Some(SessionTimer {
                interval: 600,
                refresher: Refresher::Us
            })
        }]
    );
    let again = restarted.dialog_snapshot(key).expect("snapshot");
    assert!(
        again.contains("session-timer: 600;refresher=us\n"),
        "{again}"
    );

    // A corrupt timer line fails the restore like any corrupt snapshot.
    for bad in [
        "0;refresher=us",
        "600;refresher=them",
        "600",
        "99999999;refresher=us",
    ] {
        let text = ours.replace("600;refresher=us", bad);
        let mut fresh =
            stox_sipcore::Sip::new(timers("127.0.0.1:5060", 10, 1800), net.now).expect("config");
        assert!(
            fresh
                .restore_dialog(key, &stox_mapping::ids::CallId::new("restart@test"), &text)
                .is_err(),
            "{bad}"
        );
    }
}
