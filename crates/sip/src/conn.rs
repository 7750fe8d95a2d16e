//! Stream connections: the table (limits, lookup by peer), TCP accept and
//! connect, and the one task per connection that reads and writes it.

use crate::{IoConfig, IoEvent};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use stox_mapping::lograte::LogGate;
use stox_sipcore::{CallKey, ConnId, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

struct Entry {
    tx: mpsc::Sender<Vec<u8>>,
    peer: SocketAddr,
    transport: Transport,
}

#[derive(Default)]
struct Table {
    by_id: HashMap<ConnId, Entry>,
    by_peer: HashMap<(Transport, SocketAddr), ConnId>,
    per_source: HashMap<IpAddr, usize>,
}

/// The open connections. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Conns {
    table: Arc<Mutex<Table>>,
    pub events: mpsc::Sender<IoEvent>,
    pub cancel: CancellationToken,
    next: Arc<AtomicU64>,
    max: usize,
    per_source: usize,
    queued: usize,
    pub keepalive: Duration,
    gate: Arc<Mutex<(LogGate<IpAddr>, Instant)>>,
    /// For the TLS connections we open.
    tls_client: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

/// The refusals of new connections are logged at most a few times a second
/// per source.
const REFUSED_LOG: (u64, u64) = (2, 5);

impl Conns {
    pub fn new(cfg: &IoConfig, events: mpsc::Sender<IoEvent>, cancel: CancellationToken) -> Conns {
        Conns {
            table: Arc::new(Mutex::new(Table::default())),
            events,
            cancel,
            next: Arc::new(AtomicU64::new(1)),
            max: cfg.max_connections.max(1),
            per_source: cfg.max_connections_per_source.max(1),
            queued: cfg.max_queued_writes.max(1),
            keepalive: cfg.keepalive,
            gate: Arc::new(Mutex::new((
                LogGate::new(REFUSED_LOG.0, REFUSED_LOG.1, 4096),
                Instant::now(),
            ))),
            tls_client: cfg.tls.as_ref().map(|t| t.client.clone()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every critical section is a few map operations.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Registers a new connection from/to `peer`, within the limits.
    pub fn admit(
        &self,
        peer: SocketAddr,
        transport: Transport,
    ) -> Option<(ConnId, mpsc::Receiver<Vec<u8>>)> {
        let mut t = self.lock();
        let from_source = t.per_source.get(&peer.ip()).copied().unwrap_or(0);
        if t.by_id.len() >= self.max || from_source >= self.per_source {
            let (total, max, per) = (t.by_id.len(), self.max, self.per_source);
            drop(t);
            self.refused(peer, total, max, from_source, per);
            return None;
        }
        let id = ConnId(self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.queued);
        t.by_id.insert(
            id,
            Entry {
                tx,
                peer,
                transport,
            },
        );
        t.by_peer.insert((transport, peer), id);
        *t.per_source.entry(peer.ip()).or_insert(0) += 1;
        Some((id, rx))
    }

    fn refused(&self, peer: SocketAddr, total: usize, max: usize, from_source: usize, per: usize) {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let now = g.1.elapsed().as_millis() as u64;
        if let Some(held_back) = g.0.admit(&peer.ip(), now) {
            warn!(%peer, total, max, from_source, per_source = per, held_back, "sip: connection refused: over the connection limits");
        }
    }

    /// Forgets a connection whose task ended.
    pub fn forget(&self, id: ConnId) {
        let mut t = self.lock();
        if let Some(e) = t.by_id.remove(&id) {
            if t.by_peer.get(&(e.transport, e.peer)) == Some(&id) {
                t.by_peer.remove(&(e.transport, e.peer));
            }
            if let Some(n) = t.per_source.get_mut(&e.peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    t.per_source.remove(&e.peer.ip());
                }
            }
            stox_mapping::tables::shrink(&mut t.by_id);
            stox_mapping::tables::shrink(&mut t.by_peer);
            stox_mapping::tables::shrink(&mut t.per_source);
        }
    }

    /// Queues `data` on connection `id`.
    pub fn send(&self, id: ConnId, data: Vec<u8>) -> Result<(), String> {
        let t = self.lock();
        let e = t
            .by_id
            .get(&id)
            .ok_or_else(|| format!("connection {} is closed", id.0))?;
        e.tx.try_send(data).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                format!(
                    "connection {}: {} messages already wait to be written",
                    id.0, self.queued
                )
            }
            mpsc::error::TrySendError::Closed(_) => format!("connection {} is closed", id.0),
        })
    }

    /// Sends over TCP or TLS to `addr`: on a connection already open to it,
    /// else on a new one (the data waits in its queue while it connects;
    /// TLS checks the certificate against `server_name`, or the address).
    pub fn send_to(
        &self,
        transport: Transport,
        addr: SocketAddr,
        server_name: Option<String>,
        data: Vec<u8>,
        call: Option<CallKey>,
    ) {
        let existing = self.lock().by_peer.get(&(transport, addr)).copied();
        if let Some(id) = existing
            && self.send(id, data.clone()).is_ok()
        {
            return;
        }
        let this = self.clone();
        if transport == Transport::Tls && self.tls_client.is_none() {
            tokio::spawn(async move {
                this.failed(call, "no TLS configured for a sips:/TLS destination".into())
                    .await;
            });
            return;
        }
        let Some((id, rx)) = self.admit(addr, transport) else {
            tokio::spawn(async move {
                this.failed(
                    call,
                    format!("no connection to {addr}: over the connection limits"),
                )
                .await;
            });
            return;
        };
        let _ = self.send(id, data);
        if transport == Transport::Tls {
            tokio::spawn(async move {
                let name = server_name.unwrap_or_else(|| addr.ip().to_string());
                match this.connect_tls(addr, &name).await {
                    Ok(stream) => {
                        run_stream(this, id, stream, addr, Transport::Tls, rx, true).await
                    }
                    Err(e) => {
                        this.forget(id);
                        this.failed(call, e).await;
                    }
                }
            });
            return;
        }
        tokio::spawn(async move {
            let connected =
                tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await;
            match connected {
                Ok(Ok(stream)) => run_tcp(this, id, stream, addr, rx, true).await,
                Ok(Err(e)) => {
                    this.forget(id);
                    this.failed(call, format!("TCP connect to {addr}: {e}"))
                        .await;
                }
                Err(_) => {
                    this.forget(id);
                    this.failed(call, format!("TCP connect to {addr} timed out"))
                        .await;
                }
            }
        });
    }

    /// TCP, then the TLS handshake, checking the certificate for `name`.
    async fn connect_tls(
        &self,
        addr: SocketAddr,
        name: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let client = self.tls_client.clone().ok_or("no TLS configured")?;
        let server_name = crate::tls::TlsConfig::server_name(name)?;
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("TLS connect to {addr}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            tokio_rustls::TlsConnector::from(client)
                .connect(server_name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr} ({name}): {e}"))
        };
        tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| format!("TLS connect to {addr} timed out"))?
    }

    /// Closes a connection: dropping its queue's only sender ends its task
    /// (after what is queued is written).
    pub fn close(&self, id: ConnId) {
        self.forget(id);
    }

    pub async fn event(&self, ev: IoEvent) -> bool {
        self.events.send(ev).await.is_ok()
    }

    async fn failed(&self, call: Option<CallKey>, reason: String) {
        let _ = self.event(IoEvent::SendFailed { call, reason }).await;
    }
}

