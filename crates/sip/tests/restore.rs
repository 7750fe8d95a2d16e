//! Confirmed dialogs survive a restart of the endpoint: snapshot, shut the
//! endpoint down, start a new one on the same ports, restore, hang up.

mod common;

use common::raw::Msg;
use common::*;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stox_mapping::ids::CallId;
use stox_sip::{SipConfig, SipError, SipEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Shuts `gateway` down and starts a new endpoint on the same addresses,
/// retrying until the old sockets are closed.
async fn restart(gateway: Peer) -> Peer {
    let config = SipConfig {
        udp: Some(gateway.addr("udp")),
        tcp: Some(gateway.addr("tcp")),
        ws: Some(gateway.addr("ws")),
        outbound_proxy: None,
        user_agent: "stox-sip-test".into(),
        ..SipConfig::default()
    };
    drop(gateway); // cancels its token
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let cancel = tokio_util::sync::CancellationToken::new();
        match stox_sip::SipEndpoint::start_with_timers(
            config.clone(),
            fast_timers(),
            cancel.clone(),
        )
        .await
        {
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

async fn peer_bye_with_endpoints(transport: &str, gateway_calls: bool) {
    let mut gateway = peer_with_timers(all_transports(), fast_timers()).await;
    let mut p = peer_with_timers(all_transports(), fast_timers()).await;
    let id = if gateway_calls {
        establish(
            &mut gateway,
            &mut p,
            &format!("ep-{transport}-uac@test"),
            transport,
        )
        .await
    } else {
        establish(
            &mut p,
            &mut gateway,
            &format!("ep-{transport}-uas@test"),
            transport,
        )
        .await
    };
    let snapshot = gateway.sip.dialog_snapshot(&id).expect("confirmed dialog");
    let mut gateway = restart(gateway).await;
    gateway
        .sip
        .restore_dialog(&id, &snapshot)
        .expect("restored");
    assert_eq!(gateway.sip.live_calls(), vec![id.clone()]);
    p.sip.bye(&id).expect("bye");
    match gateway.next().await {
        SipEvent::Bye { call_id } => assert_eq!(call_id, id),
        other => panic!("expected Bye, got {other:?}"),
    }
    gateway.drained().await;
    p.drained().await;
    assert_eq!(gateway.sip.dialog_count(), 0);
}

#[tokio::test]
async fn endpoint_peer_bye_after_restart_udp() {
    peer_bye_with_endpoints("udp", true).await;
    peer_bye_with_endpoints("udp", false).await;
}

#[tokio::test]
async fn endpoint_peer_bye_after_restart_tcp() {
    peer_bye_with_endpoints("tcp", true).await;
    peer_bye_with_endpoints("tcp", false).await;
}

// ---------------------------------------------------------------------------
// A scripted peer over UDP or TCP, to see exactly what the restored gateway
// sends.

struct RawSip {
    transport: &'static str,
    addr: SocketAddr,
    udp: Option<Arc<UdpSocket>>,
    incoming: mpsc::UnboundedReceiver<Msg>,
    /// TCP: one writer per live connection, by remote address.
    writers: Arc<tokio::sync::Mutex<HashMap<SocketAddr, OwnedWriteHalf>>>,
    incoming_tx: mpsc::UnboundedSender<Msg>,
    /// TCP: how many connections were ever accepted.
    accepted: Arc<Mutex<usize>>,
    /// Whether our Contact names the transport (`;transport=tcp`).
    contact_transport: bool,
}

impl RawSip {
    async fn bind(transport: &'static str) -> RawSip {
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let writers = Arc::new(tokio::sync::Mutex::new(HashMap::new()));
        let accepted = Arc::new(Mutex::new(0));
        if transport == "udp" {
            let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
            let addr = sock.local_addr().expect("addr");
            let reader = sock.clone();
            let tx = incoming_tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65535];
                while let Ok((len, from)) = reader.recv_from(&mut buf).await {
                    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                    if tx.send(Msg { text, from }).is_err() {
                        break;
                    }
                }
            });
            return RawSip {
                transport,
                addr,
                udp: Some(sock),
                incoming,
                writers,
                incoming_tx,
                accepted,
                contact_transport: true,
            };
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, w, count) = (incoming_tx.clone(), writers.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((stream, from)) = listener.accept().await {
                *count.lock().expect("lock") += 1;
                serve_tcp(stream, from, tx.clone(), w.clone()).await;
            }
        });
        RawSip {
            transport,
            addr,
            udp: None,
            incoming,
            writers,
            incoming_tx,
            accepted,
            contact_transport: true,
        }
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().expect("lock")
    }

    /// `;transport=tcp` for TCP, nothing for UDP.
    fn param(&self) -> &'static str {
        if self.transport == "tcp" {
            ";transport=tcp"
        } else {
            ""
        }
    }

    fn contact(&self) -> String {
        let param = if self.contact_transport {
            self.param()
        } else {
            ""
        };
        format!("<sip:bob@{}{param}>", self.addr)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK{branch}",
            self.transport.to_uppercase(),
            self.addr
        )
    }

    async fn send(&self, text: &str, to: SocketAddr) {
        if let Some(sock) = &self.udp {
            sock.send_to(text.as_bytes(), to).await.expect("send");
            return;
        }
        let mut writers = self.writers.lock().await;
        if !writers.contains_key(&to) {
            let stream = TcpStream::connect(to).await.expect("connect");
            drop(writers);
            serve_tcp(stream, to, self.incoming_tx.clone(), self.writers.clone()).await;
            writers = self.writers.lock().await;
        }
        let writer = writers.get_mut(&to).expect("connection");
        writer.write_all(text.as_bytes()).await.expect("write");
    }

    async fn recv(&mut self) -> Msg {
        tokio::time::timeout(Duration::from_secs(3), self.incoming.recv())
            .await
            .expect("a message arrives in time")
            .expect("open")
    }

    /// The next request of `method`, skipping anything else.
    async fn request(&mut self, method: &str) -> Msg {
        loop {
            let msg = self.recv().await;
            if msg.method() == method {
                return msg;
            }
        }
    }

    /// The next final response to a request of `method`.
    async fn final_response(&mut self, method: &str) -> Msg {
        loop {
            let msg = self.recv().await;
            let cseq_method = msg.header("CSeq").and_then(|c| c.split(' ').nth(1));
            if msg.first_line().starts_with("SIP/2.0 ")
                && !msg.first_line().starts_with("SIP/2.0 1")
                && cseq_method == Some(method)
            {
                return msg;
            }
        }
    }

    /// TCP: waits until the gateway's connections are gone.
    async fn wait_disconnected(&self) {
        for _ in 0..150 {
            if self.writers.lock().await.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the old gateway's TCP connection stayed open");
    }
}

