//! The component loop against a scripted fake XMPP server on loopback.

use std::time::Duration;
use stox_xmpp::{ComponentConfig, IqFailure, XmppEvent, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use xmpp_parsers::component::Handshake;

const SECRET: &str = "s3cret";

fn config(server: String) -> ComponentConfig {
    ComponentConfig {
        keepalive_to: "example.com".into(),
        keepalive: Duration::from_millis(300),
        iq_timeout: Duration::from_millis(400),
        connect_timeout: Duration::from_secs(2),
        max_backoff: Duration::from_millis(500),
        ..ComponentConfig::new(server, "sip.example.com".into(), SECRET.into())
    }
}

/// One accepted connection of the fake server.
struct Peer {
    tcp: TcpStream,
    buf: String,
}

impl Peer {
    /// Accepts a connection and completes the handshake; with a wrong
    /// `expect_secret` it answers like Prosody does (not-authorized).
    async fn accept(listener: &TcpListener, expect_secret: &str) -> Option<Peer> {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut peer = Peer {
            tcp,
            buf: String::new(),
        };
        peer.read_until("<stream:stream").await;
        peer.read_until(">").await;
        peer.write(
            "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns='jabber:component:accept' id='stream42' from='sip.example.com'>",
        )
        .await;
        let text = peer.read_until("</handshake>").await;
        let expected = Handshake::from_stream_id_and_password("stream42".into(), expect_secret);
        let digest: String = expected
            .data
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !text.contains(&digest) {
            peer.write(
                "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                 </stream:error></stream:stream>",
            )
            .await;
            return None;
        }
        peer.write("<handshake/>").await;
        Some(peer)
    }

    async fn write(&mut self, s: &str) {
        self.tcp.write_all(s.as_bytes()).await.expect("write");
    }

    /// Reads until `needle` has been seen; returns (and consumes) the text up
    /// to and including it.
    async fn read_until(&mut self, needle: &str) -> String {
        loop {
            if let Some(pos) = self.buf.find(needle) {
                let rest = self.buf.split_off(pos + needle.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            let mut chunk = [0u8; 4096];
            let n = timeout(Duration::from_secs(5), self.tcp.read(&mut chunk))
                .await
                .expect("peer read timed out")
                .expect("peer read");
            assert!(
                n > 0,
                "component closed the connection while waiting for {needle}"
            );
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }
}

async fn next(events: &mut UnboundedReceiver<XmppEvent>) -> XmppEvent {
    timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("no event in time")
        .expect("event channel open")
}

fn iq(text: &str) -> minidom::Element {
    text.parse().expect("test stanza parses")
}

#[tokio::test]
async fn handshake_stanzas_keepalive_iq_tracking_and_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cancel = CancellationToken::new();
    let (handle, mut events, task) = spawn(config(addr), cancel.clone());

    let mut peer = Peer::accept(&listener, SECRET).await.expect("handshake");
    assert_eq!(next(&mut events).await, XmppEvent::Online);

    // A stanza xmpp-parsers would refuse (bogus type) still arrives, and the
    // stream goes on.
    peer.write("<iq type='bogus' id='x1' from='a@example.com/r' to='sip.example.com'/>")
        .await;
    match next(&mut events).await {
        XmppEvent::Stanza(el) => assert_eq!(el.attr("type"), Some("bogus")),
        other => panic!("expected the stanza, got {other:?}"),
    }

    // IQ tracking: one answered, one left to time out.
    handle.send(iq("<iq xmlns='jabber:component:accept' type='set' id='q1' from='sip.example.com' to='a@example.com/r'><x xmlns='urn:test'/></iq>"));
    handle.send(iq("<iq xmlns='jabber:component:accept' type='set' id='q2' from='sip.example.com' to='a@example.com/r'><x xmlns='urn:test'/></iq>"));
    peer.read_until("id='q2'").await;
    peer.read_until("</iq>").await;
    peer.write("<iq type='error' id='q1' from='a@example.com/r' to='sip.example.com'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>").await;
    match next(&mut events).await {
        XmppEvent::IqResponse {
            id,
            result: Err(IqFailure::Error(el)),
        } => {
            assert_eq!(id, "q1");
            assert_eq!(el.attr("type"), Some("error"));
        }
        other => panic!("expected q1's error, got {other:?}"),
    }
    match next(&mut events).await {
        XmppEvent::IqResponse {
            id,
            result: Err(IqFailure::Timeout),
        } => assert_eq!(id, "q2"),
        other => panic!("expected q2's timeout, got {other:?}"),
    }

    // Idle: after the keepalive period the component pings the server; the
    // server answers and the connection stays up.
    let ping = peer.read_until("</iq>").await;
    assert!(
        ping.contains("urn:xmpp:ping") && ping.contains("to='example.com'"),
        "{ping}"
    );
    let id = ping
        .split("id='")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("ping id")
        .to_owned();
    peer.write(&format!(
        "<iq type='result' id='{id}' from='example.com' to='sip.example.com'/>"
    ))
    .await;
    assert!(
        timeout(Duration::from_millis(200), events.recv())
            .await
            .is_err(),
        "keepalive answers are not events"
    );

    // The server drops the connection: the component reconnects.
    drop(peer);
    match next(&mut events).await {
        XmppEvent::Offline { .. } => {}
        other => panic!("expected offline, got {other:?}"),
    }
    let _peer = Peer::accept(&listener, SECRET)
        .await
        .expect("second handshake");
    assert_eq!(next(&mut events).await, XmppEvent::Online);

    cancel.cancel();
    timeout(Duration::from_secs(3), task)
        .await
        .expect("task ends on cancel")
        .expect("task did not panic");
}

#[tokio::test]
async fn wrong_secret_is_reported_and_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cancel = CancellationToken::new();
    let (_handle, mut events, _task) = spawn(config(addr), cancel.clone());
    assert!(Peer::accept(&listener, "other-secret").await.is_none());
    match next(&mut events).await {
        XmppEvent::Offline { reason } => assert!(reason.contains("not-authorized"), "{reason}"),
        other => panic!("expected offline, got {other:?}"),
    }
    // It tries again (with backoff) and gets in with the right secret.
    let _peer = Peer::accept(&listener, SECRET)
        .await
        .expect("retry handshake");
    assert_eq!(next(&mut events).await, XmppEvent::Online);
    cancel.cancel();
}

/// RFC 6120 §13.12 (resource exhaustion): stanzas over the limits are
/// dropped before any tree is built, reported with what answering them
/// needs, and the connection stays up for the stanzas that follow.
#[tokio::test]
async fn rfc6120_13_12_oversized_stanzas_are_dropped_and_the_link_stays_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cancel = CancellationToken::new();
    let (_handle, mut events, _task) = spawn(config(addr), cancel.clone());
    let mut peer = Peer::accept(&listener, SECRET).await.expect("handshake");
    assert_eq!(next(&mut events).await, XmppEvent::Online);

    let deep = format!(
        "<iq type='set' id='deep' from='m@example.com/r' to='sip.example.com'>{}{}</iq>",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let wide = format!(
        "<iq type='get' id='wide' from='m@example.com/r' to='sip.example.com' x='{}'/>",
        "y".repeat(1 << 20)
    );
    let many: String = (0..100_000)
        .map(|i| format!("<payload-type id='{}'/>", i % 128))
        .collect();
    let many = format!(
        "<iq type='set' id='many' from='m@example.com/r' to='r\\40x@sip.example.com'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1'><content name='a'><description xmlns='urn:xmpp:jingle:apps:rtp:1'>{many}</description></content></jingle></iq>"
    );
    for stanza in [&deep, &wide, &many] {
        peer.write(stanza).await;
    }
    peer.write("<iq type='get' id='after' from='a@example.com/r' to='sip.example.com'/>")
        .await;
    // Reports and stanzas travel on two queues: their order may differ.
    let mut rejected = Vec::new();
    let mut after = false;
    while !after || rejected.len() < 3 {
        match next(&mut events).await {
            XmppEvent::Rejected(r) => rejected.push((r.id.unwrap_or_default(), r.violation.key())),
            XmppEvent::Stanza(el) => {
                assert_eq!(el.attr("id"), Some("after"));
                after = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert_eq!(rejected[0], ("deep".to_owned(), "max_depth"));
    assert_eq!(rejected[1], ("wide".to_owned(), "max_attribute_bytes"));
    assert_eq!(rejected[2].0, "many");
    assert!(
        timeout(Duration::from_millis(300), events.recv())
            .await
            .is_err(),
        "no Offline: the link stayed up"
    );
    cancel.cancel();
}

/// What the core sends while the server is away waits for the connection
/// and goes out once it is back; an IQ that waits too long fails as
/// undelivered instead of being lost without a word.
#[tokio::test]
async fn stanzas_sent_while_offline_are_delivered_after_reconnecting_or_expire() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cancel = CancellationToken::new();
    let cfg = ComponentConfig {
        max_backoff: Duration::from_millis(300),
        offline_ttl: Duration::from_millis(1500),
        offline_queue: 2,
        ..config(addr)
    };
    let (handle, mut events, _task) = spawn(cfg, cancel.clone());
    let peer = Peer::accept(&listener, SECRET).await.expect("handshake");
    assert_eq!(next(&mut events).await, XmppEvent::Online);
    drop(peer);
    assert!(matches!(next(&mut events).await, XmppEvent::Offline { .. }));

    // Offline: two are kept, the third does not fit.
    for id in ["t1", "t2", "t3"] {
        handle.send(iq(&format!("<iq xmlns='jabber:component:accept' type='set' id='{id}' from='sip.example.com' to='a@example.com/r'><x xmlns='urn:test'/></iq>")));
    }
    match next(&mut events).await {
        XmppEvent::IqResponse {
            id,
            result: Err(IqFailure::Undelivered),
        } => assert_eq!(id, "t3"),
        other => panic!("expected t3 undelivered, got {other:?}"),
    }
    let mut peer = Peer::accept(&listener, SECRET)
        .await
        .expect("second handshake");
    assert_eq!(next(&mut events).await, XmppEvent::Online);
    let sent = peer.read_until("id='t2'").await;
    assert!(sent.contains("id='t1'"), "in order: {sent}");
    peer.read_until("</iq>").await;
    drop(peer);
    assert!(matches!(next(&mut events).await, XmppEvent::Offline { .. }));

    // Offline longer than offline_ttl: the IQ fails as undelivered. (The
    // listener is closed, so no reconnect succeeds meanwhile.)
    drop(listener);
    handle.send(iq("<iq xmlns='jabber:component:accept' type='set' id='t4' from='sip.example.com' to='a@example.com/r'><x xmlns='urn:test'/></iq>"));
    loop {
        match next(&mut events).await {
            XmppEvent::IqResponse {
                id,
                result: Err(IqFailure::Undelivered),
            } => {
                assert_eq!(id, "t4");
                break;
            }
            // t1/t2 were sent but never answered: they time out meanwhile.
            XmppEvent::IqResponse {
                result: Err(IqFailure::Timeout),
                ..
            }
            | XmppEvent::Offline { .. } => {}
            other => panic!("expected t4 undelivered, got {other:?}"),
        }
    }
    cancel.cancel();
}

/// A stop right after stanzas were queued still sends them before the
/// stream is closed (the last session-terminate of a drain).
#[tokio::test]
async fn stanzas_queued_before_a_stop_are_sent_before_the_stream_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cancel = CancellationToken::new();
    let (handle, mut events, task) = spawn(config(addr), cancel.clone());
    let mut peer = Peer::accept(&listener, SECRET).await.expect("handshake");
    assert_eq!(next(&mut events).await, XmppEvent::Online);
    for n in 0..50 {
        assert!(handle.send(iq(&format!(
            "<iq xmlns='jabber:component:accept' type='set' id='last{n}' from='sip.example.com' to='a@example.com/r'><x xmlns='urn:test'/></iq>"
        ))));
    }
    cancel.cancel();
    let text = peer.read_until("</stream:stream>").await;
    for n in 0..50 {
        assert!(
            text.contains(&format!("id='last{n}'")),
            "last{n} missing: {text}"
        );
    }
    timeout(Duration::from_secs(3), task)
        .await
        .expect("task ends")
        .expect("no panic");
}
