//! Defence against bad wire input.
//!
//! rsipstack parses every message itself; these two hooks sit in front of it:
//! - [`GuardedUdpSocket`] wraps the UDP socket and drops (with a warning)
//!   datagrams that do not parse as SIP — rsipstack would drop them too, but
//!   only at debug level;
//! - [`WireInspector`] sees every parsed message and answers a request that
//!   lacks a mandatory header (Via, From with tag, To, Call-ID, CSeq matching
//!   the method), has a Call-ID that is not RFC 3261 §25.1 `word["@"word]`,
//!   or a control character in a header, with `400 Bad Request`, instead of
//!   letting the transaction layer drop it silently (or a NUL reach a log
//!   line and the store). Malformed responses are dropped.
//!
//! Both log what they drop at most a few lines a second per source address
//! (`LogGate`), each line with the count of those held back before it: a
//! flood of garbage costs a few log lines, not one per datagram.

use crate::table::CallTable;
use async_trait::async_trait;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, Request, Response, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::TransportEventInspector;
use rsipstack::transport::TransportEvent;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use stox_mapping::ids::CallId;
use stox_mapping::lograte::{LogGate, escaped};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// A tokio UDP socket that swallows unparsable datagrams, and closes when
/// the endpoint shuts down: rsipstack's transport layer keeps the socket as
/// long as anything (a dialog, a late transaction) still refers to the
/// endpoint, which would keep the port bound after shutdown.
pub(crate) struct GuardedUdpSocket {
    socket: RwLock<Option<Arc<tokio::net::UdpSocket>>>,
    gate: PeerLogGate,
}

/// [`LogGate`] by source address, with its own clock origin.
pub(crate) struct PeerLogGate {
    gate: Mutex<LogGate<IpAddr>>,
    epoch: Instant,
}

impl Default for PeerLogGate {
    fn default() -> Self {
        PeerLogGate {
            // A burst of 5, then 2 lines a second per source.
            gate: Mutex::new(LogGate::new(2, 5, 4096)),
            epoch: Instant::now(),
        }
    }
}

impl PeerLogGate {
    /// `Some(held back)` when a line about `from` may be logged now.
    pub fn admit(&self, from: IpAddr) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        gate.admit(&from, now)
    }
}

impl GuardedUdpSocket {
    /// Wraps `socket`; it is closed (dropped) once `shutdown` fires.
    pub fn new(socket: tokio::net::UdpSocket, shutdown: CancellationToken) -> Arc<Self> {
        let guarded = Arc::new(GuardedUdpSocket {
            socket: RwLock::new(Some(Arc::new(socket))),
            gate: PeerLogGate::default(),
        });
        let weak = Arc::downgrade(&guarded);
        tokio::spawn(async move {
            shutdown.cancelled().await;
            if let Some(guarded) = weak.upgrade() {
                guarded.close();
            }
        });
        guarded
    }

    fn close(&self) {
        let mut socket = self.socket.write().unwrap_or_else(|p| p.into_inner());
        socket.take();
    }

    fn socket(&self) -> std::io::Result<Arc<tokio::net::UdpSocket>> {
        let socket = self.socket.read().unwrap_or_else(|p| p.into_inner());
        socket.clone().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "SIP endpoint shut down")
        })
    }
}

#[async_trait]
impl rsipstack::platform::net::UdpSocket for GuardedUdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        let socket = self.socket()?;
        loop {
            let (len, from) = socket.recv_from(buf).await?;
            let packet = buf.get(..len).unwrap_or_default();
            // Keep-alives (CRLF) are rsipstack's business.
            if packet.iter().all(u8::is_ascii_whitespace) {
                return Ok((len, from));
            }
            match SipMessage::try_from(packet) {
                Ok(_) => return Ok((len, from)),
                Err(e) => {
                    if let Some(held_back) = self.gate.admit(from.ip()) {
                        let error = e.to_string();
                        warn!(%from, len, error = %escaped(&error), held_back, "dropping unparsable UDP datagram");
                    }
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.socket()?.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.socket()?.local_addr()?)
    }
}

/// Rejects structurally broken messages before the transaction layer, and
/// shows every response of an outgoing call to its [`crate::forks::ForkWatch`].
pub(crate) struct WireInspector {
    pub calls: CallTable,
    pub watcher: std::sync::Arc<crate::watch::Watcher>,
    pub gate: PeerLogGate,
}