/// Reads SIP messages framed by Content-Length from `stream`.
async fn serve_tcp(
    stream: TcpStream,
    from: SocketAddr,
    tx: mpsc::UnboundedSender<Msg>,
    writers: Arc<tokio::sync::Mutex<HashMap<SocketAddr, OwnedWriteHalf>>>,
) {
    let (mut read, write) = stream.into_split();
    writers.lock().await.insert(from, write);
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 65535];
        'read: loop {
            while let Some(msg) = take_frame(&mut buf) {
                if tx.send(Msg { text: msg, from }).is_err() {
                    break 'read;
                }
            }
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        writers.lock().await.remove(&from);
    });
}

fn take_frame(buf: &mut Vec<u8>) -> Option<String> {
    while buf.starts_with(b"\r\n") {
        buf.drain(..2);
    }
    let text = String::from_utf8_lossy(buf).into_owned();
    let head_end = text.find("\r\n\r\n")? + 4;
    let len: usize = text[..head_end]
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("l"))
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    if buf.len() < head_end + len {
        return None;
    }
    let frame: Vec<u8> = buf.drain(..head_end + len).collect();
    Some(String::from_utf8_lossy(&frame).into_owned())
}

/// `sip:…@host:port;…` (or a `<…>` Contact) → host:port.
fn target_addr(uri: &str) -> SocketAddr {
    let uri = uri.trim().trim_start_matches('<');
    let uri = uri.split('>').next().unwrap_or_default();
    let rest = uri
        .split_once('@')
        .map(|(_, r)| r)
        .unwrap_or_else(|| uri.trim_start_matches("sip:"));
    rest.split(';')
        .next()
        .unwrap_or_default()
        .parse()
        .expect("host:port")
}

