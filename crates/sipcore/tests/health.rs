//! Next-hop health (health.rs): OPTIONS probes of the configured peers and
//! the outbound proxy (RFC 3261 §11), and INVITEs that teach the same, on a
//! virtual clock. A is the gateway; B a peer (our own engine, which answers
//! OPTIONS 200) or scripted. Tests are named by the section they check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};
use stox_mapping::ids::CallId;
use stox_sipcore::api::Peer;
use stox_sipcore::{
    CallKey, Config, Input, NextHop, Output, Sip, SipCommand, SipEvent, Transmit, Transport,
};

const INTERVAL: Duration = Duration::from_secs(30);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn peer(name: &str, uri: Option<&str>, probe: bool) -> Peer {
    Peer {
        name: name.into(),
        uri: uri.map(str::to_owned),
        credentials: None,
        identity: Default::default(),
        probe,
    }
}

/// The gateway probing `peers` every 30 s.
fn probing(peers: Vec<Peer>) -> Config {
    Config {
        peers,
        probe_interval: Some(INTERVAL),
        ..config("127.0.0.1:5060", 1)
    }
}

fn pbx() -> NextHop {
    NextHop::Peer("pbx".into())
}

/// A network whose B is the peer `pbx` at `sip:127.0.0.2:5060`.
fn net_with_pbx() -> Net {
    Net::with(
        probing(vec![peer("pbx", Some("sip:127.0.0.2:5060"), true)]),
        config("127.0.0.2:5060", 2),
    )
}

/// A final response from B to the last OPTIONS A sent, as B would write it.
fn answer_probe(net: &mut Net, status_line: &str, extra: &str) {
    let options = net.sent("OPTIONS").last().expect("an OPTIONS").text.clone();
    let h = |name| header(&options, name).expect(name);
    let text = format!(
        "SIP/2.0 {status_line}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=pbx1\r\nCall-ID: {}\r\n\
         CSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq")
    );
    let from = net.b.addr;
    net.inject(from, &text);
}

#[test]
fn rfc3261_11_1_a_peer_with_a_uri_is_probed_with_options_outside_a_dialog() {
    let mut net = Net::with(
        probing(vec![
            peer("pbx", Some("sip:127.0.0.2:5060"), true),
            peer("no-uri", None, true),
            peer("quiet", Some("sip:127.0.0.3:5060"), false),
        ]),
        config("127.0.0.2:5060", 2),
    );
    net.run(Duration::ZERO);
    let sent = net.sent("OPTIONS");
    assert_eq!(sent.len(), 1, "only the peer with a uri and probe on");
    let options = sent[0].text.clone();
    assert!(
        options.starts_with("OPTIONS sip:127.0.0.2:5060 SIP/2.0"),
        "{options}"
    );
    assert_eq!(header(&options, "CSeq").as_deref(), Some("1 OPTIONS"));
    assert_eq!(header(&options, "Max-Forwards").as_deref(), Some("70"));
    assert_eq!(
        header(&options, "Accept").as_deref(),
        Some("application/sdp")
    );
    assert!(
        !header(&options, "To").expect("To").contains("tag="),
        "outside any dialog: no To tag"
    );
    assert!(header(&options, "Route").is_none(), "straight to the peer");
    assert_eq!(net.count("SIP/2.0 200 OK"), 1, "B answered it");
    assert_eq!(
        net.a.health,
        [(pbx(), None)],
        "known up; the driver is told"
    );
    assert_eq!(net.a.sip.next_hops(), [(pbx(), None)]);

    // Every interval again, with a new Call-ID; nothing more is reported
    // while nothing changes.
    net.run(INTERVAL);
    let sent = net.sent("OPTIONS");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].at, INTERVAL);
    assert_ne!(
        header(&sent[0].text, "Call-ID"),
        header(&sent[1].text, "Call-ID")
    );
    assert_eq!(net.a.health.len(), 1);
    net.run(secs(5)); // timer K
    assert_eq!(net.a.sip.transactions().0, 0, "no probe left behind");
}

