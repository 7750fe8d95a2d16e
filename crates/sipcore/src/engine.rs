//! The SIP layer as one state machine: [`Sip::handle_input`] takes what the
//! driver heard (a datagram, stream bytes, a WebSocket message, a
//! connection opened or closed, a send that failed) or a command from the
//! core, [`Sip::handle_timeout`] takes the time, and [`Sip::poll_output`]
//! gives what to do: transmit bytes, tell the core an event, close a
//! connection. No socket, no clock, no task.
//!
//! Inside: sipx-sip's RFC 3261 §17 transaction layer (retransmissions and
//! timers A–M), and ours on top — dialogs, the UAS and UAC rules of the
//! gateway (`uas.rs`, `uac.rs`), connection life, and the restart snapshots.

use crate::api::{CallKey, Command, KeyGen, NextHop, RequestId, SipCommand, SipEvent, Transport};
use crate::dialog::Dialog;
use crate::framing::Framer;
use crate::msg::{self, Limits, Message, Request, Response, TxOutput, TxTimer, TxTimers};
use crate::msg::{Reliability, TransactionKey, TransactionLayer};
use crate::timers::TimerQueue;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use stox_mapping::ids::CallId;
use stox_mapping::lograte::{LogGate, escaped};

/// Largest header section on a stream (TCP), and largest body on a stream
/// or in a WebSocket message: a datagram cannot carry more either, and a
/// connection's buffer stays small (RFC 3261 §18.3; over it: 400 or 413,
/// then the connection ends).
const STREAM_MAX_HEAD: usize = 64 * 1024;
const STREAM_MAX_BODY: usize = 64 * 1024;

fn stream_limits() -> Limits {
    Limits {
        max_message_bytes: STREAM_MAX_HEAD + 4 + STREAM_MAX_BODY,
        max_body_bytes: STREAM_MAX_BODY,
        ..Limits::datagram()
    }
}

/// A stream connection, as numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A socket address (UDP; for TCP: an open connection to it, or a new one).
    Addr(SocketAddr),
    /// A host name to resolve (RFC 3263), and a port. `srv`: the URI named
    /// no port, so the SRV records of this service (`_sip._udp`,
    /// `_sip._tcp`, `_sips._tcp`) come first, A/AAAA with `port` after.
    Name {
        host: String,
        port: u16,
        srv: Option<&'static str>,
    },
    /// An open stream connection (TCP or WebSocket).
    Conn(ConnId),
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    pub dest: Dest,
    pub data: Vec<u8>,
    /// The call it belongs to: a failure to send is reported back with it
    /// ([`Input::SendFailed`]).
    pub call: Option<CallKey>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Transmit(Transmit),
    Event(SipEvent),
    /// Close a stream connection (bad framing, never spoke SIP, idle).
    Close {
        conn: ConnId,
        reason: &'static str,
    },
    /// A registrar binding of `aor` changed (`None`: removed), for the
    /// store (registrar.rs).
    Binding {
        aor: String,
        key: String,
        binding: Option<crate::registrar::BindingRecord>,
    },
    /// A watched next hop went down (`Some(why)`), or is usable again
    /// (`None`: it answered a probe, or is no longer watched). health.rs.
    Health {
        hop: NextHop,
        down: Option<String>,
    },
}

/// What the driver (or the core) feeds in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// One UDP datagram.
    Datagram {
        source: SocketAddr,
        data: &'a [u8],
    },
    /// Bytes read from a TCP connection (any chunking).
    Stream {
        conn: ConnId,
        data: &'a [u8],
    },
    /// One WebSocket message (RFC 7118: one SIP message each).
    Frame {
        conn: ConnId,
        data: &'a [u8],
    },
    /// A stream connection was accepted or connected.
    Opened {
        conn: ConnId,
        transport: Transport,
        peer: SocketAddr,
    },
    /// A stream connection is gone.
    Closed {
        conn: ConnId,
    },
    /// A transmit for `call` could not be delivered.
    SendFailed {
        call: Option<CallKey>,
        reason: String,
    },
    Command(SipCommand),
}

