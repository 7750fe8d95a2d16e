//! A network on a virtual clock: two `Sip` engines (the gateway and a
//! phone), or one engine and a scripted peer, exchanging datagrams and
//! stream bytes in memory. Nothing sleeps; time moves only when a test says.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stox_mapping::ids::CallId;
use stox_sipcore::{
    CallKey, Config, ConnId, Dest, Input, Output, Sip, SipCommand, SipEvent, Timers, Transmit,
    Transport,
};

pub const OFFER: &str = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
pub const ANSWER: &str = "v=0\r\no=b 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

pub fn config(local: &str, seed: u64) -> Config {
    let a = addr(local);
    Config {
        local: vec![(Transport::Udp, a), (Transport::Tcp, a), (Transport::Ws, a)],
        seed,
        // Session timers are tested on their own (tests/rfc4028.rs); off
        // here, their events would interleave with every call's.
        session_expires: 0,
        ..Config::default()
    }
}

/// A message seen on the wire.
#[derive(Debug, Clone)]
pub struct Wire {
    pub at: Duration,
    pub from: SocketAddr,
    pub transport: Transport,
    pub text: String,
}

impl Wire {
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.text, name)
    }
    pub fn is(&self, prefix: &str) -> bool {
        self.first_line().starts_with(prefix)
    }
}

pub fn header(text: &str, name: &str) -> Option<String> {
    text.split("\r\n\r\n")
        .next()?
        .lines()
        .skip(1)
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
}

pub struct Node {
    pub sip: Sip,
    pub addr: SocketAddr,
    pub events: VecDeque<SipEvent>,
    /// The registrar's binding changes, in order.
    pub bindings: Vec<(
        String,
        String,
        Option<stox_sipcore::registrar::BindingRecord>,
    )>,
    /// Next hops' health changes (health.rs), in order.
    pub health: Vec<(stox_sipcore::NextHop, Option<String>)>,
}

/// A stream connection between the two nodes: its id on each side.
#[derive(Debug, Clone, Copy)]
struct Link {
    a: ConnId,
    b: ConnId,
    transport: Transport,
}

/// Decides which transmits are lost: (sent by A?, text) → lose it?
pub type Loss = Box<dyn FnMut(bool, &str) -> bool>;

pub struct Net {
    pub t0: Instant,
    pub now: Instant,
    pub a: Node,
    pub b: Node,
    /// Everything sent, in order.
    pub wire: Vec<Wire>,
    /// Datagrams in flight: (from A?, transmit).
    queue: VecDeque<(bool, Transmit)>,
    links: Vec<Link>,
    next_conn: u64,
    /// Drop the datagram? (from_a, text) → true to lose it.
    pub lose: Loss,
    /// Connections a node closed: (on A?, its id, when).
    pub closed: Vec<(bool, ConnId, Duration)>,
}

impl Net {
    /// A = the gateway at 127.0.0.1:5060, B = a phone at 127.0.0.2:5060.
    pub fn new() -> Net {
        Self::with(config("127.0.0.1:5060", 1), config("127.0.0.2:5060", 2))
    }

    pub fn with(a: Config, b: Config) -> Net {
        let t0 = Instant::now();
        let (aa, ba) = (a.local[0].1, b.local[0].1);
        Net {
            t0,
            now: t0,
            a: Node {
                sip: Sip::new(a, t0).expect("config"),
                addr: aa,
                events: VecDeque::new(),
                bindings: Vec::new(),
                health: Vec::new(),
            },
            b: Node {
                sip: Sip::new(b, t0).expect("config"),
                addr: ba,
                events: VecDeque::new(),
                bindings: Vec::new(),
                health: Vec::new(),
            },
            wire: Vec::new(),
            queue: VecDeque::new(),
            links: Vec::new(),
            next_conn: 0,
            lose: Box::new(|_, _| false),
            closed: Vec::new(),
        }
    }

    pub fn command(&mut self, on_a: bool, cmd: SipCommand) {
        let now = self.now;
        let node = if on_a { &mut self.a } else { &mut self.b };
        node.sip.handle_input(now, Input::Command(cmd));
        self.collect();
    }