/// Accepts stream connections on `listener` within the limits (refused
/// ones are closed at once) and hands each admitted one to `serve`.
pub(crate) async fn accept<F, Fut>(
    listener: TcpListener,
    conns: Conns,
    transport: Transport,
    serve: F,
) where
    F: Fn(Conns, ConnId, TcpStream, SocketAddr, mpsc::Receiver<Vec<u8>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = conns.cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Some((id, rx)) = conns.admit(peer, transport) else {
                    drop(stream);
                    continue;
                };
                tokio::spawn(serve(conns.clone(), id, stream, peer, rx));
            }
            Err(e) => {
                warn!(error = %e, %transport, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Accepts TCP connections within the limits.
pub(crate) async fn accept_tcp(listener: TcpListener, conns: Conns) {
    accept(
        listener,
        conns,
        Transport::Tcp,
        |conns, id, stream, peer, rx| run_tcp(conns, id, stream, peer, rx, false),
    )
    .await;
}

/// Accepts TLS connections within the limits: each completes its handshake
/// within 10 s or is closed.
pub(crate) async fn accept_tls(
    listener: TcpListener,
    conns: Conns,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    accept(
        listener,
        conns,
        Transport::Tls,
        move |conns, id, stream, peer, rx| {
            let acceptor = acceptor.clone();
            async move {
                if let Some(tls) = tls_handshake(&conns, id, &acceptor, stream, peer).await {
                    run_stream(conns, id, tls, peer, Transport::Tls, rx, false).await;
                }
            }
        },
    )
    .await;
}

/// The server side of a TLS handshake on an accepted connection, within
/// 10 s; a failed one forgets the connection.
pub(crate) async fn tls_handshake(
    conns: &Conns,
    id: ConnId,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let _ = stream.set_nodelay(true);
    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => return Some(tls),
        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => debug!(%peer, "TLS handshake timed out"),
    }
    conns.forget(id);
    None
}

/// One byte-stream connection of any kind (TLS): as [`run_tcp`].
pub(crate) async fn run_stream<S>(
    conns: Conns,
    id: ConnId,
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    mut rx: mpsc::Receiver<Vec<u8>>,
    outbound: bool,
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
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut keepalive = tokio::time::interval(conns.keepalive);
    keepalive.tick().await;
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            () = conns.cancel.cancelled() => break,
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default().to_vec();
                    if !conns.event(IoEvent::Stream { conn: id, data }).await {
                        break;
                    }
                }
            },
            queued = rx.recv() => match queued {
                Some(data) => {
                    if let Err(e) = wr.write_all(&data).await {
                        debug!(conn = id.0, %peer, error = %e, "{transport} write failed");
                        break;
                    }
                }
                None => break,
            },
            _ = keepalive.tick(), if outbound => {
                if wr.write_all(b"\r\n\r\n").await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
    conns.forget(id);
    let _ = conns.event(IoEvent::Closed { conn: id }).await;
}

