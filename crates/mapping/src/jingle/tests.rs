#![allow(clippy::unwrap_used)]

use super::*;
use crate::ns;
use proptest::prelude::*;

fn el(xml: &str) -> Element {
    xml.parse().expect("test XML parses")
}

fn parse(xml: &str) -> Result<Jingle, JingleError> {
    Jingle::parse(&el(xml))
}

fn testdata(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect("testdata file exists")
}

/// parse → write → parse gives the same model, and writing is stable.
fn assert_round_trip(j: &Jingle) {
    let written = j.to_element();
    let again = Jingle::parse(&written).expect("written element parses");
    assert_eq!(&again, j);
    assert_eq!(again.to_element(), written);
}

#[test]
fn actions_round_trip() {
    for a in Action::ALL {
        assert_eq!(Action::parse(a.as_str()), Some(a));
    }
    assert_eq!(Action::parse("session-initiated"), None);
}

#[test]
fn stox_draft_session_initiate_corrected() {
    let j = Jingle::parse(&el(&testdata("stox-draft-session-initiate.xml"))).unwrap();
    assert_eq!(j.action, Action::SessionInitiate);
    assert_eq!(j.sid.as_str(), "a73sjjvkla37jfea");
    assert_eq!(j.initiator.as_deref(), Some("juliet@example.com/t3hr0zny"));
    assert_eq!(j.contents.len(), 1);
    let c = &j.contents[0];
    assert_eq!(c.name, "this-is-the-audio-content");
    assert_eq!(c.creator, Creator::Initiator);
    assert_eq!(c.senders, Senders::Both);
    let rtp = c.rtp().unwrap();
    assert_eq!(rtp.media, "audio");
    let ids: Vec<u8> = rtp.payload_types.iter().map(|p| p.id).collect();
    assert_eq!(ids, [96, 97, 18]);
    assert_eq!(rtp.payload_types[0], PayloadType::new(96, "speex", 16000));
    let Some(Transport::RawUdp(t)) = &c.transport else {
        panic!("raw-udp transport expected")
    };
    assert_eq!(
        t.candidates,
        [RawUdpCandidate {
            component: 1,
            generation: 0,
            id: "a9j3mnbtu1".into(),
            ip: "192.0.2.101".into(),
            port: 49172,
        }]
    );
    assert!(j.other.is_empty());
    assert_round_trip(&j);
}

#[test]
fn session_info_ringing_and_terminate() {
    let j = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'>\
         <ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/></jingle>",
    )
    .unwrap();
    assert_eq!(j.info.len(), 1);
    assert!(j.info[0].is("ringing", ns::JINGLE_RTP_INFO));
    assert_round_trip(&j);

    let mut t = Jingle::new(Action::SessionTerminate, Sid::from("s1"));
    let mut reason = Reason::new(ReasonCondition::Busy);
    reason.text = Some("486 Busy Here".into());
    reason.sip_status = Some(486);
    t.reason = Some(reason);
    let xml = String::from(&t.to_element());
    assert!(xml.contains("<busy/>"), "{xml}");
    assert!(
        xml.contains("<sip-status xmlns=\"urn:xmpp:stox:sip-status:0\" code=\"486\"/>")
            || xml.contains("code='486'"),
        "{xml}"
    );
    assert_round_trip(&t);
    let back = Jingle::parse(&t.to_element()).unwrap();
    assert_eq!(back.reason.unwrap().sip_status, Some(486));
}

#[test]
fn reason_with_content_and_unknown_conditions() {
    let j = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s1'>\
         <reason><alternative-session><sid>b84tkkwlmb48kgfb</sid></alternative-session>\
         <text>Use the other one</text></reason></jingle>",
    )
    .unwrap();
    let r = j.reason.clone().unwrap();
    assert_eq!(r.condition, ReasonCondition::AlternativeSession);
    assert_eq!(r.text.as_deref(), Some("Use the other one"));
    let xml = String::from(&j.to_element());
    assert_eq!(xml.matches("alternative-session>").count(), 2, "{xml}");
    assert!(xml.contains("b84tkkwlmb48kgfb"));
    assert_round_trip(&j);

    let j = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s1'>\
         <reason><no-error/></reason></jingle>",
    )
    .unwrap();
    let r = j.reason.unwrap();
    assert_eq!(r.condition, ReasonCondition::GeneralError);
    assert_eq!(r.other.len(), 1);
}

