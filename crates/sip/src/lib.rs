//! SIP adapter for stox-gateway.
//!
//! A thin layer over rsipstack: it owns the transports (UDP, TCP, WebSocket
//! with subprotocol `sip`, RFC 7118), the transaction layer (RFC 3261
//! retransmissions and timers) and the INVITE dialogs. It knows nothing about
//! Jingle: the gateway core tells it what to send with [`SipCommand`]-style
//! method calls and hears back through [`SipEvent`]s, keyed by Call-ID.
//!
//! # Run loop
//!
//! [`SipEndpoint::start`] binds the listeners, starts rsipstack's endpoint
//! (transport reader, transaction timers) and one dispatcher task for
//! incoming transactions. Each INVITE dialog then gets a watcher task that
//! turns rsipstack's dialog states into [`SipEvent`]s and removes the call
//! from the table when the dialog ends.
//!
//! Modules: `transport` (listeners), `wire` (bad input), `server` (incoming
//! requests, UAS), `client` (outgoing INVITE, UAC), `info` (INFO both ways,
//! option tags), `table` (live calls), `snapshot` (the stored text form of a
//! dialog), `restore` (dialogs across a restart).
//!
//! # Restart
//!
//! [`SipEndpoint::dialog_snapshot`] gives a confirmed dialog (either role)
//! as text for the store; after a restart on the same listeners,
//! [`SipEndpoint::restore_dialog`] registers it again, so the peer's BYE or
//! INFO is recognised and `bye()`/`info()` work. Restored dialogs send
//! their requests to the first Route, else the remote target, by its
//! transport: UDP from our listener, TCP over a new connection. WebSocket
//! clients cannot be reached after a restart (see `restore_dialog`).
//! Cancelling the endpoint's token stops every call watcher and closes the
//! UDP socket, so a new endpoint can bind the same ports at once.
//!
//! # Forking (RFC 3261 §13.2.2.4)
//!
//! A proxy may fork our INVITE: provisional responses then come from several
//! early dialogs (different To tags) and more than one 2xx may arrive. Every
//! provisional is reported; only the first 2xx becomes [`SipEvent::Answered`].
//! rsipstack ACKs every further 2xx with its own tag and target and ends that
//! dialog with a BYE (logged at info), without registering it; a later
//! non-2xx from another fork is dropped by the transaction (Accepted state).

mod client;
mod forks;
mod info;
mod pending;
mod restore;
mod server;
mod snapshot;
mod table;
mod transport;
mod watch;
mod wire;

use rsipstack::EndpointBuilder;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Scheme, Transport, Uri};
use rsipstack::transaction::endpoint::{EndpointInner, EndpointOption};
use rsipstack::transport::{SipAddr, TransportLayer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stox_mapping::ids::CallId;
use table::{CallTable, Role};
use tracing::{debug, warn};

/// Listener and routing configuration (the `[sip]` table of the config file).
#[derive(Debug, Clone)]
pub struct SipConfig {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// `sip:host:port[;transport=tcp]`: every out-of-dialog request goes there.
    pub outbound_proxy: Option<String>,
    pub user_agent: String,
    /// The path MTU assumed for UDP: a request larger than `udp_mtu - 200`
    /// bytes is "too large for UDP" (RFC 3261 §18.1.1).
    pub udp_mtu: usize,
    /// Send such requests over TCP (the next hop takes TCP). Without it they
    /// still go over UDP while they fit one datagram, and fail at once when
    /// they do not.
    pub large_requests_over_tcp: bool,
}

impl Default for SipConfig {
    /// No listener, no proxy; RFC 3261's 1500-byte MTU assumption.
    fn default() -> Self {
        SipConfig {
            udp: None,
            tcp: None,
            ws: None,
            outbound_proxy: None,
            user_agent: String::new(),
            udp_mtu: 1500,
            large_requests_over_tcp: false,
        }
    }
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
    #[error("invalid SIP URI '{0}'")]
    InvalidUri(String),
    /// A request that cannot be sent over the transport of its next hop.
    #[error(
        "request of about {bytes} bytes is too large for UDP (at most {limit}) and TCP is not configured for {next_hop}"
    )]
    TooLarge {
        bytes: usize,
        limit: usize,
        next_hop: String,
    },
    #[error("no such call {0}")]
    UnknownCall(CallId),
    /// An in-dialog request (INFO) asked for a call whose dialog is not
    /// confirmed yet. rsipstack 0.7 builds in-dialog requests only for a
    /// confirmed dialog, so INFO in an early dialog (RFC 8840 allows it) is
    /// not supported: hold the payload until the call is answered.
    #[error("call {0} has no confirmed dialog yet (INFO in an early dialog is not supported)")]
    NotConfirmed(CallId),
    /// A stored dialog snapshot (see [`SipEndpoint::restore_dialog`]) is
    /// corrupt, of an unknown version, or does not fit this call.
    #[error("cannot restore call {call_id}: {detail}")]
    Snapshot { call_id: CallId, detail: String },
    #[error("{0}")]
    Stack(String),
}

