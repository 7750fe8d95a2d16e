//! Who may send us requests, and answering a peer's challenges: RFC 3261
//! §8.2 / §22, RFC 8760 (SHA-256 and MD5 digest, qop=auth, nonce reuse with
//! the count one up). Named by the section they check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use stox_mapping::ids::CallId;
use stox_sipcore::api::{Credentials, Identity, Peer};
use stox_sipcore::{CallKey, Config, SipCommand, SipEvent, Transport};

fn trusting(nets: &[&str]) -> Config {
    Config {
        trusted_sources: Some(nets.iter().map(|n| n.parse().expect("net")).collect()),
        ..config("127.0.0.2:5060", 2)
    }
}

#[test]
fn rfc3261_8_2_an_untrusted_source_gets_403_and_nothing_reaches_the_core() {
    let mut net = Net::with(config("127.0.0.1:5060", 1), trusting(&["10.0.0.0/8"]));
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(1),
            call_id: CallId::new("untrusted@test"),
            request_uri: format!("sip:bob@{}", net.b.addr),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    net.settle();
    let refused = net.sent("SIP/2.0 403")[0].text.clone();
    assert!(
        refused.contains("127.0.0.1 is not a trusted peer"),
        "{refused}"
    );
    assert!(net.b.events.is_empty(), "{:?}", net.b.events);
    assert!(matches!(
        net.event_a(),
        SipEvent::Rejected { status: 403, .. }
    ));
    // OPTIONS too; the port does not matter.
    let options = "OPTIONS sip:127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKo1\r\n\
                   Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=o1\r\nTo: <sip:127.0.0.2>\r\n\
                   Call-ID: o1@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    net.inject_b(options);
    assert_eq!(net.count("SIP/2.0 403"), 2);
}

#[test]
fn rfc3261_8_2_a_trusted_network_calls_in() {
    let mut net = Net::with(config("127.0.0.1:5060", 1), trusting(&["127.0.0.0/30"]));
    let (_, b) = net.call("trusted@test", Transport::Udp);
    net.respond(b, 200, Some(ANSWER));
    net.settle();
    assert_eq!(net.count("SIP/2.0 403"), 0);
    assert!(matches!(net.event_a(), SipEvent::Answered { .. }));
}

fn trunk(password: &str, realm: Option<&str>) -> Config {
    Config {
        peers: vec![Peer {
            name: "trunk".into(),
            uri: Some("sip:127.0.0.2:5060".into()),
            credentials: Some(Credentials {
                username: "gw".into(),
                password: password.into(),
                realm: realm.map(str::to_owned),
            }),
            identity: Identity {
                from_user: Some("+4930999".into()),
                from_domain: Some("trunk.example".into()),
                asserted_identity: true,
            },
            probe: true,
        }],
        ..config("127.0.0.1:5060", 1)
    }
}

/// A's INVITE to the trunk (B's address, scripted): returns the INVITE text.
fn invite_to_trunk(net: &mut Net, call: u64, call_id: &str) -> String {
    net.lose = Box::new(|from_a, _| from_a); // the trunk is scripted
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(call),
            call_id: CallId::new(call_id),
            request_uri: "sip:+4930123@trunk.example".into(),
            from: "sip:juliet@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: Some("trunk".into()),
        },
    );
    net.sent("INVITE").last().expect("INVITE").text.clone()
}

fn challenge(invite: &str, status: u16, header_name: &str, challenges: &[&str]) -> String {
    let via = header(invite, "Via").expect("via");
    let from = header(invite, "From").expect("from");
    let call_id = header(invite, "Call-ID").expect("call-id");
    let cseq = header(invite, "CSeq").expect("cseq");
    let phrase = if status == 401 {
        "Unauthorized"
    } else {
        "Proxy Authentication Required"
    };
    let lines: String = challenges
        .iter()
        .map(|c| format!("{header_name}: {c}\r\n"))
        .collect();
    format!(
        "SIP/2.0 {status} {phrase}\r\nVia: {via}\r\nFrom: {from}\r\nTo: <sip:+4930123@trunk.example>;tag=t{status}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq}\r\n{lines}Content-Length: 0\r\n\r\n"
    )
}

/// The named parameters of a Digest credentials value.
fn params(value: &str) -> std::collections::HashMap<String, String> {
    value
        .trim_start_matches("Digest ")
        .split(", ")
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

fn hash(algorithm: &str, text: &str) -> String {
    use sha2::Digest as _;
    match algorithm {
        "SHA-256" => hex::encode(sha2::Sha256::digest(text.as_bytes())),
        _ => hex::encode(md5::Md5::digest(text.as_bytes())),
    }
}

/// What a server computes for these credentials (RFC 7616 §3.4.1, qop=auth).
fn expected(p: &std::collections::HashMap<String, String>, password: &str) -> String {
    let alg = p.get("algorithm").map_or("MD5", String::as_str);
    let ha1 = hash(alg, &format!("{}:{}:{password}", p["username"], p["realm"]));
    let ha2 = hash(alg, &format!("INVITE:{}", p["uri"]));
    hash(
        alg,
        &format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            p["nonce"], p["nc"], p["cnonce"]
        ),
    )
}