#[test]
fn conversations_session_initiate() {
    let j = Jingle::parse(&el(&testdata("conversations-session-initiate.xml"))).unwrap();
    let c = &j.contents[0];
    assert_eq!(c.name, "0");
    let rtp = c.rtp().unwrap();
    assert!(rtp.rtcp_mux);
    assert_eq!(rtp.payload_types.len(), 8);
    let opus = &rtp.payload_types[0];
    assert_eq!(opus.channels, Some(2));
    assert_eq!(
        opus.parameters,
        [
            Parameter::new("minptime", "10"),
            Parameter::new("useinbandfec", "1")
        ]
    );
    assert_eq!(
        opus.rtcp_fb,
        [RtcpFb {
            kind: "transport-cc".into(),
            ..RtcpFb::default()
        }]
    );
    assert!(opus.other.is_empty());
    assert_eq!(
        rtp.payload_types[1].parameters,
        [Parameter::new("", "111/111")]
    );
    let ids: Vec<(u16, Senders)> = rtp.hdrexts.iter().map(|h| (h.id, h.senders)).collect();
    assert_eq!(ids, [(1, Senders::Both), (3, Senders::Both)]);
    assert_eq!(
        rtp.hdrexts[0].uri,
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    );
    assert!(rtp.extmap_allow_mixed);
    assert_eq!(
        rtp.sources,
        [Source {
            ssrc: 2487362830,
            parameters: vec![
                Parameter::new("cname", "w/2dM3Zq+nDJbGsf"),
                Parameter::new("msid", "my-media-stream my-audio-track"),
            ],
            other: vec![],
        }]
    );
    assert!(rtp.other.is_empty(), "{:?}", rtp.other);
    let Some(Transport::IceUdp(t)) = &c.transport else {
        panic!("ICE-UDP expected")
    };
    assert_eq!(t.ufrag.as_deref(), Some("2Vsu"));
    assert_eq!(t.fingerprints.len(), 1);
    assert_eq!(t.fingerprints[0].setup.as_deref(), Some("actpass"));
    assert_eq!(t.fingerprints[0].hash, "sha-256");
    assert!(t.fingerprints[0].value.starts_with("62:27:6C"));
    assert_eq!(t.candidates.len(), 3);
    assert_eq!(t.candidates[1].ip, "2001:db8::42");
    assert_eq!(t.candidates[2].rel_addr.as_deref(), Some("192.168.1.42"));
    assert_eq!(t.candidates[2].rel_port, Some(45126));
    assert_eq!(t.candidates[0].network.as_deref(), Some("1"));
    assert_eq!(
        j.groups,
        [Group {
            semantics: "BUNDLE".into(),
            contents: vec!["0".into()]
        }]
    );
    assert!(j.other.is_empty());
    assert_round_trip(&j);
    let xml = String::from(&j.to_element());
    assert!(xml.contains("urn:xmpp:jingle:apps:grouping:0"));
    assert!(xml.contains("transport-cc"));
}