fn cseq_of(msg: &Msg) -> u32 {
    msg.header("CSeq")
        .and_then(|c| c.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("CSeq number")
}

/// One established dialog between the gateway and the raw peer, as the raw
/// peer saw it.
struct Dialog {
    id: CallId,
    /// The gateway's tag and the peer's.
    gateway_tag: String,
    peer_tag: String,
    /// Where the gateway wants its in-dialog requests (its Contact).
    gateway_target: String,
    /// The gateway's From/To as the peer must address them in its requests.
    peer_from: String,
    peer_to: String,
    /// The highest CSeq the gateway used.
    gateway_cseq: u32,
}

const PEER_TAG: &str = "peer-tag-1";

/// The gateway calls the raw peer; answered and ACKed.
async fn gateway_calls(gateway: &mut Peer, p: &mut RawSip, call_id: &str) -> Dialog {
    let id = gateway.call(call_id, format!("sip:bob@{}{}", p.addr, p.param()));
    let invite = p.request("INVITE").await;
    let contact = format!("Contact: {}\r\n", p.contact());
    let resp = common::raw::response(&invite, "200 OK", PEER_TAG, &contact, SDP_ANSWER);
    p.send(&resp, invite.from).await;
    match gateway.next().await {
        SipEvent::Answered { call_id, .. } => assert_eq!(call_id, id),
        other => panic!("expected Answered, got {other:?}"),
    }
    let ack = p.request("ACK").await;
    assert_eq!(ack.tag("To"), Some(PEER_TAG));
    let gateway_tag = invite.tag("From").expect("From tag").to_string();
    Dialog {
        id,
        gateway_target: invite.header("Contact").expect("Contact").to_string(),
        peer_from: format!("{};tag={PEER_TAG}", invite.header("To").expect("To")),
        peer_to: invite.header("From").expect("From").to_string(),
        gateway_cseq: cseq_of(&invite),
        gateway_tag,
        peer_tag: PEER_TAG.into(),
    }
}

/// The raw peer calls the gateway; answered and ACKed.
async fn peer_calls(gateway: &mut Peer, p: &mut RawSip, call_id: &str) -> Dialog {
    let gw = gateway.addr(p.transport);
    let to = format!("<sip:juliet@{gw}>");
    let from = format!("<sip:bob@example.net>;tag={PEER_TAG}");
    let invite = format!(
        "INVITE sip:juliet@{gw}{param} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
         From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: {contact}\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{SDP_OFFER}",
        param = p.param(),
        via = p.via("inv1"),
        contact = p.contact(),
        len = SDP_OFFER.len(),
    );
    p.send(&invite, gw).await;
    let id = CallId::new(call_id);
    match gateway.next().await {
        SipEvent::IncomingInvite { call_id, .. } => assert_eq!(call_id, id),
        other => panic!("expected IncomingInvite, got {other:?}"),
    }
    gateway
        .sip
        .respond(&id, 200, None, Some(SDP_ANSWER.into()), None)
        .expect("200");
    let ok = p.final_response("INVITE").await;
    assert!(ok.first_line().starts_with("SIP/2.0 200"), "{}", ok.text);
    let gateway_tag = ok.tag("To").expect("To tag").to_string();
    let gateway_target = ok.header("Contact").expect("Contact").to_string();
    let to_tagged = format!("{to};tag={gateway_tag}");
    let ack = format!(
        "ACK {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to_tagged}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        target = gateway_target
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or_default(),
        via = p.via("ack1"),
    );
    p.send(&ack, gw).await;
    match gateway.next().await {
        SipEvent::Acked { call_id } => assert_eq!(call_id, id),
        other => panic!("expected Acked, got {other:?}"),
    }
    Dialog {
        id,
        gateway_tag,
        peer_tag: PEER_TAG.into(),
        gateway_target,
        peer_from: from,
        peer_to: to_tagged,
        gateway_cseq: 0,
    }
}

/// The gateway sends INFO; the peer answers it.
async fn gateway_info(gateway: &Peer, p: &mut RawSip, dialog: &mut Dialog, body: &str) {
    gateway
        .sip
        .info(&dialog.id, "application/dtmf-relay", body.into())
        .expect("info");
    let info = p.request("INFO").await;
    assert_eq!(info.body(), body);
    check_in_dialog(&info, dialog);
    let cseq = cseq_of(&info);
    assert!(
        cseq > dialog.gateway_cseq,
        "CSeq {cseq} after {}",
        dialog.gateway_cseq
    );
    dialog.gateway_cseq = cseq;
    let resp = common::raw::response(&info, "200 OK", "", "", "");
    p.send(&resp, info.from).await;
}

/// `req` from the gateway belongs to `dialog`.
fn check_in_dialog(req: &Msg, dialog: &Dialog) {
    assert_eq!(
        req.header("Call-ID"),
        Some(dialog.id.as_str()),
        "{}",
        req.text
    );
    assert_eq!(
        req.tag("From"),
        Some(dialog.gateway_tag.as_str()),
        "{}",
        req.text
    );
    assert_eq!(
        req.tag("To"),
        Some(dialog.peer_tag.as_str()),
        "{}",
        req.text
    );
}

/// The peer sends `method` in the dialog; returns the final response.
async fn peer_request(p: &mut RawSip, dialog: &Dialog, method: &str, cseq: u32, body: &str) -> Msg {
    let extra = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/dtmf-relay\r\n".into()
    };
    let target = dialog
        .gateway_target
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_string();
    let req = format!(
        "{method} {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {id}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
        via = p.via(&format!("{method}{cseq}")),
        from = dialog.peer_from,
        to = dialog.peer_to,
        id = dialog.id,
        len = body.len(),
    );
    p.send(&req, target_addr(&target)).await;
    p.final_response(method).await
}

