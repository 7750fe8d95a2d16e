#![allow(clippy::unwrap_used)]

use super::*;
use crate::jingle::{
    Creator, Description, IceCandidate, IceUdpTransport, Jingle, Parameter, PayloadType,
    RawUdpCandidate, RawUdpTransport, RtpDescription, Transport,
};
use crate::ns;
use bytesstr::BytesStr;

mod modern;
mod props;

pub(super) fn testdata(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect("testdata file exists")
}

pub(super) fn origin(username: &str) -> SdpOrigin {
    SdpOrigin {
        username: username.to_owned(),
        session_id: 2890844526,
        session_version: 1,
    }
}

/// Every SDP we write is RFC 8866 shaped: CRLF only, and ezk parses it.
pub(super) fn assert_valid_sdp(sdp: &str) {
    assert!(sdp.ends_with("\r\n"), "{sdp}");
    assert!(
        !sdp.replace("\r\n", "").contains(['\r', '\n']),
        "bare CR/LF: {sdp:?}"
    );
    // ezk only knows the media types audio/video/text/application, while
    // RFC 8866 allows any token (e.g. `message`, `image`): check the rest of
    // the line with one it knows.
    let known = ["audio", "video", "text", "application"];
    let checked: String = sdp
        .split_inclusive("\r\n")
        .map(
            |line| match line.strip_prefix("m=").and_then(|r| r.split_once(' ')) {
                Some((media, rest)) if !known.contains(&media) => format!("m=application {rest}"),
                _ => line.to_owned(),
            },
        )
        .collect();
    ezk_sdp_types::SessionDescription::parse(&BytesStr::from(checked))
        .unwrap_or_else(|e| panic!("ezk rejects our SDP ({e}):\n{sdp}"));
}

fn rtp(c: &Content) -> &RtpDescription {
    c.rtp().expect("RTP description")
}

fn ice(c: &Content) -> &IceUdpTransport {
    match &c.transport {
        Some(Transport::IceUdp(t)) => t,
        other => panic!("ICE-UDP expected, got {other:?}"),
    }
}

fn raw_udp(c: &Content) -> &RawUdpTransport {
    match &c.transport {
        Some(Transport::RawUdp(t)) => t,
        other => panic!("raw UDP expected, got {other:?}"),
    }
}

fn ids(c: &Content) -> Vec<u8> {
    rtp(c).payload_types.iter().map(|p| p.id).collect()
}

fn sdp_attrs(c: &Content) -> Vec<(String, Option<String>, bool)> {
    rtp(c)
        .other
        .iter()
        .filter(|e| e.is("sdp-attribute", ns::STOX_SDP))
        .map(|e| {
            (
                e.attr("name").unwrap_or_default().to_owned(),
                e.attr("value").map(str::to_owned),
                e.attr("level") == Some("session"),
            )
        })
        .collect()
}

fn jingle_file(name: &str) -> Jingle {
    Jingle::parse(&testdata(name).parse().expect("XML")).expect("Jingle")
}

/// SDP → Jingle → SDP → Jingle keeps the Jingle side identical.
fn assert_offer_round_trip(sdp: &str, author: SdpAuthor) -> MappedSdp {
    let first = sdp_offer_to_jingle(sdp, author).unwrap();
    let written = jingle_to_sdp_offer(
        &first.contents,
        &[],
        author,
        &origin(&first.origin_username),
    )
    .unwrap();
    assert_valid_sdp(&written);
    let second = sdp_offer_to_jingle(&written, author).unwrap();
    assert_eq!(
        second.contents, first.contents,
        "round trip changed the contents:\n{written}"
    );
    assert_eq!(second.origin_username, first.origin_username);
    first
}

