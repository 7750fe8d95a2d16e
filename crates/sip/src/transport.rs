//! Listener setup: UDP, TCP and WebSocket (RFC 7118).
//!
//! rsipstack's own TCP and WebSocket listeners bind only when the endpoint
//! starts serving and never report the port they got, so port 0 could not be
//! used and bind errors would only be logged. We therefore bind every socket
//! ourselves, up front, and:
//! - UDP: hand the bound socket (wrapped in [`GuardedUdpSocket`]) to
//!   rsipstack, which reads it;
//! - TCP: run our own accept loop and give each accepted stream to the
//!   transport layer (`add_connection`), which reads and frames it;
//! - WS: run our own accept loop whose handshake *requires* the `sip`
//!   subprotocol (rsipstack's listener accepts a handshake without it), then
//!   give the WebSocket to the transport layer like a TCP stream. Requests
//!   to a WS client go back over that connection (rsipstack's flow affinity).
//!
//! The TCP and WS listeners are also registered with the transport layer as
//! (never served) listener entries *after* rsipstack has started its own
//! listeners, so that Via and Contact headers advertise them.

use crate::wire::GuardedUdpSocket;
use crate::{SipConfig, SipError};
use futures::StreamExt;
use rsipstack::sip::Transport;
use rsipstack::transaction::endpoint::EndpointInner;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::udp::{UdpConnection, UdpInner};
use rsipstack::transport::websocket::{WebSocketConnection, WebSocketInner};
use rsipstack::transport::{
    SipAddr, SipConnection, TcpListenerConnection, TransportLayer, WebSocketListenerConnection,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A WebSocket handshake must complete within this time.
const WS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sockets bound by [`bind`], not yet serving.
pub(crate) struct Bound {
    pub udp: Option<UdpConnection>,
    pub tcp: Option<(TcpListener, SocketAddr)>,
    pub ws: Option<(TcpListener, SocketAddr)>,
    pub addrs: Vec<(&'static str, SocketAddr)>,
}

pub(crate) async fn bind(
    config: &SipConfig,
    cancel: &CancellationToken,
) -> Result<Bound, SipError> {
    let mut bound = Bound {
        udp: None,
        tcp: None,
        ws: None,
        addrs: Vec::new(),
    };
    if let Some(addr) = config.udp {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|e| listen_error("udp", addr, &e))?;
        let local = socket
            .local_addr()
            .map_err(|e| listen_error("udp", addr, &e))?;
        let inner = UdpInner {
            conn: GuardedUdpSocket::new(socket, cancel.clone()),
            addr: advertised(Transport::Udp, local),
        };
        bound.udp = Some(UdpConnection::attach(inner, None, Some(cancel.child_token())).await);
        bound.addrs.push(("udp", local));
    }
    if let Some(addr) = config.tcp {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| listen_error("tcp", addr, &e))?;
        let local = listener
            .local_addr()
            .map_err(|e| listen_error("tcp", addr, &e))?;
        bound.tcp = Some((listener, local));
        bound.addrs.push(("tcp", local));
    }
    if let Some(addr) = config.ws {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| listen_error("ws", addr, &e))?;
        let local = listener
            .local_addr()
            .map_err(|e| listen_error("ws", addr, &e))?;
        bound.ws = Some((listener, local));
        bound.addrs.push(("ws", local));
    }
    Ok(bound)
}

fn listen_error(transport: &'static str, addr: SocketAddr, e: &std::io::Error) -> SipError {
    SipError::Listen {
        transport,
        addr,
        detail: e.to_string(),
    }
}

/// The address we put in Via/Contact for a local socket (a wildcard bind is
/// replaced by an interface address).
pub(crate) fn advertised(transport: Transport, local: SocketAddr) -> SipAddr {
    SipAddr {
        r#type: Some(transport),
        addr: SipConnection::resolve_bind_address(local).into(),
    }
}