/// Snapshot, a pre-crash INFO the snapshot does not know of, restart,
/// restore.
async fn crash_and_restore(gateway: Peer, p: &mut RawSip, dialog: &mut Dialog) -> Peer {
    let snapshot = gateway
        .sip
        .dialog_snapshot(&dialog.id)
        .expect("confirmed dialog");
    assert!(snapshot.starts_with("stox-sip-dialog/1\n"), "{snapshot}");
    gateway_info(&gateway, p, dialog, "Signal=1\r\nDuration=100\r\n").await;
    let accepted = p.accepted();
    let mut gateway = restart(gateway).await;
    if p.transport == "tcp" {
        p.wait_disconnected().await;
    }
    gateway
        .sip
        .restore_dialog(&dialog.id, &snapshot)
        .expect("restored");
    assert_eq!(gateway.sip.live_calls(), vec![dialog.id.clone()]);
    // A second restore of the same call is refused.
    assert!(gateway.sip.restore_dialog(&dialog.id, &snapshot).is_err());
    gateway.quiet(Duration::from_millis(50)).await;
    assert_eq!(p.accepted(), accepted);
    gateway
}

async fn peer_hangs_up_after_restart(transport: &'static str, gateway_is_caller: bool) {
    let mut gateway = peer_with_timers(all_transports(), fast_timers()).await;
    let mut p = RawSip::bind(transport).await;
    let call_id = format!("raw-peer-bye-{transport}-{gateway_is_caller}@test");
    let mut dialog = if gateway_is_caller {
        gateway_calls(&mut gateway, &mut p, &call_id).await
    } else {
        peer_calls(&mut gateway, &mut p, &call_id).await
    };
    let mut gateway = crash_and_restore(gateway, &mut p, &mut dialog).await;

    // INFO from the peer still reaches the core…
    let resp = peer_request(&mut p, &dialog, "INFO", 2, "Signal=5\r\n").await;
    assert!(
        resp.first_line().starts_with("SIP/2.0 200"),
        "{}",
        resp.text
    );
    match gateway.next().await {
        SipEvent::Info { call_id, body, .. } => {
            assert_eq!(call_id, dialog.id);
            assert_eq!(body, "Signal=5\r\n");
        }
        other => panic!("expected Info, got {other:?}"),
    }
    // …and so does its BYE.
    let resp = peer_request(&mut p, &dialog, "BYE", 3, "").await;
    assert!(
        resp.first_line().starts_with("SIP/2.0 200"),
        "{}",
        resp.text
    );
    match gateway.next().await {
        SipEvent::Bye { call_id } => assert_eq!(call_id, dialog.id),
        other => panic!("expected Bye, got {other:?}"),
    }
    gateway.drained().await;
    assert_eq!(gateway.sip.dialog_count(), 0);
    gateway.quiet(Duration::from_millis(50)).await;
}