/// The SIP layer's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our address per transport, as bound: Via sent-by and Contact.
    pub local: Vec<(Transport, SocketAddr)>,
    /// Every out-of-dialog request goes here (`sip:host:port[;transport=…]`).
    pub outbound_proxy: Option<String>,
    pub user_agent: String,
    pub timers: TxTimers,
    /// RFC 3261 §18.1.1: requests larger than `udp_mtu - 200` bytes …
    pub udp_mtu: usize,
    /// … go over TCP when this is set.
    pub large_requests_over_tcp: bool,
    /// A stream connection that has carried no valid SIP message this long
    /// after it opened is closed.
    pub hello_timeout: Duration,
    /// A stream connection that no call uses is closed after this long
    /// without a message. One that carries a dialog is never closed for
    /// being idle (RFC 5626 keep-alives keep it up).
    pub idle_timeout: Duration,
    /// Seeds the generators of call keys, tags and branches.
    pub seed: u64,
    /// RFC 4028: the Session-Expires we ask for and accept at most, in
    /// seconds; 0 turns session timers off (`timer` is then not honoured
    /// in a `Require`).
    pub session_expires: u32,
    /// The shortest Session-Expires we accept (422 below it).
    pub min_se: u32,
    /// The sources (IP addresses and networks; the port is ignored) whose
    /// out-of-dialog requests are taken. `None`: every source. A request
    /// from any other gets 403 and nothing reaches the core.
    pub trusted_sources: Option<Vec<ipnet::IpNet>>,
    /// Named peers: where INVITEs routed to them go
    /// ([`SipCommand::Invite`]'s `peer`) and the credentials that answer
    /// their challenges.
    pub peers: Vec<crate::api::Peer>,
    /// Requests outside a dialog an untrusted source may send, per second,
    /// and in a burst (rate.rs): over it 503 with Retry-After, far over it
    /// no answer. `None`: no limit. Trusted sources are not limited.
    pub rate_per_source: Option<(u32, u32)>,
    /// The registrar (registrar.rs); `None`: REGISTER gets 405.
    pub registrar: Option<crate::registrar::RegistrarConfig>,
    /// How often the outbound proxy and each peer with a `uri` (and
    /// `probe`) are sent OPTIONS (health.rs); `None`: never, and no next
    /// hop is ever marked down.
    pub probe_interval: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local: Vec::new(),
            outbound_proxy: None,
            user_agent: concat!("stox-gateway/", env!("CARGO_PKG_VERSION")).to_owned(),
            timers: TxTimers::default(),
            udp_mtu: 1500,
            large_requests_over_tcp: false,
            hello_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            seed: 0x5eed,
            session_expires: 1800,
            min_se: crate::timer::RFC_MIN_SE,
            trusted_sources: None,
            peers: Vec::new(),
            rate_per_source: None,
            registrar: None,
            probe_interval: None,
        }
    }
}

/// The methods the gateway implements (`Allow`).
pub(crate) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, PRACK";

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub transport: Transport,
    pub source: SocketAddr,
    pub conn: Option<ConnId>,
}

/// Where a transaction's messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hop {
    pub transport: Transport,
    pub dest: Dest,
}

/// What a transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A request we received.
    Server,
    /// Our initial INVITE.
    Invite,
    /// CANCEL, BYE, INFO, PRACK …: answers are logged, failures reported.
    Other(Command),
    /// Our re-INVITE or UPDATE: its answer goes to the core.
    Reoffer,
    /// An OPTIONS probe of a next hop (health.rs); its transaction carries
    /// the probe's key as `call`.
    Probe,
}