#[test]
fn stox_draft_invite_to_jingle() {
    let m = sdp_offer_to_jingle(&testdata("stox-draft-invite.sdp"), SdpAuthor::Initiator).unwrap();
    assert_eq!(m.origin_username, "juliet");
    assert!(m.declined.is_empty());
    let c = &m.contents[0];
    assert_eq!(c.name, "audio");
    assert_eq!(c.creator, Creator::Initiator);
    assert_eq!(c.senders, Senders::Both);
    assert_eq!(
        rtp(c).payload_types,
        [
            PayloadType::new(96, "speex", 16000),
            PayloadType::new(97, "speex", 8000),
            PayloadType::new(18, "G729", 8000),
        ]
    );
    let t = raw_udp(c);
    assert_eq!(
        t.candidates,
        [
            RawUdpCandidate {
                component: 1,
                generation: 0,
                id: "m0c0".into(),
                ip: "192.0.2.101".into(),
                port: 49172
            },
            RawUdpCandidate {
                component: 2,
                generation: 0,
                id: "m0c1".into(),
                ip: "192.0.2.101".into(),
                port: 49173
            },
        ]
    );
    assert_offer_round_trip(&testdata("stox-draft-invite.sdp"), SdpAuthor::Initiator);
}

#[test]
fn stox_draft_session_initiate_to_invite() {
    let j = jingle_file("stox-draft-session-initiate.xml");
    let sdp =
        jingle_to_sdp_offer(&j.contents, &[], SdpAuthor::Initiator, &origin("juliet")).unwrap();
    assert_eq!(
        sdp,
        "v=0\r\n\
         o=juliet 2890844526 1 IN IP4 192.0.2.101\r\n\
         s=-\r\n\
         t=0 0\r\n\
         m=audio 49172 RTP/AVP 96 97 18\r\n\
         c=IN IP4 192.0.2.101\r\n\
         a=rtpmap:96 speex/16000\r\n\
         a=rtpmap:97 speex/8000\r\n\
         a=rtpmap:18 G729/8000\r\n\
         a=sendrecv\r\n\
         a=mid:this-is-the-audio-content\r\n"
    );
    assert_valid_sdp(&sdp);
}

#[test]
fn stox_draft_200ok_to_session_accept() {
    let offered = jingle_file("stox-draft-session-initiate.xml").contents;
    let m = sdp_answer_to_jingle(
        &testdata("stox-draft-200ok.sdp"),
        &offered,
        SdpAuthor::Responder,
    )
    .unwrap();
    assert_eq!(m.origin_username, "romeo");
    let expected = jingle_file("stox-draft-session-accept.xml").contents;
    // Same meaning as the corrected draft example (ids are ours).
    let c = &m.contents[0];
    assert_eq!(c.name, expected[0].name);
    assert_eq!(c.senders, Senders::Both);
    assert_eq!(
        rtp(c).payload_types,
        rtp(&expected[0]).payload_types,
        "responder's order"
    );
    let got: Vec<_> = raw_udp(c)
        .candidates
        .iter()
        .map(|c| (c.component, c.ip.as_str(), c.port))
        .collect();
    assert_eq!(got, [(1, "192.0.2.201", 3456), (2, "192.0.2.201", 3457)]);
}

