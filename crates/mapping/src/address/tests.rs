#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn uri(s: &str) -> SipUri {
    SipUri::parse(s).expect("test URI parses")
}

#[test]
fn parses_plain_uri() {
    let u = uri("sip:romeo@example.net");
    assert_eq!(u.scheme, Scheme::Sip);
    assert_eq!(u.user.as_deref(), Some("romeo"));
    assert_eq!(u.host, "example.net");
    assert_eq!(u.port, None);
    assert!(u.params.is_empty());
    assert_eq!(u.to_string(), "sip:romeo@example.net");
}

#[test]
fn parses_scheme_case_insensitively_port_params_headers() {
    let u = uri("SIPS:Juliet@Example.COM:5061;gr=balcony;transport=tcp;lr?subject=hi");
    assert_eq!(u.scheme, Scheme::Sips);
    assert_eq!(u.user.as_deref(), Some("Juliet"));
    assert_eq!(u.host, "example.com");
    assert_eq!(u.port, Some(5061));
    assert_eq!(u.param("gr"), Some("balcony"));
    assert_eq!(u.param("TRANSPORT"), Some("tcp"));
    assert_eq!(u.param("lr"), Some(""));
    assert_eq!(u.param("maddr"), None);
    assert_eq!(
        u.to_string(),
        "sips:Juliet@example.com:5061;gr=balcony;transport=tcp;lr"
    );
}

#[test]
fn parses_ipv6_hosts() {
    let u = uri("sip:alice@[2001:db8::1]:5080;transport=udp");
    assert_eq!(u.host, "2001:db8::1");
    assert_eq!(u.port, Some(5080));
    assert_eq!(u.to_string(), "sip:alice@[2001:db8::1]:5080;transport=udp");
    let u = uri("sip:[::1]");
    assert_eq!(u.user, None);
    assert_eq!(u.to_string(), "sip:[::1]");
}

#[test]
fn decodes_and_reencodes_the_user_part() {
    let u = uri("sip:j%C3%BCrgen%20x@example.de");
    assert_eq!(u.user.as_deref(), Some("jürgen x"));
    assert_eq!(u.to_string(), "sip:j%C3%BCrgen%20x@example.de");
    // user-unreserved characters stay as they are
    let u = uri("sip:a&b=c+d$e,f;g?h/i@example.de");
    assert_eq!(u.user.as_deref(), Some("a&b=c+d$e,f;g?h/i"));
    assert_eq!(u.to_string(), "sip:a&b=c+d$e,f;g?h/i@example.de");
    // password dropped
    assert_eq!(uri("sip:bob:secret@h").user.as_deref(), Some("bob"));
}

#[test]
fn rejects_bad_uris() {
    for bad in [
        "",
        "tel:+123",
        "sip:",
        "sip:@example.com",
        "sip:bob@",
        "sip:bob@host:99999",
        "sip:bob@host:port",
        "sip:bob@[::1",
        "sip:bob@[nope]",
        "sip:bob@ho st",
        "sip:%zz@host",
        "sip:%C3@host",
        "sip:bob@host;=x",
        "sip:bob@[::1]x",
    ] {
        assert!(SipUri::parse(bad).is_err(), "{bad:?} should not parse");
    }
    assert!(matches!(
        SipUri::parse("mailto:x@y"),
        Err(AddressError::NotSipUri(_))
    ));
}

#[test]
fn xep0106_escaping() {
    assert_eq!(escape_node("romeo@example.net"), "romeo\\40example.net");
    assert_eq!(
        escape_node("space cadet&'/:<>\"@"),
        "space\\20cadet\\26\\27\\2f\\3a\\3c\\3e\\22\\40"
    );
    // a backslash is escaped only where it would start an escape sequence
    assert_eq!(escape_node("c:\\net"), "c\\3a\\net");
    assert_eq!(escape_node("c:\\5c"), "c\\3a\\5c5c");
    assert_eq!(unescape_node("c\\3a\\5c5c"), "c:\\5c");
    assert_eq!(unescape_node("romeo\\40example.net"), "romeo@example.net");
    assert_eq!(unescape_node("a\\2F\\2f"), "a//");
    // invalid sequences are left alone
    assert_eq!(unescape_node("\\zz\\4\\41\\"), "\\zz\\4\\41\\");
}