/// Registers the stream listeners' addresses with the transport layer. Call
/// only once rsipstack has started its listeners: it would otherwise try to
/// bind these addresses a second time.
pub(crate) async fn register_stream_listeners(
    layer: &TransportLayer,
    tcp: Option<SocketAddr>,
    ws: Option<SocketAddr>,
) -> Result<(), SipError> {
    if let Some(local) = tcp {
        let advertised = advertised(Transport::Tcp, local).addr;
        let conn = TcpListenerConnection::new(socket_or(local, &advertised), None)
            .await
            .map_err(|e| SipError::Stack(e.to_string()))?;
        layer.add_transport(SipConnection::TcpListener(conn));
    }
    if let Some(local) = ws {
        let advertised = advertised(Transport::Ws, local).addr;
        let conn = WebSocketListenerConnection::new(socket_or(local, &advertised), None, false)
            .await
            .map_err(|e| SipError::Stack(e.to_string()))?;
        layer.add_transport(SipConnection::WebSocketListener(conn));
    }
    Ok(())
}

fn socket_or(local: SocketAddr, advertised: &rsipstack::sip::HostWithPort) -> SocketAddr {
    match &advertised.host {
        rsipstack::sip::Host::IpAddr(ip) => SocketAddr::new(*ip, local.port()),
        rsipstack::sip::Host::Domain(_) => local,
    }
}

/// The next accepted connection, or `None` once `cancel` fires. Accept
/// errors (e.g. too many open files) are logged and retried after a pause.
async fn accept(
    listener: &TcpListener,
    local: SocketAddr,
    kind: &str,
    cancel: &CancellationToken,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(e) => {
                    warn!(%local, error = %e, "{kind} accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Accepts TCP connections and hands them to the transport layer.
pub(crate) fn spawn_tcp_accept(
    listener: TcpListener,
    local: SocketAddr,
    endpoint: Arc<EndpointInner>,
    cancel: CancellationToken,
) {
    let local_addr = advertised(Transport::Tcp, local);
    tokio::spawn(async move {
        while let Some((stream, peer)) = accept(&listener, local, "tcp", &cancel).await {
            match TcpConnection::from_stream(stream, local_addr.clone(), Some(cancel.child_token()))
            {
                Ok(conn) => {
                    debug!(%peer, "tcp connection accepted");
                    endpoint
                        .transport_layer
                        .add_connection(SipConnection::Tcp(conn));
                }
                Err(e) => warn!(%peer, error = %e, "cannot set up tcp connection"),
            }
        }
        debug!(%local, "tcp listener stopped");
    });
}

/// Accepts WebSocket connections that negotiate the `sip` subprotocol.
pub(crate) fn spawn_ws_accept(
    listener: TcpListener,
    local: SocketAddr,
    endpoint: Arc<EndpointInner>,
    cancel: CancellationToken,
) {
    let local_addr = advertised(Transport::Ws, local);
    tokio::spawn(async move {
        while let Some((stream, peer)) = accept(&listener, local, "ws", &cancel).await {
            let endpoint = endpoint.clone();
            let local_addr = local_addr.clone();
            let token = cancel.child_token();
            tokio::spawn(async move {
                if let Some(conn) = ws_handshake(stream, peer, local_addr, token).await {
                    endpoint
                        .transport_layer
                        .add_connection(SipConnection::WebSocket(conn));
                }
            });
        }
        debug!(%local, "ws listener stopped");
    });
}

async fn ws_handshake(
    stream: TcpStream,
    peer: SocketAddr,
    local_addr: SipAddr,
    token: CancellationToken,
) -> Option<WebSocketConnection> {
    let handshake =
        tokio_tungstenite::accept_hdr_async(MaybeTlsStream::Plain(stream), require_sip_subprotocol);
    let ws = match tokio::time::timeout(WS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            warn!(%peer, error = %e, "websocket handshake refused or failed");
            return None;
        }
        Err(_) => {
            warn!(%peer, "websocket handshake timed out");
            return None;
        }
    };
    info!(%peer, "sip websocket connection established");
    let (sink, read) = ws.split();
    Some(WebSocketConnection {
        inner: Arc::new(WebSocketInner {
            local_addr,
            remote_addr: SipAddr {
                r#type: Some(Transport::Ws),
                addr: peer.into(),
            },
            ws_sink: tokio::sync::Mutex::new(sink),
            ws_read: tokio::sync::Mutex::new(Some(read)),
        }),
        cancel_token: Some(token),
    })
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
