//! The component stream's input path, end to end: bytes from the server →
//! `StanzaFilter` (limits, before any tree is built) → the XML parser →
//! elements → the call core (`Core::handle`, which parses `<jingle/>` with
//! its limits). Checks:
//! - nothing panics, whatever the bytes and however they are split;
//! - the filter's output does not depend on how the input is chunked;
//! - every element that passes is within the depth and element limits;
//! - the filter's memory stays bounded by `max_stanza_bytes`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use minidom::Element;
use stox_call::{Core, CoreConfig, Input, Millis};
use stox_mapping::jingle::JingleLimits;
use stox_xmpp::limits::{StanzaFilter, StanzaLimits};

const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
    xmlns:stream='http://etherx.jabber.org/streams' id='f' from='sip.example.com'>";

fn limits() -> StanzaLimits {
    // Small limits, so that inputs a fuzzer makes reach them.
    StanzaLimits {
        max_stanza_bytes: 4096,
        max_depth: 8,
        max_elements: 64,
        max_attributes: 8,
        max_name_bytes: 32,
        max_attribute_bytes: 256,
        max_text_bytes: 512,
    }
}

fn filter(chunks: &[&[u8]]) -> (Vec<u8>, usize) {
    let mut f = StanzaFilter::new(limits());
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    for chunk in chunks {
        if f.feed(chunk, &mut out, &mut rejected).is_err() {
            break;
        }
    }
    (out, rejected.len())
}

fn depth_and_count(el: &Element) -> (usize, usize) {
    let mut stack = vec![(el, 1)];
    let (mut depth, mut count) = (0, 0);
    while let Some((e, d)) = stack.pop() {
        depth = depth.max(d);
        count += 1;
        stack.extend(e.children().map(|c| (c, d + 1)));
    }
    (depth, count)
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b % 16) + 1);
    let body = data.get(1..).unwrap_or_default();
    let whole: Vec<u8> = [HEADER, body].concat();
    let (out, rejected) = filter(&[&whole]);
    let chunks: Vec<&[u8]> = whole.chunks(split).collect();
    assert_eq!(
        filter(&chunks),
        (out.clone(), rejected),
        "the filter's output depends on how the input is split"
    );
    assert!(out.len() <= whole.len());

    // What passed, as the parser sees it (closed, so it is one document).
    let mut doc = out;
    doc.extend_from_slice(b"</stream:stream>");
    let Ok(text) = std::str::from_utf8(&doc) else {
        return;
    };
    let Ok(stream) = text.parse::<Element>() else {
        return;
    };
    let mut core = Core::new(
        CoreConfig {
            component: "sip.example.com".into(),
            domains: vec!["example.com".into()],
            ring_timeout_ms: 60_000,
            candidate_window_ms: 300,
            token_salt: 1,
            retry_after_secs: 10,
            peer_ping_ms: 30_000,
            max_duration_ms: 3_600_000,
            // Small enough to be reached, and the policy's paths explored.
            max_calls: 64,
            media: Default::default(),
            policy: Some(stox_call::policy::Policy {
                callers: vec!["example.com".into()],
                outbound_proxy: true,
                peers: vec![stox_call::policy::PeerRoute {
                    name: "trunk".into(),
                    domains: vec!["trunk.example".into()],
                    prefixes: vec!["+49".into()],
                    callers: Vec::new(),
                }],
                registrar_domains: vec!["web.example".into()],
            }),
            jingle_limits: JingleLimits {
                max_contents: 4,
                max_payload_types: 8,
                max_candidates: 8,
                max_sources: 8,
                max_children: 8,
            },
        },
        1,
    );
    let now = Millis(1_800_000_000_000);
    core.handle(now, Input::XmppLink { online: true });
    for stanza in stream.children() {
        let (depth, count) = depth_and_count(stanza);
        assert!(depth <= 8, "a stanza {depth} deep passed the filter");
        assert!(count <= 64, "a stanza of {count} elements passed the filter");
        let _ = core.handle(now, Input::Stanza(stanza.clone()));
    }
});