#[derive(Debug, Clone)]
pub(crate) struct TxInfo {
    pub call: Option<CallKey>,
    pub purpose: Purpose,
    pub hop: Hop,
    /// INVITE: the To tag of the 2xx that confirmed the call (a later 2xx
    /// with another tag is a fork to end).
    pub answered: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TimerId {
    Tx(TransactionKey, TxTimer),
    /// UAS: retransmit our 2xx to the INVITE (or re-INVITE) with this CSeq.
    Retransmit2xx(CallKey, u32),
    /// UAS: no ACK for that 2xx within 64·T1.
    AckWait(CallKey, u32),
    ConnHello(ConnId),
    ConnIdle(ConnId),
    /// A registrar binding (AOR, key) expires.
    BindingExpiry(String, String),
    /// Time to probe a next hop (health.rs).
    Probe(NextHop),
}

pub(crate) struct Conn {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// TCP only; WebSocket messages arrive framed.
    pub parser: Option<Framer>,
    pub spoke_sip: bool,
    /// Calls whose dialog goes over this connection.
    pub users: u32,
}

/// The initial INVITE of a call, per role.
pub(crate) enum Invite {
    /// Ours: its transaction, the request (for CANCEL and snapshots), what
    /// came back so far.
    Uac(Box<UacInvite>),
    /// The peer's: its transaction, the request (for responses), our tag.
    Uas(Box<UasInvite>),
}

pub(crate) struct UacInvite {
    pub request: Request,
    pub hop: Hop,
    /// A provisional arrived (a CANCEL may now be sent, RFC 3261 §9.1).
    pub provisional: bool,
    /// CANCEL asked before any provisional: sent when one arrives.
    pub cancel_deferred: bool,
    pub cancelled: bool,
    /// Early dialogs by To tag, with the last RSeq PRACKed (RFC 3262).
    pub early: Vec<(String, Option<u32>)>,
    /// The ACK sent for the first 2xx, for its retransmissions.
    pub ack: Option<(String, Vec<u8>)>,
    /// The configured peer it went to, if any.
    pub peer: Option<String>,
    /// The next hop whose health its failure tells (health.rs): the peer,
    /// or the outbound proxy; `None` for a registered user's contact or a
    /// Request-URI's host.
    pub next_hop: Option<NextHop>,
    /// Challenges answered so far (auth.rs).
    pub auth_rounds: u8,
    /// Sent again once after a 422 with the peer's Min-SE (RFC 4028 §7.4).
    pub retried_422: bool,
}

pub(crate) struct UasInvite {
    pub tx: TransactionKey,
    pub request: Request,
    pub origin: Origin,
    pub local_tag: String,
    /// A final response was sent.
    pub answered: bool,
}

/// A 2xx of ours waiting for its ACK.
pub(crate) struct Pending2xx {
    pub cseq: u32,
    pub tx: TransactionKey,
    pub response: Response,
    pub interval: Duration,
    pub initial: bool,
}

pub(crate) struct Call {
    pub call_id: String,
    pub invite: Option<Invite>,
    pub dialog: Option<Dialog>,
    /// The connection the dialog's requests go over (an inbound TCP or
    /// WebSocket flow), while it is open.
    pub flow: Option<ConnId>,
    /// In-dialog requests the core has not answered yet, with their
    /// server transactions.
    pub requests: HashMap<RequestId, (TransactionKey, Request)>,
    /// Our 2xx awaiting ACK.
    pub awaiting_ack: Option<Pending2xx>,
    /// Restored from a snapshot after a restart.
    pub restored: bool,
    /// UAC: the CSeq of the last PRACK sent (RFC 3262).
    pub prack_cseq: u32,
    /// Our re-INVITE or UPDATE in progress (one offer at a time).
    pub offering: Option<Offering>,
    /// The ACK sent for the 2xx of our last re-INVITE (its CSeq and bytes),
    /// for the 2xx's retransmissions.
    pub reoffer_ack: Option<(u32, Vec<u8>)>,
    /// The negotiated session timer (RFC 4028), if any; stored with the
    /// dialog's snapshot.
    pub session_timer: Option<crate::api::SessionTimer>,
}

/// A re-INVITE or UPDATE of ours in progress.
pub(crate) struct Offering {
    pub request: Request,
}

impl Call {
    pub fn new(call_id: String) -> Call {
        Call {
            call_id,
            invite: None,
            dialog: None,
            flow: None,
            requests: HashMap::new(),
            awaiting_ack: None,
            restored: false,
            prack_cseq: 0,
            offering: None,
            reoffer_ack: None,
            session_timer: None,
        }
    }
}

/// See the module docs.
pub struct Sip {
    pub(crate) cfg: Config,
    /// The outbound proxy: next hop and its `Route` value.
    pub(crate) proxy: Option<(Hop, String)>,
    pub(crate) tl: TransactionLayer,
    pub(crate) timers: TimerQueue<TimerId>,
    pub(crate) calls: HashMap<CallKey, Call>,
    pub(crate) by_call_id: HashMap<String, CallKey>,
    pub(crate) txs: HashMap<TransactionKey, TxInfo>,
    pub(crate) conns: HashMap<ConnId, Conn>,
    /// Unanswered INVITEs of a previous run ([`crate::pending`]).
    pub(crate) recovered: HashMap<CallKey, crate::pending::Recovered>,
    pub(crate) keys: KeyGen,
    pub(crate) rng: KeyGen,
    pub(crate) next_request: u64,
    pub(crate) out: VecDeque<Output>,
    pub(crate) now: Instant,
    /// Log lines about peers' faults, per source address.
    pub(crate) gate: LogGate<IpAddr>,
    pub(crate) epoch: Instant,
    /// The last challenge answered per peer (auth.rs), for the next
    /// requests to it.
    pub(crate) auth_cache: HashMap<String, crate::auth::Cached>,
    /// Requests per untrusted source (rate.rs).
    pub(crate) rates: Option<crate::rate::Rates>,
    /// Users and bindings (registrar.rs).
    pub(crate) registrar: crate::registrar::Registrar,
    /// Why the gateway takes no calls now, and the `Retry-After` seconds:
    /// an OPTIONS outside a dialog then gets 503 (RFC 3261 §11.2, §21.5.4),
    /// so that a dispatcher probing it fails over.
    pub(crate) unavailable: Option<(String, u32)>,
    /// Next hops watched with OPTIONS probes (health.rs).
    pub(crate) health: crate::health::Health,
}

impl Sip {
    pub fn new(cfg: Config, now: Instant) -> Result<Sip, String> {
        let proxy = match cfg.outbound_proxy.as_deref() {
            Some(text) => Some(proxy_hop(text)?),
            None => None,
        };
        let registrar_cfg = cfg.registrar.clone();
        let rates = cfg
            .rate_per_source
            .filter(|(per_sec, _)| *per_sec > 0)
            .map(|(per_sec, burst)| crate::rate::Rates::new(per_sec, burst));
        for peer in &cfg.peers {
            if let Some(uri) = &peer.uri {
                uri_hop(uri).map_err(|e| format!("peer {}: {e}", peer.name))?;
            }
        }
        Ok(Sip {
            keys: KeyGen::new(cfg.seed ^ 0x0123_4567_89ab_cdef),
            rng: KeyGen::new(cfg.seed.rotate_left(17) ^ 0xfeed_beef_cafe_f00d),
            tl: TransactionLayer::new(cfg.timers),
            cfg,
            proxy,
            timers: TimerQueue::default(),
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            txs: HashMap::new(),
            conns: HashMap::new(),
            recovered: HashMap::new(),
            next_request: 0,
            out: VecDeque::new(),
            now,
            gate: LogGate::new(2, 5, 4096),
            epoch: now,
            auth_cache: HashMap::new(),
            rates,
            registrar: crate::registrar::Registrar {
                cfg: registrar_cfg,
                ..Default::default()
            },
            unavailable: None,
            health: crate::health::Health::default(),
        }
        .watching_hops())
    }