#[test]
fn stox_draft_session_accept_to_200ok() {
    let offer = testdata("stox-draft-invite.sdp");
    let mapped = sdp_offer_to_jingle(&offer, SdpAuthor::Initiator).unwrap();
    let mut accept = jingle_file("stox-draft-session-accept.xml").contents;
    accept[0].name = mapped.contents[0].name.clone();
    let sdp =
        jingle_to_sdp_answer(&accept, &[], SdpAuthor::Responder, &origin("romeo"), &offer).unwrap();
    assert_eq!(
        sdp,
        "v=0\r\n\
         o=romeo 2890844526 1 IN IP4 192.0.2.201\r\n\
         s=-\r\n\
         t=0 0\r\n\
         m=audio 3456 RTP/AVP 97 18 0\r\n\
         c=IN IP4 192.0.2.201\r\n\
         a=rtpmap:97 speex/8000\r\n\
         a=rtpmap:18 G729/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn asterisk_plain_rtp_avp() {
    let m = assert_offer_round_trip(&testdata("asterisk-offer.sdp"), SdpAuthor::Initiator);
    assert_eq!(m.origin_username, "-");
    let c = &m.contents[0];
    assert_eq!(ids(c), [0, 8, 9, 3, 101]);
    let pts = &rtp(c).payload_types;
    assert_eq!(pts[3].name.as_deref(), Some("GSM"));
    assert_eq!(pts[4].parameters, [Parameter::new("", "0-16")]);
    assert!(
        pts.iter()
            .all(|p| p.ptime == Some(20) && p.maxptime == Some(150))
    );
    let sdp = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert!(sdp.contains("a=fmtp:101 0-16\r\n"), "{sdp}");
    assert!(sdp.contains("a=ptime:20\r\na=maxptime:150\r\n"), "{sdp}");
    assert!(
        sdp.contains("m=audio 13810 RTP/AVP 0 8 9 3 101\r\n"),
        "{sdp}"
    );
}

#[test]
fn baresip_fmtp_bandwidth_rtcp_and_unknown_attributes() {
    let m = assert_offer_round_trip(&testdata("baresip-offer.sdp"), SdpAuthor::Initiator);
    assert_eq!(m.contents.len(), 2);
    let audio = &m.contents[0];
    let opus = &rtp(audio).payload_types[0];
    assert_eq!(opus.channels, Some(2));
    assert_eq!(
        opus.parameters,
        [
            Parameter::new("stereo", "1"),
            Parameter::new("sprop-stereo", "1"),
            Parameter::new("maxaveragebitrate", "28000"),
        ]
    );
    // static types get their names without rtpmap lines
    assert_eq!(
        rtp(audio).payload_types[1],
        PayloadType::new(0, "PCMU", 8000)
    );
    assert_eq!(
        rtp(audio).payload_types[3],
        PayloadType::new(18, "G729", 8000)
    );
    assert_eq!(
        rtp(audio).bandwidth,
        Some(crate::jingle::Bandwidth {
            kind: "AS".into(),
            value: 64
        })
    );
    assert_eq!(raw_udp(audio).candidates[1].port, 10175);
    assert_eq!(
        sdp_attrs(audio),
        [("label".to_owned(), Some("1".to_owned()), false)]
    );
    assert_eq!(
        rtp(audio).sources,
        [crate::jingle::Source {
            ssrc: 2920472631,
            parameters: vec![Parameter::new("cname", "sip:alice@example.org")],
            other: vec![],
        }]
    );
    let video = &m.contents[1];
    assert_eq!(video.name, "video");
    let sdp = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    for line in [
        "a=fmtp:96 stereo=1;sprop-stereo=1;maxaveragebitrate=28000\r\n",
        "b=AS:64\r\n",
        "a=label:1\r\n",
        "a=ssrc:2920472631 cname:sip:alice@example.org\r\n",
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=fmtp:101 0-15\r\n",
        "a=fmtp:97 packetization-mode=1;profile-level-id=42e01f\r\n",
    ] {
        assert!(sdp.contains(line), "missing {line:?} in\n{sdp}");
    }
}

#[test]
fn webrtc_offer_ice_dtls_rtcp_mux_bundle() {
    let m = assert_offer_round_trip(&testdata("webrtc-offer.sdp"), SdpAuthor::Initiator);
    assert_eq!(m.contents.len(), 2);
    let (audio, video) = (&m.contents[0], &m.contents[1]);
    assert_eq!((audio.name.as_str(), video.name.as_str()), ("0", "1"));
    assert_eq!(audio.senders, Senders::Both);
    assert_eq!(
        video.senders,
        Senders::Initiator,
        "sendonly by the initiator"
    );
    assert!(rtp(audio).rtcp_mux);
    let t = ice(audio);
    assert_eq!(t.ufrag.as_deref(), Some("Oyef7uvBlwafI3hT"));
    assert_eq!(t.pwd.as_deref(), Some("T0teqPLNQQOf+5W+ls+P2p16"));
    assert_eq!(t.candidates.len(), 3);
    assert_eq!(
        t.candidates[1],
        IceCandidate {
            component: 1,
            foundation: "1853887674".into(),
            generation: 0,
            id: "m0c1".into(),
            ip: "203.0.113.50".into(),
            port: 54400,
            priority: 1518280447,
            protocol: "udp".into(),
            kind: "srflx".into(),
            rel_addr: Some("192.168.0.196".into()),
            rel_port: Some(54400),
            tcptype: None,
            network: Some("1".into()),
        }
    );
    assert_eq!(t.candidates[2].ip, "2001:db8::196");
    assert_eq!(t.fingerprints.len(), 1);
    assert_eq!(t.fingerprints[0].hash, "sha-256");
    assert_eq!(t.fingerprints[0].setup.as_deref(), Some("actpass"));
    assert_eq!(
        m.groups,
        [crate::jingle::Group {
            semantics: "BUNDLE".into(),
            contents: vec!["0".into(), "1".into()]
        }]
    );
    let attrs = sdp_attrs(audio);
    assert!(
        !attrs.iter().any(|(n, _, _)| n == "group" || n == "rtcp-fb"),
        "{attrs:?}"
    );
    assert_eq!(
        rtp(audio).payload_types[0].rtcp_fb[0].kind,
        "transport-cc",
        "a=rtcp-fb:111 transport-cc"
    );
    assert!(attrs.contains(&("ice-options".into(), Some("trickle".into()), false)));
    assert!(attrs.contains(&("rtcp".into(), Some("9 IN IP4 0.0.0.0".into()), false)));
    let opus = &rtp(audio).payload_types[0];
    assert_eq!(
        opus.parameters,
        [
            Parameter::new("minptime", "10"),
            Parameter::new("useinbandfec", "1")
        ]
    );
    assert_eq!(
        rtp(audio).payload_types[1].parameters,
        [Parameter::new("", "111/111")]
    );

    let sdp =
        jingle_to_sdp_offer(&m.contents, &m.groups, SdpAuthor::Initiator, &origin("-")).unwrap();
    assert_eq!(sdp.matches("a=group:BUNDLE 0 1\r\n").count(), 1, "{sdp}");
    for line in [
        "m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 203.0.113.50\r\n",
        "a=candidate:2157334355 1 udp 2122194687 2001:db8::196 54401 typ host generation 0 network-id 2\r\n",
        "a=candidate:1853887674 1 udp 1518280447 203.0.113.50 54400 typ srflx raddr 192.168.0.196 rport 54400 generation 0 network-id 1\r\n",
        "a=setup:actpass\r\n",
        "a=fingerprint:sha-256 49:66:12:17",
        "a=sendonly\r\na=mid:1\r\n",
        "a=rtcp-fb:96 nack pli\r\n",
        "a=fmtp:97 apt=96\r\n",
        "a=msid-semantic: WMS stream1\r\n",
    ] {
        assert!(sdp.contains(line), "missing {line:?} in\n{sdp}");
    }
}

#[test]
fn conversations_session_initiate_to_sdp() {
    let j = jingle_file("conversations-session-initiate.xml");
    let sdp =
        jingle_to_sdp_offer(&j.contents, &[], SdpAuthor::Initiator, &origin("romeo")).unwrap();
    assert_valid_sdp(&sdp);
    for line in [
        "o=romeo 2890844526 1 IN IP4 203.0.113.7\r\n",
        "m=audio 45126 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 203.0.113.7\r\n",
        "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n",
        "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n",
        "a=rtpmap:110 telephone-event/48000\r\na=fmtp:110 0-15\r\n",
        "a=rtcp-mux\r\na=sendrecv\r\na=mid:0\r\n",
        "a=ice-ufrag:2Vsu\r\na=ice-pwd:R0i4nKvAVXh0ByCSfbd6rAy0\r\n",
        "a=candidate:1138357548 1 udp 2122260223 192.168.1.42 45126 typ host generation 0 network-id 1\r\n",
        "a=candidate:3217521916 1 udp 2122197247 2001:db8::42 38571 typ host generation 0 network-id 2\r\n",
        "a=candidate:842163049 1 udp 1686052607 203.0.113.7 45126 typ srflx raddr 192.168.1.42 rport 45126 generation 0 network-id 1\r\n",
        "a=fingerprint:sha-256 62:27:6C:0B:3D:43:B9:31:53:72:10:3A:7A:0F:F8:68:A2:8B:D1:F5:1E:F6:B8:0D:21:5E:88:2D:FE:1C:F5:2B\r\na=setup:actpass\r\n",
    ] {
        assert!(sdp.contains(line), "missing {line:?} in\n{sdp}");
    }
    // And back: the SIP side sees the same codecs, candidates and roles.
    let back = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator).unwrap();
    let (a, b) = (&back.contents[0], &j.contents[0]);
    assert_eq!(a.name, b.name);
    assert_eq!(rtp(a).payload_types, rtp(b).payload_types);
    assert_eq!(ice(a).fingerprints, ice(b).fingerprints);
    let cands = |t: &IceUdpTransport| {
        t.candidates
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.id.clear();
                c
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(cands(ice(a)), cands(ice(b)));
}

fn content_with_senders(senders: Senders) -> Content {
    let mut c = Content::new("audio");
    c.senders = senders;
    c.description = Some(Description::Rtp(RtpDescription {
        media: "audio".into(),
        payload_types: vec![PayloadType::new(0, "PCMU", 8000)],
        ..RtpDescription::default()
    }));
    c.transport = Some(Transport::RawUdp(RawUdpTransport {
        candidates: vec![RawUdpCandidate {
            component: 1,
            generation: 0,
            id: "x".into(),
            ip: "2001:db8::5".into(),
            port: 4000,
        }],
        other: vec![],
    }));
    c
}

#[test]
fn senders_are_role_aware_in_offers_and_answers() {
    use Senders::*;
    let cases = [
        (Both, SdpAuthor::Initiator, "sendrecv"),
        (Initiator, SdpAuthor::Initiator, "sendonly"),
        (Responder, SdpAuthor::Initiator, "recvonly"),
        (None, SdpAuthor::Initiator, "inactive"),
        (Both, SdpAuthor::Responder, "sendrecv"),
        (Initiator, SdpAuthor::Responder, "recvonly"),
        (Responder, SdpAuthor::Responder, "sendonly"),
        (None, SdpAuthor::Responder, "inactive"),
    ];
    for (senders, author, direction) in cases {
        assert_eq!(direction_for_senders(senders, author), direction);
        assert_eq!(senders_from_direction(direction, author), Some(senders));
        let offered = [content_with_senders(Both)];
        let sdp = jingle_to_sdp_offer(&[content_with_senders(senders)], &[], author, &origin("u"))
            .unwrap();
        assert!(sdp.contains(&format!("a={direction}\r\n")), "{sdp}");
        assert!(sdp.contains("c=IN IP6 2001:db8::5\r\n"), "{sdp}");
        let back = sdp_offer_to_jingle(&sdp, author).unwrap();
        assert_eq!(back.contents[0].senders, senders);
        let back = sdp_answer_to_jingle(&sdp, &offered, author).unwrap();
        assert_eq!(back.contents[0].senders, senders);
    }
    // Session-level direction applies when the m= section has none.
    let sdp = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\na=recvonly\r\nm=audio 4000 RTP/AVP 0\r\n";
    let m = sdp_offer_to_jingle(sdp, SdpAuthor::Responder).unwrap();
    assert_eq!(m.contents[0].senders, Initiator);
}

#[test]
fn fmtp_tokenising() {
    assert_eq!(
        parse_fmtp("a=1; b=2 ,c=3,  0-15 ;; x = y "),
        [
            Parameter::new("a", "1"),
            Parameter::new("b", "2"),
            Parameter::new("c", "3"),
            Parameter::new("", "0-15"),
            Parameter::new("x", "y"),
        ]
    );
    assert_eq!(
        format_fmtp(&[Parameter::new("a", "1"), Parameter::new("", "0-15")]),
        "a=1;0-15"
    );
    assert!(parse_fmtp("").is_empty());
}

#[test]
fn static_payload_types_without_rtpmap() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 9 18 3 4 13 96\r\n";
    let m = sdp_offer_to_jingle(sdp, SdpAuthor::Initiator).unwrap();
    let names: Vec<_> = rtp(&m.contents[0])
        .payload_types
        .iter()
        .map(|p| (p.id, p.name.clone(), p.clockrate))
        .collect();
    let s = |n: &str| Some(n.to_owned());
    assert_eq!(
        names,
        [
            (0, s("PCMU"), Some(8000)),
            (8, s("PCMA"), Some(8000)),
            (9, s("G722"), Some(8000)),
            (18, s("G729"), Some(8000)),
            (3, s("GSM"), Some(8000)),
            (4, s("G723"), Some(8000)),
            (13, s("CN"), Some(8000)),
            (96, None, None),
        ]
    );
    let out = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert!(
        out.contains("a=rtpmap:0 PCMU/8000\r\n") && out.contains("a=rtpmap:4 G723/8000\r\n"),
        "{out}"
    );
    assert!(!out.contains("a=rtpmap:96"), "{out}");
    assert_valid_sdp(&out);
}