#[test]
fn rfc8760_2_4_a_407_is_answered_with_the_strongest_algorithm_offered() {
    let mut net = Net::with(trunk("s3cret", None), config("127.0.0.2:5060", 2));
    let invite = invite_to_trunk(&mut net, 1, "auth1@test");
    assert!(header(&invite, "Proxy-Authorization").is_none());
    // RFC 3325 identity policy toward the trunk: its account in From, the
    // caller asserted.
    assert!(
        header(&invite, "From")
            .unwrap()
            .starts_with("<sip:+4930999@trunk.example>;tag=")
    );
    assert_eq!(
        header(&invite, "P-Asserted-Identity").as_deref(),
        Some("<sip:juliet@example.com>")
    );
    let c407 = challenge(
        &invite,
        407,
        "Proxy-Authenticate",
        &[
            r#"Digest realm="trunk.example", nonce="n1", qop="auth", algorithm=MD5"#,
            r#"Digest realm="trunk.example", nonce="n2", qop="auth", algorithm=SHA-256, opaque="op""#,
        ],
    );
    net.inject(net.b.addr, &c407);
    assert_eq!(net.count("ACK "), 1, "the 407 is ACKed");
    let again = net
        .sent("INVITE")
        .last()
        .expect("INVITE again")
        .text
        .clone();
    assert_eq!(header(&again, "CSeq").as_deref(), Some("2 INVITE"));
    assert_ne!(header(&invite, "Via"), header(&again, "Via"));
    let p = params(&header(&again, "Proxy-Authorization").expect("credentials"));
    assert_eq!(p["algorithm"], "SHA-256");
    assert_eq!((p["nonce"].as_str(), p["opaque"].as_str()), ("n2", "op"));
    assert_eq!(
        (p["username"].as_str(), p["nc"].as_str()),
        ("gw", "00000001")
    );
    assert_eq!(p["uri"], "sip:+4930123@trunk.example");
    assert_eq!(p["response"], expected(&p, "s3cret"));
    assert!(net.a.events.is_empty(), "the core hears nothing of it");

    // The next INVITE to the trunk carries credentials at once: the same
    // nonce, the count one up.
    let next = invite_to_trunk(&mut net, 2, "auth2@test");
    let p2 = params(&header(&next, "Proxy-Authorization").expect("pre-authorized"));
    assert_eq!(
        (p2["nonce"].as_str(), p2["nc"].as_str()),
        ("n2", "00000002")
    );
    assert_eq!(p2["response"], expected(&p2, "s3cret"));
}