#[test]
fn rfc3261_11_1_without_an_interval_nothing_is_probed_or_ever_down() {
    let mut net = Net::with(
        Config {
            probe_interval: None,
            ..probing(vec![peer("pbx", Some("sip:127.0.0.2:5060"), true)])
        },
        config("127.0.0.2:5060", 2),
    );
    net.run(secs(120));
    assert_eq!(net.count("OPTIONS"), 0);
    assert!(net.a.sip.next_hops().is_empty());
}

#[test]
fn rfc3261_11_1_the_outbound_proxy_is_probed_at_its_own_uri() {
    let mut net = Net::with(
        Config {
            outbound_proxy: Some("sip:127.0.0.2:5060;lr".into()),
            ..probing(Vec::new())
        },
        config("127.0.0.2:5060", 2),
    );
    net.run(Duration::ZERO);
    let options = net.sent("OPTIONS")[0].text.clone();
    assert!(
        options.starts_with("OPTIONS sip:127.0.0.2:5060;lr SIP/2.0"),
        "{options}"
    );
    assert!(header(&options, "Route").is_none());
    assert_eq!(net.a.health, [(NextHop::OutboundProxy, None)]);
}

/// Timer F: no answer within 64·T1 marks the peer down. The next probe
/// starts as that one ends (it outlasted the interval), so a peer that
/// comes back is seen within a retransmission interval.
#[test]
fn rfc3261_17_1_2_2_no_answer_before_timer_f_marks_the_peer_down() {
    let mut net = net_with_pbx();
    net.lose = Box::new(|from_a, _| from_a); // the peer is not there
    net.run(t1() * 64 - Duration::from_millis(1));
    assert!(
        net.a.health.is_empty(),
        "usable until timer F: {:?}",
        net.a.health
    );
    net.run(Duration::from_millis(1));
    assert_eq!(
        net.a.health,
        [(
            pbx(),
            Some("no answer to OPTIONS within 32 s (timer F)".into())
        )]
    );
    let probes = net.sent("OPTIONS");
    let call_ids: std::collections::BTreeSet<_> =
        probes.iter().map(|w| header(&w.text, "Call-ID")).collect();
    assert_eq!(call_ids.len(), 2, "a second probe started at once");

    // The peer is back: the second probe's next retransmission reaches it.
    net.lose = Box::new(|_, _| false);
    net.run(secs(5));
    assert_eq!(net.a.health.last(), Some(&(pbx(), None)), "up again");
    assert_eq!(net.a.sip.next_hops(), [(pbx(), None)]);
}

/// docs/security.md: a probed peer's reason phrase reaches IQ error texts,
/// rows and logs cut to 200 characters (RFC 3261 §25.1 sets no length).
#[test]
fn rfc3261_21_5_4_a_peer_s_long_reason_phrase_is_cut_before_it_is_told() {
    let mut net = net_with_pbx();
    net.lose = Box::new(|from_a, _| from_a); // B is scripted
    net.run(Duration::ZERO);
    let phrase = "Overloaded ".repeat(100);
    answer_probe(&mut net, &format!("503 {}", phrase.trim_end()), "");
    let (_, why) = net.a.health.last().expect("down");
    let why = why.as_deref().expect("why");
    assert!(why.starts_with("OPTIONS answered 503 Overloaded"), "{why}");
    assert!(why.ends_with('…'), "cut: {why}");
    assert!(
        why.chars().count() < 250,
        "{} characters",
        why.chars().count()
    );
}