    /// Replaces the configured peers and the trusted sources (a reload):
    /// requests and calls from now on follow them; dialogs in progress go
    /// on. `Err` (nothing changed) when a peer's `uri` is not usable.
    pub fn reload_peers(
        &mut self,
        peers: Vec<crate::api::Peer>,
        trusted_sources: Option<Vec<ipnet::IpNet>>,
    ) -> Result<(), String> {
        for peer in &peers {
            if let Some(uri) = &peer.uri {
                uri_hop(uri).map_err(|e| format!("peer {}: {e}", peer.name))?;
            }
        }
        // Challenges cached for peers that are gone or changed are stale.
        self.auth_cache.clear();
        self.cfg.peers = peers;
        self.cfg.trusted_sources = trusted_sources;
        // Peers kept with the same `uri` keep their health; new ones are
        // probed now, removed ones are forgotten (health.rs).
        self.watch_hops();
        Ok(())
    }

    /// Sets how often next hops are probed (a reload); `None` stops
    /// probing and forgets every next hop's health.
    pub fn set_probe_interval(&mut self, interval: Option<Duration>) {
        self.cfg.probe_interval = interval;
        self.watch_hops();
    }

    /// Says whether the gateway takes calls: `Some((reason phrase,
    /// retry_after_secs))` while it does not (the XMPP component is down,
    /// the gateway is draining), `None` when it does again. OPTIONS
    /// follows it; INVITEs are refused by the call core.
    pub fn set_unavailable(&mut self, why: Option<(String, u32)>) {
        self.unavailable = why;
    }

    /// Logs a peer's fault: at most a burst of 5, then 2 a second per
    /// source address, each line with the count held back before it.
    pub(crate) fn peer_fault(&mut self, source: SocketAddr, what: &str, detail: &str) {
        let now_ms = self.now.saturating_duration_since(self.epoch).as_millis() as u64;
        if let Some(held_back) = self.gate.admit(&source.ip(), now_ms) {
            tracing::warn!(%source, detail = %escaped(detail), held_back, "sip: {what}");
        }
    }

