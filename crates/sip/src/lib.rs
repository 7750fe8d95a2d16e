//! The SIP transports of stox-gateway: tokio sockets that feed the sans-IO
//! SIP layer (`stox-sipcore`) and carry out its transmits. No SIP logic
//! lives here — framing, transactions, dialogs and connection policy are
//! the SIP layer's; this crate moves bytes and reports what happened.
//!
//! # Run loop
//!
//! [`SipIo::start`] binds the listeners and returns the receiver of
//! [`IoEvent`]s (datagrams, stream bytes, WebSocket messages, connections
//! opened and closed, sends that failed later). The gateway's run loop
//! hands each to `Sip::handle_input` and passes every `Transmit` the SIP
//! layer outputs to [`SipIo::transmit`], every `Close` to [`SipIo::close`].
//!
//! * UDP: one socket, read by one task; datagrams up to 65,535 bytes are
//!   read whole.
//! * TCP: accepted connections, and connections opened for a transmit to an
//!   address no open connection reaches; bytes in both directions, framing
//!   in the SIP layer.
//! * WebSocket (RFC 7118): the handshake must offer the `sip` subprotocol;
//!   one SIP message per WebSocket message; requests to a WebSocket client
//!   go back over its connection (the SIP layer addresses it by id).
//!
//! Limits: connections in total and per source address (an accept past
//! either is closed at once), messages waiting to be written per connection
//! (a transmit past it fails, reported to the SIP layer), WebSocket message
//! and frame sizes. A connection costs one task and a small buffer; an idle
//! one is kept open by the SIP layer while a dialog uses it (with WebSocket
//! pings every `keepalive`) and closed by it otherwise.

mod conn;
mod dns;
mod tls;
mod ws;

pub use dns::Dns;
pub use tls::TlsConfig;

use conn::Conns;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stox_sipcore::{CallKey, ConnId, Dest, Transmit, Transport};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The transports' settings (`[sip]` in the config file).
#[derive(Debug, Clone)]
pub struct IoConfig {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// SIP over TLS listener (RFC 3261 §26.2).
    pub tls_listen: Option<SocketAddr>,
    /// Secure WebSocket listener (RFC 7118 `wss`).
    pub wss: Option<SocketAddr>,
    /// Certificates: the server side for `tls_listen` and `wss`, the client
    /// side for TLS connections the gateway opens. `None`: no TLS at all.
    pub tls: Option<TlsConfig>,
    /// Name servers for RFC 3263 lookups; empty: the system's.
    pub dns_servers: Vec<SocketAddr>,
    /// Stream connections open at once, all sources together.
    pub max_connections: usize,
    /// Stream connections open at once from one source IP address.
    pub max_connections_per_source: usize,
    /// Messages waiting to be written on one connection.
    pub max_queued_writes: usize,
    /// WebSocket pings (and CRLF keep-alives on TCP connections we opened)
    /// this often.
    pub keepalive: Duration,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            udp: None,
            tcp: None,
            ws: None,
            tls_listen: None,
            wss: None,
            tls: None,
            dns_servers: Vec::new(),
            max_connections: 4096,
            max_connections_per_source: 64,
            max_queued_writes: 256,
            keepalive: Duration::from_secs(30),
        }
    }
}

/// What the sockets heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoEvent {
    Datagram {
        source: SocketAddr,
        data: Vec<u8>,
    },
    Opened {
        conn: ConnId,
        transport: Transport,
        peer: SocketAddr,
    },
    /// TCP bytes.
    Stream {
        conn: ConnId,
        data: Vec<u8>,
    },
    /// One WebSocket message.
    Frame {
        conn: ConnId,
        data: Vec<u8>,
    },
    Closed {
        conn: ConnId,
    },
    /// A transmit failed after [`SipIo::transmit`] returned (a connect or
    /// a name lookup that failed).
    SendFailed {
        call: Option<CallKey>,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    #[error("cannot listen on {addr} ({transport}): {detail}")]
    Listen {
        transport: &'static str,
        addr: SocketAddr,
        detail: String,
    },
    #[error("{0}")]
    Send(String),
}

/// Capacity of the event channel: readers wait when it is full (the kernel
/// then drops UDP and slows TCP down), so a flood cannot grow memory.
const EVENTS: usize = 4096;

/// The running transports. Cheap to clone.
#[derive(Clone)]
pub struct SipIo {
    udp: Option<Arc<UdpSocket>>,
    conns: Conns,
    events: mpsc::Sender<IoEvent>,
    local: Vec<(Transport, SocketAddr)>,
    cancel: CancellationToken,
    dns: Dns,
}

