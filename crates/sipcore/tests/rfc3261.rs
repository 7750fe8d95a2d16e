//! RFC 3261 transaction and dialog behaviour of the SIP layer, on a virtual
//! clock: two engines (A, the gateway; B, a phone) on an in-memory network.
//! Tests are named by the section they check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;
use stox_mapping::ids::CallId;
use stox_sipcore::{CallKey, Command, Input, OfferMethod, SipCommand, SipEvent, Transport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn rfc3261_13_basic_call_over_udp_tcp_and_ws_then_bye_either_way() {
    for transport in [Transport::Udp, Transport::Tcp, Transport::Ws] {
        let mut net = Net::new();
        let (a, b) = net.establish("basic@test", transport);
        net.command(
            true,
            SipCommand::Bye {
                call: a,
                reason: None,
            },
        );
        net.settle();
        assert_eq!(net.event_b(), SipEvent::Bye { call: b });
        assert_eq!(
            net.count("SIP/2.0 200 OK"),
            2,
            "{transport}: 200 to INVITE and BYE"
        );
        assert_eq!(net.a.sip.live_calls() + net.b.sip.live_calls(), 0);

        let (a, b) = net.establish("basic2@test", transport);
        net.command(
            false,
            SipCommand::Bye {
                call: b,
                reason: None,
            },
        );
        net.settle();
        assert_eq!(net.event_a(), SipEvent::Bye { call: a });
        net.run(Duration::from_secs(40));
        assert_eq!(
            net.a.sip.transactions(),
            (0, 0),
            "{transport}: every transaction ends"
        );
        assert_eq!(net.b.sip.transactions(), (0, 0));
    }
}

/// Timer A: the INVITE is retransmitted over UDP at T1, 2T1, 4T1 … until a
/// response; timer B: 64·T1 without any gives a local 408.
#[test]
fn rfc3261_17_1_1_2_timers_a_and_b() {
    let mut net = Net::new();
    net.lose = Box::new(|from_a, _| from_a); // nothing from A arrives
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(1),
            call_id: CallId::new("ab@test"),
            request_uri: "sip:bob@127.0.0.2:5060".into(),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    net.run(t1() * 64 - ms(1));
    let times: Vec<Duration> = net.sent("INVITE").iter().map(|w| w.at).collect();
    assert_eq!(
        times,
        [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms),
        "T1 doubling, uncapped (timer A)"
    );
    assert!(net.a.events.is_empty());
    net.run(ms(1));
    assert_eq!(
        net.event_a(),
        SipEvent::Rejected {
            call: CallKey(1),
            status: 408,
            reason: "Request Timeout".into()
        },
        "timer B"
    );
    assert_eq!(net.a.sip.live_calls(), 0);
}

/// Over TCP nothing is retransmitted (timer A is not set), timer B still
/// runs.
#[test]
fn rfc3261_17_1_1_2_no_retransmission_over_tcp() {
    let mut net = Net::new();
    net.lose = Box::new(|from_a, _| from_a);
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(1),
            call_id: CallId::new("tcp@test"),
            request_uri: "sip:bob@127.0.0.2:5060;transport=tcp".into(),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    net.run(Duration::from_secs(40));
    assert_eq!(net.count("INVITE"), 1);
    assert!(matches!(
        net.event_a(),
        SipEvent::Rejected { status: 408, .. }
    ));
}

/// Timers E and F: a non-INVITE request (BYE) is retransmitted at T1
/// doubling to T2 over UDP; 64·T1 without an answer ends it (the call is
/// over for the core already).
#[test]
fn rfc3261_17_1_2_2_timers_e_and_f() {
    let mut net = Net::new();
    let (a, _) = net.establish("ef@test", Transport::Udp);
    net.lose = Box::new(|from_a, text| from_a && text.starts_with("BYE"));
    net.command(
        true,
        SipCommand::Bye {
            call: a,
            reason: None,
        },
    );
    net.run(t1() * 64 + ms(10));
    let times: Vec<u64> = net
        .sent("BYE")
        .iter()
        .map(|w| (w.at - net.sent("BYE")[0].at).as_millis() as u64)
        .collect();
    assert_eq!(
        &times[..7],
        &[0, 500, 1500, 3500, 7500, 11500, 15500],
        "E: T1 doubling, capped at T2 = 4 s"
    );
    assert_eq!(net.a.sip.transactions().0, 0, "F ended it");
}

/// Timer D (32 s over UDP) absorbs retransmitted final responses: each gets
/// the same ACK again, none reaches the core.
#[test]
fn rfc3261_17_1_1_2_timer_d_reacks_retransmitted_finals() {
    let mut net = Net::new();
    let (_, b) = net.call("d@test", Transport::Udp);
    // The first ACK is lost: B retransmits its 486 (timer G), A re-ACKs.
    let mut first = true;
    net.lose = Box::new(move |from_a, text| {
        if from_a && text.starts_with("ACK") && first {
            first = false;
            return true;
        }
        false
    });
    net.respond(b, 486, None);
    net.run(Duration::from_secs(2));
    assert!(matches!(
        net.event_a(),
        SipEvent::Rejected { status: 486, .. }
    ));
    assert!(net.a.events.is_empty(), "told once");
    assert_eq!(net.count("SIP/2.0 486"), 2);
    assert_eq!(net.count("ACK"), 2);
    net.run(Duration::from_secs(29));
    assert_eq!(
        net.a.sip.transactions().0,
        1,
        "timer D still running at 31 s"
    );
    net.run(Duration::from_secs(2));
    assert_eq!(net.a.sip.transactions().0, 0, "timer D = 32 s");
}

/// Timers G and H on the UAS: a non-2xx is retransmitted (T1 doubling to
/// T2) until the ACK; with no ACK at all, timer H ends the transaction.
#[test]
fn rfc3261_17_2_1_timers_g_and_h() {
    let mut net = Net::new();
    let (_, b) = net.call("gh@test", Transport::Udp);
    net.lose = Box::new(|from_a, text| from_a && text.starts_with("ACK"));
    net.respond(b, 603, None);
    net.run(t1() * 64 + ms(10));
    let times: Vec<u64> = net
        .sent("SIP/2.0 603")
        .iter()
        .map(|w| (w.at - net.sent("SIP/2.0 603")[0].at).as_millis() as u64)
        .collect();
    assert_eq!(
        &times[..6],
        &[0, 500, 1500, 3500, 7500, 11500],
        "G: doubling to T2"
    );
    assert_eq!(net.b.sip.transactions().1, 0, "H ended it");
}

/// Timer I: after the ACK for a non-2xx the server transaction lingers T4
/// to absorb ACK retransmissions, then ends.
#[test]
fn rfc3261_17_2_1_timer_i() {
    let mut net = Net::new();
    let (_, b) = net.call("i@test", Transport::Udp);
    net.respond(b, 486, None);
    net.run(ms(10));
    assert_eq!(net.b.sip.transactions().1, 1);
    net.run(Duration::from_secs(5));
    assert_eq!(net.b.sip.transactions().1, 0, "timer I = T4");
}

/// Timers J and K: non-INVITE server transactions absorb retransmitted
/// requests for 64·T1 (J), client ones retransmitted responses for T4 (K).
#[test]
fn rfc3261_17_2_2_timers_j_and_k() {
    let mut net = Net::new();
    let (a, _) = net.establish("jk@test", Transport::Udp);
    net.run(t1() * 64 + ms(10)); // the INVITE's transactions are over
    assert_eq!(
        (net.a.sip.transactions(), net.b.sip.transactions()),
        ((0, 0), (0, 0))
    );
    net.command(
        true,
        SipCommand::Bye {
            call: a,
            reason: None,
        },
    );
    net.settle();
    net.run(Duration::from_secs(6));
    assert_eq!(net.a.sip.transactions().0, 0, "K = T4 after the 200");
    assert_eq!(net.b.sip.transactions().1, 1, "J still running");
    net.run(t1() * 64);
    assert_eq!(net.b.sip.transactions().1, 0, "J = 64·T1");
}

/// RFC 3261 §13.3.1.4: our 2xx is retransmitted over UDP (T1 doubling to
/// T2) until the ACK arrives, then not again.
#[test]
fn rfc3261_13_3_1_4_2xx_is_retransmitted_until_the_ack() {
    let mut net = Net::new();
    let (_, b) = net.call("2xx@test", Transport::Udp);
    let mut lost = 0;
    net.lose = Box::new(move |from_a, text| {
        if from_a && text.starts_with("ACK") && lost < 3 {
            lost += 1;
            return true;
        }
        false
    });
    net.respond(b, 200, Some(ANSWER));
    net.run(Duration::from_secs(10));
    // 200 at 0, 0.5, 1.5, 3.5 s; the 4th copy's ACK (A re-ACKs each) lands.
    let times: Vec<u64> = net
        .sent("SIP/2.0 200")
        .iter()
        .map(|w| (w.at - net.sent("SIP/2.0 200")[0].at).as_millis() as u64)
        .collect();
    assert_eq!(times, [0, 500, 1500, 3500]);
    assert!(matches!(net.event_b(), SipEvent::Acked { .. }));
    assert!(matches!(net.event_a(), SipEvent::Answered { .. }));
    assert!(net.a.events.is_empty(), "A is told once, however many 2xx");
}

/// Timer L (RFC 6026 §7.1): with no ACK for our 2xx within 64·T1 the
/// session is ended with BYE and the core told.
#[test]
fn rfc6026_7_1_timer_l_no_ack_ends_the_session() {
    let mut net = Net::new();
    let (_, b) = net.call("l@test", Transport::Udp);
    net.lose = Box::new(|from_a, text| from_a && text.starts_with("ACK"));
    net.respond(b, 200, Some(ANSWER));
    net.run(t1() * 64 + ms(10));
    assert!(matches!(
        net.b.events.iter().last(),
        Some(SipEvent::Terminated { reason, .. }) if reason.contains("no ACK")
    ));
    assert_eq!(net.sent("BYE").len(), 1, "the UAS ends it with BYE");
    assert_eq!(net.b.sip.live_calls(), 0);
}

/// Timer M (RFC 6026 §7.2): the INVITE client transaction stays 64·T1
/// after the 2xx to catch 2xx retransmissions and other forks' 2xx.
#[test]
fn rfc6026_7_2_timer_m() {
    let mut net = Net::new();
    net.establish("m@test", Transport::Udp);
    assert_eq!(net.a.sip.transactions().0, 1);
    net.run(t1() * 64 - ms(10));
    assert_eq!(net.a.sip.transactions().0, 1);
    net.run(ms(20));
    assert_eq!(net.a.sip.transactions().0, 0);
}

/// RFC 3261 §9.2: CANCEL of a pending INVITE: 200 to the CANCEL, 487 to the
/// INVITE, the core told on both sides.
#[test]
fn rfc3261_9_2_cancel_of_a_pending_invite() {
    let mut net = Net::new();
    let (a, b) = net.call("cancel@test", Transport::Udp);
    net.respond(b, 180, None);
    net.settle();
    net.event_a();
    net.command(true, SipCommand::Cancel { call: a });
    net.settle();
    assert_eq!(net.event_b(), SipEvent::Cancelled { call: b });
    let ok = net.sent("SIP/2.0 200");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].header("CSeq").as_deref(), Some("1 CANCEL"));
    assert_eq!(net.count("SIP/2.0 487"), 1);
    match net.event_a() {
        SipEvent::Rejected { status, .. } => assert_eq!(status, 487),
        other => panic!("{other:?}"),
    }
    assert!(net.count("ACK") >= 1, "the 487 is ACKed by the transaction");
}

