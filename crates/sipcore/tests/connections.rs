//! The life of a stream connection (TCP or WebSocket) follows protocol
//! state, on a virtual clock:
//! - one that carries no valid SIP message within `hello_timeout` is closed;
//! - one that spoke SIP but carries no call is closed `idle_timeout` after
//!   its last message;
//! - one that carries a dialog stays open however long the call lasts
//!   (RFC 5626 §3.5.1: the flow is what the peer reaches us on; keep-alives
//!   keep it, no idle timer ends it), and its idle time counts from the
//!   moment the last call on it ended;
//! - a connection the gateway opened for its INVITE is that call's flow too;
//! - a WebSocket flow that closes ends its calls (the browser cannot be
//!   reached any more); a TCP one does not (a new connection is opened);
//! - RFC 5626 §4.4.1: a CRLFCRLF ping gets a CRLF pong.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};
use stox_sipcore::{ConnId, Dest, Input, Output, Sip, SipCommand, SipEvent, Transport};

const CONN: ConnId = ConnId(1);

struct Gw {
    sip: Sip,
    t0: Instant,
    now: Instant,
    sent: Vec<String>,
    closed: Vec<(Duration, &'static str)>,
    events: Vec<SipEvent>,
}

impl Gw {
    fn open(transport: Transport) -> Gw {
        let t0 = Instant::now();
        let mut sip = Sip::new(config("127.0.0.1:5060", 5), t0).expect("config");
        sip.handle_input(
            t0,
            Input::Opened {
                conn: CONN,
                transport,
                peer: addr("127.0.0.2:40000"),
            },
        );
        let mut gw = Gw {
            sip,
            t0,
            now: t0,
            sent: Vec::new(),
            closed: Vec::new(),
            events: Vec::new(),
        };
        gw.drain();
        gw
    }

    fn send(&mut self, transport: Transport, text: &str) {
        let input = match transport {
            Transport::Ws => Input::Frame {
                conn: CONN,
                data: text.as_bytes(),
            },
            _ => Input::Stream {
                conn: CONN,
                data: text.as_bytes(),
            },
        };
        self.sip.handle_input(self.now, input);
        self.drain();
    }

    fn command(&mut self, cmd: SipCommand) {
        self.sip.handle_input(self.now, Input::Command(cmd));
        self.drain();
    }

    /// A call from the peer over the connection, answered 200 and ACKed.
    fn answered_call(&mut self, transport: Transport) -> stox_sipcore::CallKey {
        self.send(transport, &request("INVITE", 1, transport, None, OFFER));
        let Some(SipEvent::IncomingInvite { call, .. }) = self.events.first().cloned() else {
            panic!("{transport}: no IncomingInvite: {:?}", self.events);
        };
        self.command(SipCommand::Respond {
            call,
            status: 200,
            reason: None,
            sdp: Some(ANSWER.into()),
            retry_after: None,
        });
        let ok = self.sent.last().cloned().expect("200");
        assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
        let tag = to_tag(&ok);
        self.send(transport, &request("ACK", 1, transport, Some(&tag), ""));
        self.events.clear();
        call
    }

