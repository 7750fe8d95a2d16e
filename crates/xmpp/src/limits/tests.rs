#![allow(clippy::unwrap_used)]

use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
     xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='sip.example.com'>";

fn run_chunks(limits: StanzaLimits, chunks: &[&[u8]]) -> (String, Vec<Rejected>) {
    let mut f = StanzaFilter::new(limits);
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    for chunk in chunks {
        f.feed(chunk, &mut out, &mut rejected).expect("not fatal");
    }
    (String::from_utf8(out).expect("utf-8"), rejected)
}

fn run(limits: StanzaLimits, input: &str) -> (String, Vec<Rejected>) {
    run_chunks(limits, &[input.as_bytes()])
}

/// The same input fed one byte at a time gives the same result.
fn run_bytewise(limits: StanzaLimits, input: &str) -> (String, Vec<Rejected>) {
    let chunks: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
    run_chunks(limits, &chunks)
}

fn nested(depth: usize) -> String {
    format!(
        "<iq type='set' id='deep' from='mallory@example.com/x' to='sip.example.com'>{}{}</iq>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    )
}

const PING: &str = "<iq type='get' id='p1' from='juliet@example.com/b' to='sip.example.com'><ping xmlns='urn:xmpp:ping'/></iq>";

#[test]
fn stanzas_within_limits_pass_whole_and_stream_level_whitespace_is_dropped() {
    let input = format!(
        "{HEADER}\n{PING} <message to='a' from='b'><body>hi &amp; bye</body></message>\n</stream:stream>"
    );
    let want = format!(
        "{HEADER}{PING}<message to='a' from='b'><body>hi &amp; bye</body></message></stream:stream>"
    );
    assert_eq!(run(StanzaLimits::default(), &input), (want.clone(), vec![]));
    assert_eq!(
        run_bytewise(StanzaLimits::default(), &input),
        (want, vec![])
    );
}

#[test]
fn an_attribute_value_may_hold_gt_and_slash() {
    let stanza = "<iq id='a&gt;b' type='set' from='x/y>z' to='c'><q a=\"1/>2\"/></iq>";
    let input = format!("{HEADER}{stanza}");
    assert_eq!(
        run(StanzaLimits::default(), &input).0,
        format!("{HEADER}{stanza}")
    );
}

#[test]
fn rfc6120_stanza_nested_too_deep_is_dropped_and_the_next_one_passes() {
    let input = format!("{HEADER}{}{PING}", nested(10_000));
    for (out, rejected) in [
        run(StanzaLimits::default(), &input),
        run_bytewise(StanzaLimits::default(), &input),
    ] {
        assert_eq!(out, format!("{HEADER}{PING}"));
        assert_eq!(
            rejected,
            vec![Rejected {
                name: "iq".into(),
                from: Some("mallory@example.com/x".into()),
                to: Some("sip.example.com".into()),
                id: Some("deep".into()),
                kind: Some("set".into()),
                violation: Violation::Depth(32),
            }]
        );
    }
}

#[test]
fn depth_limit_is_exact_including_empty_elements() {
    let limits = StanzaLimits {
        max_depth: 3,
        ..StanzaLimits::default()
    };
    // iq (1) > a (2) > b (3): allowed; one more level, opened or empty, is not.
    let ok = "<iq><a><b/></a></iq>";
    let open = "<iq><a><b><c></c></b></a></iq>";
    let empty = "<iq><a><b><c/></b></a></iq>";
    assert!(run(limits, &format!("{HEADER}{ok}")).1.is_empty());
    assert_eq!(
        run(limits, &format!("{HEADER}{open}")).1[0].violation,
        Violation::Depth(3)
    );
    assert_eq!(
        run(limits, &format!("{HEADER}{empty}")).1[0].violation,
        Violation::Depth(3)
    );
}

#[test]
fn a_one_mebibyte_attribute_is_dropped_without_buffering_it() {
    let big = "x".repeat(1 << 20);
    let input = format!(
        "{HEADER}<iq type='get' id='big' to='sip.example.com' from='m@e/r' junk='{big}'/>{PING}"
    );
    let mut f = StanzaFilter::new(StanzaLimits::default());
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    for chunk in input.as_bytes().chunks(4096) {
        f.feed(chunk, &mut out, &mut rejected).expect("not fatal");
        assert!(
            f.stanza.capacity() <= 256 * 1024 + 4096,
            "buffer stays bounded"
        );
    }
    assert_eq!(String::from_utf8(out).unwrap(), format!("{HEADER}{PING}"));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].violation, Violation::AttributeBytes(4096));
    assert_eq!(rejected[0].id.as_deref(), Some("big"));
    assert_eq!(rejected[0].kind.as_deref(), Some("get"));
}

