//! Raw sockets against a `SipEndpoint`: garbage, malformed requests,
//! out-of-dialog methods, the WebSocket handshake, timer H, re-ACKs.

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use stox_sip::SipEvent;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const RECV_WAIT: Duration = Duration::from_secs(2);

async fn udp_client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

async fn recv_text(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65535];
    let (len, _) = tokio::time::timeout(RECV_WAIT, sock.recv_from(&mut buf))
        .await
        .expect("a datagram arrives")
        .expect("recv");
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Receives until a message whose first line starts with `prefix`.
async fn recv_starting(sock: &UdpSocket, prefix: &str) -> String {
    loop {
        let msg = recv_text(sock).await;
        if msg.starts_with(prefix) {
            return msg;
        }
    }
}

fn request(
    method: &str,
    target: SocketAddr,
    from: SocketAddr,
    call_id: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:romeo@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-{call_id}-{method}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@{from}>;tag=abc\r\n\
         To: <sip:romeo@{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@{from}>\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn garbage_on_every_port_then_a_valid_call() {
    let mut a = peer(all_transports()).await;
    let mut b = peer(all_transports()).await;
    let udp = b.addr("udp");

    // UDP: random bytes, half a message, a request without Call-ID/CSeq.
    let sock = udp_client().await;
    let me = sock.local_addr().expect("addr");
    sock.send_to(&[0xff, 0x00, 0x13, 0x37, 0xfe, 0x80, 0x7f], udp)
        .await
        .expect("send");
    sock.send_to(
        b"INVITE sip:romeo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4",
        udp,
    )
    .await
    .expect("send");
    let no_call_id = request("OPTIONS", udp, me, "x", "", "")
        .replace("Call-ID: x\r\n", "")
        .replace("CSeq: 1 OPTIONS\r\n", "");
    sock.send_to(no_call_id.as_bytes(), udp)
        .await
        .expect("send");
    let answer = recv_text(&sock).await;
    assert!(answer.starts_with("SIP/2.0 400"), "{answer}");

    // TCP: garbage, and half a message left hanging on another connection.
    let mut tcp = TcpStream::connect(b.addr("tcp")).await.expect("connect");
    tcp.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\nmore garbage\r\n\r\n")
        .await
        .expect("write");
    let mut half = TcpStream::connect(b.addr("tcp")).await.expect("connect");
    half.write_all(b"INVITE sip:romeo@127.0.0.1 SIP/2.0\r\nContent-Length: 500\r\n\r\nv=0")
        .await
        .expect("write");

    // WS: garbage text and binary frames on a proper `sip` connection.
    let mut req = format!("ws://{}/", b.addr("ws"))
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "sip".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connects");
    ws.send(Message::Text("hello, not SIP".into()))
        .await
        .expect("send");
    ws.send(Message::Binary(vec![0u8, 1, 2, 3, 255].into()))
        .await
        .expect("send");
    ws.send(Message::Text("BYE sip:x SIP/2.0\r\n\r\n".into()))
        .await
        .expect("send");

    tokio::time::sleep(Duration::from_millis(100)).await;
    b.quiet(Duration::from_millis(50)).await;

    // Everything still works, on every transport.
    for (n, transport) in ["udp", "tcp", "ws"].into_iter().enumerate() {
        let id = establish(
            &mut a,
            &mut b,
            &format!("after-garbage-{n}@test"),
            transport,
        )
        .await;
        hang_up(&mut a, &mut b, &id).await;
    }
    drop((tcp, half, ws));
}

#[tokio::test]
async fn websocket_without_sip_subprotocol_is_refused() {
    let b = peer(all_transports()).await;
    let url = format!("ws://{}/", b.addr("ws"));
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 400),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("handshake without 'sip' must be refused"),
    }
    let mut wrong = url.as_str().into_client_request().expect("request");
    wrong.headers_mut().insert(
        "sec-websocket-protocol",
        "xmpp, sipx".parse().expect("header"),
    );
    assert!(tokio_tungstenite::connect_async(wrong).await.is_err());

    let mut ok = url.as_str().into_client_request().expect("request");
    ok.headers_mut().insert(
        "sec-websocket-protocol",
        "xmpp, sip".parse().expect("header"),
    );
    let (_, resp) = tokio_tungstenite::connect_async(ok)
        .await
        .expect("sip handshake accepted");
    let proto = resp
        .headers()
        .get("sec-websocket-protocol")
        .expect("subprotocol selected");
    assert_eq!(proto, "sip");
}