/// An INVITE the gateway sends (XMPP → SIP).
#[derive(Debug, Clone)]
pub struct OutgoingInvite {
    pub call_id: CallId,
    /// Request-URI and To, e.g. `sip:romeo@example.net`.
    pub request_uri: String,
    /// From URI, e.g. `sip:juliet@example.com` (a From tag is added).
    pub from: String,
    /// The SDP offer.
    pub sdp: String,
    /// Option tags for the `Supported` header besides `100rel`, which is
    /// always advertised (RFC 3262), e.g. `trickle-ice` (RFC 8840; it also
    /// adds `Recv-Info: trickle-ice`). Tags that are not SIP tokens are
    /// dropped.
    pub supported: Vec<String>,
}

/// What the SIP side reports to the gateway core.
#[derive(Debug, Clone)]
pub enum SipEvent {
    /// A new INVITE outside any dialog. `100 Trying` has already been sent.
    IncomingInvite {
        call_id: CallId,
        request_uri: String,
        from: String,
        to: String,
        sdp: Option<String>,
        transport: &'static str,
        source: SocketAddr,
        /// Option tags of the `Supported` header(s), lower-cased.
        supported: Vec<String>,
    },
    /// A provisional response (101–199) to our INVITE. With forking there
    /// may be several, from different early dialogs.
    Provisional {
        call_id: CallId,
        status: u16,
        sdp: Option<String>,
        /// It carried `Require: 100rel` and an RSeq, and has been PRACKed
        /// (RFC 3262): its SDP is a real answer.
        reliable: bool,
        /// Option tags of the `Supported` header(s), lower-cased.
        supported: Vec<String>,
    },
    /// The first 2xx to our INVITE; the ACK has been sent. Only one per
    /// call, even when a forking proxy delivers several (see the crate docs).
    Answered {
        call_id: CallId,
        status: u16,
        sdp: Option<String>,
        /// Option tags of the `Supported` header(s), lower-cased.
        supported: Vec<String>,
    },
    /// A final non-2xx to our INVITE, or a transaction timeout (408).
    Rejected {
        call_id: CallId,
        status: u16,
        reason: String,
    },
    /// The ACK for our 2xx arrived.
    Acked { call_id: CallId },
    /// The caller cancelled our pending incoming INVITE; 200 to the CANCEL and
    /// 487 to the INVITE have been sent.
    Cancelled { call_id: CallId },
    /// The peer sent BYE; 200 has been sent.
    Bye { call_id: CallId },
    /// The dialog ended for another reason (no ACK, BYE timed out, transport
    /// gone …).
    Terminated { call_id: CallId, reason: String },
    /// An INFO in an early or confirmed dialog of the call; 200 OK has been
    /// sent. An INFO without body gives empty strings.
    Info {
        call_id: CallId,
        /// The `Content-Type` value as received (parameters kept).
        content_type: String,
        body: String,
    },
}

/// RFC 3261 timer base values. The defaults are the RFC's; tests shorten
/// them to exercise timeouts quickly.
#[derive(Debug, Clone, Copy)]
pub struct SipTimers {
    /// T1, the RTT estimate (500 ms). Timers B, F, H and the ACK wait are 64*T1.
    pub t1: Duration,
    /// T2, the retransmission cap (4 s).
    pub t2: Duration,
    /// T4, how long a message may live in the network (5 s).
    pub t4: Duration,
}