/// 503: down, and not probed again before its Retry-After (§21.5.4); 408
/// is down too; any other final answer proves the peer alive (§11.2) —
/// a challenge, a 404, a 405, a 481, a 500.
#[test]
fn rfc3261_21_5_4_a_503_marks_the_peer_down_until_its_retry_after() {
    let mut net = net_with_pbx();
    net.lose = Box::new(|from_a, _| from_a); // B is scripted
    net.run(Duration::ZERO);
    answer_probe(&mut net, "503 Service Unavailable", "Retry-After: 120\r\n");
    assert_eq!(
        net.a.health,
        [(
            pbx(),
            Some("OPTIONS answered 503 Service Unavailable, Retry-After 120 s".into())
        )]
    );
    net.run(secs(119));
    assert_eq!(net.count("OPTIONS"), 1, "nothing before the Retry-After");
    net.run(secs(1));
    assert_eq!(net.count("OPTIONS"), 2);
    answer_probe(&mut net, "200 OK", "");
    assert_eq!(net.a.health.last(), Some(&(pbx(), None)));

    // Retry-After is capped: a peer cannot switch itself off for a year.
    net.run(INTERVAL);
    answer_probe(
        &mut net,
        "503 Service Unavailable",
        "Retry-After: 31536000\r\n",
    );
    let (_, why) = net.a.health.last().expect("down");
    assert!(
        why.as_deref().expect("why").ends_with("Retry-After 3600 s"),
        "{why:?}"
    );
    net.run(secs(3600));
    answer_probe(&mut net, "408 Request Timeout", "");
    assert_eq!(
        net.a.health.last(),
        Some(&(pbx(), Some("OPTIONS answered 408 Request Timeout".into())))
    );
}

#[test]
fn rfc3261_11_2_any_other_final_answer_proves_the_peer_alive() {
    let mut net = net_with_pbx();
    net.lose = Box::new(|from_a, _| from_a);
    net.run(Duration::ZERO);
    for status in [
        "401 Unauthorized",
        "407 Proxy Authentication Required",
        "404 Not Found",
        "405 Method Not Allowed",
        "481 Call/Transaction Does Not Exist",
        "500 Server Internal Error",
        "200 OK",
    ] {
        answer_probe(&mut net, "503 Service Unavailable", "");
        assert!(net.a.health.last().expect("a change").1.is_some());
        net.run(INTERVAL);
        answer_probe(&mut net, "100 Trying", "");
        assert!(
            net.a.health.last().expect("a change").1.is_some(),
            "a provisional decides nothing"
        );
        answer_probe(&mut net, status, "");
        assert_eq!(net.a.health.last(), Some(&(pbx(), None)), "{status}");
        net.run(INTERVAL);
    }
}

/// The gateway alone, with what it sends taken off.
struct Alone {
    sip: Sip,
    now: Instant,
    sent: Vec<Transmit>,
    health: Vec<(NextHop, Option<String>)>,
    events: Vec<SipEvent>,
}

impl Alone {
    fn new(cfg: Config) -> Alone {
        let now = Instant::now();
        let mut alone = Alone {
            sip: Sip::new(cfg, now).expect("config"),
            now,
            sent: Vec::new(),
            health: Vec::new(),
            events: Vec::new(),
        };
        alone.advance(Duration::ZERO);
        alone
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.sip.handle_timeout(self.now);
        self.drain();
    }