    /// Moves everything queued and collects outputs, without moving time.
    pub fn settle(&mut self) {
        self.collect();
        while let Some((from_a, t)) = self.queue.pop_front() {
            self.deliver(from_a, t);
            self.collect();
        }
    }

    /// Advances time by `d`, firing timers and delivering as it goes.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        self.settle();
        loop {
            let next = [self.a.sip.poll_timeout(), self.b.sip.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    self.a.sip.handle_timeout(now);
                    self.b.sip.handle_timeout(now);
                    self.settle();
                }
                _ => break,
            }
        }
        self.now = end;
        let now = self.now;
        self.a.sip.handle_timeout(now);
        self.b.sip.handle_timeout(now);
        self.settle();
    }

    fn collect(&mut self) {
        for from_a in [true, false] {
            let node = if from_a { &mut self.a } else { &mut self.b };
            while let Some(out) = node.sip.poll_output() {
                match out {
                    Output::Transmit(t) => {
                        let text = String::from_utf8_lossy(&t.data).into_owned();
                        self.wire.push(Wire {
                            at: self.now - self.t0,
                            from: node.addr,
                            transport: t.transport,
                            text: text.clone(),
                        });
                        self.queue.push_back((from_a, t));
                    }
                    Output::Event(e) => node.events.push_back(e),
                    Output::Close { conn, .. } => {
                        self.closed.push((from_a, conn, self.now - self.t0));
                    }
                    Output::Binding { aor, key, binding } => {
                        node.bindings.push((aor, key, binding));
                    }
                    Output::Health { hop, down } => node.health.push((hop, down)),
                }
            }
        }
    }

    fn deliver(&mut self, from_a: bool, t: Transmit) {
        let text = String::from_utf8_lossy(&t.data).into_owned();
        if (self.lose)(from_a, &text) {
            return;
        }
        let now = self.now;
        let src = if from_a { self.a.addr } else { self.b.addr };
        match t.transport {
            Transport::Udp => {
                let to = if from_a { &mut self.b } else { &mut self.a };
                to.sip.handle_input(
                    now,
                    Input::Datagram {
                        source: src,
                        data: &t.data,
                    },
                );
            }
            transport => {
                let link = match t.dest {
                    Dest::Conn(id) => self
                        .links
                        .iter()
                        .find(|l| if from_a { l.a == id } else { l.b == id })
                        .copied(),
                    _ => self
                        .links
                        .iter()
                        .find(|l| l.transport == transport)
                        .copied(),
                };
                let link = link.unwrap_or_else(|| self.connect(from_a, transport));
                let (to, conn) = if from_a {
                    (&mut self.b, link.b)
                } else {
                    (&mut self.a, link.a)
                };
                let input = if transport == Transport::Ws {
                    Input::Frame {
                        conn,
                        data: &t.data,
                    }
                } else {
                    Input::Stream {
                        conn,
                        data: &t.data,
                    }
                };
                to.sip.handle_input(now, input);
            }
        }
    }

    fn connect(&mut self, _from_a: bool, transport: Transport) -> Link {
        self.next_conn += 1;
        let link = Link {
            a: ConnId(self.next_conn),
            b: ConnId(1000 + self.next_conn),
            transport,
        };
        let now = self.now;
        self.a.sip.handle_input(
            now,
            Input::Opened {
                conn: link.a,
                transport,
                peer: self.b.addr,
            },
        );
        self.b.sip.handle_input(
            now,
            Input::Opened {
                conn: link.b,
                transport,
                peer: self.a.addr,
            },
        );
        self.links.push(link);
        link
    }

    /// Messages on the wire whose first line starts with `prefix`.
    pub fn sent(&self, prefix: &str) -> Vec<&Wire> {
        self.wire.iter().filter(|w| w.is(prefix)).collect()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.sent(prefix).len()
    }

    pub fn event_a(&mut self) -> SipEvent {
        self.a.events.pop_front().expect("an event on A")
    }

    pub fn event_b(&mut self) -> SipEvent {
        self.b.events.pop_front().expect("an event on B")
    }

    /// A calls B (B's URI with `transport`); returns (A's key, B's key).
    pub fn call(&mut self, call_id: &str, transport: Transport) -> (CallKey, CallKey) {
        let key = CallKey(7);
        let uri = match transport {
            Transport::Udp => format!("sip:bob@{}", self.b.addr),
            t => format!("sip:bob@{};transport={}", self.b.addr, t.as_str()),
        };
        self.command(
            true,
            SipCommand::Invite {
                call: key,
                call_id: CallId::new(call_id),
                request_uri: uri,
                from: "sip:alice@example.com".into(),
                sdp: OFFER.into(),
                supported: Vec::new(),
                peer: None,
            },
        );
        self.settle();
        match self.event_b() {
            SipEvent::IncomingInvite { call, .. } => (key, call),
            other => panic!("expected IncomingInvite, got {other:?}"),
        }
    }

    pub fn respond(&mut self, call: CallKey, status: u16, sdp: Option<&str>) {
        self.command(
            false,
            SipCommand::Respond {
                call,
                status,
                reason: None,
                sdp: sdp.map(str::to_owned),
                retry_after: None,
            },
        );
    }

    /// A full call up to the ACK.
    pub fn establish(&mut self, call_id: &str, transport: Transport) -> (CallKey, CallKey) {
        let (a, b) = self.call(call_id, transport);
        self.respond(b, 180, None);
        self.settle();
        assert!(matches!(
            self.event_a(),
            SipEvent::Provisional { status: 180, .. }
        ));
        self.respond(b, 200, Some(ANSWER));
        self.settle();
        assert!(matches!(self.event_a(), SipEvent::Answered { .. }));
        assert!(matches!(self.event_b(), SipEvent::Acked { .. }));
        (a, b)
    }

    /// A full call up to the ACK, with session timers on both sides: the
    /// timer events are taken off both queues.
    pub fn establish_with_timers(&mut self, call_id: &str) -> (CallKey, CallKey) {
        let (a, b) = self.call(call_id, Transport::Udp);
        self.respond(b, 200, Some(ANSWER));
        self.settle();
        assert!(matches!(self.event_b(), SipEvent::SessionTimer { .. }));
        assert!(matches!(self.event_b(), SipEvent::Acked { .. }));
        assert!(matches!(self.event_a(), SipEvent::Answered { .. }));
        assert!(matches!(self.event_a(), SipEvent::SessionTimer { .. }));
        (a, b)
    }

    /// Delivers raw text to B as a UDP datagram from A (a request A's
    /// engine would not write), then lets the answers flow.
    pub fn inject_b(&mut self, text: &str) {
        let now = self.now;
        let source = self.a.addr;
        self.b.sip.handle_input(
            now,
            Input::Datagram {
                source,
                data: text.as_bytes(),
            },
        );
        self.settle();
    }

    /// Injects raw text into A as a UDP datagram from `from`.
    pub fn inject(&mut self, from: SocketAddr, text: &str) {
        let now = self.now;
        self.a.sip.handle_input(
            now,
            Input::Datagram {
                source: from,
                data: text.as_bytes(),
            },
        );
        // What A answers to a stranger is recorded, not delivered.
        while let Some(out) = self.a.sip.poll_output() {
            match out {
                Output::Transmit(t) => self.wire.push(Wire {
                    at: self.now - self.t0,
                    from: self.a.addr,
                    transport: t.transport,
                    text: String::from_utf8_lossy(&t.data).into_owned(),
                }),
                Output::Event(e) => self.a.events.push_back(e),
                Output::Close { .. } => {}
                Output::Binding { aor, key, binding } => self.a.bindings.push((aor, key, binding)),
                Output::Health { hop, down } => self.a.health.push((hop, down)),
            }
        }
    }
}

/// T1 = 500 ms, T2 = 4 s, T4 = 5 s (RFC 3261 defaults).
pub fn t1() -> Duration {
    Timers::default().t1
}