#[test]
fn bfcp_over_websocket_is_declined_in_order() {
    let offer = testdata("bfcp-ws-offer.sdp");
    let m = sdp_offer_to_jingle(&offer, SdpAuthor::Initiator).unwrap();
    assert_eq!(m.declined, [0]);
    assert_eq!(
        m.contents
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["audio", "video"]
    );
    assert_eq!(ids(&m.contents[1]), [31]);
    assert_eq!(
        rtp(&m.contents[1]).payload_types[0].name.as_deref(),
        Some("H261")
    );

    // The XMPP callee accepts audio only.
    let mut accepted = vec![content_with_senders(Senders::Both)];
    accepted[0].name = "audio".into();
    let answer = jingle_to_sdp_answer(
        &accepted,
        &[],
        SdpAuthor::Responder,
        &origin("juliet"),
        &offer,
    )
    .unwrap();
    assert_valid_sdp(&answer);
    let mlines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        mlines,
        [
            "m=application 0 TCP/WSS/BFCP *",
            "m=audio 4000 RTP/AVP 0",
            "m=video 0 RTP/AVP 31"
        ]
    );
    // …and our own answer maps back with the declined lines left out.
    let back = sdp_answer_to_jingle(
        &answer,
        &[m.contents[0].clone(), m.contents[1].clone()],
        SdpAuthor::Responder,
    );
    assert!(
        matches!(back, Err(SdpError::AnswerMismatch(_))),
        "3 m= lines for 2 offered: {back:?}"
    );
}