#[tokio::test]
async fn out_of_dialog_methods() {
    let b = peer(all_transports()).await;
    let udp = b.addr("udp");
    let sock = udp_client().await;
    let me = sock.local_addr().expect("addr");

    sock.send_to(
        request("OPTIONS", udp, me, "opt@test", "", "").as_bytes(),
        udp,
    )
    .await
    .expect("send");
    let ok = recv_text(&sock).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        header(&ok, "Allow").is_some_and(|a| a.contains("INVITE")),
        "{ok}"
    );

    sock.send_to(
        request("REGISTER", udp, me, "reg@test", "", "").as_bytes(),
        udp,
    )
    .await
    .expect("send");
    let not_allowed = recv_text(&sock).await;
    assert!(not_allowed.starts_with("SIP/2.0 405"), "{not_allowed}");
    assert!(header(&not_allowed, "Allow").is_some(), "{not_allowed}");

    sock.send_to(
        request("BYE", udp, me, "nobody@test", "", "").as_bytes(),
        udp,
    )
    .await
    .expect("send");
    let unknown = recv_text(&sock).await;
    assert!(unknown.starts_with("SIP/2.0 481"), "{unknown}");
}

#[tokio::test]
async fn reinvite_is_refused_and_missing_ack_ends_the_call() {
    let mut b = peer_with_timers(all_transports(), fast_timers()).await;
    let udp = b.addr("udp");
    let sock = udp_client().await;
    let me = sock.local_addr().expect("addr");
    let ct = "Content-Type: application/sdp\r\n";

    sock.send_to(
        request("INVITE", udp, me, "noack@test", ct, SDP_OFFER).as_bytes(),
        udp,
    )
    .await
    .expect("send");
    let trying = recv_text(&sock).await;
    assert!(trying.starts_with("SIP/2.0 100"), "{trying}");
    let id = match b.next().await {
        SipEvent::IncomingInvite {
            call_id,
            transport: "udp",
            source,
            ..
        } => {
            assert_eq!(source, me);
            call_id
        }
        other => panic!("expected IncomingInvite, got {other:?}"),
    };
    b.sip
        .respond(&id, 200, None, Some(SDP_ANSWER.into()), None)
        .expect("200");
    let ok = recv_starting(&sock, "SIP/2.0 200").await;
    assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
    assert!(
        header(&ok, "Contact").is_some_and(|c| c.contains(&udp.port().to_string())),
        "{ok}"
    );
    let to_tag = header(&ok, "To")
        .and_then(|t| t.split(";tag=").nth(1))
        .expect("To tag")
        .to_string();

    // A re-INVITE in the (unconfirmed) dialog is refused with 488.
    let reinvite = request("INVITE", udp, me, "noack@test", ct, SDP_OFFER)
        .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE")
        .replace("-INVITE\r\n", "-reinvite\r\n")
        .replace(
            &format!("To: <sip:romeo@{udp}>"),
            &format!("To: <sip:romeo@{udp}>;tag={to_tag}"),
        );
    sock.send_to(reinvite.as_bytes(), udp).await.expect("send");
    recv_starting(&sock, "SIP/2.0 488").await;

    // No ACK: 64*T1 later the dialog ends (and sends a BYE).
    match b.next().await {
        SipEvent::Terminated { call_id, reason } => {
            assert_eq!(call_id, id);
            assert!(reason.contains("ACK"), "{reason}");
        }
        other => panic!("expected Terminated, got {other:?}"),
    }
    b.drained().await;
}

#[tokio::test]
async fn each_retransmitted_2xx_is_acked_once() {
    let mut a = peer(all_transports()).await;
    let sock = udp_client().await;
    let me = sock.local_addr().expect("addr");
    let id = a.call("reack@test", format!("sip:romeo@{me}"));

    let invite = recv_starting(&sock, "INVITE").await;
    for name in [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Type",
    ] {
        assert!(
            header(&invite, name).is_some(),
            "{name} missing in {invite}"
        );
    }
    assert!(
        header(&invite, "From")
            .is_some_and(|f| f.contains("juliet@example.com") && f.contains("tag="))
    );
    assert_eq!(header(&invite, "Content-Type"), Some("application/sdp"));
    assert!(invite.ends_with(SDP_OFFER));

    let answer = |invite: &str| {
        let keep = ["Via", "From", "Call-ID", "CSeq"];
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for line in invite.lines() {
            let name = line.split_once(':').map(|(n, _)| n.trim()).unwrap_or("");
            if keep.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                resp.push_str(line);
                resp.push_str("\r\n");
            }
        }
        let to = header(invite, "To").expect("To");
        resp.push_str(&format!(
            "To: {to};tag=uas1\r\nContact: <sip:romeo@{me}>\r\n"
        ));
        resp.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_ANSWER}",
            SDP_ANSWER.len()
        ));
        resp
    };
    let from: SocketAddr = a.addr("udp");
    let ok = answer(&invite);
    sock.send_to(ok.as_bytes(), from).await.expect("send 200");
    let ack = recv_starting(&sock, "ACK").await;
    assert!(
        header(&ack, "To").is_some_and(|t| t.contains("tag=uas1")),
        "{ack}"
    );
    assert!(matches!(
        a.next().await,
        SipEvent::Answered { status: 200, .. }
    ));

    // A retransmitted 2xx gets one more ACK, and no second Answered.
    sock.send_to(ok.as_bytes(), from).await.expect("resend 200");
    recv_starting(&sock, "ACK").await;
    let mut buf = vec![0u8; 65535];
    let extra = tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await;
    assert!(extra.is_err(), "only one ACK per 2xx");
    a.quiet(Duration::from_millis(50)).await;

    a.sip.bye(&id).expect("bye");
    let bye = recv_starting(&sock, "BYE").await;
    assert!(bye.starts_with(&format!("BYE sip:romeo@{me}")), "{bye}");
}