/// RFC 3261 §15.1.2: the caller may end an early dialog with BYE; the UAS
/// answers the BYE 200 and the pending INVITE 487, and the core hears the
/// call cancelled (it tells the XMPP side as for a CANCEL).
#[test]
fn rfc3261_15_1_2_bye_in_an_early_dialog_gets_200_and_the_invite_487() {
    let mut net = Net::new();
    let (_, b) = net.call("early-bye@test", Transport::Udp);
    net.respond(b, 180, None);
    net.settle();
    assert!(matches!(
        net.event_a(),
        SipEvent::Provisional { status: 180, .. }
    ));
    let invite = net.sent("INVITE")[0].text.clone();
    let ringing = net.sent("SIP/2.0 180")[0].text.clone();
    let uri = invite
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .expect("Request-URI")
        .to_owned();
    let field = |text: &str, name: &str| header(text, name).expect(name);
    let bye = format!(
        "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bKearlybye\r\nMax-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        a = net.a.addr,
        from = field(&invite, "From"),
        to = field(&ringing, "To"),
        cid = field(&invite, "Call-ID"),
    );
    net.inject_b(&bye);
    assert_eq!(net.event_b(), SipEvent::Cancelled { call: b });
    let ok: Vec<_> = net
        .sent("SIP/2.0 200")
        .iter()
        .filter_map(|w| w.header("CSeq"))
        .collect();
    assert_eq!(ok, ["2 BYE"]);
    assert_eq!(net.count("SIP/2.0 487"), 1);
    match net.event_a() {
        SipEvent::Rejected { status, .. } => assert_eq!(status, 487),
        other => panic!("{other:?}"),
    }
}