#[test]
fn answer_with_a_declined_line_keeps_order() {
    let offered = sdp_offer_to_jingle(&testdata("baresip-offer.sdp"), SdpAuthor::Initiator)
        .unwrap()
        .contents;
    let answer = "v=0\r\no=callee 5 5 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                  m=audio 7000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendonly\r\n\
                  m=video 0 RTP/AVP 97\r\n";
    let m = sdp_answer_to_jingle(answer, &offered, SdpAuthor::Responder).unwrap();
    assert_eq!(m.declined, [1]);
    assert_eq!(m.contents.len(), 1);
    assert_eq!(m.contents[0].name, "audio");
    assert_eq!(m.contents[0].senders, Senders::Responder);
    assert_eq!(ids(&m.contents[0]), [0, 101]);

    // Our answer to the two-line offer when only audio is accepted.
    let offer = testdata("baresip-offer.sdp");
    let sdp = jingle_to_sdp_answer(
        &m.contents,
        &[],
        SdpAuthor::Responder,
        &origin("callee"),
        &offer,
    )
    .unwrap();
    assert_valid_sdp(&sdp);
    let mlines: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        mlines,
        ["m=audio 7000 RTP/AVP 0 101", "m=video 0 RTP/AVP 97"]
    );
    assert!(!sdp.contains("a=mid"), "offer had no mid: {sdp}");

    let all_rejected = "v=0\r\no=c 5 5 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=video 0 RTP/AVP 97\r\n";
    assert!(matches!(
        sdp_answer_to_jingle(all_rejected, &offered, SdpAuthor::Responder),
        Err(SdpError::NothingMappable(_))
    ));
    assert!(matches!(
        jingle_to_sdp_answer(&[], &[], SdpAuthor::Responder, &origin("c"), &offer),
        Err(SdpError::NothingMappable(_))
    ));
}