/// A browser-like client (RFC 7118): `.invalid` Via/Contact host, so the
/// gateway's BYE must ride the client's own WebSocket connection.
#[tokio::test]
async fn websocket_client_with_invalid_host_gets_bye_on_its_connection() {
    let mut b = peer(all_transports()).await;
    let ws_addr = b.addr("ws");
    let mut req = format!("ws://{ws_addr}/")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", "sip".parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("ws connects");

    let invite = format!(
        "INVITE sip:romeo@{ws_addr};transport=ws SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.org>;tag=wsfrom\r\n\
         To: <sip:romeo@{ws_addr}>\r\n\
         Call-ID: ws-browser@test\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws;ob>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP_OFFER}",
        SDP_OFFER.len()
    );
    ws.send(Message::Text(invite.into())).await.expect("send");

    let trying = ws_text(&mut ws).await;
    assert!(trying.starts_with("SIP/2.0 100"), "{trying}");
    let id = match b.next().await {
        SipEvent::IncomingInvite {
            call_id,
            transport: "ws",
            ..
        } => call_id,
        other => panic!("expected IncomingInvite over ws, got {other:?}"),
    };
    b.sip
        .respond(&id, 200, None, Some(SDP_ANSWER.into()), None)
        .expect("200");
    let ok = ws_text(&mut ws).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        header(&ok, "Contact").is_some_and(|c| c.to_ascii_lowercase().contains("transport=ws")),
        "{ok}"
    );
    let to = header(&ok, "To").expect("To").to_string();

    let ack = format!(
        "ACK sip:romeo@{ws_addr};transport=ws SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK-ws2;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.org>;tag=wsfrom\r\n\
         To: {to}\r\n\
         Call-ID: ws-browser@test\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
    ws.send(Message::Text(ack.into())).await.expect("send ack");
    assert!(matches!(b.next().await, SipEvent::Acked { .. }));

    b.sip.bye(&id).expect("bye");
    let bye = ws_text(&mut ws).await;
    assert!(
        bye.starts_with("BYE sip:alice@df7jal23ls0d.invalid"),
        "{bye}"
    );
    assert!(
        header(&bye, "Via").is_some_and(|v| v.starts_with("SIP/2.0/WS ")),
        "{bye}"
    );
    // Answer the BYE so the client transaction ends.
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        let value = header(&bye, name).expect("header in BYE");
        ok.push_str(&format!("{name}: {value}\r\n"));
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    ws.send(Message::Text(ok.into())).await.expect("send 200");
    b.drained().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The next text frame (one SIP message).
async fn ws_text(ws: &mut Ws) -> String {
    loop {
        let msg = tokio::time::timeout(RECV_WAIT, ws.next())
            .await
            .expect("message in time")
            .expect("connection open")
            .expect("ws message");
        if let Message::Text(text) = msg {
            return text.to_string();
        }
    }
}

/// RFC 3261 §25.1: a Call-ID is `word["@"word]`. One with a NUL, a space
/// or a line break is answered 400 and never becomes a call (so never
/// reaches a log line or the store raw); so is any header with a control
/// character.
#[tokio::test]
async fn rfc3261_25_1_invalid_call_ids_and_control_characters_get_400() {
    let mut b = peer(all_transports()).await;
    let sock = udp_client().await;
    let me = sock.local_addr().expect("addr");
    let udp = b.addr("udp");
    for (call_id, extra, problem) in [
        ("abc\0def", "", "Call-ID"),
        ("two words", "", "Call-ID"),
        ("a@b@c", "", "Call-ID"),
        ("fine-id", "Subject: hi\u{1}there\r\n", "control character"),
    ] {
        let invite = request("INVITE", udp, me, call_id, extra, "");
        sock.send_to(invite.as_bytes(), udp).await.expect("send");
        let answer = recv_starting(&sock, "SIP/2.0 400").await;
        assert!(
            answer.lines().next().unwrap_or("").contains(problem),
            "{call_id:?}: {answer}"
        );
    }
    b.quiet(Duration::from_millis(200)).await;
}
