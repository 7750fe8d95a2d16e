//! INFO in a dialog both ways (RFC 6086, trickle ICE per RFC 8840),
//! `Supported` option tags, and reliable provisionals (RFC 3262).

mod common;

use common::raw::{Msg, RawPeer, callee_request};
use common::*;
use std::time::Duration;
use stox_mapping::ids::CallId;
use stox_sip::{SipError, SipEvent};

const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const FRAG: &str = "a=ice-ufrag:Ab12\r\na=ice-pwd:0123456789abcdef012345\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 UDP 2130706431 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n";

async fn expect_info(peer: &mut Peer, id: &CallId, content_type: &str, body: &str) {
    match peer.next().await {
        SipEvent::Info {
            call_id,
            content_type: ct,
            body: b,
        } => {
            assert_eq!(&call_id, id);
            assert_eq!(ct, content_type);
            assert_eq!(b, body);
        }
        other => panic!("expected Info, got {other:?}"),
    }
}

#[tokio::test]
async fn info_both_ways_in_a_confirmed_dialog() {
    for transport in ["udp", "tcp", "ws"] {
        let mut a = peer(all_transports()).await;
        let mut b = peer(all_transports()).await;
        let id = establish(&mut a, &mut b, &format!("info-{transport}@test"), transport).await;

        a.sip.info(&id, SDPFRAG, FRAG.into()).expect("info a→b");
        expect_info(&mut b, &id, SDPFRAG, FRAG).await;
        b.sip
            .info(
                &id,
                "application/dtmf-relay",
                "Signal=5\r\nDuration=160\r\n".into(),
            )
            .expect("info b→a");
        expect_info(
            &mut a,
            &id,
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
        )
        .await;
        // No body at all: still reported.
        a.sip.info(&id, "", String::new()).expect("empty info");
        expect_info(&mut b, &id, "", "").await;

        hang_up(&mut a, &mut b, &id).await;
        assert_eq!(a.sip.dialog_count(), 0);
        assert_eq!(b.sip.dialog_count(), 0);
    }
}

#[tokio::test]
async fn info_cannot_be_sent_before_the_dialog_is_confirmed() {
    let mut a = peer(all_transports()).await;
    let mut b = peer(all_transports()).await;
    let id = a.call_supporting("early-info@test", b.uri("romeo", "udp"), &["trickle-ice"]);
    match b.next().await {
        SipEvent::IncomingInvite { supported, .. } => {
            assert_eq!(supported, ["100rel", "trickle-ice"]);
        }
        other => panic!("expected IncomingInvite, got {other:?}"),
    }
    b.sip
        .respond(&id, 183, None, Some(SDP_ANSWER.into()), None)
        .expect("183");
    assert!(matches!(
        a.next().await,
        SipEvent::Provisional { status: 183, .. }
    ));
    assert!(matches!(
        a.sip.info(&id, SDPFRAG, FRAG.into()),
        Err(SipError::NotConfirmed(_))
    ));
    assert!(matches!(
        b.sip.info(&id, SDPFRAG, FRAG.into()),
        Err(SipError::NotConfirmed(_))
    ));
    assert!(matches!(
        a.sip
            .info(&CallId::new("nobody@test"), SDPFRAG, String::new()),
        Err(SipError::UnknownCall(_))
    ));
    b.sip.respond(&id, 603, None, None, None).expect("603");
    assert!(matches!(
        a.next().await,
        SipEvent::Rejected { status: 603, .. }
    ));
    a.drained().await;
    b.drained().await;
}

/// An answer to `req` in the callee's dialog `tag` (Contact included).
async fn answer(peer: &RawPeer, req: &Msg, status: &str, tag: &str, extra: &str, body: &str) {
    let extra = format!("Contact: <sip:romeo@{}>\r\n{extra}", peer.addr());
    peer.answer(req, status, tag, &extra, body).await;
}