#[test]
fn webrtc_answer_keeps_mids_and_proto() {
    let offer = testdata("webrtc-offer.sdp");
    let m = sdp_offer_to_jingle(&offer, SdpAuthor::Initiator).unwrap();
    let j = jingle_file("conversations-session-initiate.xml");
    let mut answer = j.contents[0].clone();
    answer.name = "0".into();
    answer.creator = Creator::Initiator;
    if let Some(Transport::IceUdp(t)) = &mut answer.transport {
        t.fingerprints[0].setup = Some("active".into());
    }
    let sdp = jingle_to_sdp_answer(
        &[answer],
        &[],
        SdpAuthor::Responder,
        &origin("romeo"),
        &offer,
    )
    .unwrap();
    assert_valid_sdp(&sdp);
    assert!(sdp.contains("a=setup:active\r\n"), "{sdp}");
    assert!(
        sdp.contains("a=mid:0\r\n") && sdp.contains("a=mid:1\r\n"),
        "{sdp}"
    );
    assert!(
        sdp.contains("m=video 0 UDP/TLS/RTP/SAVPF 96 97\r\n"),
        "{sdp}"
    );
    let back = sdp_answer_to_jingle(&sdp, &m.contents, SdpAuthor::Responder).unwrap();
    assert_eq!(back.declined, [1]);
    assert_eq!(
        ice(&back.contents[0]).fingerprints[0].setup.as_deref(),
        Some("active")
    );
}

