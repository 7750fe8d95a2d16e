//! RFC 4475 (SIP torture tests) against the SIP layer: every valid message
//! of §3.1.1 is parsed and handled (answered as its method deserves, or a
//! response dropped as stray); every invalid one of §3.1.2 (and the two
//! application-layer ones of §3.3) is answered 400 (505 for the version)
//! or dropped where the RFC says so. Over UDP and TCP; never a panic. The
//! messages are in `testdata/rfc4475/`, written out from the RFC's text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::PathBuf;
use stox_sipcore::{ConnId, Input, Output, Sip, SipEvent, Transport};

fn vector(dir: &str, name: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "testdata",
        "rfc4475",
        dir,
        &format!("{name}.sip"),
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the engine does with one message: the first line of each answer,
/// and the events.
fn feed(data: &[u8], transport: Transport) -> (Vec<String>, Vec<SipEvent>) {
    let t0 = std::time::Instant::now();
    let mut sip = Sip::new(config("127.0.0.1:5060", 3), t0).expect("config");
    let source = addr("127.0.0.9:5060");
    match transport {
        Transport::Udp => sip.handle_input(t0, Input::Datagram { source, data }),
        _ => {
            let conn = ConnId(1);
            sip.handle_input(
                t0,
                Input::Opened {
                    conn,
                    transport: Transport::Tcp,
                    peer: source,
                },
            );
            sip.handle_input(t0, Input::Stream { conn, data });
        }
    }
    let mut answers = Vec::new();
    let mut events = Vec::new();
    while let Some(out) = sip.poll_output() {
        match out {
            Output::Transmit(t) => {
                let text = String::from_utf8_lossy(&t.data).into_owned();
                answers.push(text.lines().next().unwrap_or("").to_owned());
            }
            Output::Event(e) => events.push(e),
            Output::Close { .. } => answers.push("<close>".into()),
            // No registrar here: REGISTER is answered 405.
            Output::Binding { .. } => answers.push("<binding>".into()),
            Output::Health { .. } => answers.push("<health>".into()),
        }
    }
    (answers, events)
}

#[test]
fn rfc4475_3_1_1_valid_messages_are_parsed_and_handled() {
    // (name, what the gateway answers: first line prefix, or "" for a
    // response, which is stray and dropped)
    let cases = [
        ("wsinv", "SIP/2.0 481"), // an INVITE with a To tag: no such dialog (§12.2.2)
        ("intmeth", "SIP/2.0 501"), // unknown method
        ("esc01", "SIP/2.0 100"),
        ("escnull", "SIP/2.0 405"), // REGISTER: not taken yet
        ("esc02", "SIP/2.0 501"),   // RE%47IST%45R is no REGISTER
        ("lwsdisp", "SIP/2.0 200"), // OPTIONS
        ("longreq", "SIP/2.0 100"),
        ("dblreq", "SIP/2.0 405"), // the trailing INVITE is ignored
        ("semiuri", "SIP/2.0 200"),
        ("transports", "SIP/2.0 200"),
        ("mpart01", "SIP/2.0 405"), // MESSAGE
        ("unreason", ""),
        ("noreason", ""),
    ];
    for (name, want) in cases {
        let data = vector("valid", name);
        for transport in [Transport::Udp, Transport::Tcp] {
            if name == "dblreq" && transport == Transport::Tcp {
                continue; // a datagram test: on a stream the trailing bytes are a second message
            }
            let (answers, events) = feed(&data, transport);
            if want.is_empty() {
                assert!(answers.is_empty(), "{name} {transport}: {answers:?}");
                continue;
            }
            assert_eq!(answers.len(), 1, "{name} {transport}: {answers:?}");
            assert!(
                answers[0].starts_with(want),
                "{name} {transport}: {answers:?}"
            );
            let invites = events
                .iter()
                .filter(|e| matches!(e, SipEvent::IncomingInvite { .. }))
                .count();
            assert_eq!(
                invites,
                usize::from(want == "SIP/2.0 100"),
                "{name} {transport}"
            );
        }
    }
}

#[test]
fn rfc4475_3_1_2_invalid_messages_are_answered_400_or_dropped() {
    let cases = [
        ("badinv01", "SIP/2.0 400"),
        ("clerr", "SIP/2.0 400"), // UDP; over TCP it waits for the body
        ("ncl", "SIP/2.0 400"),
        ("scalar02", "SIP/2.0 400"),
        ("scalarlg", ""), // a response: dropped
        ("quotbal", "SIP/2.0 400"),
        ("ltgtruri", "SIP/2.0 400"),
        ("lwsruri", "SIP/2.0 400"),
        ("lwsstart", "SIP/2.0 400"),
        ("trws", "SIP/2.0 400"),
        ("escruri", "SIP/2.0 400"),
        ("baddate", "SIP/2.0 400"),
        ("regbadct", "SIP/2.0 400"),
        ("badaspec", "SIP/2.0 400"),
        ("baddn", "SIP/2.0 400"),
        ("badvers", "SIP/2.0 505"),
        ("mismatch01", "SIP/2.0 400"),
        ("mismatch02", "SIP/2.0 400"),
        ("bigcode", ""), // a response: dropped
    ];
    for (name, want) in cases {
        let data = vector("invalid", name);
        let (answers, events) = feed(&data, Transport::Udp);
        assert!(events.is_empty(), "{name}: no call starts: {events:?}");
        if want.is_empty() {
            assert!(answers.is_empty(), "{name}: {answers:?}");
        } else {
            assert_eq!(answers.len(), 1, "{name}: {answers:?}");
            assert!(answers[0].starts_with(want), "{name}: {answers:?}");
        }
        // Over TCP: the same answer, the connection kept (framing is
        // known from the header section and Content-Length), except where
        // the length cannot be known (ncl: 400, then the connection ends)
        // or has not arrived (clerr waits for its 9999 bytes).
        let (answers, events) = feed(&data, Transport::Tcp);
        assert!(events.is_empty(), "{name} tcp: {events:?}");
        let expected: Vec<String> = match name {
            "clerr" => vec![],
            "ncl" => vec![want.into(), "<close>".into()],
            _ if want.is_empty() => vec![],
            _ => vec![want.into()],
        };
        assert_eq!(answers.len(), expected.len(), "{name} tcp: {answers:?}");
        for (got, want) in answers.iter().zip(&expected) {
            assert!(got.starts_with(want.as_str()), "{name} tcp: {answers:?}");
        }
    }
}

#[test]
fn rfc4475_3_3_application_layer_errors_are_answered_400() {
    for name in ["insuf", "multi01"] {
        let (answers, events) = feed(&vector("semantic", name), Transport::Udp);
        assert!(events.is_empty(), "{name}");
        assert_eq!(answers.len(), 1, "{name}: {answers:?}");
        assert!(answers[0].starts_with("SIP/2.0 400"), "{name}: {answers:?}");
    }
}

/// Every vector cut at every byte, over UDP and TCP: never a panic.
#[test]
fn rfc4475_every_prefix_of_every_vector_is_survived() {
    for dir in ["valid", "invalid", "semantic"] {
        let folder: PathBuf = [env!("CARGO_MANIFEST_DIR"), "testdata", "rfc4475", dir]
            .iter()
            .collect();
        for entry in std::fs::read_dir(folder).expect("dir") {
            let data = std::fs::read(entry.expect("entry").path()).expect("read");
            for cut in (0..data.len()).step_by(7) {
                let _ = feed(&data[..cut], Transport::Udp);
                let _ = feed(&data[..cut], Transport::Tcp);
            }
        }
    }
}
