//! Two-endpoint harness on 127.0.0.1 with port 0.
#![allow(dead_code)]

pub mod raw;

use std::net::SocketAddr;
use std::time::Duration;
use stox_mapping::ids::CallId;
use stox_sip::{OutgoingInvite, SipConfig, SipEndpoint, SipEvent, SipTimers};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

pub const SDP_OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";
pub const SDP_ANSWER: &str = "v=0\r\no=bob 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

/// How long any single expected event may take.
const EVENT_WAIT: Duration = Duration::from_secs(3);

pub struct Peer {
    pub sip: SipEndpoint,
    pub events: Receiver<SipEvent>,
    pub cancel: CancellationToken,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn all_transports() -> SipConfig {
    SipConfig {
        udp: Some(loopback()),
        tcp: Some(loopback()),
        ws: Some(loopback()),
        outbound_proxy: None,
        user_agent: "stox-sip-test".into(),
        ..SipConfig::default()
    }
}

pub async fn peer(config: SipConfig) -> Peer {
    peer_with_timers(config, SipTimers::default()).await
}

pub async fn peer_with_timers(config: SipConfig, timers: SipTimers) -> Peer {
    // Logs only when asked for: RUST_LOG=stox_sip=debug cargo test -p stox-sip
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let cancel = CancellationToken::new();
    let (sip, events) = SipEndpoint::start_with_timers(config, timers, cancel.clone())
        .await
        .expect("endpoint starts");
    Peer {
        sip,
        events,
        cancel,
    }
}

/// Short timers: 64*T1 = 640 ms.
pub fn fast_timers() -> SipTimers {
    SipTimers {
        t1: Duration::from_millis(10),
        t2: Duration::from_millis(40),
        t4: Duration::from_millis(50),
    }
}

impl Peer {
    pub fn addr(&self, transport: &str) -> SocketAddr {
        self.sip
            .local_addrs()
            .into_iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| a)
            .expect("transport is bound")
    }

    /// `sip:user@<our address for transport>[;transport=…]`
    pub fn uri(&self, user: &str, transport: &str) -> String {
        let addr = self.addr(transport);
        match transport {
            "udp" => format!("sip:{user}@{addr}"),
            t => format!("sip:{user}@{addr};transport={t}"),
        }
    }

    pub async fn next(&mut self) -> SipEvent {
        tokio::time::timeout(EVENT_WAIT, self.events.recv())
            .await
            .expect("event arrives in time")
            .expect("event channel open")
    }

    /// Asserts nothing arrives for a short while.
    pub async fn quiet(&mut self, wait: Duration) {
        if let Ok(Some(event)) = tokio::time::timeout(wait, self.events.recv()).await {
            panic!("unexpected event {event:?}");
        }
    }

    /// Waits until the call table is empty.
    pub async fn drained(&self) {
        for _ in 0..100 {
            if self.sip.live_calls().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("calls left in the table: {:?}", self.sip.live_calls());
    }

    pub fn call(&self, call_id: &str, to: String) -> CallId {
        self.call_supporting(call_id, to, &[])
    }

    /// [`Peer::call`] with extra `Supported` option tags.
    pub fn call_supporting(&self, call_id: &str, to: String, supported: &[&str]) -> CallId {
        let call_id = CallId::new(call_id);
        self.sip
            .invite(OutgoingInvite {
                call_id: call_id.clone(),
                request_uri: to,
                from: "sip:juliet@example.com".into(),
                sdp: SDP_OFFER.into(),
                supported: supported.iter().map(|t| t.to_string()).collect(),
            })
            .expect("invite accepted");
        call_id
    }
}

/// Drives one call from `a` to `b` up to the ACK; returns its Call-ID.
pub async fn establish(a: &mut Peer, b: &mut Peer, call_id: &str, transport: &str) -> CallId {
    let id = a.call(call_id, b.uri("romeo", transport));
    match b.next().await {
        SipEvent::IncomingInvite {
            call_id,
            request_uri,
            from,
            to,
            sdp,
            transport: t,
            source,
            supported,
        } => {
            assert_eq!(supported, ["100rel"]);
            assert_eq!(call_id, id);
            assert!(
                request_uri.starts_with("sip:romeo@127.0.0.1:"),
                "{request_uri}"
            );
            assert_eq!(from, "sip:juliet@example.com");
            assert!(to.starts_with("sip:romeo@127.0.0.1:"), "{to}");
            assert_eq!(sdp.as_deref(), Some(SDP_OFFER));
            assert_eq!(t, transport);
            assert!(source.ip().is_loopback());
        }
        other => panic!("expected IncomingInvite, got {other:?}"),
    }
    b.sip.respond(&id, 180, None, None, None).expect("180");
    match a.next().await {
        SipEvent::Provisional {
            call_id,
            status: 180,
            sdp: None,
            reliable: false,
            ..
        } => assert_eq!(call_id, id),
        other => panic!("expected Provisional 180, got {other:?}"),
    }
    b.sip
        .respond(&id, 200, None, Some(SDP_ANSWER.into()), None)
        .expect("200");
    match a.next().await {
        SipEvent::Answered {
            call_id,
            status: 200,
            sdp,
            ..
        } => {
            assert_eq!(call_id, id);
            assert_eq!(sdp.as_deref(), Some(SDP_ANSWER));
        }
        other => panic!("expected Answered, got {other:?}"),
    }
    match b.next().await {
        SipEvent::Acked { call_id } => assert_eq!(call_id, id),
        other => panic!("expected Acked, got {other:?}"),
    }
    id
}

/// `hangup` sends BYE; `other` must see it. Both tables end empty.
pub async fn hang_up(hangup: &mut Peer, other: &mut Peer, id: &CallId) {
    hangup.sip.bye(id).expect("bye");
    match other.next().await {
        SipEvent::Bye { call_id } => assert_eq!(&call_id, id),
        ev => panic!("expected Bye, got {ev:?}"),
    }
    hangup.drained().await;
    other.drained().await;
}