#[test]
fn bad_input_returns_errors() {
    for bad in [
        "",
        "garbage",
        "\u{0}\u{1}",
        "v=1\r\n",
        "v=0\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=\r\ns=-\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio 99999 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nm=audio\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nthis is not sdp\r\n",
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nv=0\r\n",
    ] {
        let e = sdp_offer_to_jingle(bad, SdpAuthor::Initiator).unwrap_err();
        assert!(matches!(e, SdpError::Parse(_)), "{bad:?}: {e:?}");
    }
    let head = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n";
    for nothing in [
        "",
        "m=audio 4000 RTP/AVP 0\r\n", // no c= anywhere
        "c=IN IP4 1.2.3.4\r\nm=image 4000 udptl t38\r\n",
        "c=IN IP4 1.2.3.4\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
        "c=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 200 300\r\n",
        "c=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n",
        "c=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP\r\n",
        "c=IN IP4 not..an..ip!\r\nm=audio 4000 RTP/AVP 0\r\n",
    ] {
        let e = sdp_offer_to_jingle(&format!("{head}{nothing}"), SdpAuthor::Initiator).unwrap_err();
        assert!(
            matches!(e, SdpError::NothingMappable(_)),
            "{nothing:?}: {e:?}"
        );
    }
    // Bad values inside a mappable line are dropped or kept raw, not fatal.
    let odd = format!(
        "{head}c=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0 96\r\na=rtpmap:96 x/99999999999\r\n\
         a=ptime:abc\r\nb=AS:99999999999\r\na=candidate:garbage\r\na=rtcp:99999\r\n"
    );
    let m = sdp_offer_to_jingle(&odd, SdpAuthor::Initiator).unwrap();
    let attrs = sdp_attrs(&m.contents[0]);
    // Malformed instances of modelled attributes are dropped on purpose
    // (passing them on would hand strict parsers invalid SDP).
    for name in ["rtpmap", "ptime", "candidate", "rtcp"] {
        assert!(
            !attrs.iter().any(|(n, _, _)| n == name),
            "{name}: {attrs:?}"
        );
    }
    assert!(rtp(&m.contents[0]).bandwidth.is_none());
    assert_eq!(raw_udp(&m.contents[0]).candidates[1].port, 4001);

    // Jingle values that would break SDP lines are never written.
    let mut evil = content_with_senders(Senders::Both);
    if let Some(Description::Rtp(r)) = &mut evil.description {
        r.payload_types[0].name = Some("PC MU\r\na=evil".into());
        r.payload_types[0].parameters = vec![Parameter::new("x", "1\r\na=evil")];
        r.other.push(read::sdp_attribute(
            "evil",
            Some("1\r\nm=audio 1 RTP/AVP 0"),
            false,
        ));
    }
    evil.name = "a b\r\n".into();
    let sdp = jingle_to_sdp_offer(&[evil], &[], SdpAuthor::Initiator, &origin("bad user")).unwrap();
    assert_valid_sdp(&sdp);
    assert!(!sdp.contains("evil"), "{sdp}");
    assert!(sdp.contains("o=- "), "{sdp}");
    assert!(matches!(
        jingle_to_sdp_offer(&[], &[], SdpAuthor::Initiator, &origin("u")),
        Err(SdpError::NothingMappable(_))
    ));
}

