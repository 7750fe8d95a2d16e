//! The operations endpoint (`[http] listen`, docs/operations.md):
//!
//! * `GET /metrics`: every metric in Prometheus text format (the `metrics`
//!   facade, rendered by `metrics-exporter-prometheus`);
//! * `GET /health`: 200 while the process runs (for the service manager);
//! * `GET /ready`: 200 when the gateway takes calls — the XMPP component is
//!   connected, the store keeps up, it is not draining — else 503 with the
//!   reasons (for a SIP dispatcher or a load balancer). While every SIP
//!   next hop it probes is down the answer stays 200 (calls from SIP to
//!   XMPP still work) and says so.
//!
//! Anything else is 404 (405 for a method other than GET or HEAD). At most
//! [`MAX_CONNECTIONS`] connections are served at once; one past it is
//! closed at once, and one idle for [`IDLE`] is closed.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Connections served at once at most.
pub const MAX_CONNECTIONS: usize = 64;
/// A connection that sends nothing this long is closed.
const IDLE: Duration = Duration::from_secs(10);

/// What `/ready` reports; the run loop keeps it up to date.
#[derive(Debug, Default)]
pub struct Readiness {
    pub component: AtomicBool,
    pub store_backlogged: AtomicBool,
    pub draining: AtomicBool,
    /// Set while every SIP next hop the gateway probes is down: calls
    /// from XMPP to SIP are refused, those from SIP still work. Said in
    /// the answer, which it does not turn into a 503.
    pub sip_down: std::sync::Mutex<Option<String>>,
}

impl Readiness {
    /// Why the gateway takes no calls now (empty: it does).
    pub fn reasons(&self) -> Vec<&'static str> {
        let mut why = Vec::new();
        if !self.component.load(Ordering::Relaxed) {
            why.push("xmpp component not connected");
        }
        if self.store_backlogged.load(Ordering::Relaxed) {
            why.push("session store backlog over its limit");
        }
        if self.draining.load(Ordering::Relaxed) {
            why.push("draining: the gateway is shutting down");
        }
        why
    }

    /// What `/ready` adds without refusing: every probed SIP next hop down.
    pub fn note(&self) -> Option<String> {
        self.sip_down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Starts serving on `listen`; the bound address is returned (port 0 takes
/// a free one).
pub async fn serve(
    listen: SocketAddr,
    metrics: PrometheusHandle,
    ready: Arc<Readiness>,
    cancel: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    serve_limited(listen, metrics, ready, cancel, MAX_CONNECTIONS, IDLE).await
}

/// [`serve`] with its limits given (the tests use small ones).
async fn serve_limited(
    listen: SocketAddr,
    metrics: PrometheusHandle,
    ready: Arc<Readiness>,
    cancel: CancellationToken,
    max_connections: usize,
    idle: Duration,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let local = listener.local_addr()?;
    info!(%local, "http: /metrics /health /ready");
    let open = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if open.load(Ordering::Relaxed) >= max_connections {
                warn!(%peer, limit = max_connections, "http: too many connections; closed");
                continue;
            }
            open.fetch_add(1, Ordering::Relaxed);
            let (metrics, ready, open) = (metrics.clone(), ready.clone(), open.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let reply = answer(&req, &metrics, &ready);
                    async move { Ok::<_, std::convert::Infallible>(reply) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(idle)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "http connection ended");
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    Ok(local)
}

fn answer<B>(
    req: &Request<B>,
    metrics: &PrometheusHandle,
    ready: &Readiness,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let mut resp = text(StatusCode::OK, metrics.render());
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/health" => text(StatusCode::OK, "ok\n".into()),
        "/ready" => {
            let why = ready.reasons();
            let note = ready.note().map(|n| format!("; {n}")).unwrap_or_default();
            if why.is_empty() {
                text(StatusCode::OK, format!("ready{note}\n"))
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}{note}\n", why.join("; ")),
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /health, /ready\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(max: usize, idle: Duration) -> (SocketAddr, Arc<Readiness>) {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let ready = Arc::new(Readiness::default());
        let addr = serve_limited(
            "127.0.0.1:0".parse().expect("addr"),
            handle,
            ready.clone(),
            CancellationToken::new(),
            max,
            idle,
        )
        .await
        .expect("listening");
        (addr, ready)
    }

    /// Sends `request`, returns everything read until the server closes
    /// (or 2 s pass).
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // The server may close before reading it all (a refused request).
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn ready_health_metrics_and_the_rest() {
        let (addr, ready) = start(4, Duration::from_secs(5)).await;
        let get = |path: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
        };
        assert!(
            exchange(addr, &get("/health"))
                .await
                .starts_with("HTTP/1.1 200")
        );
        let not_ready = exchange(addr, &get("/ready")).await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.contains("xmpp component not connected"));
        ready.component.store(true, Ordering::Relaxed);
        assert!(
            exchange(addr, &get("/ready"))
                .await
                .starts_with("HTTP/1.1 200")
        );
        // Every SIP next hop down: still ready (SIP → XMPP works), and said.
        *ready.sip_down.lock().expect("lock") = Some("every probed SIP next hop is down".into());
        let degraded = exchange(addr, &get("/ready")).await;
        assert!(degraded.starts_with("HTTP/1.1 200"), "{degraded}");
        assert!(
            degraded.contains("ready; every probed SIP next hop is down"),
            "{degraded}"
        );
        let metrics = exchange(addr, &get("/metrics")).await;
        assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
        assert!(
            exchange(addr, &get("/other"))
                .await
                .starts_with("HTTP/1.1 404")
        );
        let post =
            b"POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        assert!(exchange(addr, post).await.starts_with("HTTP/1.1 405"));
    }

    #[tokio::test]
    async fn a_connection_past_the_limit_is_closed_and_an_idle_one_times_out() {
        let (addr, _) = start(2, Duration::from_millis(300)).await;
        let _a = TcpStream::connect(addr).await.expect("connect");
        let _b = TcpStream::connect(addr).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The third is closed at once, unanswered.
        let third = exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(third, "", "closed without an answer");
        // The two idle ones are closed by the header timeout; then the
        // endpoint answers again.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let again = exchange(
            addr,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(again.starts_with("HTTP/1.1 200"), "{again:?}");
    }

    #[tokio::test]
    async fn an_oversized_request_head_is_refused() {
        let (addr, _) = start(4, Duration::from_secs(5)).await;
        let mut req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 1 << 20));
        req.extend(b"\r\n\r\n");
        let answer = exchange(addr, &req).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{}",
            &answer[..answer.len().min(80)]
        );
    }

    #[test]
    fn ready_names_every_reason_and_is_ready_with_none() {
        let r = Readiness::default();
        assert_eq!(r.reasons(), ["xmpp component not connected"]);
        r.component.store(true, Ordering::Relaxed);
        assert!(r.reasons().is_empty());
        r.draining.store(true, Ordering::Relaxed);
        r.store_backlogged.store(true, Ordering::Relaxed);
        assert_eq!(r.reasons().len(), 2);
    }
}
