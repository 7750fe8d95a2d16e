//! INVITEs still unanswered when the endpoint dies: their stored head lets a
//! new endpoint on the same ports end them on the wire (RFC 3261 §9.1 CANCEL
//! for ours, a final response for the peer's). And RFC 3261 §18.1.1: where a
//! large INVITE goes.

mod common;

use common::*;
use std::time::Duration;
use stox_mapping::ids::CallId;
use stox_sip::{OutgoingInvite, SipConfig, SipEndpoint, SipError, SipEvent};

async fn restart(gateway: Peer) -> Peer {
    let config = SipConfig {
        udp: Some(gateway.addr("udp")),
        tcp: Some(gateway.addr("tcp")),
        ws: Some(gateway.addr("ws")),
        user_agent: "stox-sip-test".into(),
        ..SipConfig::default()
    };
    drop(gateway);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let cancel = tokio_util::sync::CancellationToken::new();
        match SipEndpoint::start_with_timers(config.clone(), fast_timers(), cancel.clone()).await {
            Ok((sip, events)) => {
                return Peer {
                    sip,
                    events,
                    cancel,
                };
            }
            Err(SipError::Listen { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("restart failed: {e}"),
        }
    }
}

async fn ringing(a: &mut Peer, b: &mut Peer, call_id: &str, transport: &str) -> CallId {
    let id = a.call(call_id, b.uri("romeo", transport));
    assert!(matches!(b.next().await, SipEvent::IncomingInvite { .. }));
    b.sip.respond(&id, 180, None, None, None).expect("180");
    assert!(matches!(
        a.next().await,
        SipEvent::Provisional { status: 180, .. }
    ));
    id
}

/// UDP only: over TCP the CANCEL goes out on a new connection (the old one
/// died with the process), and an rsipstack peer answers it on the INVITE's
/// dead connection — a peer quirk, not something the sender can change.
#[tokio::test]
async fn rfc3261_9_1_our_invite_is_cancelled_after_a_restart() {
    for transport in ["udp"] {
        let gateway = peer_with_timers(all_transports(), fast_timers()).await;
        let mut gateway = gateway;
        let mut phone = peer_with_timers(all_transports(), fast_timers()).await;
        let id = ringing(
            &mut gateway,
            &mut phone,
            &format!("p-uac-{transport}@t"),
            transport,
        )
        .await;
        let snapshot = gateway.sip.pending_snapshot(&id).expect("pending INVITE");
        assert!(
            snapshot.starts_with("stox-sip-pending/1\nrole: uac\n"),
            "{snapshot}"
        );
        let gateway = restart(gateway).await;
        gateway
            .sip
            .restore_pending(&id, &snapshot)
            .expect("restores");
        gateway.sip.cancel(&id).expect("cancel sent");
        match phone.next().await {
            SipEvent::Cancelled { call_id } => assert_eq!(call_id, id, "{transport}"),
            other => panic!("{transport}: expected the CANCEL, got {other:?}"),
        }
        // Used once.
        assert!(matches!(
            gateway.sip.cancel(&id),
            Err(SipError::UnknownCall(_))
        ));
    }
}

#[tokio::test]
async fn rfc3261_17_2_1_the_peers_invite_gets_a_final_response_after_a_restart() {
    let mut phone = peer_with_timers(all_transports(), fast_timers()).await;
    let mut gateway = peer_with_timers(all_transports(), fast_timers()).await;
    let id = ringing(&mut phone, &mut gateway, "p-uas@t", "udp").await;
    let snapshot = gateway.sip.pending_snapshot(&id).expect("pending INVITE");
    assert!(snapshot.contains("role: uas\nlocal-tag: "), "{snapshot}");
    let gateway = restart(gateway).await;
    gateway
        .sip
        .restore_pending(&id, &snapshot)
        .expect("restores");
    gateway
        .sip
        .respond(
            &id,
            500,
            Some("Server Internal Error (gateway restarted)".into()),
            None,
            None,
        )
        .expect("answered");
    match phone.next().await {
        SipEvent::Rejected {
            call_id,
            status,
            reason,
        } => {
            assert_eq!((call_id, status), (id.clone(), 500));
            assert!(reason.contains("restarted"), "{reason}");
        }
        other => panic!("expected the 500, got {other:?}"),
    }
    // The ACK for it is absorbed; nothing else comes.
    phone.quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn answered_calls_have_no_pending_snapshot_and_bad_ones_are_refused() {
    let mut a = peer(all_transports()).await;
    let mut b = peer(all_transports()).await;
    let id = establish(&mut a, &mut b, "answered@t", "udp").await;
    assert_eq!(a.sip.pending_snapshot(&id), None);
    assert_eq!(b.sip.pending_snapshot(&id), None);
    let other = CallId::new("other@t");
    assert!(matches!(
        a.sip.restore_pending(&other, "garbage"),
        Err(SipError::Snapshot { .. })
    ));
}

fn big_invite(call_id: &str, to: String, sdp_bytes: usize) -> OutgoingInvite {
    let mut sdp = SDP_OFFER.to_owned();
    while sdp.len() < sdp_bytes {
        sdp.push_str("a=x-filler:0123456789012345678901234567890123456789\r\n");
    }
    OutgoingInvite {
        call_id: CallId::new(call_id),
        request_uri: to,
        from: "sip:juliet@example.com".into(),
        sdp,
        supported: Vec::new(),
    }
}

/// RFC 3261 §18.1.1: with TCP configured for large requests, an INVITE
/// within 200 bytes of the MTU goes to the (UDP) next hop over TCP.
#[tokio::test]
async fn rfc3261_18_1_1_a_large_invite_goes_over_tcp_when_configured() {
    let mut b = peer(all_transports()).await;
    let proxy = format!("sip:{}", b.addr("udp"));
    let a = peer(SipConfig {
        outbound_proxy: Some(proxy.clone()),
        large_requests_over_tcp: true,
        ..all_transports()
    })
    .await;
    // b's TCP listener shares nothing with its UDP port: point the proxy at
    // a peer whose UDP and TCP ports are the same.
    assert_eq!(
        b.addr("udp").port() == b.addr("tcp").port(),
        b.addr("udp") == b.addr("tcp")
    );
    let small = a.call("small@t", b.uri("romeo", "udp"));
    match b.next().await {
        SipEvent::IncomingInvite {
            call_id, transport, ..
        } => assert_eq!((call_id, transport), (small, "udp")),
        other => panic!("{other:?}"),
    }
    drop(a);
    // Same port for both: the proxy URI names no transport.
    let shared = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = shared.local_addr().expect("addr").port();
    drop(shared);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut c = peer(SipConfig {
        udp: Some(addr),
        tcp: Some(addr),
        ..all_transports()
    })
    .await;
    let a = peer(SipConfig {
        outbound_proxy: Some(format!("sip:{addr}")),
        large_requests_over_tcp: true,
        ..all_transports()
    })
    .await;
    a.sip
        .invite(big_invite("big@t", format!("sip:romeo@{addr}"), 4000))
        .expect("sent");
    match c.next().await {
        SipEvent::IncomingInvite {
            call_id, transport, ..
        } => assert_eq!((call_id.as_str(), transport), ("big@t", "tcp")),
        other => panic!("{other:?}"),
    }
    b.quiet(Duration::from_millis(50)).await;
}

/// Without TCP for large requests, an INVITE that fits no UDP datagram
/// fails at once with a clear reason; one that fits goes over UDP.
#[tokio::test]
async fn rfc3261_18_1_1_an_invite_too_large_for_udp_fails_at_once() {
    let mut b = peer(all_transports()).await;
    let a = peer(all_transports()).await;
    match a
        .sip
        .invite(big_invite("huge@t", b.uri("romeo", "udp"), 70_000))
    {
        Err(e @ SipError::TooLarge { .. }) => {
            assert!(e.to_string().contains("too large for UDP"), "{e}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(a.sip.live_calls().is_empty(), "nothing stays pending");
    a.sip
        .invite(big_invite("mid@t", b.uri("romeo", "udp"), 6000))
        .expect("sent");
    match b.next().await {
        SipEvent::IncomingInvite {
            call_id,
            transport,
            sdp,
            ..
        } => {
            assert_eq!((call_id.as_str(), transport), ("mid@t", "udp"));
            assert!(sdp.unwrap_or_default().len() >= 6000, "read whole");
        }
        other => panic!("{other:?}"),
    }
}