#[test]
fn a_session_initiate_with_100000_payload_types_is_dropped() {
    let pts: String = (0..100_000)
        .map(|i| format!("<payload-type id='{}' name='x'/>", i % 128))
        .collect();
    let input = format!(
        "{HEADER}<iq type='set' id='s1' from='m@e/r' to='r\\40x@sip.example.com'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'><content name='a'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>{pts}</description></content></jingle></iq>{PING}"
    );
    let (out, rejected) = run(StanzaLimits::default(), &input);
    assert_eq!(out, format!("{HEADER}{PING}"));
    // Whichever comes first of the element count and the size.
    assert!(matches!(
        rejected[0].violation,
        Violation::Elements(4096) | Violation::StanzaBytes(_)
    ));
    assert_eq!(rejected[0].to.as_deref(), Some("r\\40x@sip.example.com"));
}

#[test]
fn each_limit_has_its_violation() {
    let l = StanzaLimits {
        max_stanza_bytes: 200,
        max_depth: 8,
        max_elements: 3,
        max_attributes: 2,
        max_name_bytes: 10,
        max_attribute_bytes: 10,
        max_text_bytes: 10,
    };
    let cases: &[(&str, Violation)] = &[
        (
            "<message><body>01234567890123</body></message>",
            Violation::TextBytes(10),
        ),
        ("<message a='1' b='2' c='3'/>", Violation::Attributes(2)),
        (
            "<message><abcdefghijk/></message>",
            Violation::NameBytes(10),
        ),
        ("<message abcdefghijk='1'/>", Violation::NameBytes(10)),
        ("<message a='01234567890'/>", Violation::AttributeBytes(10)),
        ("<message><a/><b/><c/></message>", Violation::Elements(3)),
        (
            "<message><body>&aaaaaaaaaaaaaaaaaaaaa;</body></message>",
            Violation::TextBytes(10),
        ),
        (
            "<message><!-- hi --></message>",
            Violation::Markup("a comment"),
        ),
        (
            "<message><![CDATA[ <x> ]]></message>",
            Violation::Markup("a CDATA section"),
        ),
        (
            "<message><?pi x?></message>",
            Violation::Markup("a processing instruction"),
        ),
        (
            "<message><!DOCTYPE x></message>",
            Violation::Markup("a declaration"),
        ),
    ];
    for (stanza, want) in cases {
        let (out, rejected) = run(l, &format!("{HEADER}{stanza}<presence/>"));
        assert_eq!(out, format!("{HEADER}<presence/>"), "{stanza}");
        assert_eq!(rejected.len(), 1, "{stanza}");
        assert_eq!(&rejected[0].violation, want, "{stanza}");
    }
    let big = format!("<message>{}</message>", "<a>x</a>".repeat(2));
    let l2 = StanzaLimits {
        max_stanza_bytes: 20,
        ..l
    };
    assert_eq!(
        run(l2, &format!("{HEADER}{big}")).1[0].violation,
        Violation::StanzaBytes(20)
    );
}