impl SipIo {
    /// Binds the configured listeners and starts reading them until
    /// `cancel` fires.
    pub async fn start(
        cfg: IoConfig,
        cancel: CancellationToken,
    ) -> Result<(SipIo, mpsc::Receiver<IoEvent>), SipError> {
        let dns = Dns::new(&cfg.dns_servers).map_err(|detail| SipError::Listen {
            transport: "dns",
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            detail,
        })?;
        let (events, rx) = mpsc::channel(EVENTS);
        let conns = Conns::new(&cfg, events.clone(), cancel.clone());
        let mut local = Vec::new();
        let udp = match cfg.udp {
            Some(addr) => {
                let socket = UdpSocket::bind(addr)
                    .await
                    .map_err(|e| listen_error("udp", addr, &e))?;
                let bound = socket
                    .local_addr()
                    .map_err(|e| listen_error("udp", addr, &e))?;
                local.push((Transport::Udp, bound));
                let socket = Arc::new(socket);
                tokio::spawn(read_udp(socket.clone(), events.clone(), cancel.clone()));
                Some(socket)
            }
            None => None,
        };
        if let Some(addr) = cfg.tcp {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| listen_error("tcp", addr, &e))?;
            let bound = listener
                .local_addr()
                .map_err(|e| listen_error("tcp", addr, &e))?;
            local.push((Transport::Tcp, bound));
            tokio::spawn(conn::accept_tcp(listener, conns.clone()));
        }
        if let Some(addr) = cfg.ws {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| listen_error("ws", addr, &e))?;
            let bound = listener
                .local_addr()
                .map_err(|e| listen_error("ws", addr, &e))?;
            local.push((Transport::Ws, bound));
            tokio::spawn(ws::accept(listener, conns.clone()));
        }
        let server = cfg.tls.as_ref().and_then(|t| t.server.clone());
        for (transport, addr) in [(Transport::Tls, cfg.tls_listen), (Transport::Wss, cfg.wss)] {
            let Some(addr) = addr else { continue };
            let name = transport.as_str();
            let Some(server) = server.clone() else {
                return Err(listen_error(
                    name,
                    addr,
                    &std::io::Error::other("a TLS certificate and key are needed"),
                ));
            };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| listen_error(name, addr, &e))?;
            let bound = listener
                .local_addr()
                .map_err(|e| listen_error(name, addr, &e))?;
            local.push((transport, bound));
            let acceptor = tokio_rustls::TlsAcceptor::from(server);
            if transport == Transport::Tls {
                tokio::spawn(conn::accept_tls(listener, conns.clone(), acceptor));
            } else {
                tokio::spawn(ws::accept_secure(listener, conns.clone(), acceptor));
            }
        }
        Ok((
            SipIo {
                udp,
                conns,
                events,
                local,
                cancel,
                dns,
            },
            rx,
        ))
    }

    /// The resolver the transports use (RFC 3263).
    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    /// The addresses bound, per transport (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        self.local.clone()
    }

    /// Stream connections open now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Sends `t` without waiting. An error here is a failure the SIP layer
    /// must be told of now; one found later comes as
    /// [`IoEvent::SendFailed`].
    pub fn transmit(&self, t: Transmit) -> Result<(), SipError> {
        match (t.transport, t.dest) {
            (Transport::Udp, Dest::Addr(addr)) => self.send_udp(addr, t.data, t.call),
            (Transport::Udp, Dest::Name { host, port, srv }) => {
                let io = self.clone();
                tokio::spawn(async move {
                    match io.dns.resolve(&host, port, srv).await {
                        Ok(addr) => {
                            if let Err(e) = io.send_udp(addr, t.data, t.call) {
                                io.failed(t.call, e.to_string()).await;
                            }
                        }
                        Err(e) => io.failed(t.call, e).await,
                    }
                });
                Ok(())
            }
            (_, Dest::Conn(conn)) => self.conns.send(conn, t.data).map_err(SipError::Send),
            (transport @ (Transport::Tcp | Transport::Tls), Dest::Addr(addr)) => {
                self.conns.send_to(transport, addr, None, t.data, t.call);
                Ok(())
            }
            (transport @ (Transport::Tcp | Transport::Tls), Dest::Name { host, port, srv }) => {
                let io = self.clone();
                tokio::spawn(async move {
                    match io.dns.resolve(&host, port, srv).await {
                        Ok(addr) => io
                            .conns
                            .send_to(transport, addr, Some(host), t.data, t.call),
                        Err(e) => io.failed(t.call, e).await,
                    }
                });
                Ok(())
            }
            (Transport::Ws | Transport::Wss, _) => Err(SipError::Send(
                "a WebSocket client can only be reached over the connection it opened".into(),
            )),
        }
    }

    /// Closes a stream connection (the SIP layer decided).
    pub fn close(&self, conn: ConnId, reason: &str) {
        debug!(conn = conn.0, reason, "closing connection");
        self.conns.close(conn);
    }

    fn send_udp(
        &self,
        addr: SocketAddr,
        data: Vec<u8>,
        call: Option<CallKey>,
    ) -> Result<(), SipError> {
        let Some(udp) = &self.udp else {
            return Err(SipError::Send("no UDP listener configured".into()));
        };
        match udp.try_send_to(&data, addr) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let (udp, io) = (udp.clone(), self.clone());
                tokio::spawn(async move {
                    if let Err(e) = udp.send_to(&data, addr).await {
                        io.failed(call, format!("UDP send to {addr}: {e}")).await;
                    }
                });
                Ok(())
            }
            Err(e) => Err(SipError::Send(format!("UDP send to {addr}: {e}"))),
        }
    }

    async fn failed(&self, call: Option<CallKey>, reason: String) {
        if !self.cancel.is_cancelled() {
            let _ = self.events.send(IoEvent::SendFailed { call, reason }).await;
        }
    }
}

fn listen_error(transport: &'static str, addr: SocketAddr, e: &std::io::Error) -> SipError {
    SipError::Listen {
        transport,
        addr,
        detail: e.to_string(),
    }
}

/// Reads the UDP socket: every datagram, whole (65,535 bytes).
async fn read_udp(
    socket: Arc<UdpSocket>,
    events: mpsc::Sender<IoEvent>,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let received = tokio::select! {
            () = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        match received {
            Ok((len, source)) => {
                let data = buf.get(..len).unwrap_or_default().to_vec();
                if events
                    .send(IoEvent::Datagram { source, data })
                    .await
                    .is_err()
                {
                    break;
                }
            }
            // ICMP port unreachable for an earlier send shows up here on
            // Linux; it says nothing about this socket.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                warn!(error = %e, "UDP receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