#[test]
fn unknown_attributes_and_children_survive() {
    let j = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s' x-foo='1'>\
         <content creator='initiator' name='a' media='audio' profile='RTP/AVP'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio' x-d='2'>\
         <payload-type id='0' name='PCMU' x-pt='3'><x xmlns='urn:example'/></payload-type>\
         <encryption required='1'><crypto crypto-suite='AES_CM_128_HMAC_SHA1_80' key-params='inline:abc' tag='1'/></encryption>\
         </description>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u' pwd='p' x-t='4'/>\
         <security xmlns='urn:example:sec'/>\
         </content><unknown xmlns='urn:example'/></jingle>",
    )
    .unwrap();
    let xml = String::from(&j.to_element());
    for needle in [
        "x-foo",
        "profile=",
        "x-d=",
        "x-pt=",
        "urn:example",
        "crypto-suite",
        "x-t=",
        "urn:example:sec",
    ] {
        assert!(xml.contains(needle), "{needle} lost: {xml}");
    }
    assert!(!xml.contains("urn:xmpp:stox:attributes:0"), "{xml}");
    assert_round_trip(&j);
}

#[test]
fn other_descriptions_and_transports_are_kept() {
    let j = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>\
         <content creator='initiator' name='file'>\
         <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'><file/></description>\
         <transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='x'/>\
         </content></jingle>",
    )
    .unwrap();
    let c = &j.contents[0];
    assert!(matches!(c.description, Some(Description::Other(_))));
    assert!(matches!(c.transport, Some(Transport::Other(_))));
    assert_round_trip(&j);
}

#[test]
fn bad_input_is_an_error() {
    type Check = fn(&JingleError) -> bool;
    let cases: &[(&str, Check)] = &[
        (
            "<jingle xmlns='urn:xmpp:jingle:0' action='session-initiate' sid='s'/>",
            |e| *e == JingleError::NotJingle,
        ),
        (
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate'/>",
            |e| *e == JingleError::MissingSid,
        ),
        (
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid=''/>",
            |e| *e == JingleError::MissingSid,
        ),
        ("<jingle xmlns='urn:xmpp:jingle:1' sid='s'/>", |e| {
            *e == JingleError::MissingAction
        }),
        (
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-start' sid='s'/>",
            |e| matches!(e, JingleError::UnknownAction(a) if a == "session-start"),
        ),
    ];
    for (xml, check) in cases {
        let e = parse(xml).unwrap_err();
        assert!(check(&e), "{xml}: {e:?}");
    }
    let content = |inner: &str| {
        format!(
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>\
             <content creator='initiator' name='a'>{inner}</content></jingle>"
        )
    };
    for inner in [
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='300'/></description>",
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='200'/></description>",
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type/></description>",
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='0' clockrate='99999999999999999999'/></description>",
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><payload-type id='0' channels='-1'/></description>",
        "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'><bandwidth type='AS'>lots</bandwidth></description>",
        "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><candidate component='1' foundation='1' ip='1.2.3.4' port='70000' priority='1'/></transport>",
        "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><candidate component='1' foundation='1' ip='1.2.3.4' port='7' priority='99999999999'/></transport>",
        "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><candidate component='1' ip='1.2.3.4' port='7' priority='1'/></transport>",
        "<transport xmlns='urn:xmpp:jingle:transports:raw-udp:1'><candidate ip='1.2.3.4' port='x'/></transport>",
    ] {
        let e = parse(&content(inner)).unwrap_err();
        assert!(matches!(e, JingleError::Invalid { .. }), "{inner}: {e:?}");
    }
    let e = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>\
         <content creator='nobody' name='a'/></jingle>",
    )
    .unwrap_err();
    assert!(matches!(
        e,
        JingleError::Invalid {
            element: "content",
            ..
        }
    ));
    let e = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>\
         <content creator='initiator'/></jingle>",
    )
    .unwrap_err();
    assert!(matches!(
        e,
        JingleError::Invalid {
            element: "content",
            ..
        }
    ));
}

#[test]
fn lenient_where_clients_are_sloppy() {
    let j = parse(
        "<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='s'>\
         <content name='a'><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'>\
         <candidate component='1' foundation='x1' ip='fe80::1' port='9' priority='5'/>\
         </transport></content></jingle>",
    )
    .unwrap();
    let Some(Transport::IceUdp(t)) = &j.contents[0].transport else {
        panic!("ICE-UDP expected")
    };
    let c = &t.candidates[0];
    assert_eq!(
        (
            c.generation,
            c.id.as_str(),
            c.protocol.as_str(),
            c.kind.as_str()
        ),
        (0, "", "udp", "host")
    );
    let xml = String::from(&j.to_element());
    assert!(
        xml.contains("generation"),
        "generation always emitted: {xml}"
    );
}