#[tokio::test]
async fn reliable_183_is_pracked_and_a_2xx_without_sdp_keeps_the_call() {
    let mut a = peer(all_transports()).await;
    let uas = RawPeer::bind().await;
    let id = a.call_supporting(
        "prack@test",
        format!("sip:romeo@{}", uas.addr()),
        &["Trickle-ICE"],
    );
    let invite = uas.request("INVITE").await;
    assert_eq!(invite.header("Supported"), Some("100rel, trickle-ice"));
    assert_eq!(invite.header("Recv-Info"), Some("trickle-ice"));

    let reliable = "Require: 100rel\r\nRSeq: 7\r\nSupported: 100rel, trickle-ice\r\n";
    answer(
        &uas,
        &invite,
        "183 Session Progress",
        "uas-1",
        reliable,
        SDP_ANSWER,
    )
    .await;
    let prack = uas.request("PRACK").await;
    assert_eq!(prack.header("RAck"), Some("7 1 INVITE"));
    assert_eq!(prack.tag("To"), Some("uas-1"));
    answer(&uas, &prack, "200 OK", "", "", "").await;
    match a.next().await {
        SipEvent::Provisional {
            call_id,
            status: 183,
            sdp,
            reliable: true,
            supported,
        } => {
            assert_eq!(call_id, id);
            assert_eq!(sdp.as_deref(), Some(SDP_ANSWER));
            assert_eq!(supported, ["100rel", "trickle-ice"]);
        }
        other => panic!("expected a reliable 183, got {other:?}"),
    }

    answer(
        &uas,
        &invite,
        "200 OK",
        "uas-1",
        "Supported: trickle-ice\r\n",
        "",
    )
    .await;
    match a.next().await {
        SipEvent::Answered { sdp, supported, .. } => {
            assert_eq!(sdp, None);
            assert_eq!(supported, ["trickle-ice"]);
        }
        other => panic!("expected Answered, got {other:?}"),
    }
    let ack = uas.request("ACK").await;
    assert_eq!(ack.tag("To"), Some("uas-1"));

    // INFO from us carries the trickle-ice Info Package.
    a.sip.info(&id, SDPFRAG, FRAG.into()).expect("info");
    let info = uas.request("INFO").await;
    assert_eq!(info.header("Content-Type"), Some(SDPFRAG));
    assert_eq!(info.header("Info-Package"), Some("trickle-ice"));
    assert_eq!(info.header("Content-Disposition"), Some("Info-Package"));
    assert_eq!(info.tag("To"), Some("uas-1"));
    assert_eq!(info.body(), FRAG);
    answer(&uas, &info, "200 OK", "", "", "").await;

    a.sip.bye(&id).expect("bye");
    let bye = uas.request("BYE").await;
    answer(&uas, &bye, "200 OK", "", "", "").await;
    a.drained().await;
    assert_eq!(a.sip.dialog_count(), 0);
    a.quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn info_from_the_callee_in_early_and_confirmed_dialogs() {
    let mut a = peer(all_transports()).await;
    let uas = RawPeer::bind().await;
    let me = uas.addr();
    let to_a = a.addr("udp");
    let id = a.call("callee-info@test", format!("sip:romeo@{me}"));
    let invite = uas.request("INVITE").await;

    // No early dialog yet: 481.
    let early = callee_request(&invite, "INFO", "uas-1", me, 1, "", "");
    uas.send(&early, to_a).await;
    assert!(uas.recv().await.text.starts_with("SIP/2.0 481"));

    answer(&uas, &invite, "180 Ringing", "uas-1", "", "").await;
    assert!(matches!(
        a.next().await,
        SipEvent::Provisional { status: 180, .. }
    ));
    let ct = format!("Content-Type: {SDPFRAG}\r\nInfo-Package: trickle-ice\r\n");
    let early = callee_request(&invite, "INFO", "uas-1", me, 2, &ct, FRAG);
    uas.send(&early, to_a).await;
    let ok = uas.recv().await;
    assert!(ok.text.starts_with("SIP/2.0 200"), "{}", ok.text);
    expect_info(&mut a, &id, SDPFRAG, FRAG).await;

    answer(&uas, &invite, "200 OK", "uas-1", "", SDP_ANSWER).await;
    assert!(matches!(a.next().await, SipEvent::Answered { .. }));
    uas.request("ACK").await;

    // Confirmed: the answered dialog's INFO is taken, another tag's is not.
    let info = callee_request(&invite, "INFO", "uas-1", me, 3, "", "");
    uas.send(&info, to_a).await;
    assert!(uas.recv().await.text.starts_with("SIP/2.0 200"));
    expect_info(&mut a, &id, "", "").await;
    let stray = callee_request(&invite, "INFO", "uas-2", me, 4, &ct, FRAG);
    uas.send(&stray, to_a).await;
    assert!(uas.recv().await.text.starts_with("SIP/2.0 481"));
    let wrong_to =
        callee_request(&invite, "INFO", "uas-1", me, 5, &ct, FRAG).replacen(";tag=", ";tag=x", 2);
    uas.send(&wrong_to, to_a).await;
    assert!(uas.recv().await.text.starts_with("SIP/2.0 481"));
    a.quiet(Duration::from_millis(100)).await;

    let bye = callee_request(&invite, "BYE", "uas-1", me, 6, "", "");
    uas.send(&bye, to_a).await;
    assert!(uas.recv().await.text.starts_with("SIP/2.0 200"));
    assert!(matches!(a.next().await, SipEvent::Bye { .. }));
    a.drained().await;
    assert_eq!(a.sip.dialog_count(), 0);
}

#[tokio::test]
async fn info_from_the_caller_in_our_early_dialog() {
    let mut b = peer(all_transports()).await;
    let caller = RawPeer::bind().await;
    let me = caller.addr();
    let target = b.addr("udp");
    let invite = format!(
        "INVITE sip:romeo@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-uas-early-inv\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{me}>;tag=caller-1\r\n\
         To: <sip:romeo@{target}>\r\n\
         Call-ID: uas-early@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{me}>\r\n\
         Supported: trickle-ice\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP_OFFER}",
        SDP_OFFER.len()
    );
    caller.send(&invite, target).await;
    let id = match b.next().await {
        SipEvent::IncomingInvite {
            call_id, supported, ..
        } => {
            assert_eq!(supported, ["trickle-ice"]);
            call_id
        }
        other => panic!("expected IncomingInvite, got {other:?}"),
    };
    b.sip
        .respond(&id, 183, None, Some(SDP_ANSWER.into()), None)
        .expect("183");
    let progress = loop {
        let msg = caller.recv().await;
        if msg.text.starts_with("SIP/2.0 183") {
            break msg;
        }
    };
    let our_tag = progress.tag("To").expect("183 has a To tag").to_string();
    let info = |to_tag: &str, cseq: u32| {
        format!(
            "INFO sip:romeo@{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-uas-early-info-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@{me}>;tag=caller-1\r\n\
             To: <sip:romeo@{target}>;tag={to_tag}\r\n\
             Call-ID: uas-early@test\r\n\
             CSeq: {cseq} INFO\r\n\
             Content-Type: {SDPFRAG}\r\n\
             Content-Length: {}\r\n\r\n{FRAG}",
            FRAG.len()
        )
    };
    caller.send(&info("not-ours", 2), target).await;
    assert!(caller.recv().await.text.starts_with("SIP/2.0 481"));
    caller.send(&info(&our_tag, 3), target).await;
    assert!(caller.recv().await.text.starts_with("SIP/2.0 200"));
    expect_info(&mut b, &id, SDPFRAG, FRAG).await;

    b.sip.respond(&id, 486, None, None, None).expect("486");
    b.drained().await;
    assert_eq!(b.sip.dialog_count(), 0);
}