/// RFC 3261 §15: a callee must not send BYE in an early dialog. One that
/// does gets 200; our INVITE stays pending so the core can CANCEL it.
#[test]
fn rfc3261_15_a_callee_bye_in_an_early_dialog_leaves_the_invite_to_cancel() {
    let mut net = Net::new();
    let (a, b) = net.call("callee-bye@test", Transport::Udp);
    net.respond(b, 180, None);
    net.settle();
    net.event_a();
    let invite = net.sent("INVITE")[0].text.clone();
    let ringing = net.sent("SIP/2.0 180")[0].text.clone();
    let field = |text: &str, name: &str| header(text, name).expect(name);
    // B's BYE, written by hand (B's engine would refuse to send it).
    let bye = format!(
        "BYE sip:alice@{a_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {b_addr};branch=z9hG4bKcalleebye\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        a_addr = net.a.addr,
        b_addr = net.b.addr,
        from = field(&ringing, "To"),
        to = field(&invite, "From"),
        cid = field(&invite, "Call-ID"),
    );
    net.inject(net.b.addr, &bye);
    assert_eq!(net.event_a(), SipEvent::Bye { call: a });
    net.command(true, SipCommand::Cancel { call: a });
    net.settle();
    assert_eq!(
        net.count("CANCEL"),
        1,
        "the INVITE is still there to cancel"
    );
    assert_eq!(net.event_b(), SipEvent::Cancelled { call: b });
    match net.event_a() {
        SipEvent::Rejected { status, .. } => assert_eq!(status, 487),
        other => panic!("{other:?}"),
    }
}

