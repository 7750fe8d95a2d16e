//! The registrar (RFC 3261 §10, §22; RFC 8760; RFC 5626) on the virtual
//! network: a phone (A's address, scripted) registers with B, the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sha2::Digest as _;
use stox_mapping::ids::CallId;
use stox_sipcore::registrar::{RegistrarConfig, UserKeys};
use stox_sipcore::{CallKey, Config, SipCommand, SipEvent};

fn registrar() -> Net {
    let b = Config {
        registrar: Some(RegistrarConfig {
            domains: vec!["web.example".into()],
            min_expires: 60,
            max_expires: 3600,
            nonce_secret: 9,
            algorithms: vec!["SHA-256".into(), "MD5".into()],
        }),
        // Nobody is trusted: only registered users get in.
        trusted_sources: Some(Vec::new()),
        ..config("127.0.0.2:5060", 2)
    };
    let mut net = Net::with(config("127.0.0.1:5060", 1), b);
    net.b.sip.set_user(
        "alice@web.example",
        Some(UserKeys::derive("alice", "web.example", "s3cret")),
    );
    net
}

fn register(n: u32, contact: &str, auth: Option<String>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:web.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr{n};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@web.example>;tag=r1\r\nTo: <sip:alice@web.example>\r\n\
         Call-ID: reg@test\r\nCSeq: {n} REGISTER\r\nContact: {contact}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// The digest answer to the last 401's SHA-256 challenge.
fn answer(net: &Net, user: &str, password: &str, nc: u32) -> String {
    let challenge = net
        .sent("SIP/2.0 401")
        .last()
        .expect("a 401")
        .text
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:") && l.contains("SHA-256"))
        .expect("a SHA-256 challenge")
        .to_owned();
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let h = |s: String| hex::encode(sha2::Sha256::digest(s.as_bytes()));
    let ha1 = h(format!("{user}:web.example:{password}"));
    let ha2 = h("REGISTER:sip:web.example".into());
    let nc = format!("{nc:08x}");
    let response = h(format!("{ha1}:{nonce}:{nc}:c1:auth:{ha2}"));
    format!(
        r#"Digest username="{user}", realm="web.example", nonce="{nonce}", uri="sip:web.example", response="{response}", qop=auth, nc={nc}, cnonce="c1", algorithm=SHA-256"#
    )
}

#[test]
fn rfc3261_10_3_a_register_is_challenged_then_bound_and_the_user_is_called_there() {
    let mut net = registrar();
    let contact = "<sip:alice@127.0.0.1:5060;transport=udp>;expires=600";
    net.inject_b(&register(1, contact, None));
    let challenge = net.sent("SIP/2.0 401")[0].text.clone();
    assert!(challenge.contains("algorithm=SHA-256") && challenge.contains("algorithm=MD5"));
    assert!(challenge.contains(r#"realm="web.example""#) && challenge.contains(r#"qop="auth""#));

    let creds = answer(&net, "alice", "s3cret", 1);
    net.inject_b(&register(2, contact, Some(creds)));
    let ok = net.sent("SIP/2.0 200")[0].text.clone();
    assert!(
        ok.contains("Contact: <sip:alice@127.0.0.1:5060;transport=udp>;expires=600"),
        "{ok}"
    );
    assert_eq!(net.b.sip.bindings("alice@web.example").len(), 1);
    let (aor, _, stored) = net.b.bindings.last().expect("stored").clone();
    assert_eq!(aor, "alice@web.example");
    assert_eq!(stored.expect("a binding").expires_in, 600);

    // The gateway calls alice: the INVITE goes to her contact.
    net.command(
        false,
        SipCommand::Invite {
            call: CallKey(5),
            call_id: CallId::new("to-alice@test"),
            request_uri: "sip:alice@web.example".into(),
            from: "sip:juliet@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    net.settle();
    let invite = net
        .wire
        .iter()
        .find(|w| w.from == net.b.addr && w.text.starts_with("INVITE "))
        .expect("an INVITE")
        .text
        .clone();
    assert!(
        invite.starts_with("INVITE sip:alice@127.0.0.1:5060;transport=udp SIP/2.0"),
        "{invite}"
    );
    assert!(
        header(&invite, "To")
            .unwrap()
            .contains("sip:alice@web.example")
    );
}

#[test]
fn rfc3261_22_wrong_and_unknown_credentials_get_403_and_an_unregistered_user_480() {
    let mut net = registrar();
    let contact = "<sip:alice@127.0.0.1:5060>";
    net.inject_b(&register(1, contact, None));
    let wrong = answer(&net, "alice", "nope", 1);
    net.inject_b(&register(2, contact, Some(wrong)));
    let refused = net.sent("SIP/2.0 403")[0].text.clone();
    assert!(refused.contains("wrong credentials"), "{refused}");
    let stranger = answer(&net, "mallory", "x", 2);
    net.inject_b(&register(3, contact, Some(stranger)));
    assert!(
        net.sent("SIP/2.0 403")[1]
            .text
            .contains("no user mallory@web.example")
    );
    assert!(net.b.sip.bindings("alice@web.example").is_empty());

    net.command(
        false,
        SipCommand::Invite {
            call: CallKey(6),
            call_id: CallId::new("nobody@test"),
            request_uri: "sip:alice@web.example".into(),
            from: "sip:juliet@example.com".into(),
            sdp: OFFER.into(),
            supported: Vec::new(),
            peer: None,
        },
    );
    net.settle();
    match net.event_b() {
        SipEvent::Rejected {
            status: 480,
            reason,
            ..
        } => {
            assert!(reason.contains("not registered"), "{reason}")
        }
        other => panic!("480 expected, got {other:?}"),
    }
}

#[test]
fn rfc5626_a_binding_with_instance_and_reg_id_keeps_its_flow_and_expires() {
    let mut net = registrar();
    let contact = "<sip:alice@df7jal23ls0d.invalid;transport=ws>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;expires=60";
    net.inject_b(&register(1, contact, None));
    let creds = answer(&net, "alice", "s3cret", 1);
    net.inject_b(&register(2, contact, Some(creds)));
    let ok = net.sent("SIP/2.0 200")[0].text.clone();
    assert_eq!(header(&ok, "Require").as_deref(), Some("outbound"), "{ok}");
    let binding = &net.b.sip.bindings("alice@web.example")[0];
    assert!(binding.key.contains("reg-id=1"), "{binding:?}");
    // Too brief: 423 with Min-Expires.
    net.inject_b(&register(
        3,
        "<sip:alice@127.0.0.1>;expires=5",
        Some(answer(&net, "alice", "s3cret", 2)),
    ));
    let brief = net.sent("SIP/2.0 423")[0].text.clone();
    assert_eq!(header(&brief, "Min-Expires").as_deref(), Some("60"));
    // The registration runs out: gone, and the store is told.
    net.run(std::time::Duration::from_secs(61));
    assert!(net.b.sip.bindings("alice@web.example").is_empty());
    assert!(matches!(net.b.bindings.last(), Some((_, _, None))));
}

#[test]
fn rfc3261_10_3_a_user_has_at_most_16_bindings() {
    let mut net = registrar();
    net.inject_b(&register(1, "<sip:alice@127.0.0.1:6000>", None));
    for n in 0..17u32 {
        let creds = answer(&net, "alice", "s3cret", n + 1);
        let contact = format!("<sip:alice@127.0.0.1:{}>", 6000 + n);
        net.inject_b(&register(n + 2, &contact, Some(creds)));
    }
    assert_eq!(net.b.sip.bindings("alice@web.example").len(), 16);
    let refused = net.sent("SIP/2.0 403").last().expect("a 403").text.clone();
    assert!(refused.contains("at most 16 bindings"), "{refused}");
}
