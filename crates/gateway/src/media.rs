//! The NG driver: carries the core's rtpengine requests ([`Output::Media`])
//! over UDP and brings the answers back ([`Input::Media`]).
//!
//! One task, one socket. Retransmission and matching are stox-rtpengine's
//! [`Ng`] (same cookie on every send, so rtpengine applies a request once).
//! A request without a relay (a call's first) goes to the configured
//! addresses in order: one that does not answer at all is skipped for the
//! next; one that answers with an error is the answer. A request with the
//! call's relay goes there only (its session is there).
//!
//! [`Output::Media`]: stox_call::Output::Media
//! [`Input::Media`]: stox_call::Input::Media

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;
use stox_call::{MediaReply, MediaRequest};
use stox_rtpengine::{Due, MAX_REPLY, Ng, NgError};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What the run loop gets back: a ticket and its outcome.
pub type MediaResult = (u64, Result<MediaReply, String>);

/// Requests waiting for the driver at most; past it a request fails at once
/// (and its call is refused or ended as the core decides).
const QUEUE: usize = 4096;

/// The run loop's side of the driver.
pub struct MediaHandle {
    tx: mpsc::Sender<MediaRequest>,
}

impl MediaHandle {
    /// Queues `req`; `Err` gives it back when the driver is full or gone.
    pub fn send(&self, req: MediaRequest) -> Result<(), (u64, String)> {
        let ticket = req.ticket;
        self.tx.try_send(req).map_err(|e| {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "the NG queue is full",
                mpsc::error::TrySendError::Closed(_) => "the NG driver is gone",
            };
            (ticket, why.to_owned())
        })
    }
}

/// A request in flight: which ticket, which relays are left to try.
struct Flight {
    ticket: u64,
    request: stox_rtpengine::Request,
    to: SocketAddr,
    /// Relays to try next when `to` does not answer (a call's first
    /// request only).
    next: Vec<SocketAddr>,
}

/// Starts the driver for `relays` (`[rtpengine] ng`).
pub async fn spawn(
    relays: Vec<SocketAddr>,
    cancel: CancellationToken,
) -> anyhow::Result<(MediaHandle, mpsc::Receiver<MediaResult>)> {
    let bind: SocketAddr = if relays.first().is_some_and(SocketAddr::is_ipv6) {
        "[::]:0".parse()?
    } else {
        "0.0.0.0:0".parse()?
    };
    let socket = UdpSocket::bind(bind).await?;
    info!(relays = ?relays, local = %socket.local_addr()?, "rtpengine NG driver ready");
    let (tx, rx) = mpsc::channel(QUEUE);
    let (results_tx, results) = mpsc::channel(QUEUE);
    tokio::spawn(run(socket, relays, rx, results_tx, cancel));
    Ok((MediaHandle { tx }, results))
}