/// One TCP connection: bytes read go to the SIP layer, queued messages are
/// written, and on a connection we opened CRLFCRLF keep-alives go out
/// (RFC 5626 §4.4.1). Ends when either side closes or the queue ends.
pub(crate) async fn run_tcp(
    conns: Conns,
    id: ConnId,
    stream: TcpStream,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
    outbound: bool,
) {
    let _ = stream.set_nodelay(true);
    if !conns
        .event(IoEvent::Opened {
            conn: id,
            transport: Transport::Tcp,
            peer,
        })
        .await
    {
        conns.forget(id);
        return;
    }
    let (rd, mut wr) = stream.into_split();
    let mut keepalive = tokio::time::interval(conns.keepalive);
    keepalive.tick().await;
    loop {
        tokio::select! {
            () = conns.cancel.cancelled() => break,
            ready = rd.readable() => {
                if ready.is_err() {
                    break;
                }
                let read = {
                    let mut buf = [0u8; 4096];
                    match rd.try_read(&mut buf) {
                        Ok(0) => None,
                        Ok(n) => Some(buf.get(..n).unwrap_or_default().to_vec()),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => None,
                    }
                };
                let Some(data) = read else { break };
                if !conns.event(IoEvent::Stream { conn: id, data }).await {
                    break;
                }
            }
            queued = rx.recv() => match queued {
                Some(data) => {
                    if let Err(e) = wr.write_all(&data).await {
                        debug!(conn = id.0, %peer, error = %e, "tcp write failed");
                        break;
                    }
                }
                None => break,
            },
            _ = keepalive.tick(), if outbound => {
                if wr.write_all(b"\r\n\r\n").await.is_err() {
                    break;
                }
            }
        }
    }
    conns.forget(id);
    let _ = conns.event(IoEvent::Closed { conn: id }).await;
}