impl Default for SipTimers {
    fn default() -> Self {
        SipTimers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Capacity of the event channel handed to the gateway core.
const EVENT_QUEUE: usize = 1024;

/// The running SIP endpoint. Cheap to clone.
#[derive(Clone)]
pub struct SipEndpoint {
    inner: Arc<Inner>,
}

/// Shared state of one endpoint.
pub(crate) struct Inner {
    pub endpoint: Arc<EndpointInner>,
    pub dialogs: Arc<DialogLayer>,
    pub calls: CallTable,
    pub events: tokio::sync::mpsc::Sender<SipEvent>,
    pub listeners: Vec<(&'static str, SocketAddr)>,
    pub outbound_proxy: Option<SipAddr>,
    /// The outbound proxy as a preloaded `Route` (`;lr`), so that the INVITE,
    /// its CANCEL and the ACK of a non-2xx all go through it (RFC 3261 §8.1.2).
    pub outbound_route: Option<rsipstack::sip::typed::Route>,
    pub t1x64: Duration,
    /// RFC 3261 §18.1.1 settings (see [`SipConfig`]).
    pub udp_mtu: usize,
    pub large_requests_over_tcp: bool,
    pub has_tcp: bool,
    /// Fires when the endpoint shuts down: the watcher stops, so nothing
    /// keeps the sockets open.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Watches every dialog's states ([`watch`]).
    pub watcher: Arc<watch::Watcher>,
    /// INVITEs left unanswered by a previous run ([`pending`]).
    pub recovered: pending::RecoveredTable,
}

impl Inner {
    pub async fn emit(&self, event: SipEvent) {
        debug!(?event, "sip event");
        if self.events.send(event).await.is_err() {
            debug!("sip event receiver dropped");
        }
    }

    /// Our Contact for a dialog carried over `transport`: the listener of
    /// that transport (or, failing that, the first one).
    pub fn contact(&self, transport: Transport) -> Option<Uri> {
        let listens = self.endpoint.transport_layer.get_listen_addrs();
        let addr = listens
            .iter()
            .find(|a| a.r#type == Some(transport))
            .or_else(|| listens.first())?;
        let mut params = Vec::new();
        if transport != Transport::Udp {
            params.push(rsipstack::sip::Param::Transport(transport));
        }
        Some(Uri {
            scheme: Some(Scheme::Sip),
            auth: None,
            host_with_port: addr.addr.clone(),
            params,
            headers: Vec::new(),
        })
    }
}

impl SipEndpoint {
    /// Binds the configured listeners and starts the stack. Events arrive on
    /// the returned receiver until `cancel` fires.
    pub async fn start(
        config: SipConfig,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(SipEndpoint, tokio::sync::mpsc::Receiver<SipEvent>), SipError> {
        Self::start_with_timers(config, SipTimers::default(), cancel).await
    }

    /// [`SipEndpoint::start`] with non-default RFC 3261 timers.
    pub async fn start_with_timers(
        config: SipConfig,
        timers: SipTimers,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(SipEndpoint, tokio::sync::mpsc::Receiver<SipEvent>), SipError> {
        let outbound_proxy = match config.outbound_proxy.as_deref() {
            Some(proxy) => Some(client::parse_proxy(proxy)?),
            None => None,
        };
        let outbound_route = match config.outbound_proxy.as_deref() {
            Some(proxy) => Some(client::proxy_route(proxy)?),
            None => None,
        };
        let token = cancel.child_token();
        let bound = transport::bind(&config, &token).await?;
        let calls = CallTable::default();
        let (watcher, watch_queues) = watch::Watcher::new();
        let watcher = Arc::new(watcher);

        let layer = TransportLayer::new(token.child_token());
        if let Some(udp) = bound.udp {
            layer.add_transport(udp.into());
        }
        let option = EndpointOption {
            t1: timers.t1,
            t2: timers.t2,
            t4: timers.t4,
            t1x64: timers.t1 * 64,
            ..Default::default()
        };
        let user_agent = if config.user_agent.is_empty() {
            concat!("stox-gateway/", env!("CARGO_PKG_VERSION")).to_string()
        } else {
            config.user_agent.clone()
        };
        let endpoint = EndpointBuilder::new()
            .with_user_agent(&user_agent)
            .with_transport_layer(layer)
            .with_cancel_token(token.child_token())
            .with_option(option)
            .with_transport_inspector(Box::new(wire::WireInspector {
                calls: calls.clone(),
                watcher: watcher.clone(),
                gate: wire::PeerLogGate::default(),
            }))
            .with_allows(server::ALLOWED.to_vec())
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| SipError::Stack(e.to_string()))?;
        let endpoint_inner = endpoint.inner.clone();

        // Poll the serve future once before registering the TCP/WS listener
        // entries: its first poll starts rsipstack's own listeners from the
        // list as it is then (see `transport`).
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let serving = endpoint_inner.clone();
        tokio::spawn(async move {
            let serve = serving.serve();
            tokio::pin!(serve);
            let first = futures::poll!(serve.as_mut());
            let _ = started_tx.send(());
            let result = match first {
                std::task::Poll::Ready(result) => result,
                std::task::Poll::Pending => serve.await,
            };
            if let Err(e) = result {
                warn!(error = %e, "sip endpoint stopped");
            }
        });
        started_rx
            .await
            .map_err(|_| SipError::Stack("sip endpoint task died at start".into()))?;

        let tcp_addr = bound.tcp.as_ref().map(|(_, a)| *a);
        let ws_addr = bound.ws.as_ref().map(|(_, a)| *a);
        transport::register_stream_listeners(&endpoint_inner.transport_layer, tcp_addr, ws_addr)
            .await?;
        if let Some((listener, local)) = bound.tcp {
            transport::spawn_tcp_accept(listener, local, endpoint_inner.clone(), token.clone());
        }
        if let Some((listener, local)) = bound.ws {
            transport::spawn_ws_accept(listener, local, endpoint_inner.clone(), token.clone());
        }

        let (events, receiver) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        let inner = Arc::new(Inner {
            dialogs: Arc::new(DialogLayer::new(endpoint_inner.clone())),
            endpoint: endpoint_inner,
            calls,
            events,
            listeners: bound.addrs,
            outbound_proxy,
            outbound_route,
            t1x64: timers.t1 * 64,
            udp_mtu: config.udp_mtu,
            large_requests_over_tcp: config.large_requests_over_tcp,
            has_tcp: config.tcp.is_some(),
            shutdown: token.clone(),
            watcher,
            recovered: pending::RecoveredTable::default(),
        });
        tokio::spawn(watch::run(inner.clone(), watch_queues));
        tokio::spawn(server::dispatch(inner.clone(), incoming, token));
        Ok((SipEndpoint { inner }, receiver))
    }

    /// Sends an INVITE; progress comes back as events for `invite.call_id`.
    pub fn invite(&self, invite: OutgoingInvite) -> Result<(), SipError> {
        client::invite(&self.inner, invite)
    }

    /// Answers a pending incoming INVITE: 180/183 (optionally with SDP),
    /// 200 with the SDP answer, or a final 3xx–6xx (with a `Retry-After`
    /// of `retry_after` seconds when given).
    pub fn respond(
        &self,
        call_id: &CallId,
        status: u16,
        reason: Option<String>,
        sdp: Option<String>,
        retry_after: Option<u32>,
    ) -> Result<(), SipError> {
        if self.inner.recovered.contains(call_id) {
            return pending::respond(&self.inner, call_id, status, reason)
                .unwrap_or_else(|| Err(SipError::UnknownCall(call_id.clone())));
        }
        server::respond(&self.inner, call_id, status, reason, sdp, retry_after)
    }

    /// CANCELs our pending outgoing INVITE (a live one, or one restored
    /// with [`SipEndpoint::restore_pending`]).
    pub fn cancel(&self, call_id: &CallId) -> Result<(), SipError> {
        if let Some(result) = pending::cancel(&self.inner, call_id) {
            return result;
        }
        client::cancel(&self.inner, call_id)
    }

    /// The INVITE of `call_id` while it is unanswered (ours, or the peer's
    /// we have not answered yet) as text for the store; `None` once it is
    /// answered, or for an unknown call. See the `pending` module docs.
    pub fn pending_snapshot(&self, call_id: &CallId) -> Option<String> {
        pending::snapshot(&self.inner, call_id)
    }

    /// Takes back an unanswered INVITE from [`SipEndpoint::pending_snapshot`]
    /// text after a restart, so that it can be ended on the wire: `cancel()`
    /// for ours, `respond()` with a final 3xx–6xx for the peer's. Each is
    /// used once.
    pub fn restore_pending(&self, call_id: &CallId, snapshot: &str) -> Result<(), SipError> {
        pending::restore(&self.inner, call_id, snapshot)
    }

    /// Sends BYE in an established dialog (either direction).
    pub fn bye(&self, call_id: &CallId) -> Result<(), SipError> {
        let entry = self
            .inner
            .calls
            .get(call_id)
            .ok_or_else(|| SipError::UnknownCall(call_id.clone()))?;
        let dialog = entry.dialog;
        let state = dialog.state();
        let can_bye = state.is_confirmed() || (entry.role == Role::Uas && state.waiting_ack());
        if !can_bye {
            return Err(SipError::Stack(format!(
                "call {call_id} is not established (state {state}); use cancel or respond"
            )));
        }
        let span = tracing::info_span!("sip_call", call_id = %call_id);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                if let Err(e) = dialog.bye().await {
                    warn!(error = %e, "BYE failed");
                }
            },
            span,
        ));
        Ok(())
    }

    /// Sends INFO in the call's confirmed dialog (either role), e.g.
    /// `application/trickle-ice-sdpfrag` (RFC 8840: `Info-Package:
    /// trickle-ice` is added). Returns at once; a non-2xx answer is logged.
    /// Before the dialog is confirmed: [`SipError::NotConfirmed`].
    pub fn info(&self, call_id: &CallId, content_type: &str, body: String) -> Result<(), SipError> {
        info::send(&self.inner, call_id, content_type, body)
    }

    /// The confirmed dialog of `call_id` as self-contained text, for the
    /// store; `None` when the call has no confirmed dialog (unknown, still
    /// ringing, or ended). The format (a version line, then one `key: value`
    /// line per field) is described in the `snapshot` module docs. Take it
    /// again after sending in-dialog requests to keep the stored local CSeq
    /// current (restore adds a margin for requests missed).
    pub fn dialog_snapshot(&self, call_id: &CallId) -> Option<String> {
        restore::snapshot(&self.inner, call_id)
    }

    /// Re-creates a confirmed dialog from [`SipEndpoint::dialog_snapshot`]
    /// text after a restart (new process, same listeners). Afterwards
    /// `bye()`/`info()` work for `call_id`, a BYE or INFO from the peer
    /// produces [`SipEvent::Bye`]/[`SipEvent::Info`] for `call_id` as for any
    /// call, and the call table entry is cleaned up when the dialog ends.
    ///
    /// The local CSeq is advanced by 1000 (requests sent after the snapshot
    /// was stored must not make our next one look old). In-dialog requests
    /// go to the first Route, else the remote target: over UDP from our UDP
    /// listener, over TCP on a new connection (a TCP dialog's transport-less
    /// target gets `;transport=tcp`). A WebSocket client cannot be reached
    /// after a restart (its connection is gone, and it cannot be connected
    /// back to): restore still succeeds, requests from a reconnected client
    /// are recognised, requests to it fail (logged) and `bye()` ends the call
    /// locally.
    ///
    /// Errors: [`SipError::Snapshot`] for a corrupt snapshot, one of an
    /// unknown version or of another Call-ID; [`SipError::Stack`] when the
    /// call is already live.
    pub fn restore_dialog(&self, call_id: &CallId, snapshot: &str) -> Result<(), SipError> {
        restore::restore(&self.inner, call_id, snapshot)
    }

    /// The local addresses actually bound, per transport (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.inner.listeners.clone()
    }

    /// The Call-IDs of the dialogs currently alive (either role), sorted.
    pub fn live_calls(&self) -> Vec<CallId> {
        self.inner.calls.ids()
    }

    /// How many dialogs rsipstack's dialog layer still holds (a leak check:
    /// 0 once every call has ended).
    pub fn dialog_count(&self) -> usize {
        self.inner.dialogs.len()
    }
}
