//! The NG codec against a real rtpengine (Debian's rtpengine-daemon,
//! userspace forwarding, started here on loopback): ping, an offer whose
//! ICE and DTLS are removed toward a plain RTP/AVP peer, the answer, RTP
//! actually forwarded through it, and the delete with its packet counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stox_rtpengine::{Ng, Reply, Request};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> (Daemon, u16) {
    let ng = free_udp();
    let base = 31_000 + (std::process::id() % 500) as u16 * 40;
    let child = Command::new("rtpengine")
        .args([
            "--foreground",
            "--log-stderr",
            "--table=-1",
            "--no-fallback",
            "--interface=127.0.0.1",
            &format!("--listen-ng=127.0.0.1:{ng}"),
            &format!("--port-min={base}"),
            &format!("--port-max={}", base + 39),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rtpengine is installed (tests/run.sh installs rtpengine-daemon)");
    (Daemon(child), ng)
}

/// Sends `req` until answered (the daemon may still be starting).
fn call(sock: &UdpSocket, ng: &mut Ng, port: u16, req: &Request) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (_, data) = ng.request(Instant::now(), req).expect("sent");
    let mut buf = vec![0u8; 65_535];
    loop {
        sock.send_to(&data, ("127.0.0.1", port)).unwrap();
        if let Ok(n) = sock.recv(&mut buf)
            && let Some((_, reply)) = ng.on_datagram(&buf[..n])
        {
            return reply.expect("rtpengine took it");
        }
        assert!(
            Instant::now() < deadline,
            "rtpengine did not answer {}",
            req.command
        );
    }
}

fn port_of(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port")
}

#[test]
fn ng_offer_answer_forwarding_and_delete_against_rtpengine() {
    let (_daemon, port) = start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut ng = Ng::new(42);
    let pong = call(
        &sock,
        &mut ng,
        port,
        &Request {
            command: "ping".into(),
            ..Request::default()
        },
    );
    assert_eq!(pong.result, "pong");

    // Caller A (RTP on a), callee B (RTP on b): both plain RTP/AVP here.
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sdp = |port: u16| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        )
    };
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let offer = call(
        &sock,
        &mut ng,
        port,
        &Request {
            command: "offer".into(),
            call_id: Some("ng-test".into()),
            from_tag: Some("fa".into()),
            sdp: Some(sdp(pa)),
            flags: vec!["trust-address".into()],
            options: vec![("ICE".into(), "remove".into())],
            ..Request::default()
        },
    );
    let toward_b = port_of(offer.sdp.as_deref().expect("offer SDP"));
    let answer = call(
        &sock,
        &mut ng,
        port,
        &Request {
            command: "answer".into(),
            call_id: Some("ng-test".into()),
            from_tag: Some("fa".into()),
            to_tag: Some("tb".into()),
            sdp: Some(sdp(pb)),
            flags: vec!["trust-address".into()],
            ..Request::default()
        },
    );
    let toward_a = port_of(answer.sdp.as_deref().expect("answer SDP"));
    assert_ne!(toward_a, pa, "rtpengine anchors the media");

    // RTP both ways through rtpengine.
    let rtp = |seq: u16| {
        let mut p = vec![0x80, 0x00];
        p.extend(seq.to_be_bytes());
        p.extend([0u8; 8]);
        p.extend([0xffu8; 160]);
        p
    };
    a.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    b.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (mut at_a, mut at_b) = (0, 0);
    for seq in 0..20u16 {
        a.send_to(&rtp(seq), ("127.0.0.1", toward_a)).unwrap();
        b.send_to(&rtp(seq), ("127.0.0.1", toward_b)).unwrap();
        if b.recv(&mut buf).is_ok() {
            at_b += 1;
        }
        if a.recv(&mut buf).is_ok() {
            at_a += 1;
        }
    }
    assert!(
        at_a >= 15 && at_b >= 15,
        "forwarded: {at_a} to A, {at_b} to B"
    );

    let deleted = call(
        &sock,
        &mut ng,
        port,
        &Request {
            command: "delete".into(),
            call_id: Some("ng-test".into()),
            from_tag: Some("fa".into()),
            ..Request::default()
        },
    );
    let (rtp_packets, _) = deleted.total_packets().expect("totals in the delete reply");
    assert!(rtp_packets >= 30, "{rtp_packets} RTP packets counted");
    // A call rtpengine does not know: refused, with its reason.
    let (_, data) = ng
        .request(
            Instant::now(),
            &Request {
                command: "query".into(),
                call_id: Some("no-such-call".into()),
                ..Request::default()
            },
        )
        .unwrap();
    sock.send_to(&data, ("127.0.0.1", port)).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    let (_, unknown) = ng.on_datagram(&buf[..n]).expect("matched");
    assert!(
        matches!(&unknown, Err(stox_rtpengine::NgError::Refused { command, .. }) if command == "query"),
        "{unknown:?}"
    );
}
