//! The component connection's run loop: connect, handshake, read and write,
//! keep alive, track IQs, reconnect.

use crate::NS_COMPONENT;
use crate::filtered::FilteredIo;
use crate::limits::{Rejected, StanzaLimits};
use crate::tracker::{IqFailure, IqTracker};
use futures::{SinkExt, StreamExt};
use minidom::Element;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;
use stox_mapping::lograte::{LogGate, escaped};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tokio_xmpp::xmlstream::{ReadError, StreamHeader, Timeouts, XmlStream, initiate_stream};
use xmpp_parsers::component::Handshake;

const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
const KEEPALIVE_PREFIX: &str = "stox-keepalive-";

type Stream = XmlStream<BufStream<FilteredIo<TcpStream>>, Element>;

#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// `host:port` of the server's component listener.
    pub server: String,
    /// The component's domain (its JID).
    pub component: String,
    pub secret: String,
    /// Who to ping after `keepalive` of silence (the server's own domain).
    pub keepalive_to: String,
    pub keepalive: Duration,
    pub iq_timeout: Duration,
    pub connect_timeout: Duration,
    /// Reconnect backoff doubles from 250 ms up to this.
    pub max_backoff: Duration,
    /// Limits on what the server may send (see [`crate::limits`]).
    pub limits: StanzaLimits,
    /// Stanzas kept while the connection is down, sent once it is back.
    pub offline_queue: usize,
    /// How long a stanza may wait for the connection to come back; an IQ
    /// that waited longer fails with [`IqFailure::Undelivered`].
    pub offline_ttl: Duration,
}

impl ComponentConfig {
    /// The defaults for everything but the addresses and the secret.
    pub fn new(server: String, component: String, secret: String) -> ComponentConfig {
        ComponentConfig {
            server,
            component,
            secret,
            keepalive_to: String::new(),
            keepalive: Duration::from_secs(60),
            iq_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
            limits: StanzaLimits::default(),
            offline_queue: 10_000,
            offline_ttl: Duration::from_secs(120),
        }
    }
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq)]
pub enum XmppEvent {
    /// The handshake succeeded; stanzas flow.
    Online,
    /// The connection was lost (or could not be made); a reconnect follows.
    Offline { reason: String },
    /// A stanza addressed to the component (not an answer to a tracked IQ).
    Stanza(Element),
    /// The answer to an IQ sent through [`XmppHandle::send`], by id.
    IqResponse {
        id: String,
        result: Result<Element, IqFailure>,
    },
    /// A stanza over a limit was dropped unread (see [`crate::limits`]);
    /// already logged. An IQ request deserves an error answer.
    Rejected(Rejected),
}

/// Sends stanzas on the component connection. Cheap to clone.
#[derive(Clone)]
pub struct XmppHandle {
    tx: mpsc::UnboundedSender<Element>,
}

impl XmppHandle {
    /// Queues a stanza. Returns false only when the connection task is gone.
    pub fn send(&self, stanza: Element) -> bool {
        self.tx.send(stanza).is_ok()
    }
}

/// Starts the connection task. It runs until `cancel` fires.
pub fn spawn(
    cfg: ComponentConfig,
    cancel: CancellationToken,
) -> (
    XmppHandle,
    mpsc::UnboundedReceiver<XmppEvent>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, out_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(cfg, out_rx, ev_tx, cancel));
    (XmppHandle { tx }, ev_rx, task)
}

struct Loop {
    cfg: ComponentConfig,
    out_rx: mpsc::UnboundedReceiver<Element>,
    events: mpsc::UnboundedSender<XmppEvent>,
    tracker: IqTracker,
    keepalive_seq: u64,
    /// Stanzas waiting for the connection, with when they were queued.
    offline: VecDeque<(Instant, Element)>,
    /// Log lines about senders of stanzas over a limit.
    gate: LogGate<String>,
    /// When the loop started: the origin of the gate's clock.
    epoch: Instant,
}

async fn run(
    cfg: ComponentConfig,
    out_rx: mpsc::UnboundedReceiver<Element>,
    events: mpsc::UnboundedSender<XmppEvent>,
    cancel: CancellationToken,
) {
    let mut lp = Loop {
        cfg,
        out_rx,
        events,
        tracker: IqTracker::default(),
        keepalive_seq: 0,
        offline: VecDeque::new(),
        gate: LogGate::new(2, 5, 1024),
        epoch: Instant::now(),
    };
    let first_backoff = Duration::from_millis(250);
    let mut backoff = first_backoff;
    while !cancel.is_cancelled() {
        let connected = tokio::select! {
            r = connect(&lp.cfg) => r,
            () = cancel.cancelled() => return,
        };
        let reason = match connected {
            Ok((mut stream, rejected)) => {
                backoff = first_backoff;
                tracing::info!(server = %lp.cfg.server, component = %lp.cfg.component, queued = lp.offline.len(), "xmpp component online");
                lp.emit(XmppEvent::Online);
                match lp.flush_offline(&mut stream).await {
                    Ok(()) => lp.session(stream, rejected, &cancel).await,
                    Err(reason) => reason,
                }
            }
            Err(reason) => reason,
        };
        if cancel.is_cancelled() {
            return;
        }
        tracing::warn!(server = %lp.cfg.server, %reason, retry_in_ms = backoff.as_millis() as u64, "xmpp component offline");
        lp.emit(XmppEvent::Offline { reason });
        lp.offline_wait(backoff, &cancel).await;
        backoff = (backoff * 2).min(lp.cfg.max_backoff);
    }
}