#[test]
fn rfc3261_22_2_a_401_with_md5_is_answered_and_a_second_one_ends_the_call() {
    let mut net = Net::with(trunk("wrong", None), config("127.0.0.2:5060", 2));
    let invite = invite_to_trunk(&mut net, 1, "auth3@test");
    let c401 = challenge(
        &invite,
        401,
        "WWW-Authenticate",
        &[r#"Digest realm="trunk.example", nonce="m1", qop="auth""#],
    );
    net.inject(net.b.addr, &c401);
    let again = net
        .sent("INVITE")
        .last()
        .expect("INVITE again")
        .text
        .clone();
    let p = params(&header(&again, "Authorization").expect("credentials"));
    assert_eq!(p["algorithm"], "MD5");
    assert_eq!(p["response"], expected(&p, "wrong"));
    // Refused again (not stale): the password is wrong; the call ends.
    net.inject(
        net.b.addr,
        &challenge(
            &again,
            401,
            "WWW-Authenticate",
            &[r#"Digest realm="trunk.example", nonce="m2", qop="auth""#],
        ),
    );
    assert_eq!(net.count("INVITE sip:"), 2, "not a third time");
    assert!(matches!(
        net.a.events.pop_front(),
        Some(SipEvent::Rejected { status: 401, .. })
    ));
}

#[test]
fn rfc7616_3_3_a_stale_nonce_is_answered_again_and_another_realm_not_at_all() {
    let mut net = Net::with(
        trunk("s3cret", Some("trunk.example")),
        config("127.0.0.2:5060", 2),
    );
    let invite = invite_to_trunk(&mut net, 1, "auth4@test");
    net.inject(
        net.b.addr,
        &challenge(
            &invite,
            407,
            "Proxy-Authenticate",
            &[r#"Digest realm="trunk.example", nonce="s1", qop="auth", algorithm=SHA-256"#],
        ),
    );
    let second = net.sent("INVITE").last().expect("second").text.clone();
    net.inject(net.b.addr, &challenge(&second, 407, "Proxy-Authenticate", &[
        r#"Digest realm="trunk.example", nonce="s2", qop="auth", algorithm=SHA-256, stale=true"#,
    ]));
    let third = net.sent("INVITE").last().expect("third").text.clone();
    assert_eq!(header(&third, "CSeq").as_deref(), Some("3 INVITE"));
    let p = params(&header(&third, "Proxy-Authorization").expect("credentials"));
    assert_eq!((p["nonce"].as_str(), p["nc"].as_str()), ("s2", "00000001"));
    assert!(net.a.events.is_empty());

    let mut other = Net::with(
        trunk("s3cret", Some("trunk.example")),
        config("127.0.0.2:5060", 2),
    );
    let invite = invite_to_trunk(&mut other, 1, "auth5@test");
    other.inject(
        other.b.addr,
        &challenge(
            &invite,
            407,
            "Proxy-Authenticate",
            &[r#"Digest realm="elsewhere.example", nonce="e1", qop="auth""#],
        ),
    );
    assert_eq!(
        other.count("INVITE sip:"),
        1,
        "never answered for another realm"
    );
    assert!(matches!(
        other.a.events.pop_front(),
        Some(SipEvent::Rejected { status: 407, .. })
    ));
}

#[test]
fn an_untrusted_flood_gets_403_then_503_with_retry_after_then_nothing() {
    let b = Config {
        rate_per_source: Some((2, 2)),
        ..trusting(&["127.0.0.7/32"])
    };
    let mut net = Net::with(config("127.0.0.1:5060", 1), b);
    for n in 0..8 {
        let options = format!(
            "OPTIONS sip:127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKf{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=f{n}\r\nTo: <sip:127.0.0.2>\r\n\
             Call-ID: f{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        net.inject_b(&options);
    }
    assert_eq!(net.count("SIP/2.0 403"), 2, "the burst is answered");
    let busy = net.sent("SIP/2.0 503");
    assert_eq!(busy.len(), 2, "then 503 …");
    assert!(busy[0].text.contains("too many requests from 127.0.0.1"));
    assert!(
        busy[0]
            .header("Retry-After")
            .is_some_and(|s| s.parse::<u32>().is_ok())
    );
    assert_eq!(
        net.wire.iter().filter(|w| w.from == net.b.addr).count(),
        4,
        "… then nothing"
    );
    assert!(net.b.events.is_empty());
}

#[test]
fn rfc3261_11_2_options_gets_503_with_retry_after_while_the_gateway_takes_no_calls() {
    let mut net = Net::with(config("127.0.0.1:5060", 1), trusting(&["127.0.0.0/8"]));
    let options = |n: u32| {
        format!(
            "OPTIONS sip:127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKu{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=u{n}\r\nTo: <sip:127.0.0.2>\r\n\
             Call-ID: u{n}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    net.b.sip.set_unavailable(Some((
        "Service Unavailable (XMPP server not connected)".into(),
        10,
    )));
    net.inject_b(&options(1));
    let refused = net.sent("SIP/2.0 503")[0].text.clone();
    assert!(refused.contains("XMPP server not connected"), "{refused}");
    assert_eq!(header(&refused, "Retry-After").as_deref(), Some("10"));
    // Available again: 200.
    net.b.sip.set_unavailable(None);
    net.inject_b(&options(2));
    assert_eq!(net.count("SIP/2.0 200"), 1);
}

#[test]
fn a_reload_changes_who_is_trusted_for_the_next_request_and_refuses_a_bad_peer() {
    let mut net = Net::with(config("127.0.0.1:5060", 1), trusting(&["10.0.0.0/8"]));
    net.command(
        true,
        SipCommand::Invite {
            call: CallKey(1),
            call_id: CallId::new("before@test"),
            request_uri: format!("sip:bob@{}", net.b.addr),
            from: "sip:alice@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    net.settle();
    assert_eq!(net.count("SIP/2.0 403"), 1, "127.0.0.1 not trusted yet");
    let bad = vec![Peer {
        name: "broken".into(),
        uri: Some("not a uri".into()),
        credentials: None,
        identity: Default::default(),
        probe: true,
    }];
    assert!(net.b.sip.reload_peers(bad, None).is_err());
    net.b
        .sip
        .reload_peers(Vec::new(), Some(vec!["127.0.0.0/8".parse().expect("net")]))
        .expect("reloaded");
    let (_, b) = net.call("after@test", Transport::Udp);
    net.respond(b, 200, Some(ANSWER));
    net.settle();
    assert_eq!(net.count("SIP/2.0 403"), 1, "no new 403");
}