    /// Moves the clock to `t0 + at`, firing every timer on the way.
    fn run_to(&mut self, at: Duration) {
        let end = self.t0 + at;
        while let Some(due) = self.sip.poll_timeout().filter(|d| *d <= end) {
            self.now = self.now.max(due);
            self.sip.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.sip.handle_timeout(end);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.sip.poll_output() {
            match out {
                Output::Transmit(t) => {
                    assert_eq!(
                        t.dest,
                        Dest::Conn(CONN),
                        "answers go back on the connection"
                    );
                    self.sent
                        .push(String::from_utf8_lossy(&t.data).into_owned());
                }
                Output::Event(e) => self.events.push(e),
                // No registrar and no probes here.
                Output::Binding { .. } | Output::Health { .. } => {}
                Output::Close { conn, reason } => {
                    assert_eq!(conn, CONN);
                    self.closed.push((self.now - self.t0, reason));
                }
            }
        }
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn request(
    method: &str,
    cseq: u32,
    transport: Transport,
    to_tag: Option<&str>,
    body: &str,
) -> String {
    let via = match transport {
        Transport::Ws => "SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK",
        _ => "SIP/2.0/TCP 127.0.0.2:40000;branch=z9hG4bK",
    };
    let contact = match transport {
        Transport::Ws => "<sip:romeo@df7jal23ls0d.invalid;transport=ws>",
        _ => "<sip:romeo@127.0.0.2:40000;transport=tcp>",
    };
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "{method} sip:juliet@127.0.0.1:5060 SIP/2.0\r\n\
         Via: {via}{method}{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:romeo@example.net>;tag=r1\r\n\
         To: <sip:juliet@example.com>{to_tag}\r\n\
         Call-ID: conn-life@test\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: {contact}\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn to_tag(response: &str) -> String {
    header(response, "To")
        .and_then(|to| to.split("tag=").nth(1).map(str::to_owned))
        .expect("a To tag")
}

#[test]
fn a_connection_that_never_speaks_sip_is_closed_after_the_hello_timeout() {
    for transport in [Transport::Tcp, Transport::Ws] {
        let mut gw = Gw::open(transport);
        gw.run_to(secs(5) - Duration::from_millis(1));
        assert!(gw.closed.is_empty(), "{transport}");
        gw.run_to(secs(5));
        assert_eq!(gw.closed.len(), 1, "{transport}: {:?}", gw.closed);
        assert_eq!(gw.closed[0].0, secs(5));
    }
}

#[test]
fn a_connection_without_a_call_is_closed_idle_timeout_after_its_last_message() {
    for transport in [Transport::Tcp, Transport::Ws] {
        let mut gw = Gw::open(transport);
        gw.run_to(secs(1));
        gw.send(transport, &request("OPTIONS", 1, transport, None, ""));
        assert!(gw.sent[0].starts_with("SIP/2.0 200"), "{:?}", gw.sent);
        gw.run_to(secs(30));
        gw.send(transport, &request("OPTIONS", 2, transport, None, ""));
        gw.run_to(secs(30 + 120) - Duration::from_millis(1));
        assert!(gw.closed.is_empty(), "{transport}: {:?}", gw.closed);
        gw.run_to(secs(30 + 120));
        assert_eq!(gw.closed.len(), 1, "{transport}");
    }
}

#[test]
fn rfc5626_3_5_1_a_connection_carrying_a_dialog_outlives_the_idle_timer() {
    for transport in [Transport::Tcp, Transport::Ws] {
        let mut gw = Gw::open(transport);
        let call = gw.answered_call(transport);

        // An hour-long call, longer than any idle timer: the connection stays.
        gw.run_to(secs(3600));
        assert!(gw.closed.is_empty(), "{transport}: {:?}", gw.closed);

        // The BYE goes out on it and is never answered (the peer went
        // quiet, so no message re-arms anything): the call is over when the
        // BYE is sent, and the connection's idle time counts from then; the
        // BYE's transaction (timer F, 32 s) ends well before.
        gw.command(SipCommand::Bye { call, reason: None });
        let bye = gw.sent.last().cloned().expect("BYE");
        assert!(bye.starts_with("BYE "), "{transport}: {bye}");
        assert_eq!(gw.sip.live_calls(), 0, "{transport}");
        gw.run_to(secs(3600 + 32));
        assert_eq!(gw.sip.transactions(), (0, 0), "{transport}");
        gw.run_to(secs(3600 + 120) - Duration::from_millis(1));
        assert!(gw.closed.is_empty(), "{transport}: {:?}", gw.closed);
        gw.run_to(secs(3600 + 120));
        assert_eq!(gw.closed.len(), 1, "{transport}: {:?}", gw.closed);
    }
}

#[test]
fn rfc5626_4_4_1_a_crlfcrlf_ping_gets_a_crlf_pong() {
    let mut gw = Gw::open(Transport::Tcp);
    gw.send(Transport::Tcp, "\r\n\r\n");
    assert_eq!(gw.sent, vec!["\r\n".to_owned()]);
    gw.send(Transport::Tcp, "\r\n");
    assert_eq!(gw.sent.len(), 1, "a pong is not answered");
}

#[test]
fn rfc5626_3_5_1_a_connection_opened_for_our_invite_carries_the_call() {
    let mut net = Net::new();
    let (a, _b) = net.establish("outbound@test", Transport::Tcp);
    net.run(secs(3600));
    assert!(
        net.closed.iter().all(|(on_a, ..)| !on_a),
        "the gateway kept the connection of its call: {:?}",
        net.closed
    );
    net.command(
        true,
        SipCommand::Bye {
            call: a,
            reason: None,
        },
    );
    net.settle();
    assert_eq!(net.count("BYE"), 1);
    net.run(secs(121));
    assert!(
        net.closed.iter().any(|(on_a, ..)| *on_a),
        "idle once the call ended: {:?}",
        net.closed
    );
}

#[test]
fn rfc7118_5_a_websocket_flow_that_closes_ends_its_call() {
    let mut gw = Gw::open(Transport::Ws);
    let call = gw.answered_call(Transport::Ws);
    gw.sip.handle_input(gw.now, Input::Closed { conn: CONN });
    gw.drain();
    assert!(
        matches!(&gw.events[..], [SipEvent::Terminated { call: c, .. }] if *c == call),
        "{:?}",
        gw.events
    );
    assert_eq!(gw.sip.live_calls(), 0);
}

#[test]
fn a_tcp_flow_that_closes_does_not_end_its_call() {
    let mut gw = Gw::open(Transport::Tcp);
    let call = gw.answered_call(Transport::Tcp);
    gw.sip.handle_input(gw.now, Input::Closed { conn: CONN });
    gw.drain();
    assert!(gw.events.is_empty(), "{:?}", gw.events);
    assert_eq!(gw.sip.live_calls(), 1);
    // The BYE goes to the Contact, on a new connection.
    gw.sip.handle_input(
        gw.now,
        Input::Command(SipCommand::Bye { call, reason: None }),
    );
    let out = gw.sip.poll_output();
    assert!(
        matches!(&out, Some(Output::Transmit(t)) if t.dest == Dest::Addr(addr("127.0.0.2:40000")) && t.transport == Transport::Tcp),
        "{out:?}"
    );
}