    /// May `ip` send out-of-dialog requests?
    pub(crate) fn trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.cfg
            .trusted_sources
            .as_ref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&ip)))
    }

    /// Feeds one input in at `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        self.now = now;
        match input {
            Input::Datagram { source, data } => self.on_datagram(source, data),
            Input::Stream { conn, data } => self.on_stream(conn, data),
            Input::Frame { conn, data } => self.on_frame(conn, data),
            Input::Opened {
                conn,
                transport,
                peer,
            } => self.on_opened(conn, transport, peer),
            Input::Closed { conn } => self.on_closed(conn),
            Input::SendFailed { call, reason } => self.on_send_failed(call, &reason),
            Input::Command(cmd) => self.on_command(cmd),
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                TimerId::Tx(key, timer) => {
                    let outputs = self.tl.on_timer(&key, timer);
                    self.run_tx(&key, outputs);
                }
                TimerId::Retransmit2xx(call, cseq) => self.retransmit_2xx(call, cseq),
                TimerId::AckWait(call, cseq) => self.no_ack(call, cseq),
                TimerId::ConnHello(conn) => {
                    if self.conns.get(&conn).is_some_and(|c| !c.spoke_sip) {
                        self.close(conn, "no valid SIP message since it opened");
                    }
                }
                TimerId::ConnIdle(conn) => {
                    if self.conns.get(&conn).is_some_and(|c| c.users == 0) {
                        self.close(conn, "idle, carries no call");
                    }
                }
                TimerId::BindingExpiry(aor, key) => self.remove_binding(&aor, &key),
                TimerId::Probe(hop) => self.probe(&hop),
            }
        }
    }

    /// What to do next, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Sip::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Calls with SIP state (any phase).
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Transactions in flight (client, server): a leak check.
    pub fn transactions(&self) -> (usize, usize) {
        self.tl.len()
    }

    /// Open stream connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The confirmed dialog of `call` as text for the store (see
    /// [`crate::dialog`]); `None` before it is confirmed.
    pub fn dialog_snapshot(&self, call: CallKey) -> Option<String> {
        let c = self.calls.get(&call)?;
        let mut text = c.dialog.as_ref().map(Dialog::encode)?;
        if let Some(timer) = c.session_timer {
            text.push_str(&crate::dialog::encode_session_timer(timer));
        }
        Some(text)
    }

    /// Takes a confirmed dialog back after a restart: the peer's BYE, INFO,
    /// re-INVITE … are recognised for `call`, and `Bye`/`Info` work. The
    /// local CSeq jumps by 1000 (requests the dead process sent after the
    /// snapshot was stored must not make our next one look old). A session
    /// timer stored with it is told to the core again (`SessionTimer`), so
    /// the call keeps refreshing or watching for the peer's refreshes.
    pub fn restore_dialog(
        &mut self,
        call: CallKey,
        call_id: &CallId,
        text: &str,
    ) -> Result<(), String> {
        let mut dialog = Dialog::decode(text)?;
        let timer = crate::dialog::decode_session_timer(text)?;
        if dialog.call_id != call_id.as_str() {
            return Err(format!(
                "the snapshot belongs to Call-ID {}",
                dialog.call_id
            ));
        }
        if self.by_call_id.contains_key(&dialog.call_id) || self.calls.contains_key(&call) {
            return Err(format!("call {call_id} is already live"));
        }
        dialog.local_cseq = dialog
            .local_cseq
            .checked_add(1000)
            .filter(|n| *n < crate::dialog::CSEQ_LIMIT)
            .ok_or("local CSeq too close to 2^31")?;
        let mut c = Call::new(dialog.call_id.clone());
        c.dialog = Some(dialog);
        c.restored = true;
        c.session_timer = timer;
        self.by_call_id.insert(c.call_id.clone(), call);
        self.calls.insert(call, c);
        if timer.is_some() && self.timers_on() {
            self.event(SipEvent::SessionTimer { call, timer });
        }
        Ok(())
    }

    // ---- receiving -----------------------------------------------------

    fn on_datagram(&mut self, source: SocketAddr, data: &[u8]) {
        if data.iter().all(u8::is_ascii_whitespace) {
            return; // RFC 5626 keep-alive
        }
        let origin = Origin {
            transport: Transport::Udp,
            source,
            conn: None,
        };
        match msg::parse_datagram(data, &Limits::datagram()) {
            Ok(m) => self.on_message(m, origin),
            Err(e) => self.unparsable(origin, data, &e),
        }
    }

    fn on_stream(&mut self, conn: ConnId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (transport, source) = (c.transport, c.peer);
        let Some(parser) = c.parser.as_mut() else {
            return;
        };
        let result = parser.push(data);
        let pings = parser.take_keepalives();
        if pings >= 2 {
            // RFC 5626 §4.4.1: CRLFCRLF ping, CRLF pong.
            self.push_transmit(transport, Dest::Conn(conn), b"\r\n".to_vec(), None);
        }
        let origin = Origin {
            transport,
            source,
            conn: Some(conn),
        };
        match result {
            Ok(frames) => {
                for frame in frames {
                    match msg::parse_frame(&frame.0, &stream_limits()) {
                        Ok(m) => self.on_message(m, origin),
                        Err(e) => self.unparsable(origin, &frame.0, &e),
                    }
                }
            }
            Err(lost) => {
                self.peer_fault(source, "stream framing lost; connection closed", &lost.why);
                if let Some(answer) = lost
                    .head
                    .and_then(|head| crate::check::salvage(&head, lost.status, &lost.why))
                {
                    self.push_transmit(transport, Dest::Conn(conn), answer, None);
                }
                self.close(conn, "SIP framing lost (RFC 3261 §18.3)");
            }
        }
    }

    fn on_frame(&mut self, conn: ConnId, data: &[u8]) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let origin = Origin {
            transport: c.transport,
            source: c.peer,
            conn: Some(conn),
        };
        if data.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match msg::parse_frame(data, &stream_limits()) {
            Ok(m) => self.on_message(m, origin),
            Err(e) => self.unparsable(origin, data, &e),
        }
    }

    /// A message that does not parse: a request is answered 400 from the
    /// header lines it has (RFC 3261 §18.3), anything else is dropped.
    fn unparsable(&mut self, origin: Origin, data: &[u8], error: &str) {
        self.peer_fault(origin.source, "unparsable SIP message", error);
        if let Some(answer) = crate::check::salvage_400(data, error) {
            self.push_transmit(origin.transport, reply_dest(origin, None), answer, None);
        }
    }

    fn on_message(&mut self, m: Message, origin: Origin) {
        if let Some(conn) = origin.conn
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.spoke_sip = true;
            let idle = self.now + self.cfg.idle_timeout;
            self.timers.set(TimerId::ConnIdle(conn), idle);
        }
        match m {
            Message::Request(req) => self.on_request(*Box::new(req), origin),
            Message::Response(resp) => {
                // A connection we opened for a call (its INVITE went out on
                // it) is that call's flow from its first response on.
                if let Some(conn) = origin.conn
                    && let Some(call) =
                        msg::call_id(&resp.headers).and_then(|id| self.by_call_id.get(&id).copied())
                    && self.calls.get(&call).is_some_and(|c| c.flow.is_none())
                {
                    self.bind_flow(call, Some(conn));
                }
                self.on_response(resp)
            }
        }
    }

    fn on_opened(&mut self, conn: ConnId, transport: Transport, peer: SocketAddr) {
        let parser = transport
            .is_byte_stream()
            .then(|| Framer::new(STREAM_MAX_HEAD, STREAM_MAX_BODY));
        self.conns.insert(
            conn,
            Conn {
                transport,
                peer,
                parser,
                spoke_sip: false,
                users: 0,
            },
        );
        self.timers
            .set(TimerId::ConnHello(conn), self.now + self.cfg.hello_timeout);
        self.timers
            .set(TimerId::ConnIdle(conn), self.now + self.cfg.idle_timeout);
    }

    /// A connection ended. Calls whose flow it was: over TCP the next
    /// request opens a new connection to the peer's Contact; over WebSocket
    /// the peer cannot be reached any more (RFC 7118 §5: its Contact is not
    /// an address), so the call is over and the core hears `Terminated`.
    fn on_closed(&mut self, conn: ConnId) {
        self.flow_closed(conn);
        let ws = self
            .conns
            .get(&conn)
            .is_some_and(|c| c.transport.is_websocket());
        self.forget_conn(conn);
        let mut lost = Vec::new();
        for (key, call) in &mut self.calls {
            if call.flow == Some(conn) {
                call.flow = None;
                if ws {
                    lost.push(*key);
                }
            }
        }
        lost.sort();
        for call in lost {
            self.drop_call(call);
            self.event(SipEvent::Terminated {
                call,
                reason: "the SIP WebSocket connection closed".into(),
            });
        }
    }

    fn forget_conn(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        stox_mapping::tables::shrink(&mut self.conns);
        self.timers.clear(&TimerId::ConnHello(conn));
        self.timers.clear(&TimerId::ConnIdle(conn));
    }

    pub(crate) fn close(&mut self, conn: ConnId, reason: &'static str) {
        if self.conns.contains_key(&conn) {
            self.forget_conn(conn);
            self.out.push_back(Output::Close { conn, reason });
        }
    }

    fn on_send_failed(&mut self, call: Option<CallKey>, reason: &str) {
        let Some(call) = call else { return };
        // A probe or an unanswered INVITE that could not reach its next
        // hop marks it down, with the driver's reason (health.rs).
        self.health_send_failed(call, reason);
        // The call's transactions learn it from their own timers over UDP;
        // a stream that failed fails every transaction of the call now.
        let keys: Vec<TransactionKey> = self
            .txs
            .iter()
            .filter(|(_, info)| info.call == Some(call))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            if self.calls.contains_key(&call) {
                self.event(SipEvent::Terminated {
                    call,
                    reason: format!("cannot reach the peer: {reason}"),
                });
                self.drop_call(call);
            }
            return;
        }
        for key in keys {
            let outputs = self.tl.on_transport_error(&key);
            self.run_tx(&key, outputs);
        }
    }

    // ---- transactions ----------------------------------------------------

    /// Carries out what a transaction asked for.
    pub(crate) fn run_tx(&mut self, key: &TransactionKey, outputs: Vec<TxOutput>) {
        for output in outputs {
            match output {
                TxOutput::Send(m) => {
                    let info = self.txs.get(key).cloned();
                    if let Some(info) = info {
                        let data = msg::to_bytes(&m);
                        self.push_transmit(info.hop.transport, info.hop.dest, data, info.call);
                    }
                }
                TxOutput::SetTimer { timer, after } => {
                    self.timers
                        .set(TimerId::Tx(key.clone(), timer), self.now + after);
                }
                TxOutput::ClearTimer(timer) => self.timers.clear(&TimerId::Tx(key.clone(), timer)),
                TxOutput::ToTu(event) => self.tu_event(key, *event),
                TxOutput::Terminated(_) => {
                    for timer in TxTimer::ALL {
                        self.timers.clear(&TimerId::Tx(key.clone(), timer));
                    }
                    self.txs.remove(key);
                    stox_mapping::tables::shrink(&mut self.txs);
                }
                _ => {}
            }
        }
    }

    fn tu_event(&mut self, key: &TransactionKey, event: msg::TuEvent) {
        let Some(info) = self.txs.get(key).cloned() else {
            return;
        };
        match event {
            msg::TuEvent::Request(req) => {
                // Only new server transactions; see `on_request`.
                let _ = req;
            }
            msg::TuEvent::Response(resp) => self.on_tx_response(key, &info, *resp),
            msg::TuEvent::Ack(ack) => self.on_ack(&ack),
            msg::TuEvent::Timeout => self.on_tx_failed(key, &info, 408, "Request Timeout"),
            msg::TuEvent::TransportError => {
                self.on_tx_failed(key, &info, 503, "Service Unavailable (transport failed)");
            }
            _ => {}
        }
    }

    /// Starts a client transaction for `req` toward `hop`.
    pub(crate) fn send_request(
        &mut self,
        req: Request,
        hop: Hop,
        call: Option<CallKey>,
        purpose: Purpose,
    ) -> Option<TransactionKey> {
        let reliability = reliability(hop.transport);
        let key = msg::TransactionKey::from_sent_request(&req)?;
        self.txs.insert(
            key.clone(),
            TxInfo {
                call,
                purpose,
                hop,
                answered: None,
            },
        );
        let (key2, outputs) = self.tl.send_request(req, reliability)?;
        debug_assert_eq!(key, key2);
        self.run_tx(&key2, outputs);
        Some(key2)
    }

    /// Sends `resp` through the server transaction `key`.
    pub(crate) fn send_response(&mut self, key: &TransactionKey, resp: Response) {
        let outputs = self.tl.send_response(key, resp);
        self.run_tx(key, outputs);
    }

    /// Answers `req` outside any transaction of ours (a refusal before
    /// the transaction layer, or a request the layer passed up unmatched).
    pub(crate) fn reply_stateless(&mut self, req: &Request, origin: Origin, resp: Response) {
        let via = msg::top_via(&req.headers);
        let data = msg::to_bytes(&Message::Response(resp));
        self.push_transmit(
            origin.transport,
            reply_dest(origin, via.as_ref()),
            data,
            None,
        );
    }

    pub(crate) fn push_transmit(
        &mut self,
        transport: Transport,
        dest: Dest,
        data: Vec<u8>,
        call: Option<CallKey>,
    ) {
        self.out.push_back(Output::Transmit(Transmit {
            transport,
            dest,
            data,
            call,
        }));
    }

    pub(crate) fn event(&mut self, event: SipEvent) {
        self.out.push_back(Output::Event(event));
    }

    /// Forgets a call's SIP state (its transactions run to their end).
    pub(crate) fn drop_call(&mut self, call: CallKey) {
        if let Some(c) = self.calls.remove(&call) {
            if self.by_call_id.get(&c.call_id) == Some(&call) {
                self.by_call_id.remove(&c.call_id);
            }
            if let Some(conn) = c.flow {
                self.release_conn(conn);
            }
            if let Some(p) = &c.awaiting_ack {
                self.timers.clear(&TimerId::Retransmit2xx(call, p.cseq));
                self.timers.clear(&TimerId::AckWait(call, p.cseq));
            }
            stox_mapping::tables::shrink(&mut self.calls);
            stox_mapping::tables::shrink(&mut self.by_call_id);
        }
    }

    /// Binds a call's dialog to the stream connection it arrived on.
    pub(crate) fn bind_flow(&mut self, call: CallKey, conn: Option<ConnId>) {
        let Some(conn) = conn else { return };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.flow == Some(conn) {
            return;
        }
        let old = c.flow.replace(conn);
        if let Some(k) = self.conns.get_mut(&conn) {
            k.users += 1;
        }
        if let Some(old) = old {
            self.release_conn(old);
        }
    }

    /// A call no longer uses `conn`: when none does, the idle timer runs
    /// again from now (a connection that carried a long call is not closed
    /// the moment it ends, nor kept for ever).
    fn release_conn(&mut self, conn: ConnId) {
        if let Some(k) = self.conns.get_mut(&conn) {
            k.users = k.users.saturating_sub(1);
            if k.users == 0 {
                let idle = self.now + self.cfg.idle_timeout;
                self.timers.set(TimerId::ConnIdle(conn), idle);
            }
        }
    }

    // ---- addresses -------------------------------------------------------

    /// Our address for `transport` (the first one bound, else any).
    pub(crate) fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.cfg
            .local
            .iter()
            .find(|(t, _)| *t == transport)
            .or_else(|| self.cfg.local.first())
            .map(|(_, a)| *a)
    }

    /// `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK…;rport`
    pub(crate) fn via(&mut self, transport: Transport) -> String {
        let addr = self
            .local_addr(transport)
            .map_or_else(|| "invalid.invalid".to_owned(), host_port);
        format!(
            "SIP/2.0/{} {addr};branch=z9hG4bK{:016x};rport",
            transport.via_token(),
            self.rng.next_u64()
        )
    }

    /// Our Contact URI for a dialog over `transport`.
    pub(crate) fn contact(&self, transport: Transport) -> String {
        let addr = self
            .local_addr(transport)
            .map_or_else(|| "invalid.invalid".to_owned(), host_port);
        match transport {
            Transport::Udp => format!("sip:{addr}"),
            t => format!("sip:{addr};transport={}", t.as_str()),
        }
    }

    pub(crate) fn new_tag(&mut self) -> String {
        format!("{:012x}", self.rng.next_u64() & 0xffff_ffff_ffff)
    }

    pub(crate) fn next_request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Where a request to `uri` goes: the dialog's flow when it has one,
    /// else the URI's host, port and transport.
    pub(crate) fn hop_for_uri(&self, uri: &str, flow: Option<ConnId>) -> Result<Hop, String> {
        if let Some(conn) = flow
            && let Some(c) = self.conns.get(&conn)
        {
            return Ok(Hop {
                transport: c.transport,
                dest: Dest::Conn(conn),
            });
        }
        uri_hop(uri)
    }
}