fn jingle_xml() -> impl Strategy<Value = String> {
    let attr = prop_oneof![
        Just("".to_owned()),
        "[a-z-]{0,20}".prop_map(|a| format!(" action='{a}'")),
        Just(" action='session-initiate'".to_owned()),
    ];
    let sid = prop_oneof![Just("".to_owned()), Just(" sid='x'".to_owned())];
    let num = prop_oneof![
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("127".to_owned()),
        Just("128".to_owned()),
        Just("65536".to_owned()),
        Just("99999999999999999999".to_owned()),
        "[0-9a-z]{0,6}",
    ];
    let inner = (num.clone(), num.clone(), num).prop_map(|(a, b, c)| {
        format!(
            "<content creator='initiator' name='n'>\
             <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
             <payload-type id='{a}' clockrate='{b}' channels='{c}'/>\
             <bandwidth type='AS'>{b}</bandwidth></description>\
             <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'>\
             <candidate component='{c}' foundation='f' ip='::1' port='{a}' priority='{b}' generation='{c}'/>\
             </transport></content>"
        )
    });
    (attr, sid, inner)
        .prop_map(|(a, s, i)| format!("<jingle xmlns='urn:xmpp:jingle:1'{a}{s}>{i}</jingle>"))
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in ".*") {
        if let Ok(e) = s.parse::<Element>() {
            let _ = Jingle::parse(&e);
        }
    }

    #[test]
    fn near_valid_jingle_never_panics(xml in jingle_xml()) {
        let e = el(&xml);
        if let Ok(j) = Jingle::parse(&e) {
            assert_round_trip(&j);
        }
    }
}

#[test]
fn xep0166_counts_over_the_limits_are_refused_before_parsing() {
    let limits = JingleLimits {
        max_contents: 2,
        max_payload_types: 3,
        max_candidates: 2,
        max_sources: 1,
        max_children: 2,
    };
    let wrap = |inner: &str| {
        el(&format!(
            "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>{inner}</jingle>"
        ))
    };
    let pts = |n: usize| -> String {
        (0..n)
            .map(|i| format!("<payload-type id='{i}' name='x' clockrate='8000'/>"))
            .collect()
    };
    let content = |desc: &str, transport: &str| {
        format!(
            "<content creator='initiator' name='a'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>{desc}</description><transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u' pwd='p'>{transport}</transport></content>"
        )
    };
    let cand = |n: usize| -> String {
        (0..n)
            .map(|i| format!("<candidate component='1' foundation='f' generation='0' id='c{i}' ip='::1' port='{}' priority='1' protocol='udp' type='host'/>", 1000 + i))
            .collect()
    };
    let ok = wrap(&content(&pts(3), &cand(2)));
    assert!(Jingle::parse_limited(&ok, &limits).is_ok());
    let cases = [
        (wrap(&content(&pts(4), "")), "payload types"),
        (wrap(&content(&pts(1), &cand(3))), "candidates"),
        (wrap(&content("", "").repeat(3)), "contents"),
        (
            wrap(&content(
                "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1'/><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2'/>",
                "",
            )),
            "sources",
        ),
        (
            wrap(&content(
                "<payload-type id='0'><parameter name='a' value='1'/><parameter name='b' value='1'/><parameter name='c' value='1'/></payload-type>",
                "",
            )),
            "children of one element",
        ),
    ];
    for (jingle, what) in cases {
        match Jingle::parse_limited(&jingle, &limits) {
            Err(JingleError::TooMany { what: got, .. }) => assert_eq!(got, what),
            other => panic!("{what}: {other:?}"),
        }
    }
}