    fn input(&mut self, input: Input<'_>) {
        self.sip.handle_input(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.sip.poll_output() {
            match out {
                Output::Transmit(t) => self.sent.push(t),
                Output::Health { hop, down } => self.health.push((hop, down)),
                Output::Event(e) => self.events.push(e),
                Output::Close { .. } | Output::Binding { .. } => {}
            }
        }
    }

    /// The peer at `from` answers the last request sent.
    fn answer_last(&mut self, from: &str, status_line: &str) {
        let request =
            String::from_utf8_lossy(&self.sent.last().expect("a request").data).into_owned();
        let h = |name| header(&request, name).expect(name);
        let text = format!(
            "SIP/2.0 {status_line}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=p\r\nCall-ID: {}\r\n\
             CSeq: {}\r\nContent-Length: 0\r\n\r\n",
            h("Via"),
            h("From"),
            h("To"),
            h("Call-ID"),
            h("CSeq")
        );
        self.input(Input::Datagram {
            source: addr(from),
            data: text.as_bytes(),
        });
    }

    /// The driver could not deliver the last transmit.
    fn fail_last(&mut self, reason: &str) {
        let call = self.sent.last().expect("a transmit").call;
        self.input(Input::SendFailed {
            call,
            reason: reason.into(),
        });
    }
}

/// RFC 3261 §18.4: a transport error is the answer too — a probe that
/// cannot be sent (a TCP connection refused) marks the peer down at once,
/// with the driver's reason; the next probe follows at the interval.
#[test]
fn rfc3261_18_4_a_probe_that_cannot_be_sent_marks_the_peer_down() {
    let mut gw = Alone::new(probing(vec![peer(
        "pbx",
        Some("sip:127.0.0.2:5070;transport=tcp"),
        true,
    )]));
    assert_eq!(gw.sent.len(), 1);
    assert_eq!(gw.sent[0].transport, Transport::Tcp);
    assert!(gw.sent[0].call.is_some(), "failures come back with a key");
    gw.fail_last("TCP connect to 127.0.0.2:5070: Connection refused (os error 111)");
    assert_eq!(
        gw.health,
        [(
            pbx(),
            Some(
                "OPTIONS could not be sent: TCP connect to 127.0.0.2:5070: Connection refused (os error 111)"
                    .into()
            )
        )]
    );
    assert!(gw.events.is_empty(), "nothing for the core but the health");
    gw.advance(INTERVAL - Duration::from_millis(1));
    assert_eq!(gw.sent.len(), 1);
    gw.advance(Duration::from_millis(1));
    assert_eq!(gw.sent.len(), 2, "probed again at the interval");
    gw.fail_last("TCP connect to 127.0.0.2:5070: Connection refused (os error 111)");
    assert_eq!(gw.health.len(), 1, "the same reason is not reported again");
}

fn invite(call: u64, peer: Option<&str>) -> SipCommand {
    SipCommand::Invite {
        call: CallKey(call),
        call_id: CallId::new(format!("c{call}@test")),
        request_uri: "sip:100@pbx.example".into(),
        from: "sip:juliet@example.com".into(),
        sdp: OFFER.into(),
        supported: Vec::new(),
        peer: peer.map(str::to_owned),
    }
}

/// An INVITE to a peer that cannot be sent marks the peer down (and is
/// rejected with 503 as before), and the peer is probed at once.
#[test]
fn rfc3261_18_4_an_invite_that_cannot_be_sent_marks_its_peer_down() {
    let mut gw = Alone::new(probing(vec![peer("pbx", Some("sip:127.0.0.2:5060"), true)]));
    gw.answer_last("127.0.0.2:5060", "200 OK");
    assert_eq!(gw.health, [(pbx(), None)]);
    gw.sent.clear();
    gw.input(Input::Command(invite(9, Some("pbx"))));
    assert_eq!(gw.sent[0].call, Some(CallKey(9)));
    gw.fail_last("UDP send to 127.0.0.2:5060: Network is unreachable (os error 101)");
    assert_eq!(
        gw.health[1],
        (
            pbx(),
            Some(
                "an INVITE could not be sent: UDP send to 127.0.0.2:5060: Network is unreachable (os error 101)"
                    .into()
            )
        )
    );
    assert!(matches!(
        gw.events[..],
        [SipEvent::Rejected { status: 503, .. }]
    ));
    gw.advance(Duration::ZERO);
    assert!(
        String::from_utf8_lossy(&gw.sent.last().expect("a probe").data).starts_with("OPTIONS"),
        "probed at once (the first probe is long over)"
    );
}

/// Timer B: an INVITE that got nothing back at all marks its next hop
/// down; a probe follows at once and brings it back when it answers.
#[test]
fn rfc3261_17_1_1_2_an_invite_unanswered_until_timer_b_marks_its_peer_down() {
    let mut net = net_with_pbx();
    net.run(Duration::ZERO);
    assert_eq!(net.a.health, [(pbx(), None)]);
    // The peer ignores INVITEs (and only those).
    net.lose = Box::new(|from_a, text| from_a && text.starts_with("INVITE"));
    net.command(true, invite(3, Some("pbx")));
    net.run(t1() * 64);
    assert!(matches!(
        net.event_a(),
        SipEvent::Rejected { status: 408, .. }
    ));
    assert_eq!(
        net.a.health[1],
        (
            pbx(),
            Some("no answer to an INVITE within 32 s (timer B)".into())
        )
    );
    assert_eq!(net.a.health[2], (pbx(), None), "the probe that followed");
    assert_eq!(net.count("OPTIONS"), 3, "start, interval, after timer B");
}

/// An INVITE that went to no watched hop (the Request-URI's host) says
/// nothing about the peers when it times out.
#[test]
fn rfc3261_17_1_1_2_an_invite_to_no_watched_hop_marks_nothing() {
    let mut net = net_with_pbx();
    net.run(Duration::ZERO);
    net.lose = Box::new(|from_a, text| from_a && text.starts_with("INVITE"));
    net.command(true, invite(4, None));
    net.run(t1() * 64);
    assert!(matches!(
        net.event_a(),
        SipEvent::Rejected { status: 408, .. }
    ));
    assert_eq!(net.a.health, [(pbx(), None)], "nothing learnt");
}

/// A reload keeps what is known of peers kept with the same `uri`, probes
/// new ones at once and forgets removed ones (reported usable, so that
/// nothing is refused on their account); no interval forgets them all.
#[test]
fn a_reload_keeps_refreshes_and_forgets_the_probed_peers() {
    let mut gw = Alone::new(probing(vec![
        peer("a", Some("sip:127.0.0.2:5070;transport=tcp"), true),
        peer("b", Some("sip:127.0.0.3:5070;transport=tcp"), true),
    ]));
    assert_eq!(gw.sent.len(), 2);
    for _ in 0..2 {
        let t = gw.sent.remove(0);
        gw.input(Input::SendFailed {
            call: t.call,
            reason: "refused".into(),
        });
    }
    let down = |n: &str| {
        (
            NextHop::Peer(n.into()),
            Some("OPTIONS could not be sent: refused".into()),
        )
    };
    assert_eq!(gw.health, [down("a"), down("b")]);
    gw.health.clear();

    gw.sip
        .reload_peers(
            vec![
                peer("a", Some("sip:127.0.0.2:5070;transport=tcp"), true),
                peer("c", Some("sip:127.0.0.4:5070;transport=tcp"), true),
            ],
            None,
        )
        .expect("reloaded");
    gw.drain();
    assert_eq!(
        gw.health,
        [(NextHop::Peer("b".into()), None)],
        "b forgotten"
    );
    gw.advance(Duration::ZERO);
    let probed: Vec<String> = gw
        .sent
        .iter()
        .map(|t| {
            String::from_utf8_lossy(&t.data)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        probed,
        ["OPTIONS sip:127.0.0.4:5070;transport=tcp SIP/2.0"],
        "c at once"
    );
    assert_eq!(
        gw.sip.next_hops(),
        [down("a"), (NextHop::Peer("c".into()), None),],
        "a still down until its next probe"
    );

    gw.health.clear();
    gw.sip.set_probe_interval(None);
    gw.drain();
    assert_eq!(gw.health, [(NextHop::Peer("a".into()), None)]);
    assert!(gw.sip.next_hops().is_empty());
    gw.sent.clear();
    gw.advance(secs(300));
    assert!(gw.sent.is_empty(), "no more probes");
}