#[test]
fn lf_only_and_session_level_ice() {
    let sdp = "v=0\no=alice 1 1 IN IP6 ::1\ns=-\nt=0 0\na=ice-ufrag:abcd\na=ice-pwd:0123456789012345678901\n\
               a=fingerprint:SHA-256 AA:BB\na=setup:passive\nm=audio 9 RTP/AVP 0\nc=IN IP6 ::1\n\
               a=candidate:0 1 UDP 100 ::1 5000 typ host\na=candidate:1 1 tcp 90 ::1 9 typ host tcptype active\n";
    let m = sdp_offer_to_jingle(sdp, SdpAuthor::Initiator).unwrap();
    let t = ice(&m.contents[0]);
    assert_eq!(t.ufrag.as_deref(), Some("abcd"));
    assert_eq!(t.fingerprints[0].hash, "sha-256");
    assert_eq!(t.fingerprints[0].setup.as_deref(), Some("passive"));
    assert_eq!(t.candidates[1].tcptype.as_deref(), Some("active"));
    assert_eq!(t.candidates[0].protocol, "udp");
    let out =
        jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("alice")).unwrap();
    assert!(
        out.contains("m=audio 5000 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP6 ::1\r\n"),
        "{out}"
    );
    assert_valid_sdp(&out);
}

#[test]
fn ice_without_candidates_uses_the_discard_address() {
    let mut c = content_with_senders(Senders::Both);
    c.transport = Some(Transport::IceUdp(IceUdpTransport {
        ufrag: Some("uf12".into()),
        pwd: Some("0123456789abcdefghijkl".into()),
        ..IceUdpTransport::default()
    }));
    let sdp = jingle_to_sdp_offer(&[c], &[], SdpAuthor::Initiator, &origin("u")).unwrap();
    assert!(
        sdp.contains("m=audio 9 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n"),
        "{sdp}"
    );
}

#[test]
fn telephone_event_lists_keep_rfc4733_syntax() {
    use crate::jingle::Parameter;
    let params = parse_fmtp("0-11,13-15");
    assert_eq!(
        params,
        vec![Parameter::new("", "0-11"), Parameter::new("", "13-15")]
    );
    assert_eq!(format_fmtp(&params), "0-11,13-15");
    let mixed = parse_fmtp("profile-level-id=42e01f; packetization-mode=1");
    assert_eq!(
        format_fmtp(&mixed),
        "profile-level-id=42e01f;packetization-mode=1"
    );
}

#[test]
fn rfc8866_offers_past_the_size_limits_are_refused_before_mapping() {
    let head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";
    let fmts: Vec<String> = (0..10_000).map(|n| (n % 128).to_string()).collect();
    let wide = format!("{head}m=audio 4000 RTP/AVP {}\r\n", fmts.join(" "));
    let started = std::time::Instant::now();
    match sdp_offer_to_jingle(&wide, SdpAuthor::Initiator) {
        Err(SdpError::TooMany { what, limit }) => {
            assert_eq!((what, limit), ("formats on one m= line", 128));
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let many = format!("{head}{}", "m=audio 4000 RTP/AVP 0\r\n".repeat(17));
    assert!(matches!(
        sdp_offer_to_jingle(&many, SdpAuthor::Initiator),
        Err(SdpError::TooMany {
            what: "m= lines",
            ..
        })
    ));
    let long = format!("{head}m=audio 4000 RTP/AVP 0\r\n{}", "a=x\r\n".repeat(3000));
    assert!(matches!(
        sdp_offer_to_jingle(&long, SdpAuthor::Initiator),
        Err(SdpError::TooMany {
            what: "SDP lines",
            ..
        })
    ));
}