pub(crate) fn reliability(t: Transport) -> Reliability {
    if t.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    }
}

pub(crate) fn host_port(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", addr.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
    }
}

/// RFC 3261 §18.2.2 (and RFC 3581): where a response to a request from
/// `origin` goes. A stream: back on its connection. UDP: the source address
/// when the Via asked for `rport` (or named no port), else the source IP and
/// the Via's port.
pub(crate) fn reply_dest(origin: Origin, via: Option<&msg::Via>) -> Dest {
    if let Some(conn) = origin.conn {
        return Dest::Conn(conn);
    }
    match via {
        Some(v) if v.rport().is_none() => {
            let port = v.port.unwrap_or(5060);
            Dest::Addr(SocketAddr::new(origin.source.ip(), port))
        }
        _ => Dest::Addr(origin.source),
    }
}

/// Next hop for a URI: its host (an IP literal, or a name to resolve), its
/// port (5060 by default) and its transport parameter (UDP by default).
pub(crate) fn uri_hop(uri: &str) -> Result<Hop, String> {
    let parsed = msg::parse_uri(uri)?;
    let host = parsed.host().ok_or_else(|| format!("{uri}: no host"))?;
    let sips = matches!(parsed.scheme(), msg::Scheme::Sips);
    let transport = match parsed.transport() {
        // RFC 3261 §26.2: a SIPS URI is reached over TLS.
        None if sips => Transport::Tls,
        None => Transport::Udp,
        Some(t) => Transport::from_token(t).ok_or_else(|| {
            format!(
                "{uri}: transport {} not supported",
                String::from_utf8_lossy(t)
            )
        })?,
    };
    if sips && !matches!(transport, Transport::Tls | Transport::Wss) {
        return Err(format!("{uri}: a sips: URI needs TLS, not {transport}"));
    }
    let default_port = match transport {
        Transport::Tls => 5061,
        _ => 5060,
    };
    let explicit = parsed.port();
    let port = explicit.unwrap_or(default_port);
    let host_text = host.to_string();
    let bare = host_text.trim_start_matches('[').trim_end_matches(']');
    // RFC 3263 §4.2: a name without a port is looked up by SRV first.
    let srv = match (explicit, transport) {
        (Some(_), _) => None,
        (None, Transport::Udp) => Some("_sip._udp"),
        (None, Transport::Tcp) => Some("_sip._tcp"),
        (None, Transport::Tls) => Some("_sips._tcp"),
        (None, Transport::Ws | Transport::Wss) => None,
    };
    let dest = match bare.parse::<IpAddr>() {
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
        Err(_) => Dest::Name {
            host: bare.to_owned(),
            port,
            srv,
        },
    };
    Ok(Hop { transport, dest })
}

