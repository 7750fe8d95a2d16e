//! The transports against real sockets on loopback: what goes in comes out
//! as events, what the SIP layer transmits arrives, and the limits hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use stox_sip::{IoConfig, IoEvent, SipIo};
use stox_sipcore::{Dest, Transmit, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc::Receiver;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start(cfg: IoConfig) -> (SipIo, Receiver<IoEvent>, CancellationToken) {
    let cancel = CancellationToken::new();
    let (io, rx) = SipIo::start(
        IoConfig {
            udp: Some(lo()),
            tcp: Some(lo()),
            ws: Some(lo()),
            ..cfg
        },
        cancel.clone(),
    )
    .await
    .expect("binds");
    (io, rx, cancel)
}

fn addr(io: &SipIo, t: Transport) -> SocketAddr {
    io.local_addrs()
        .into_iter()
        .find(|(x, _)| *x == t)
        .unwrap()
        .1
}

async fn next(rx: &mut Receiver<IoEvent>) -> IoEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event in time")
        .expect("open")
}

#[tokio::test]
async fn udp_datagrams_up_to_65535_bytes_are_read_whole_and_transmits_arrive() {
    let (io, mut rx, _c) = start(IoConfig::default()).await;
    let client = UdpSocket::bind(lo()).await.unwrap();
    let big = vec![b'x'; 65_000];
    client
        .send_to(&big, addr(&io, Transport::Udp))
        .await
        .unwrap();
    match next(&mut rx).await {
        IoEvent::Datagram { source, data } => {
            assert_eq!(source, client.local_addr().unwrap());
            assert_eq!(data.len(), 65_000, "not cut at 8 KiB");
        }
        other => panic!("{other:?}"),
    }
    io.transmit(Transmit {
        transport: Transport::Udp,
        dest: Dest::Addr(client.local_addr().unwrap()),
        data: b"hello".to_vec(),
        call: None,
    })
    .unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"hello");
}

#[tokio::test]
async fn tcp_connections_both_ways() {
    let (io, mut rx, _c) = start(IoConfig::default()).await;
    // Inbound.
    let mut client = TcpStream::connect(addr(&io, Transport::Tcp)).await.unwrap();
    let conn = match next(&mut rx).await {
        IoEvent::Opened {
            conn, transport, ..
        } => {
            assert_eq!(transport, Transport::Tcp);
            conn
        }
        other => panic!("{other:?}"),
    };
    client
        .write_all(b"OPTIONS sip:x SIP/2.0\r\n")
        .await
        .unwrap();
    match next(&mut rx).await {
        IoEvent::Stream { conn: c, data } => {
            assert_eq!(c, conn);
            assert!(data.starts_with(b"OPTIONS"));
        }
        other => panic!("{other:?}"),
    }
    io.transmit(Transmit {
        transport: Transport::Tcp,
        dest: Dest::Conn(conn),
        data: b"SIP/2.0 200 OK\r\n".to_vec(),
        call: None,
    })
    .unwrap();
    let mut buf = [0u8; 64];
    let n = client.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"SIP/2.0 200 OK\r\n");
    drop(client);
    assert_eq!(next(&mut rx).await, IoEvent::Closed { conn });

    // Outbound: a transmit to an address opens a connection.
    let peer = TcpListener::bind(lo()).await.unwrap();
    io.transmit(Transmit {
        transport: Transport::Tcp,
        dest: Dest::Addr(peer.local_addr().unwrap()),
        data: b"INVITE".to_vec(),
        call: None,
    })
    .unwrap();
    let (mut accepted, _) = peer.accept().await.unwrap();
    assert!(matches!(next(&mut rx).await, IoEvent::Opened { .. }));
    let mut buf = [0u8; 6];
    accepted.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"INVITE");

    // Nobody listening: the failure comes back as an event.
    let gone = TcpListener::bind(lo()).await.unwrap().local_addr().unwrap();
    io.transmit(Transmit {
        transport: Transport::Tcp,
        dest: Dest::Addr(gone),
        data: b"INVITE".to_vec(),
        call: Some(stox_sipcore::CallKey(9)),
    })
    .unwrap();
    match next(&mut rx).await {
        IoEvent::SendFailed { call, reason } => {
            assert_eq!(call, Some(stox_sipcore::CallKey(9)));
            assert!(reason.contains("connect"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connections_past_the_per_source_limit_are_closed_at_once() {
    let (io, mut rx, _c) = start(IoConfig {
        max_connections_per_source: 2,
        ..IoConfig::default()
    })
    .await;
    let target = addr(&io, Transport::Tcp);
    let _a = TcpStream::connect(target).await.unwrap();
    let _b = TcpStream::connect(target).await.unwrap();
    next(&mut rx).await;
    next(&mut rx).await;
    let mut c = TcpStream::connect(target).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "the third is closed");
    assert_eq!(io.connections(), 2);
}

#[tokio::test]
async fn a_full_write_queue_fails_the_transmit() {
    let (io, mut rx, _c) = start(IoConfig {
        max_queued_writes: 1,
        ..IoConfig::default()
    })
    .await;
    let _client = TcpStream::connect(addr(&io, Transport::Tcp)).await.unwrap();
    let IoEvent::Opened { conn, .. } = next(&mut rx).await else {
        panic!()
    };
    // The client never reads: the socket buffers fill, then the queue.
    let chunk = vec![b'x'; 1 << 20];
    let mut failed = None;
    for _ in 0..64 {
        if let Err(e) = io.transmit(Transmit {
            transport: Transport::Tcp,
            dest: Dest::Conn(conn),
            data: chunk.clone(),
            call: None,
        }) {
            failed = Some(e.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let failed = failed.expect("a transmit fails once the queue is full");
    assert!(failed.contains("wait to be written"), "{failed}");
}

#[tokio::test]
async fn rfc7118_websocket_needs_the_sip_subprotocol_and_carries_messages() {
    let (io, mut rx, _c) = start(IoConfig::default()).await;
    let url = format!("ws://{}", addr(&io, Transport::Ws));
    assert!(
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err(),
        "refused without the sip subprotocol"
    );
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "sip".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers().get("sec-websocket-protocol").unwrap(), "sip");
    let conn = loop {
        match next(&mut rx).await {
            IoEvent::Opened {
                conn, transport, ..
            } => {
                assert_eq!(transport, Transport::Ws);
                break conn;
            }
            IoEvent::Closed { .. } => {} // the refused one
            other => panic!("{other:?}"),
        }
    };
    ws.send(Message::text("REGISTER sip:x SIP/2.0\r\n\r\n"))
        .await
        .unwrap();
    match next(&mut rx).await {
        IoEvent::Frame { conn: c, data } => {
            assert_eq!(c, conn);
            assert!(data.starts_with(b"REGISTER"));
        }
        other => panic!("{other:?}"),
    }
    io.transmit(Transmit {
        transport: Transport::Ws,
        dest: Dest::Conn(conn),
        data: b"SIP/2.0 405 Method Not Allowed\r\n\r\n".to_vec(),
        call: None,
    })
    .unwrap();
    let got = ws.next().await.unwrap().unwrap();
    assert!(got.to_text().unwrap().starts_with("SIP/2.0 405"));
}