async fn run(
    socket: UdpSocket,
    relays: Vec<SocketAddr>,
    mut requests: mpsc::Receiver<MediaRequest>,
    results: mpsc::Sender<MediaResult>,
    cancel: CancellationToken,
) {
    let mut ng = Ng::new(rand::random());
    let mut flights: HashMap<String, Flight> = HashMap::new();
    let mut buf = vec![0u8; MAX_REPLY + 1];
    loop {
        let deadline = ng.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = cancel.cancelled() => return,
            req = requests.recv() => {
                let Some(req) = req else { return };
                let (to, next) = match req.relay.as_deref().map(str::parse::<SocketAddr>) {
                    Some(Ok(addr)) => (addr, Vec::new()),
                    Some(Err(_)) => {
                        let why = format!("the call's rtpengine {:?} is not ip:port", req.relay);
                        send_result(&results, req.ticket, Err(why)).await;
                        continue;
                    }
                    None => match relays.split_first() {
                        Some((first, rest)) => (*first, rest.to_vec()),
                        None => {
                            send_result(&results, req.ticket, Err("no rtpengine configured".into())).await;
                            continue;
                        }
                    },
                };
                let flight = Flight { ticket: req.ticket, request: req.request, to, next };
                if let Err((ticket, why)) = start(&socket, &mut ng, &mut flights, flight).await {
                    send_result(&results, ticket, Err(why)).await;
                }
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let Some((cookie, outcome)) = ng.on_datagram(&buf[..n]) else { continue };
                let Some(flight) = flights.remove(&cookie) else { continue };
                if from.ip() != flight.to.ip() {
                    warn!(%from, expected = %flight.to, "rtpengine answer from an unexpected address");
                }
                let result = outcome
                    .map(|reply| MediaReply { relay: flight.to.to_string(), reply })
                    .map_err(|e| e.to_string());
                send_result(&results, flight.ticket, result).await;
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                for due in ng.on_timeout(Instant::now()) {
                    match due {
                        Due::Resend { cookie, data } => {
                            if let Some(f) = flights.get(&cookie) {
                                let _ = socket.send_to(&data, f.to).await;
                            }
                        }
                        Due::Failed { cookie, error } => {
                            let Some(mut flight) = flights.remove(&cookie) else { continue };
                            if flight.next.is_empty() {
                                send_result(&results, flight.ticket, Err(error.to_string())).await;
                                continue;
                            }
                            warn!(relay = %flight.to, error = %error, "rtpengine not answering; trying the next");
                            flight.to = flight.next.remove(0);
                            if let Err((ticket, why)) = start(&socket, &mut ng, &mut flights, flight).await {
                                send_result(&results, ticket, Err(why)).await;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Sends `flight`'s request (a new cookie); `Err` when it cannot go.
async fn start(
    socket: &UdpSocket,
    ng: &mut Ng,
    flights: &mut HashMap<String, Flight>,
    flight: Flight,
) -> Result<(), (u64, String)> {
    let (cookie, data) = ng
        .request(Instant::now(), &flight.request)
        .map_err(|e: NgError| (flight.ticket, e.to_string()))?;
    // A send that fails (no route) is retried by the timer like a loss.
    if let Err(e) = socket.send_to(&data, flight.to).await {
        warn!(relay = %flight.to, error = %e, "rtpengine NG send failed");
    }
    flights.insert(cookie, flight);
    Ok(())
}

async fn send_result(
    results: &mpsc::Sender<MediaResult>,
    ticket: u64,
    result: Result<MediaReply, String>,
) {
    // The run loop reads these as fast as they come; if it is gone the
    // gateway is stopping.
    let _ = results.send((ticket, result)).await;
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(ticket: u64) -> MediaRequest {
        MediaRequest {
            ticket,
            relay: None,
            request: stox_rtpengine::Request {
                command: "ping".into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_request_past_the_queue_comes_back_at_once_with_why() {
        let (tx, rx) = mpsc::channel(1);
        let handle = MediaHandle { tx };
        assert!(handle.send(request(1)).is_ok());
        let (ticket, why) = handle.send(request(2)).expect_err("the queue is full");
        assert_eq!((ticket, why.as_str()), (2, "the NG queue is full"));
        drop(rx);
        let (_, why) = handle.send(request(3)).expect_err("the driver is gone");
        assert_eq!(why, "the NG driver is gone");
    }

    #[tokio::test]
    async fn a_reply_comes_back_with_the_relay_and_a_silent_relay_is_skipped() {
        // A fake rtpengine that answers every request with `pong`.
        let fake = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let fake_addr = fake.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = fake.recv_from(&mut buf).await {
                let cookie = buf[..n]
                    .split(|b| *b == b' ')
                    .next()
                    .unwrap_or_default()
                    .to_vec();
                let mut reply = cookie;
                reply.extend_from_slice(b" d6:result4:ponge");
                let _ = fake.send_to(&reply, from).await;
            }
        });
        // The first relay never answers (nothing listens there).
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let silent_addr = silent.local_addr().expect("addr");
        let (handle, mut results) = spawn(vec![silent_addr, fake_addr], CancellationToken::new())
            .await
            .expect("driver");
        handle.send(request(7)).expect("queued");
        let (ticket, result) = tokio::time::timeout(Duration::from_secs(10), results.recv())
            .await
            .expect("an answer within the retries")
            .expect("a result");
        assert_eq!(ticket, 7);
        let reply = result.expect("the second relay answered");
        assert_eq!(reply.relay, fake_addr.to_string());
        assert_eq!(reply.reply.result, "pong");
        // A request pinned to the silent relay fails after its retries.
        let mut pinned = request(8);
        pinned.relay = Some(silent_addr.to_string());
        handle.send(pinned).expect("queued");
        let (ticket, result) = tokio::time::timeout(Duration::from_secs(10), results.recv())
            .await
            .expect("a failure within the retries")
            .expect("a result");
        assert_eq!(ticket, 8);
        assert!(result.expect_err("no answer").contains("did not answer"));
        drop(silent);
    }
}