#[test]
fn gateway_addresses_both_ways() {
    let u = gateway_jid_to_sip_user("romeo\\40example.net", None).unwrap();
    assert_eq!(u.to_string(), "sip:romeo@example.net");
    let u = gateway_jid_to_sip_user("romeo%example.net", None).unwrap();
    assert_eq!(u.to_string(), "sip:romeo@example.net");
    let u = gateway_jid_to_sip_user("romeo\\40example.net\\3a5080", Some("desk")).unwrap();
    assert_eq!(u.to_string(), "sip:romeo@example.net:5080;gr=desk");
    assert!(matches!(
        gateway_jid_to_sip_user("romeo", None),
        Err(AddressError::MissingSipDomain(_))
    ));
    assert!(matches!(
        gateway_jid_to_sip_user("\\40example.net", None),
        Err(AddressError::MissingUser(_))
    ));
    assert!(gateway_jid_to_sip_user("romeo\\40exa mple", None).is_err());

    let jid = sip_user_to_gateway_jid(&uri("sip:romeo@example.net"), "sip.example.com").unwrap();
    assert_eq!(jid.to_string(), "romeo\\40example.net@sip.example.com");
    let jid =
        sip_user_to_gateway_jid(&uri("sip:romeo@example.net;gr=desk"), "sip.example.com").unwrap();
    assert_eq!(jid.resource.as_deref(), Some("desk"));
    assert!(sip_user_to_gateway_jid(&uri("sip:example.net"), "sip.example.com").is_err());
}

#[test]
fn rfc7247_xmpp_users() {
    let jid = sip_to_xmpp_user(&uri("sip:juliet@example.com;gr=balcony")).unwrap();
    assert_eq!(jid.to_string(), "juliet@example.com/balcony");
    assert_eq!(jid.bare().to_string(), "juliet@example.com");
    let jid = sip_to_xmpp_user(&uri("sip:o'hara%2Fx&y@example.com")).unwrap();
    assert_eq!(jid.node.as_deref(), Some("o\\27hara\\2fx\\26y"));
    let back = xmpp_user_to_sip(&jid, false);
    assert_eq!(back.user.as_deref(), Some("o'hara/x&y"));
    assert_eq!(back.to_string(), "sip:o'hara/x&y@example.com");

    let jid = JidParts::parse("juliet@example.com/balcony").unwrap();
    assert_eq!(
        xmpp_user_to_sip(&jid, true).to_string(),
        "sip:juliet@example.com;gr=balcony"
    );
    assert_eq!(
        xmpp_user_to_sip(&jid, false).to_string(),
        "sip:juliet@example.com"
    );
    let jid = JidParts::parse("jürgen@example.de").unwrap();
    assert_eq!(
        xmpp_user_to_sip(&jid, false).to_string(),
        "sip:j%C3%BCrgen@example.de"
    );
}

#[test]
fn jid_parts() {
    let j = JidParts::parse("a@b/c/d").unwrap();
    assert_eq!(j.node.as_deref(), Some("a"));
    assert_eq!(j.domain, "b");
    assert_eq!(j.resource.as_deref(), Some("c/d"));
    assert_eq!(j.to_string(), "a@b/c/d");
    let j = JidParts::parse("example.com").unwrap();
    assert_eq!(j.node, None);
    for bad in ["", "@b", "a@", "a@b/", "a@b@c", "a b@c", "a@b c"] {
        assert!(JidParts::parse(bad).is_err(), "{bad:?}");
    }
}

proptest! {
    #[test]
    fn sip_uri_parse_never_panics(s in ".*") {
        let _ = SipUri::parse(&s);
        let _ = JidParts::parse(&s);
        let _ = gateway_jid_to_sip_user(&s, Some(&s));
        let _ = unescape_node(&s);
    }

    #[test]
    fn sip_uri_like_strings_never_panic(s in "(sips?|SIP):[a-z%0-9@\\[\\]:;=?&.]{0,40}") {
        if let Ok(u) = SipUri::parse(&s) {
            // whatever parsed prints to something that parses to the same URI
            let again = SipUri::parse(&u.to_string()).expect("printed URI parses");
            prop_assert_eq!(again, u);
        }
    }

    #[test]
    fn escaping_round_trips(s in "\\PC*") {
        prop_assert_eq!(unescape_node(&escape_node(&s)), s);
    }

    #[test]
    fn user_encoding_round_trips(user in "\\PC{1,20}", host in "[a-z]{1,10}\\.[a-z]{2,3}") {
        let u = SipUri::new(Some(user.clone()), host);
        let again = SipUri::parse(&u.to_string()).expect("encoded URI parses");
        prop_assert_eq!(again.user, Some(user));
    }
}
