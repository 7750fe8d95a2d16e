//! SIP over WebSocket (RFC 7118): the handshake must offer the `sip`
//! subprotocol, and one SIP message travels per WebSocket message.

use crate::IoEvent;
use crate::conn::Conns;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use stox_sipcore::{ConnId, Transport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::debug;

/// A WebSocket handshake must complete within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest SIP message (and frame) taken over WebSocket.
const MAX_MESSAGE: usize = 64 * 1024;

/// Small buffers: an idle connection costs a few KiB, not tungstenite's
/// default 128 KiB read buffer.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE * 4)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

pub(crate) async fn accept(listener: TcpListener, conns: Conns) {
    crate::conn::accept(
        listener,
        conns,
        Transport::Ws,
        |conns, id, stream, peer, rx| {
            let _ = stream.set_nodelay(true);
            handshake(conns, id, stream, peer, Transport::Ws, rx)
        },
    )
    .await;
}

/// `wss`: the TLS handshake, then the WebSocket one, within the same time.
pub(crate) async fn accept_secure(
    listener: TcpListener,
    conns: Conns,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    crate::conn::accept(
        listener,
        conns,
        Transport::Wss,
        move |conns, id, stream, peer, rx| {
            let acceptor = acceptor.clone();
            async move {
                let tls = crate::conn::tls_handshake(&conns, id, &acceptor, stream, peer).await;
                if let Some(tls) = tls {
                    handshake(conns, id, tls, peer, Transport::Wss, rx).await;
                }
            }
        },
    )
    .await;
}

async fn handshake<S>(
    conns: Conns,
    id: ConnId,
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    rx: mpsc::Receiver<Vec<u8>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        require_sip_subprotocol,
        Some(config()),
    );
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accepted).await {
        Ok(Ok(ws)) => run(conns, id, ws, peer, transport, rx).await,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "websocket handshake refused or failed");
            conns.forget(id);
        }
        Err(_) => {
            debug!(%peer, "websocket handshake timed out");
            conns.forget(id);
        }
    }
}

/// RFC 7118 §4.1: the client offers `sip` in `Sec-WebSocket-Protocol` and
/// the server selects it; a handshake without it is refused with 400.
#[allow(clippy::result_large_err)] // the signature tungstenite's callback requires
fn require_sip_subprotocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offers_sip = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if offers_sip {
        resp.headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
        return Ok(resp);
    }
    let mut refusal = ErrorResponse::new(Some(
        "SIP over WebSocket requires the 'sip' subprotocol (RFC 7118)".to_string(),
    ));
    *refusal.status_mut() = StatusCode::BAD_REQUEST;
    Err(refusal)
}

/// One WebSocket connection: messages both ways, a ping every `keepalive`.
async fn run<S>(
    conns: Conns,
    id: ConnId,
    ws: tokio_tungstenite::WebSocketStream<S>,
    peer: SocketAddr,
    transport: Transport,
    mut rx: mpsc::Receiver<Vec<u8>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if !conns
        .event(IoEvent::Opened {
            conn: id,
            transport,
            peer,
        })
        .await
    {
        conns.forget(id);
        return;
    }
    let (mut sink, mut stream) = ws.split();
    let mut keepalive = tokio::time::interval(conns.keepalive);
    keepalive.tick().await;
    loop {
        tokio::select! {
            () = conns.cancel.cancelled() => break,
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let data = text.as_bytes().to_vec();
                    if !conns.event(IoEvent::Frame { conn: id, data }).await {
                        break;
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    if !conns.event(IoEvent::Frame { conn: id, data: data.to_vec() }).await {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {} // ping/pong: answered by tungstenite
                Some(Err(e)) => {
                    debug!(conn = id.0, %peer, error = %e, "websocket read failed");
                    break;
                }
            },
            queued = rx.recv() => match queued {
                Some(data) => {
                    let msg = match String::from_utf8(data) {
                        Ok(text) => Message::text(text),
                        Err(e) => Message::binary(e.into_bytes()),
                    };
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = keepalive.tick() => {
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
    conns.forget(id);
    let _ = conns.event(IoEvent::Closed { conn: id }).await;
}