/// RFC 3261 §9.1: a CANCEL asked before any provisional waits for one.
#[test]
fn rfc3261_9_1_cancel_waits_for_a_provisional() {
    let mut net = Net::new();
    net.lose = Box::new(|from_a, text| !from_a && text.starts_with("SIP/2.0 100"));
    let (a, b) = net.call("early-cancel@test", Transport::Udp);
    net.command(true, SipCommand::Cancel { call: a });
    net.settle();
    assert_eq!(net.count("CANCEL"), 0, "nothing heard from B yet");
    net.respond(b, 180, None);
    net.settle();
    assert_eq!(net.count("CANCEL"), 1);
    assert_eq!(net.event_b(), SipEvent::Cancelled { call: b });
}

/// RFC 3261 §9.2: a CANCEL that matches no INVITE gets 481; one for an
/// answered INVITE gets 200 and changes nothing.
#[test]
fn rfc3261_9_2_cancel_matching_nothing_gets_481() {
    let mut net = Net::new();
    net.inject(
        addr("127.0.0.9:5060"),
        "CANCEL sip:juliet@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKnone\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:juliet@example.com>\r\nCall-ID: none@x\r\n\
         CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(net.count("SIP/2.0 481"), 1);
}

/// RFC 3261 §13.2.2.4: a forked INVITE answered by two: the first 2xx is
/// the call, the second is ACKed and ended with BYE, the core hears one.
#[test]
fn rfc3261_13_2_2_4_a_second_2xx_from_another_fork_gets_ack_and_bye() {
    let mut net = Net::new();
    let (_, b) = net.call("fork@test", Transport::Udp);
    net.respond(b, 200, Some(ANSWER));
    net.settle();
    assert!(matches!(net.event_a(), SipEvent::Answered { .. }));
    // Forge a second fork's 2xx: the same response with another To tag.
    let first = net.sent("SIP/2.0 200")[0].text.clone();
    let tag = header(&first, "To")
        .and_then(|t| t.split("tag=").nth(1).map(str::to_owned))
        .expect("tag");
    let second = first.replace(&format!("tag={tag}"), "tag=otherfork");
    net.inject(net.b.addr, &second);
    let acks: Vec<String> = net.sent("ACK").iter().map(|w| w.text.clone()).collect();
    assert!(acks.iter().any(|t| t.contains("tag=otherfork")), "{acks:?}");
    assert!(
        net.sent("BYE")
            .iter()
            .any(|w| w.text.contains("tag=otherfork")),
        "the fork is ended"
    );
    assert!(net.a.events.is_empty(), "the core hears one answer");
}

/// The same after the call ended: A answered, hung up (BYE), and while the
/// INVITE transaction still listens (timer M, RFC 6026 §7.2) a second fork
/// answers: it gets ACK and BYE all the same; a retransmission of the
/// answered dialog's 2xx gets its ACK again and no second BYE.
#[test]
fn rfc3261_13_2_2_4_a_fork_answering_after_the_call_ended_gets_ack_and_bye() {
    let mut net = Net::new();
    let (a, b) = net.call("latefork@test", Transport::Udp);
    net.respond(b, 200, Some(ANSWER));
    net.settle();
    assert!(matches!(net.event_a(), SipEvent::Answered { .. }));
    net.command(
        true,
        SipCommand::Bye {
            call: a,
            reason: None,
        },
    );
    net.settle();
    assert_eq!(net.a.sip.live_calls(), 0);
    let first = net.sent("SIP/2.0 200")[0].text.clone();
    let tag = header(&first, "To")
        .and_then(|t| t.split("tag=").nth(1).map(str::to_owned))
        .expect("tag");

    let (acks, byes) = (net.count("ACK"), net.count("BYE"));
    net.inject(net.b.addr, &first);
    assert_eq!(net.count("ACK"), acks + 1, "the retransmitted 2xx is ACKed");
    assert_eq!(
        net.count("BYE"),
        byes,
        "no second BYE for the answered dialog"
    );

    net.inject(
        net.b.addr,
        &first.replace(&format!("tag={tag}"), "tag=latefork"),
    );
    assert!(
        net.sent("ACK")
            .iter()
            .any(|w| w.text.contains("tag=latefork")),
        "the late fork is ACKed"
    );
    assert!(
        net.sent("BYE")
            .iter()
            .any(|w| w.text.contains("tag=latefork")),
        "and ended"
    );
    assert!(net.a.events.is_empty(), "the core hears nothing of it");
}

/// RFC 3261 §12.2.2: a BYE or an ACK for no dialog: BYE gets 481, an ACK
/// is never answered.
#[test]
fn rfc3261_12_2_2_stray_bye_gets_481_and_stray_ack_nothing() {
    let mut net = Net::new();
    let stray = |method: &str| {
        format!(
            "{method} sip:juliet@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK{method}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:juliet@example.com>;tag=2\r\nCall-ID: stray@x\r\n\
             CSeq: 5 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    net.inject(addr("127.0.0.9:5060"), &stray("BYE"));
    net.inject(addr("127.0.0.9:5060"), &stray("ACK"));
    assert_eq!(net.count("SIP/2.0 481"), 1);
    assert_eq!(net.wire.len(), 1, "nothing for the ACK");
}

/// RFC 3261 §14.2: a re-INVITE while the previous one is unanswered gets
/// 500 with a Retry-After; the first is still answerable.
#[test]
fn rfc3261_14_2_reinvite_while_one_is_pending_gets_500_retry_after() {
    let mut net = Net::new();
    let (_, b) = net.establish("reinv@test", Transport::Udp);
    let invite = net.sent("INVITE")[0].text.clone();
    let to_tag = {
        let ok = net.sent("SIP/2.0 200")[0].text.clone();
        header(&ok, "To").expect("To")
    };
    let reinvite = |cseq: u32, branch: &str| {
        invite
            .replace("CSeq: 1 INVITE", &format!("CSeq: {cseq} INVITE"))
            .replacen("branch=z9hG4bK", &format!("branch=z9hG4bK{branch}"), 1)
            .replace("To: <sip:bob@127.0.0.2:5060>", &format!("To: {to_tag}"))
    };
    // Injected into B (the gateway's answering side here).
    for (cseq, branch) in [(2, "re1"), (3, "re2")] {
        let now = net.now;
        net.b.sip.handle_input(
            now,
            stox_sipcore::Input::Datagram {
                source: net.a.addr,
                data: reinvite(cseq, branch).as_bytes(),
            },
        );
    }
    net.settle();
    let request = match net.event_b() {
        SipEvent::Request {
            request, method, ..
        } => {
            assert_eq!(method, "INVITE");
            request
        }
        other => panic!("{other:?}"),
    };
    let refused = net.sent("SIP/2.0 500");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].header("Retry-After").is_some(),
        "{}",
        refused[0].text
    );
    net.command(
        false,
        SipCommand::Reply {
            call: b,
            request,
            status: 200,
            reason: None,
            sdp: Some(ANSWER.into()),
        },
    );
    net.settle();
    assert!(
        net.sent("SIP/2.0 200")
            .iter()
            .any(|w| w.text.contains("CSeq: 2 INVITE"))
    );
}

/// RFC 3261 §12.2.2: an in-dialog request with a CSeq below the last one
/// is answered 500.
#[test]
fn rfc3261_12_2_2_out_of_order_cseq_gets_500() {
    let mut net = Net::new();
    net.establish("cseq@test", Transport::Udp);
    let bye = |cseq: u32| {
        let invite = net.sent("INVITE")[0].text.clone();
        let to = header(&net.sent("SIP/2.0 200")[0].text, "To").expect("To");
        let from = header(&invite, "From").expect("From");
        format!(
            "INFO sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinfo{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: cseq@test\r\nCSeq: {cseq} INFO\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let (ten, zero) = (bye(10), bye(0));
    for text in [ten, zero] {
        let now = net.now;
        net.b.sip.handle_input(
            now,
            stox_sipcore::Input::Datagram {
                source: net.a.addr,
                data: text.as_bytes(),
            },
        );
    }
    net.settle();
    assert!(matches!(net.event_b(), SipEvent::Request { .. }));
    assert_eq!(net.count("SIP/2.0 500"), 1);
}

/// RFC 3261 §8.2.2.2 and STOX loop detection: an INVITE whose Call-ID is
/// that of a live call (our own INVITE coming back through a loop, or the
/// same request by another path) is refused 482 and starts nothing.
#[test]
fn rfc3261_8_2_2_2_an_invite_reusing_a_live_call_id_gets_482() {
    let mut net = Net::new();
    net.lose = Box::new(|from_a, _| from_a); // A's INVITE never reaches B
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(1),
            call_id: CallId::new("loop@sip.example.com"),
            request_uri: "sip:bob@127.0.0.2:5060".into(),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    let ours = net.sent("INVITE")[0].text.clone();
    // The same INVITE arrives back at A (a loop), with a proxy's Via on top.
    let looped = ours.replacen(
        "Via: ",
        "Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKproxy\r\nVia: ",
        1,
    );
    net.inject(addr("127.0.0.3:5060"), &looped);
    let answers = net.sent("SIP/2.0 482");
    assert_eq!(answers.len(), 1, "{:?}", net.wire);
    assert!(net.a.events.is_empty(), "no call starts");
}

/// RFC 3262 §4: a provisional with `Require: 100rel` and an RSeq is
/// PRACKed (RAck: RSeq, CSeq number, method), once per RSeq; the core hears
/// it as reliable.
#[test]
fn rfc3262_4_reliable_provisionals_are_pracked_once() {
    let mut net = Net::new();
    net.lose = Box::new(|from_a, _| from_a); // A's messages go nowhere
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(1),
            call_id: CallId::new("prack@test"),
            request_uri: "sip:bob@127.0.0.2:5060".into(),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    let invite = net.sent("INVITE")[0].text.clone();
    let via = header(&invite, "Via").expect("via");
    let from = header(&invite, "From").expect("from");
    let p183 = format!(
        "SIP/2.0 183 Session Progress\r\nVia: {via}\r\nFrom: {from}\r\nTo: <sip:bob@127.0.0.2:5060>;tag=b1\r\n\
         Call-ID: prack@test\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@127.0.0.2:5060>\r\nRequire: 100rel\r\nRSeq: 7\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{ANSWER}",
        ANSWER.len()
    );
    net.inject(net.b.addr, &p183);
    net.inject(net.b.addr, &p183); // a retransmission: PRACKed once
    let pracks = net.sent("PRACK");
    assert_eq!(
        pracks.len(),
        1,
        "{:?}",
        net.wire
            .iter()
            .map(|w| w.first_line().to_owned())
            .collect::<Vec<_>>()
    );
    assert_eq!(pracks[0].header("RAck").as_deref(), Some("7 1 INVITE"));
    assert_eq!(pracks[0].header("CSeq").as_deref(), Some("2 PRACK"));
    assert!(
        pracks[0]
            .header("To")
            .unwrap_or_default()
            .contains("tag=b1")
    );
    assert!(matches!(
        net.a.events.pop_front(),
        Some(SipEvent::Provisional {
            status: 183,
            reliable: true,
            ..
        })
    ));
}

/// RFC 3261 §8.1.3.1 / §17.1.4: a send the driver could not make is a
/// transport error. An INVITE in flight fails at once with 503 (the core
/// ends the call); a confirmed call with nothing in flight is `Terminated`
/// (the peer cannot be reached for its requests). Either way the call's
/// SIP state is gone.
#[test]
fn rfc3261_8_1_3_1_a_failed_send_fails_the_invite_or_ends_the_call() {
    let mut net = Net::new();
    net.lose = Box::new(|from_a, _| from_a);
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(1),
            call_id: CallId::new("sendfail@test"),
            request_uri: "sip:bob@127.0.0.2:5060;transport=tcp".into(),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    let now = net.now;
    net.a.sip.handle_input(
        now,
        Input::SendFailed {
            call: Some(CallKey(1)),
            reason: "connection refused".into(),
        },
    );
    net.settle();
    assert!(
        matches!(
            net.event_a(),
            SipEvent::Rejected {
                call: CallKey(1),
                status: 503,
                ..
            }
        ),
        "the INVITE fails with 503"
    );
    assert_eq!(net.a.sip.live_calls(), 0);

    let mut net = Net::new();
    let (a, _b) = net.establish("sendfail2@test", Transport::Udp);
    net.run(Duration::from_secs(40)); // the INVITE transaction is over
    let now = net.now;
    net.a.sip.handle_input(
        now,
        Input::SendFailed {
            call: Some(a),
            reason: "no route".into(),
        },
    );
    net.settle();
    assert!(
        matches!(net.event_a(), SipEvent::Terminated { call, .. } if call == a),
        "an idle confirmed call ends"
    );
    assert_eq!(net.a.sip.live_calls(), 0);
}

/// RFC 3261 §14.1 / RFC 3264 §8: our re-INVITE in the confirmed dialog
/// carries the new offer with the next CSeq; its 2xx is ACKed by us (and a
/// retransmitted 2xx again), and the core hears the answer.
#[test]
fn rfc3261_14_1_a_re_invite_of_ours_is_acked_and_answered_to_the_core() {
    let mut net = Net::new();
    let (a, b) = net.establish("reinv@test", Transport::Udp);
    net.command(
        true,
        SipCommand::Reoffer {
            call: a,
            method: OfferMethod::Invite,
            sdp: Some(OFFER.replace("o=a 1 1", "o=a 1 2")),
        },
    );
    net.settle();
    let SipEvent::Request {
        request, method, ..
    } = net.event_b()
    else {
        panic!("B hears the re-INVITE")
    };
    assert_eq!(method, "INVITE");
    let reinvite = net.sent("INVITE")[1].text.clone();
    assert_eq!(header(&reinvite, "CSeq").as_deref(), Some("2 INVITE"));
    assert!(header(&reinvite, "To").is_some_and(|t| t.contains("tag=")));
    net.command(
        false,
        SipCommand::Reply {
            call: b,
            request,
            status: 200,
            reason: None,
            sdp: Some(ANSWER.into()),
        },
    );
    net.settle();
    assert_eq!(
        net.event_a(),
        SipEvent::ReofferAnswered {
            call: a,
            sdp: Some(ANSWER.into())
        }
    );
    let acks: Vec<_> = net
        .sent("ACK")
        .iter()
        .filter_map(|w| w.header("CSeq"))
        .collect();
    assert_eq!(acks.last().map(String::as_str), Some("2 ACK"));
    assert!(net.b.events.is_empty(), "a re-INVITE's ACK stops B's 2xx");
    net.run(Duration::from_secs(40));
    let retransmitted = net
        .sent("SIP/2.0 200")
        .iter()
        .filter(|w| w.header("CSeq").as_deref() == Some("2 INVITE"))
        .count();
    assert_eq!(retransmitted, 1, "the ACK arrived: no retransmission");
    assert!(net.b.events.is_empty() && net.a.events.is_empty());
    // A retransmission of that 2xx is ACKed again, and the core hears
    // nothing more.
    let ok = net
        .sent("SIP/2.0 200")
        .iter()
        .rev()
        .find(|w| w.header("CSeq").as_deref() == Some("2 INVITE"))
        .expect("the 2xx")
        .text
        .clone();
    let before = net.count("ACK");
    net.inject(net.b.addr, &ok);
    assert_eq!(net.count("ACK"), before + 1);
    assert!(net.a.events.is_empty());
}

/// RFC 3261 §14.1: a non-2xx to our re-INVITE is ACKed by the transaction
/// and reported; the dialog goes on. An UPDATE (RFC 3311) works the same.
#[test]
fn rfc3261_14_1_a_refused_re_offer_is_reported_and_the_dialog_goes_on() {
    let mut net = Net::new();
    let (a, b) = net.establish("reoffer-refused@test", Transport::Udp);
    for method in [OfferMethod::Invite, OfferMethod::Update] {
        net.command(
            true,
            SipCommand::Reoffer {
                call: a,
                method,
                sdp: Some(OFFER.into()),
            },
        );
        net.settle();
        let SipEvent::Request {
            request, method: m, ..
        } = net.event_b()
        else {
            panic!("B hears the offer")
        };
        assert_eq!(m, method.as_str());
        net.command(
            false,
            SipCommand::Reply {
                call: b,
                request,
                status: 488,
                reason: None,
                sdp: None,
            },
        );
        net.settle();
        assert!(matches!(
            net.event_a(),
            SipEvent::ReofferRefused { status: 488, .. }
        ));
    }
    net.command(
        true,
        SipCommand::Bye {
            call: a,
            reason: None,
        },
    );
    net.settle();
    assert_eq!(net.event_b(), SipEvent::Bye { call: b }, "the dialog lives");
}

/// RFC 3261 §14.2 / RFC 3311 §5.2 (glare): an offer from the peer that
/// crosses ours gets 491; a second offer of ours while one is pending is
/// refused to the core (RFC 3264 §4).
#[test]
fn rfc3261_14_2_an_offer_crossing_ours_gets_491() {
    let mut net = Net::new();
    let (a, b) = net.establish("glare@test", Transport::Udp);
    // Hold back A's re-INVITE so that B's crosses it.
    net.lose = Box::new(|from_a, text| from_a && text.starts_with("INVITE"));
    net.command(
        true,
        SipCommand::Reoffer {
            call: a,
            method: OfferMethod::Invite,
            sdp: Some(OFFER.into()),
        },
    );
    net.command(
        true,
        SipCommand::Reoffer {
            call: a,
            method: OfferMethod::Invite,
            sdp: Some(OFFER.into()),
        },
    );
    assert!(matches!(
        net.event_a(),
        SipEvent::CommandFailed {
            command: Command::Reoffer,
            ..
        }
    ));
    net.command(
        false,
        SipCommand::Reoffer {
            call: b,
            method: OfferMethod::Invite,
            sdp: Some(ANSWER.into()),
        },
    );
    net.settle();
    assert_eq!(net.count("SIP/2.0 491"), 1);
    assert!(matches!(
        net.event_b(),
        SipEvent::ReofferRefused { status: 491, .. }
    ));
}

/// RFC 3261 §21.4.13: a 415 says which bodies the server takes (`Accept`).
#[test]
fn rfc3261_21_4_13_a_415_lists_the_bodies_we_take() {
    let mut net = Net::new();
    let (a, b) = net.establish("info415@test", Transport::Udp);
    net.command(
        false,
        SipCommand::Info {
            call: b,
            content_type: "application/dtmf-relay".into(),
            body: "Signal=5\r\nDuration=160\r\n".into(),
        },
    );
    net.settle();
    let SipEvent::Request { request, .. } = net.event_a() else {
        panic!("A hears the INFO")
    };
    net.command(
        true,
        SipCommand::Reply {
            call: a,
            request,
            status: 415,
            reason: None,
            sdp: None,
        },
    );
    net.settle();
    let refused = net.sent("SIP/2.0 415");
    assert_eq!(
        refused[0].header("Accept").as_deref(),
        Some("application/sdp, application/trickle-ice-sdpfrag")
    );
}
