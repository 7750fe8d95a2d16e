//! A scripted raw-UDP SIP peer: receives requests as text and answers with
//! hand-written responses (forking proxies, reliable provisionals, INFO).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

const RECV_WAIT: Duration = Duration::from_secs(3);

/// A request (or response) as received: first line, headers, body.
#[derive(Debug, Clone)]
pub struct Msg {
    pub text: String,
    pub from: SocketAddr,
}

impl Msg {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or_default()
    }

    pub fn method(&self) -> &str {
        self.first_line().split(' ').next().unwrap_or_default()
    }

    /// The Request-URI.
    pub fn uri(&self) -> &str {
        self.first_line().split(' ').nth(1).unwrap_or_default()
    }

    /// The first header `name` (long form), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head().lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn head(&self) -> &str {
        self.text.split("\r\n\r\n").next().unwrap_or_default()
    }

    pub fn body(&self) -> &str {
        self.text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("")
    }

    /// The `tag=` parameter of header `name`.
    pub fn tag(&self, name: &str) -> Option<&str> {
        let value = self.header(name)?;
        let (_, rest) = value.split_once(";tag=")?;
        Some(rest.split(';').next().unwrap_or(rest).trim())
    }
}

pub struct RawPeer {
    pub sock: UdpSocket,
}

impl RawPeer {
    pub async fn bind() -> RawPeer {
        RawPeer {
            sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("addr")
    }

    pub async fn recv(&self) -> Msg {
        let mut buf = vec![0u8; 65535];
        let (len, from) = tokio::time::timeout(RECV_WAIT, self.sock.recv_from(&mut buf))
            .await
            .expect("a datagram arrives in time")
            .expect("recv");
        Msg {
            text: String::from_utf8_lossy(&buf[..len]).into_owned(),
            from,
        }
    }

    /// The next request of `method`, skipping anything else (retransmissions
    /// of other requests, responses).
    pub async fn request(&self, method: &str) -> Msg {
        loop {
            let msg = self.recv().await;
            if msg.method() == method {
                return msg;
            }
        }
    }

    /// Collects requests until `n` of them match `method`.
    pub async fn requests(&self, method: &str, n: usize) -> Vec<Msg> {
        let mut got = Vec::new();
        while got.len() < n {
            got.push(self.request(method).await);
        }
        got
    }

    /// Asserts no request of `method` arrives within `wait`.
    pub async fn no_request(&self, method: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = vec![0u8; 65535];
        while let Ok(Ok((len, _))) =
            tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await
        {
            let text = String::from_utf8_lossy(&buf[..len]);
            assert!(
                !text.starts_with(&format!("{method} ")),
                "unexpected {method}: {text}"
            );
        }
    }

    pub async fn send(&self, text: &str, to: SocketAddr) {
        self.sock.send_to(text.as_bytes(), to).await.expect("send");
    }

    /// Answers `req` with `status` (e.g. "200 OK"), `to_tag` added to its To
    /// unless it has one, `extra` header lines (each ending in CRLF) and
    /// `body`, and sends it to where `req` came from.
    pub async fn answer(&self, req: &Msg, status: &str, to_tag: &str, extra: &str, body: &str) {
        let text = response(req, status, to_tag, extra, body);
        self.send(&text, req.from).await;
    }
}

/// A response to `req`; see [`RawPeer::answer`].
pub fn response(req: &Msg, status: &str, to_tag: &str, extra: &str, body: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in req.head().lines().skip(1) {
        let name = line.split_once(':').map(|(n, _)| n.trim()).unwrap_or("");
        if ["Via", "From", "Call-ID", "CSeq"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    let to = req.header("To").unwrap_or_default();
    if to.contains(";tag=") || to_tag.is_empty() {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
    }
    out.push_str(extra);
    if !body.is_empty() {
        out.push_str("Content-Type: application/sdp\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out
}

/// An in-dialog request from the callee side of a UAC's dialog with
/// `invite`: From carries `callee_tag`, To our From (with our tag).
pub fn callee_request(
    invite: &Msg,
    method: &str,
    callee_tag: &str,
    me: SocketAddr,
    cseq: u32,
    extra: &str,
    body: &str,
) -> String {
    let our_from = invite.header("From").unwrap_or_default();
    let their_to = invite.header("To").unwrap_or_default();
    let call_id = invite.header("Call-ID").unwrap_or_default();
    let target = invite
        .header("Contact")
        .unwrap_or_default()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .to_string();
    format!(
        "{method} {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{method}-{callee_tag}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: {their_to};tag={callee_tag}\r\n\
         To: {our_from}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         {extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}