#[async_trait]
impl TransportEventInspector for WireInspector {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        match &event {
            TransportEvent::Incoming(SipMessage::Request(req), conn, from) => {
                if let Some(problem) = request_problem(req) {
                    if let Some(held_back) = from
                        .get_socketaddr()
                        .ok()
                        .and_then(|a| self.gate.admit(a.ip()))
                    {
                        warn!(%from, method = %req.method, problem, held_back, "malformed SIP request answered 400");
                    }
                    // Never answer an ACK; without a Via there is nowhere to answer.
                    if req.method != Method::Ack && req.via_header().is_ok() {
                        let resp = bad_request(req, problem);
                        if let Err(e) = conn.send(resp.into(), Some(from)).await {
                            debug!(%from, error = %e, "cannot send 400");
                        }
                    }
                    return None;
                }
            }
            TransportEvent::Incoming(SipMessage::Response(resp), _, from) => {
                if let Some(problem) = response_problem(resp) {
                    if let Some(held_back) = from
                        .get_socketaddr()
                        .ok()
                        .and_then(|a| self.gate.admit(a.ip()))
                    {
                        warn!(%from, status = resp.status_code.code(), problem, held_back, "dropping malformed SIP response");
                    }
                    return None;
                }
                if let Ok(call_id) = resp.call_id_header() {
                    let call_id = CallId::new(call_id.value());
                    if let Some(forks) = self.calls.get(&call_id).and_then(|entry| entry.forks)
                        && forks.observe(resp)
                    {
                        self.watcher.fork_provisional(call_id, resp.clone());
                    }
                }
            }
            _ => {}
        }
        Some(event)
    }
}

/// What makes a request unprocessable, if anything (RFC 3261 §8.1.1).
pub(crate) fn request_problem(req: &Request) -> Option<&'static str> {
    if req.via_header().and_then(|v| v.typed()).is_err() {
        return Some("missing or invalid Via");
    }
    match req.call_id_header() {
        Err(_) => return Some("missing Call-ID"),
        Ok(call_id) if !is_call_id(call_id.value()) => {
            return Some("invalid Call-ID (RFC 3261 §25.1: word[@word])");
        }
        Ok(_) => {}
    }
    if req.headers.iter().any(has_control) {
        return Some("control character in a header");
    }
    match req.cseq_header() {
        Err(_) => return Some("missing CSeq"),
        Ok(cseq) => {
            if cseq.seq().is_err() {
                return Some("invalid CSeq number");
            }
            match cseq.method() {
                Ok(m) if m == req.method => {}
                _ => return Some("CSeq method does not match the request"),
            }
        }
    }
    match req.from_header().and_then(|f| f.tag()) {
        Err(_) => return Some("missing or invalid From"),
        Ok(None) => return Some("From without tag"),
        Ok(Some(_)) => {}
    }
    if req.to_header().and_then(|t| t.typed()).is_err() {
        return Some("missing or invalid To");
    }
    None
}

/// RFC 3261 §25.1: `callid = word [ "@" word ]`.
pub(crate) fn is_call_id(value: &str) -> bool {
    const WORD: &[u8] = b"-.!%*_+`'~()<>:\\\"/[]?{}";
    let mut parts = value.split('@');
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || WORD.contains(&b))
    };
    parts.next().is_some_and(word) && parts.next().is_none_or(word) && parts.next().is_none()
}

/// A header whose text has a control character other than HTAB (which
/// RFC 3261's grammar allows only as whitespace).
fn has_control(header: &Header) -> bool {
    header
        .to_string()
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

fn response_problem(resp: &Response) -> Option<&'static str> {
    if resp.via_header().is_err() {
        return Some("missing Via");
    }
    if resp.call_id_header().is_err() {
        return Some("missing Call-ID");
    }
    match resp.cseq_header() {
        Ok(cseq) if cseq.seq().is_ok() && cseq.method().is_ok() => {}
        _ => return Some("missing or invalid CSeq"),
    }
    None
}

/// `400 Bad Request` echoing whatever identifying headers the request had.
fn bad_request(req: &Request, problem: &str) -> Response {
    let mut resp = Response {
        status_code: StatusCode::Other(400, format!("Bad Request ({problem})")),
        ..Default::default()
    };
    for header in req.headers.iter() {
        if matches!(
            header,
            Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_)
        ) {
            resp.headers.push(header.clone());
        }
    }
    resp.headers.push(Header::ContentLength(0u32.into()));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3261_25_1_call_id_is_word_at_word() {
        for ok in [
            "a84b4c76e66710",
            "f81d4fae-7dec@foo.bar.com",
            "x`'~()<>:\\\"/[]?{}%*_+!.-",
        ] {
            assert!(is_call_id(ok), "{ok}");
        }
        for bad in ["", "a@b@c", "@b", "a@", "abc\0def", "a b", "a\r\nb", "é"] {
            assert!(!is_call_id(bad), "{bad:?}");
        }
    }
}