impl Loop {
    fn emit(&self, ev: XmppEvent) {
        // The receiver only goes away at shutdown.
        let _ = self.events.send(ev);
    }

    fn expire(&mut self) {
        for id in self.tracker.expire(Instant::now()) {
            self.emit(XmppEvent::IqResponse {
                id,
                result: Err(IqFailure::Timeout),
            });
        }
    }

    /// Waits out the backoff. Stanzas the core sends meanwhile are kept
    /// (at most `offline_queue`, each for at most `offline_ttl`) and sent
    /// once the connection is back; what cannot be kept fails now: an IQ
    /// request as [`IqFailure::Undelivered`], anything else with a log line.
    async fn offline_wait(&mut self, backoff: Duration, cancel: &CancellationToken) {
        let until = Instant::now() + backoff;
        loop {
            self.expire_offline(Instant::now());
            let mut next = self.tracker.next_deadline().map_or(until, |d| d.min(until));
            if let Some((queued, _)) = self.offline.front() {
                next = next.min(*queued + self.cfg.offline_ttl);
            }
            tokio::select! {
                () = sleep_until(next) => {
                    self.expire();
                    if Instant::now() >= until {
                        return;
                    }
                }
                el = self.out_rx.recv() => match el {
                    Some(el) => self.keep(el),
                    None => return,
                },
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Queues a stanza for when the connection is back.
    fn keep(&mut self, el: Element) {
        if self.offline.len() >= self.cfg.offline_queue {
            self.undeliverable(el, "the offline queue is full");
            return;
        }
        self.offline.push_back((Instant::now(), el));
    }

    /// Fails what waited in the offline queue longer than `offline_ttl`.
    fn expire_offline(&mut self, now: Instant) {
        while let Some((queued, _)) = self.offline.front() {
            if now < *queued + self.cfg.offline_ttl {
                break;
            }
            if let Some((_, el)) = self.offline.pop_front() {
                self.undeliverable(el, "the connection did not come back in time");
            }
        }
        if self.offline.capacity() > 1024 && self.offline.len() * 4 < self.offline.capacity() {
            self.offline.shrink_to(self.offline.len() * 2);
        }
    }

    fn undeliverable(&mut self, el: Element, why: &str) {
        let id = el.attr("id").unwrap_or("").to_owned();
        if el.name() == "iq" && matches!(el.attr("type"), Some("get" | "set")) {
            tracing::debug!(%id, why, "xmpp offline: IQ not delivered");
            self.emit(XmppEvent::IqResponse {
                id,
                result: Err(IqFailure::Undelivered),
            });
        } else {
            tracing::warn!(stanza = el.name(), %id, why, "xmpp offline: stanza not delivered");
        }
    }

    /// Sends what waited while the connection was down, in order.
    async fn flush_offline(&mut self, stream: &mut Stream) -> Result<(), String> {
        let now = Instant::now();
        self.expire_offline(now);
        while let Some((queued, el)) = self.offline.pop_front() {
            self.tracker.track(&el, now, self.cfg.iq_timeout);
            if let Err(e) = stream.send(&el).await {
                self.offline.push_front((queued, el));
                return Err(format!("write failed: {e}"));
            }
        }
        Ok(())
    }

    /// A stanza over a limit: logged (a few lines a second per sender at
    /// most) and handed to the core, which answers an IQ request.
    fn rejected(&mut self, r: Rejected) {
        let sender = r.from.clone().unwrap_or_default();
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        if let Some(held_back) = self.gate.admit(&sender, now_ms) {
            tracing::warn!(
                from = %escaped(&sender),
                stanza = %escaped(&r.name),
                id = %escaped(r.id.as_deref().unwrap_or("")),
                limit = r.violation.key(),
                held_back,
                "xmpp: stanza dropped unread: {}",
                r.violation
            );
        }
        self.emit(XmppEvent::Rejected(r));
    }

    /// Runs one connected session; returns why it ended.
    async fn session(
        &mut self,
        mut stream: Stream,
        mut rejected: mpsc::Receiver<Rejected>,
        cancel: &CancellationToken,
    ) -> String {
        loop {
            let deadline = self.tracker.next_deadline();
            tokio::select! {
                () = cancel.cancelled() => {
                    // What was queued before the stop still goes out (the
                    // session-terminate of the call whose end let a drain
                    // finish): `select!` may pick the cancellation first.
                    let _ = timeout(Duration::from_secs(1), async {
                        while let Ok(el) = self.out_rx.try_recv() {
                            if stream.send(&el).await.is_err() {
                                break;
                            }
                        }
                        let _ = stream.shutdown().await;
                    })
                    .await;
                    return "shutdown".into();
                }
                el = self.out_rx.recv() => {
                    let Some(el) = el else { return "handle dropped".into() };
                    self.tracker.track(&el, Instant::now(), self.cfg.iq_timeout);
                    if let Err(e) = stream.send(&el).await {
                        // Sent again once the connection is back.
                        self.keep(el);
                        return format!("write failed: {e}");
                    }
                }
                Some(r) = rejected.recv() => self.rejected(r),
                item = stream.next() => match item {
                    None => return "connection closed".into(),
                    Some(Ok(el)) => {
                        if let Some(reason) = self.received(el) {
                            return reason;
                        }
                    }
                    Some(Err(ReadError::SoftTimeout)) => {
                        if let Err(e) = stream.send(&self.keepalive()).await {
                            return format!("keepalive failed: {e}");
                        }
                    }
                    Some(Err(ReadError::ParseError(e))) => {
                        tracing::warn!(error = %e, "xmpp: unparsable element skipped");
                    }
                    Some(Err(ReadError::HardError(e))) => return format!("read failed: {e}"),
                    Some(Err(ReadError::StreamFooterReceived)) => {
                        return "server closed the stream".into();
                    }
                },
                () = sleep_until(deadline.unwrap_or_else(far_future)), if deadline.is_some() => {
                    self.expire();
                }
            }
        }
    }

    /// Dispatches a received element; `Some(reason)` ends the session.
    fn received(&mut self, el: Element) -> Option<String> {
        if el.ns() == NS_STREAMS {
            if el.name() == "error" {
                return Some(format!("stream error: {}", stream_error(&el)));
            }
            return None;
        }
        if el.name() == "iq"
            && el
                .attr("id")
                .is_some_and(|id| id.starts_with(KEEPALIVE_PREFIX))
        {
            return None;
        }
        if let Some(id) = self.tracker.answer(&el) {
            let result = if el.attr("type") == Some("result") {
                Ok(el)
            } else {
                Err(IqFailure::Error(el))
            };
            self.emit(XmppEvent::IqResponse { id, result });
        } else {
            self.emit(XmppEvent::Stanza(el));
        }
        None
    }

    fn keepalive(&mut self) -> Element {
        self.keepalive_seq += 1;
        let text = format!(
            "<iq xmlns='{NS_COMPONENT}' type='get' id='{KEEPALIVE_PREFIX}{}' from='{}' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
            self.keepalive_seq,
            xml_escape(&self.cfg.component),
            xml_escape(&self.cfg.keepalive_to),
        );
        text.parse()
            .unwrap_or_else(|_| Element::bare("iq", NS_COMPONENT))
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('\'', "&apos;")
        .replace('<', "&lt;")
}

fn stream_error(el: &Element) -> String {
    el.children()
        .find(|c| c.ns() == NS_STREAM_ERRORS && c.name() != "text")
        .map_or_else(|| "undefined-condition".to_owned(), |c| c.name().to_owned())
}

/// Connects and performs the XEP-0114 handshake. Stanzas over the limits
/// are reported on the receiver.
async fn connect(cfg: &ComponentConfig) -> Result<(Stream, mpsc::Receiver<Rejected>), String> {
    let tcp = timeout(cfg.connect_timeout, TcpStream::connect(&cfg.server))
        .await
        .map_err(|_| format!("connect to {} timed out", cfg.server))?
        .map_err(|e| format!("connect to {}: {e}", cfg.server))?;
    let _ = tcp.set_nodelay(true);
    let timeouts = Timeouts {
        read_timeout: cfg.keepalive,
        response_timeout: cfg.keepalive,
    };
    let header = StreamHeader {
        from: None,
        to: Some(Cow::Borrowed(cfg.component.as_str())),
        id: None,
    };
    let (filtered, rejected) = FilteredIo::new(tcp, cfg.limits);
    let handshake = async {
        let mut pending = initiate_stream(BufStream::new(filtered), NS_COMPONENT, header, timeouts)
            .await
            .map_err(|e| format!("stream header: {e}"))?;
        let id = pending
            .take_header()
            .id
            .ok_or_else(|| "server sent no stream id".to_owned())?;
        let mut stream: Stream = pending.skip_features();
        stream
            .send(&Handshake::from_stream_id_and_password(
                id.into_owned(),
                &cfg.secret,
            ))
            .await
            .map_err(|e| format!("sending handshake: {e}"))?;
        loop {
            match stream.next().await {
                Some(Ok(el)) if el.name() == "handshake" => return Ok(stream),
                Some(Ok(el)) if el.ns() == NS_STREAMS && el.name() == "error" => {
                    return Err(format!(
                        "server refused the handshake: {}",
                        stream_error(&el)
                    ));
                }
                Some(Ok(el)) => {
                    return Err(format!("unexpected <{}/> during handshake", el.name()));
                }
                Some(Err(ReadError::SoftTimeout)) => {}
                Some(Err(e)) => return Err(format!("handshake: {e}")),
                None => return Err("connection closed during handshake".to_owned()),
            }
        }
    };
    let stream = timeout(cfg.connect_timeout, handshake)
        .await
        .map_err(|_| "handshake timed out".to_owned())??;
    Ok((stream, rejected))
}