#[test]
fn an_overlong_reference_is_dropped_before_the_parser_sees_it() {
    let stanza = format!("<message a='&{};'/>", "a".repeat(40));
    let (out, rejected) = run(StanzaLimits::default(), &format!("{HEADER}{stanza}"));
    assert_eq!(out, HEADER);
    assert_eq!(rejected[0].violation, Violation::Reference);
    // The same in character data.
    let stanza = format!("<message><body>&{};</body></message>", "b".repeat(40));
    let (out, rejected) = run(StanzaLimits::default(), &format!("{HEADER}{stanza}"));
    assert_eq!(out, HEADER);
    assert_eq!(rejected[0].violation, Violation::Reference);
}

#[test]
fn routing_attributes_are_unescaped_and_overlong_ones_are_not_kept() {
    let long = "y".repeat(5000);
    let stanza = format!(
        "<iq type='set' id='a&amp;b&apos;&#x41;' from=\"o&apos;brien@e/r\" to='{long}'><a><b><c/></b></a></iq>"
    );
    let limits = StanzaLimits {
        max_depth: 2,
        max_attribute_bytes: 6000,
        ..StanzaLimits::default()
    };
    let (_, rejected) = run(limits, &format!("{HEADER}{stanza}"));
    assert_eq!(rejected[0].id.as_deref(), Some("a&b'A"));
    assert_eq!(rejected[0].from.as_deref(), Some("o'brien@e/r"));
    assert_eq!(rejected[0].to, None);
}

#[test]
fn prefixed_stanza_names_report_their_local_name() {
    let (_, rejected) = run(
        StanzaLimits {
            max_depth: 1,
            ..StanzaLimits::default()
        },
        &format!("{HEADER}<stream:error><x/></stream:error>"),
    );
    assert_eq!(rejected[0].name, "error");
}

#[test]
fn the_stream_end_passes_and_ends_filtering() {
    let input = format!("{HEADER}{PING}</stream:stream>");
    let (out, rejected) = run(StanzaLimits::default(), &input);
    assert_eq!(out, input);
    assert!(rejected.is_empty());
}

#[test]
fn a_header_that_never_ends_is_fatal() {
    let mut f = StanzaFilter::new(StanzaLimits::default());
    let junk = vec![b'x'; 20_000];
    let err = f
        .feed(&junk, &mut Vec::new(), &mut Vec::new())
        .expect_err("fatal");
    assert!(err.0.contains("stream header"));
}

#[test]
fn limits_above_the_parsers_token_limit_are_refused() {
    assert!(StanzaLimits::default().check().is_ok());
    let too_big = StanzaLimits {
        max_attribute_bytes: PARSER_TOKEN_LIMIT,
        ..StanzaLimits::default()
    };
    assert!(too_big.check().unwrap_err().contains("max_attribute_bytes"));
    let zero = StanzaLimits {
        max_depth: 0,
        ..StanzaLimits::default()
    };
    assert!(zero.check().unwrap_err().contains("max_depth"));
}

/// What passes the filter is what rxml/minidom parse, stanza for stanza.
#[test]
fn filtered_output_parses_as_the_original_stanzas() {
    let stanzas = [
        PING.to_owned(),
        "<message from='a@b/c' to='d@sip.example.com' type='chat'><body>x &lt; y</body></message>"
            .to_owned(),
        "<presence from='a@b/c' to='sip.example.com'/>".to_owned(),
    ];
    let input = format!(
        "{HEADER}{}{}{}",
        stanzas[0],
        nested(100),
        stanzas[1..].join("\n")
    );
    let (out, rejected) = run(StanzaLimits::default(), &input);
    assert_eq!(rejected.len(), 1);
    let doc: minidom::Element = format!("{out}</stream:stream>").parse().expect("parses");
    let names: Vec<&str> = doc.children().map(|c| c.name()).collect();
    assert_eq!(names, ["iq", "message", "presence"]);
}