/// `sip:host:port[;transport=tcp]` → the next hop and its loose-routing
/// `Route` value (RFC 3261 §8.1.2).
pub(crate) fn proxy_hop(text: &str) -> Result<(Hop, String), String> {
    let uri = crate::dialog::strip_angles(text);
    let hop = uri_hop(&uri)?;
    let route = if uri.split(';').any(|p| p.eq_ignore_ascii_case("lr")) {
        format!("<{uri}>")
    } else {
        match uri.split_once('?') {
            Some((base, headers)) => format!("<{base};lr?{headers}>"),
            None => format!("<{uri};lr>"),
        }
    };
    Ok((hop, route))
}

#[cfg(test)]
mod rfc3263 {
    use super::*;

    fn name(uri: &str) -> (Transport, Dest) {
        let hop = uri_hop(uri).expect("a hop");
        (hop.transport, hop.dest)
    }

    #[test]
    fn rfc3263_4_2_a_name_without_port_is_looked_up_by_srv_first() {
        let srv = |uri: &str| match name(uri).1 {
            Dest::Name { srv, port, .. } => (srv, port),
            other => panic!("{other:?}"),
        };
        assert_eq!(srv("sip:trunk.example"), (Some("_sip._udp"), 5060));
        assert_eq!(
            srv("sip:trunk.example;transport=tcp"),
            (Some("_sip._tcp"), 5060)
        );
        assert_eq!(srv("sips:trunk.example"), (Some("_sips._tcp"), 5061));
        assert_eq!(
            srv("sip:trunk.example;transport=tls"),
            (Some("_sips._tcp"), 5061)
        );
        assert_eq!(
            srv("sip:trunk.example:5070"),
            (None, 5070),
            "a port: A/AAAA only"
        );
        assert_eq!(
            name("sip:192.0.2.1"),
            (
                Transport::Udp,
                Dest::Addr("192.0.2.1:5060".parse().expect("addr"))
            )
        );
        assert!(
            uri_hop("sips:trunk.example;transport=udp").is_err(),
            "sips needs TLS"
        );
    }
}
