//! Two `SipEndpoint`s calling each other over UDP, TCP and WebSocket.

mod common;

use common::*;
use std::time::Duration;
use stox_mapping::ids::CallId;
use stox_sip::{SipConfig, SipError, SipEvent};

async fn basic_call_both_ways(transport: &str) {
    let mut a = peer(all_transports()).await;
    let mut b = peer(all_transports()).await;

    // A calls B, A hangs up.
    let id = establish(&mut a, &mut b, &format!("{transport}-1@test"), transport).await;
    hang_up(&mut a, &mut b, &id).await;

    // A calls B again, B hangs up.
    let id = establish(&mut a, &mut b, &format!("{transport}-2@test"), transport).await;
    hang_up(&mut b, &mut a, &id).await;

    // B calls A (the other role on each side), B hangs up.
    let id = establish(&mut b, &mut a, &format!("{transport}-3@test"), transport).await;
    hang_up(&mut b, &mut a, &id).await;
    a.quiet(Duration::from_millis(100)).await;
    b.quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn basic_call_udp() {
    basic_call_both_ways("udp").await;
}

#[tokio::test]
async fn basic_call_tcp() {
    basic_call_both_ways("tcp").await;
}

#[tokio::test]
async fn basic_call_ws() {
    basic_call_both_ways("ws").await;
}

#[tokio::test]
async fn cancel_before_answer() {
    for transport in ["udp", "tcp", "ws"] {
        let mut a = peer(all_transports()).await;
        let mut b = peer(all_transports()).await;
        let id = a.call(
            &format!("cancel-{transport}@test"),
            b.uri("romeo", transport),
        );
        assert!(matches!(b.next().await, SipEvent::IncomingInvite { .. }));
        b.sip.respond(&id, 180, None, None, None).expect("180");
        assert!(matches!(
            a.next().await,
            SipEvent::Provisional { status: 180, .. }
        ));
        a.sip.cancel(&id).expect("cancel");
        match b.next().await {
            SipEvent::Cancelled { call_id } => assert_eq!(call_id, id),
            other => panic!("expected Cancelled, got {other:?}"),
        }
        match a.next().await {
            SipEvent::Rejected {
                call_id,
                status: 487,
                ..
            } => assert_eq!(call_id, id),
            other => panic!("expected Rejected 487, got {other:?}"),
        }
        a.drained().await;
        b.drained().await;
    }
}

#[tokio::test]
async fn busy_rejection_keeps_reason() {
    let mut a = peer(all_transports()).await;
    let mut b = peer(all_transports()).await;

    let id = a.call("busy@test", b.uri("romeo", "udp"));
    assert!(matches!(b.next().await, SipEvent::IncomingInvite { .. }));
    b.sip.respond(&id, 486, None, None, None).expect("486");
    match a.next().await {
        SipEvent::Rejected {
            call_id,
            status: 486,
            reason,
        } => {
            assert_eq!(call_id, id);
            assert_eq!(reason, "Busy Here");
        }
        other => panic!("expected Rejected 486, got {other:?}"),
    }

    let id = a.call("offline@test", b.uri("romeo", "tcp"));
    assert!(matches!(b.next().await, SipEvent::IncomingInvite { .. }));
    b.sip
        .respond(&id, 480, Some("Callee Has No Resource".into()), None, None)
        .expect("480");
    match a.next().await {
        SipEvent::Rejected {
            status: 480,
            reason,
            ..
        } => assert_eq!(reason, "Callee Has No Resource"),
        other => panic!("expected Rejected 480, got {other:?}"),
    }
    a.drained().await;
    b.drained().await;
}

#[tokio::test]
async fn early_media_183_with_sdp() {
    let mut a = peer(all_transports()).await;
    let mut b = peer(all_transports()).await;
    let id = a.call("early@test", b.uri("romeo", "udp"));
    assert!(matches!(b.next().await, SipEvent::IncomingInvite { .. }));
    b.sip
        .respond(&id, 183, None, Some(SDP_ANSWER.into()), None)
        .expect("183");
    match a.next().await {
        SipEvent::Provisional {
            status: 183, sdp, ..
        } => assert_eq!(sdp.as_deref(), Some(SDP_ANSWER)),
        other => panic!("expected 183, got {other:?}"),
    }
    // 180 with SDP is not what rsipstack's ringing() builds: our own path.
    b.sip
        .respond(&id, 180, None, Some(SDP_ANSWER.into()), None)
        .expect("180 sdp");
    match a.next().await {
        SipEvent::Provisional {
            status: 180, sdp, ..
        } => assert_eq!(sdp.as_deref(), Some(SDP_ANSWER)),
        other => panic!("expected 180, got {other:?}"),
    }
    b.sip.respond(&id, 603, None, None, None).expect("603");
    assert!(matches!(
        a.next().await,
        SipEvent::Rejected { status: 603, .. }
    ));
    a.drained().await;
    b.drained().await;
}

#[tokio::test]
async fn outbound_proxy_over_tcp() {
    let mut b = peer(all_transports()).await;
    let proxy = format!("sip:{};transport=tcp", b.addr("tcp"));
    let mut a = peer(SipConfig {
        outbound_proxy: Some(proxy),
        ..all_transports()
    })
    .await;
    // The Request-URI host is never resolved: the proxy is the next hop.
    let id = a.call("proxy@test", "sip:romeo@example.invalid".into());
    match b.next().await {
        SipEvent::IncomingInvite {
            transport,
            request_uri,
            ..
        } => {
            assert_eq!(transport, "tcp");
            assert_eq!(request_uri, "sip:romeo@example.invalid");
        }
        other => panic!("expected IncomingInvite, got {other:?}"),
    }
    b.sip
        .respond(&id, 200, None, Some(SDP_ANSWER.into()), None)
        .expect("200");
    assert!(matches!(
        a.next().await,
        SipEvent::Answered { status: 200, .. }
    ));
    assert!(matches!(b.next().await, SipEvent::Acked { .. }));
    hang_up(&mut b, &mut a, &id).await;
}

#[tokio::test]
async fn invite_timeout_is_408() {
    // Nobody answers on this socket.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let target = silent.local_addr().expect("addr");
    let mut a = peer_with_timers(all_transports(), fast_timers()).await;
    let id = a.call("timeout@test", format!("sip:romeo@{target}"));
    match a.next().await {
        SipEvent::Rejected {
            call_id,
            status: 408,
            reason,
        } => {
            assert_eq!(call_id, id);
            assert_eq!(reason, "Request Timeout");
        }
        other => panic!("expected Rejected 408, got {other:?}"),
    }
    a.drained().await;
}

#[tokio::test]
async fn unknown_calls_and_bad_uris() {
    let a = peer(all_transports()).await;
    let nobody = CallId::new("nobody@test");
    assert!(matches!(a.sip.bye(&nobody), Err(SipError::UnknownCall(_))));
    assert!(matches!(
        a.sip.cancel(&nobody),
        Err(SipError::UnknownCall(_))
    ));
    assert!(matches!(
        a.sip.respond(&nobody, 200, None, None, None),
        Err(SipError::UnknownCall(_))
    ));
    let bad = a.sip.invite(stox_sip::OutgoingInvite {
        call_id: CallId::new("bad@test"),
        request_uri: "not a uri".into(),
        from: "sip:juliet@example.com".into(),
        sdp: SDP_OFFER.into(),
        supported: Vec::new(),
    });
    assert!(matches!(bad, Err(SipError::InvalidUri(_))));
}

#[tokio::test]
async fn port_in_use_is_a_listen_error() {
    let a = peer(all_transports()).await;
    let taken = a.addr("tcp");
    let cancel = tokio_util::sync::CancellationToken::new();
    let config = SipConfig {
        tcp: Some(taken),
        ..Default::default()
    };
    match stox_sip::SipEndpoint::start(config, cancel).await {
        Err(SipError::Listen {
            transport: "tcp",
            addr,
            ..
        }) => assert_eq!(addr, taken),
        Err(e) => panic!("expected a listen error, got {e}"),
        Ok(_) => panic!("expected a listen error"),
    }
}
