//! RFC 3261 §13.2.2.4: our INVITE forked by a proxy. A scripted raw-UDP
//! "proxy" answers with two early dialogs and two 2xx; the core must see
//! every provisional, one `Answered`, and nothing of the losing fork.

mod common;

use common::raw::{Msg, RawPeer};
use common::*;
use std::time::Duration;
use stox_sip::SipEvent;

const CONTACT_A: &str = "Contact: <sip:fork-a@{me}>\r\n";
const CONTACT_B: &str = "Contact: <sip:fork-b@{me}>\r\n";

fn contact(template: &str, proxy: &RawPeer) -> String {
    template.replace("{me}", &proxy.addr().to_string())
}

/// Sends the INVITE to `proxy` and returns it with the call's id.
async fn invite_through(
    a: &Peer,
    proxy: &RawPeer,
    call_id: &str,
) -> (stox_mapping::ids::CallId, Msg) {
    let id = a.call(call_id, format!("sip:romeo@{}", proxy.addr()));
    let invite = proxy.request("INVITE").await;
    (id, invite)
}

#[tokio::test]
async fn two_forks_ring_and_answer_only_the_first_2xx_is_reported() {
    let mut a = peer(all_transports()).await;
    let proxy = RawPeer::bind().await;
    let (id, invite) = invite_through(&a, &proxy, "fork@test").await;
    let (ca, cb) = (contact(CONTACT_A, &proxy), contact(CONTACT_B, &proxy));

    proxy.answer(&invite, "100 Trying", "", "", "").await;
    proxy
        .answer(&invite, "180 Ringing", "fork-a", &ca, "")
        .await;
    proxy
        .answer(&invite, "180 Ringing", "fork-b", &cb, "")
        .await;
    for _ in 0..2 {
        match a.next().await {
            SipEvent::Provisional {
                call_id,
                status: 180,
                reliable: false,
                ..
            } => assert_eq!(call_id, id),
            other => panic!("expected Provisional 180, got {other:?}"),
        }
    }

    proxy
        .answer(&invite, "200 OK", "fork-a", &ca, SDP_ANSWER)
        .await;
    proxy
        .answer(&invite, "200 OK", "fork-b", &cb, SDP_OFFER)
        .await;

    // Both 2xx are ACKed in their own dialog; fork B then gets a BYE.
    let acks = proxy.requests("ACK", 2).await;
    let mut tags: Vec<&str> = acks.iter().filter_map(|m| m.tag("To")).collect();
    tags.sort();
    assert_eq!(tags, ["fork-a", "fork-b"]);
    for ack in &acks {
        let fork = ack.tag("To").unwrap_or_default();
        assert!(
            ack.uri().contains(fork),
            "ACK R-URI {} for {fork}",
            ack.uri()
        );
    }
    let bye_b = proxy.request("BYE").await;
    assert_eq!(bye_b.tag("To"), Some("fork-b"));
    assert!(bye_b.uri().contains("fork-b"), "{}", bye_b.uri());
    proxy.answer(&bye_b, "200 OK", "", "", "").await;

    match a.next().await {
        SipEvent::Answered {
            call_id,
            status: 200,
            sdp,
            ..
        } => {
            assert_eq!(call_id, id);
            assert_eq!(sdp.as_deref(), Some(SDP_ANSWER), "fork A's answer");
        }
        other => panic!("expected Answered, got {other:?}"),
    }
    a.quiet(Duration::from_millis(200)).await;

    // A retransmitted 2xx of fork A is re-ACKed and not reported; a late
    // 486 from a third fork is ignored; fork B's 2xx again gets no 2nd BYE.
    proxy
        .answer(&invite, "200 OK", "fork-a", &ca, SDP_ANSWER)
        .await;
    let reack = proxy.request("ACK").await;
    assert_eq!(reack.tag("To"), Some("fork-a"));
    proxy
        .answer(&invite, "486 Busy Here", "fork-c", "", "")
        .await;
    proxy
        .answer(&invite, "200 OK", "fork-b", &cb, SDP_OFFER)
        .await;
    proxy.no_request("BYE", Duration::from_millis(300)).await;
    a.quiet(Duration::from_millis(100)).await;
    assert_eq!(a.sip.live_calls(), std::slice::from_ref(&id));

    // Our hang-up ends the answered fork's dialog.
    a.sip.bye(&id).expect("bye");
    let bye_a = proxy.request("BYE").await;
    assert_eq!(bye_a.tag("To"), Some("fork-a"));
    assert!(bye_a.uri().contains("fork-a"), "{}", bye_a.uri());
    proxy.answer(&bye_a, "200 OK", "", "", "").await;
    a.drained().await;
    assert_eq!(a.sip.dialog_count(), 0, "no dialog left behind");
    a.quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn the_peer_bye_on_the_answered_fork_ends_the_call() {
    let mut a = peer(all_transports()).await;
    let proxy = RawPeer::bind().await;
    let (id, invite) = invite_through(&a, &proxy, "fork-bye@test").await;
    let (ca, cb) = (contact(CONTACT_A, &proxy), contact(CONTACT_B, &proxy));

    proxy
        .answer(&invite, "183 Session Progress", "fork-a", &ca, SDP_ANSWER)
        .await;
    proxy
        .answer(&invite, "180 Ringing", "fork-b", &cb, "")
        .await;
    assert!(matches!(
        a.next().await,
        SipEvent::Provisional {
            status: 183,
            sdp: Some(_),
            ..
        }
    ));
    assert!(matches!(
        a.next().await,
        SipEvent::Provisional {
            status: 180,
            sdp: None,
            ..
        }
    ));
    // This time fork B wins; fork A's later 2xx is the extra one.
    proxy
        .answer(&invite, "200 OK", "fork-b", &cb, SDP_OFFER)
        .await;
    assert!(matches!(a.next().await, SipEvent::Answered { .. }));
    proxy
        .answer(&invite, "200 OK", "fork-a", &ca, SDP_ANSWER)
        .await;
    let bye_a = proxy.request("BYE").await;
    assert_eq!(bye_a.tag("To"), Some("fork-a"));
    proxy.answer(&bye_a, "200 OK", "", "", "").await;

    // Fork B's callee hangs up: one Bye, and everything is cleaned up.
    let bye = common::raw::callee_request(&invite, "BYE", "fork-b", proxy.addr(), 7, "", "");
    proxy.send(&bye, a.addr("udp")).await;
    let ok = proxy.recv().await;
    assert!(ok.text.starts_with("SIP/2.0 200"), "{}", ok.text);
    match a.next().await {
        SipEvent::Bye { call_id } => assert_eq!(call_id, id),
        other => panic!("expected Bye, got {other:?}"),
    }
    a.drained().await;
    assert_eq!(a.sip.dialog_count(), 0);
    a.quiet(Duration::from_millis(200)).await;
}