async fn gateway_hangs_up_after_restart(transport: &'static str, gateway_is_caller: bool) {
    gateway_hangs_up(transport, gateway_is_caller, true).await;
}

async fn gateway_hangs_up(
    transport: &'static str,
    gateway_is_caller: bool,
    contact_transport: bool,
) {
    let mut gateway = peer_with_timers(all_transports(), fast_timers()).await;
    let mut p = RawSip::bind(transport).await;
    p.contact_transport = contact_transport;
    let call_id = format!("raw-gw-bye-{transport}-{gateway_is_caller}@test");
    let mut dialog = if gateway_is_caller {
        gateway_calls(&mut gateway, &mut p, &call_id).await
    } else {
        peer_calls(&mut gateway, &mut p, &call_id).await
    };
    let before = dialog.gateway_cseq;
    let mut gateway = crash_and_restore(gateway, &mut p, &mut dialog).await;
    assert!(dialog.gateway_cseq > before);

    // An INFO after the restart, then BYE: both above the pre-crash INFO,
    // both in the dialog, both at the peer's Contact.
    gateway_info(&gateway, &mut p, &mut dialog, "Signal=2\r\n").await;
    gateway.sip.bye(&dialog.id).expect("bye");
    let bye = p.request("BYE").await;
    check_in_dialog(&bye, &dialog);
    assert!(cseq_of(&bye) > dialog.gateway_cseq, "{}", bye.text);
    assert!(
        bye.uri().starts_with(&format!("sip:bob@{}", p.addr)),
        "{}",
        bye.text
    );
    let via = bye.header("Via").expect("Via");
    assert!(
        via.starts_with(&format!("SIP/2.0/{}", transport.to_uppercase())),
        "{via}"
    );
    if transport == "tcp" {
        // The old connection died with the old process: a new one.
        assert_eq!(p.accepted(), if gateway_is_caller { 2 } else { 1 });
    }
    let resp = common::raw::response(&bye, "200 OK", "", "", "");
    p.send(&resp, bye.from).await;
    gateway.drained().await;
    assert_eq!(gateway.sip.dialog_count(), 0);
    // Our own BYE is no news to the core.
    gateway.quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn peer_bye_after_restart_udp() {
    peer_hangs_up_after_restart("udp", true).await;
    peer_hangs_up_after_restart("udp", false).await;
}

#[tokio::test]
async fn peer_bye_after_restart_tcp() {
    peer_hangs_up_after_restart("tcp", true).await;
    peer_hangs_up_after_restart("tcp", false).await;
}

#[tokio::test]
async fn gateway_bye_after_restart_udp() {
    gateway_hangs_up_after_restart("udp", true).await;
    gateway_hangs_up_after_restart("udp", false).await;
}

#[tokio::test]
async fn gateway_bye_after_restart_tcp() {
    gateway_hangs_up_after_restart("tcp", true).await;
    gateway_hangs_up_after_restart("tcp", false).await;
}

/// A TCP peer whose Contact names no transport is still reached over TCP
/// after the restart (RFC 3263 alone would pick UDP).
#[tokio::test]
async fn gateway_bye_after_restart_tcp_contact_without_transport() {
    gateway_hangs_up("tcp", true, false).await;
    gateway_hangs_up("tcp", false, false).await;
}

#[tokio::test]
async fn snapshot_is_none_without_a_confirmed_dialog() {
    let mut a = peer_with_timers(all_transports(), fast_timers()).await;
    let mut b = peer_with_timers(all_transports(), fast_timers()).await;
    assert!(a.sip.dialog_snapshot(&CallId::new("nobody@test")).is_none());
    let id = a.call("ringing@test", b.uri("romeo", "udp"));
    assert!(matches!(b.next().await, SipEvent::IncomingInvite { .. }));
    b.sip.respond(&id, 180, None, None, None).expect("180");
    assert!(matches!(a.next().await, SipEvent::Provisional { .. }));
    // Early on both sides, and the UAS before the ACK: no snapshot.
    assert!(a.sip.dialog_snapshot(&id).is_none());
    assert!(b.sip.dialog_snapshot(&id).is_none());
    b.sip
        .respond(&id, 200, None, Some(SDP_ANSWER.into()), None)
        .expect("200");
    assert!(matches!(a.next().await, SipEvent::Answered { .. }));
    assert!(matches!(b.next().await, SipEvent::Acked { .. }));
    assert!(
        a.sip
            .dialog_snapshot(&id)
            .is_some_and(|s| s.contains("\nrole: uac\n"))
    );
    assert!(
        b.sip
            .dialog_snapshot(&id)
            .is_some_and(|s| s.contains("\nrole: uas\n"))
    );
    hang_up(&mut a, &mut b, &id).await;
    // Ended: none again.
    assert!(a.sip.dialog_snapshot(&id).is_none());
}

#[tokio::test]
async fn bad_snapshots_are_refused() {
    let mut a = peer_with_timers(all_transports(), fast_timers()).await;
    let mut b = peer_with_timers(all_transports(), fast_timers()).await;
    let id = establish(&mut a, &mut b, "bad-snapshot@test", "udp").await;
    let good = a.sip.dialog_snapshot(&id).expect("snapshot");
    let fresh = peer_with_timers(all_transports(), fast_timers()).await;
    let corrupt = [
        String::new(),
        "garbage".to_string(),
        good.replace("stox-sip-dialog/1", "stox-sip-dialog/9"),
        good.replace("role: uac", "role: b2bua"),
        good.replace("local-cseq: ", "local-cseq: x"),
        good[..good.len() / 2].to_string(),
        format!("{good}remote-target: sip:evil@192.0.2.1\n"),
        good.replace("\nfrom: <", "\nfrom: "),
    ];
    for text in &corrupt {
        match fresh.sip.restore_dialog(&id, text) {
            Err(SipError::Snapshot { call_id, detail }) => {
                assert_eq!(call_id, id);
                assert!(!detail.is_empty());
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }
    // Another call's snapshot.
    assert!(matches!(
        fresh.sip.restore_dialog(&CallId::new("other@test"), &good),
        Err(SipError::Snapshot { .. })
    ));
    // The call is still live in `a`: refused there.
    assert!(matches!(
        a.sip.restore_dialog(&id, &good),
        Err(SipError::Stack(_))
    ));
    assert!(fresh.sip.live_calls().is_empty());
    assert_eq!(fresh.sip.dialog_count(), 0);
    hang_up(&mut a, &mut b, &id).await;
}
