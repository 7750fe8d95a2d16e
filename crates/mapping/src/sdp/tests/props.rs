//! Property tests: the mappers never panic, and valid contents survive
//! Jingle → SDP → Jingle with their meaning intact.

use super::*;
use crate::jingle::{Bandwidth, Fingerprint};
use proptest::collection::vec;
use proptest::prelude::*;

fn senders() -> impl Strategy<Value = Senders> {
    prop_oneof![
        Just(Senders::Both),
        Just(Senders::Initiator),
        Just(Senders::Responder),
        Just(Senders::None)
    ]
}

fn author() -> impl Strategy<Value = SdpAuthor> {
    prop_oneof![Just(SdpAuthor::Initiator), Just(SdpAuthor::Responder)]
}

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
    ]
}

fn payload_types(ptime: Option<u32>) -> impl Strategy<Value = Vec<PayloadType>> {
    let param =
        ("[a-z][a-z0-9-]{0,8}", "[A-Za-z0-9/.-]{1,8}").prop_map(|(n, v)| Parameter::new(n, v));
    let pt = (
        "[A-Za-z][A-Za-z0-9-]{0,9}",
        1u32..200_000,
        proptest::option::of(1u8..8),
        vec(param, 0..3),
    );
    (
        proptest::sample::subsequence((0u8..=127).collect::<Vec<_>>(), 1..5),
        vec(pt, 5),
    )
        .prop_map(move |(ids, pts)| {
            ids.into_iter()
                .zip(pts)
                .map(
                    |(id, (name, clockrate, channels, parameters))| PayloadType {
                        id,
                        name: Some(name),
                        clockrate: Some(clockrate),
                        channels,
                        ptime,
                        maxptime: ptime.map(|p| p * 3),
                        parameters,
                        rtcp_fb: vec![],
                        rtcp_fb_trr_int: None,
                        other: vec![],
                    },
                )
                .collect()
        })
}

fn ice_candidate() -> impl Strategy<Value = IceCandidate> {
    (
        1u8..=2,
        "[A-Za-z0-9+/]{1,12}",
        0u32..5,
        ip(),
        1u16..,
        any::<u32>(),
        prop_oneof![Just("host"), Just("srflx"), Just("relay")],
        ip(),
        1u16..,
    )
        .prop_map(
            |(component, foundation, generation, ip, port, priority, kind, rel, rport)| {
                let host = kind == "host";
                IceCandidate {
                    component,
                    foundation,
                    generation,
                    id: String::new(),
                    ip,
                    port,
                    priority,
                    protocol: "udp".into(),
                    kind: kind.into(),
                    rel_addr: (!host).then_some(rel),
                    rel_port: (!host).then_some(rport),
                    tcptype: None,
                    network: None,
                }
            },
        )
}

fn transport(rtcp_mux: bool) -> impl Strategy<Value = Transport> {
    let fingerprint = (
        prop_oneof![Just("actpass"), Just("active"), Just("passive")],
        vec("[0-9A-F]{2}", 32),
    )
        .prop_map(|(setup, bytes)| Fingerprint {
            hash: "sha-256".into(),
            setup: Some(setup.into()),
            value: bytes.join(":"),
        });
    let ice = (
        "[A-Za-z0-9+/]{4,12}",
        "[A-Za-z0-9+/]{22,30}",
        vec(ice_candidate(), 0..4),
        proptest::option::of(fingerprint),
    )
        .prop_map(|(ufrag, pwd, candidates, fp)| {
            Transport::IceUdp(IceUdpTransport {
                ufrag: Some(ufrag),
                pwd: Some(pwd),
                candidates,
                remote_candidates: vec![],
                fingerprints: fp.into_iter().collect(),
                other: vec![],
            })
        });
    let raw = (ip(), 1u16..65000, proptest::option::of((ip(), 1u16..))).prop_map(
        move |(ip, port, rtcp)| {
            let mut candidates = vec![RawUdpCandidate {
                component: 1,
                generation: 0,
                id: String::new(),
                ip: ip.clone(),
                port,
            }];
            if !rtcp_mux {
                let (rtcp_ip, rtcp_port) = rtcp.unwrap_or((ip, port + 1));
                candidates.push(RawUdpCandidate {
                    component: 2,
                    generation: 0,
                    id: String::new(),
                    ip: rtcp_ip,
                    port: rtcp_port,
                });
            }
            Transport::RawUdp(RawUdpTransport {
                candidates,
                other: vec![],
            })
        },
    );
    prop_oneof![ice, raw]
}

fn content() -> impl Strategy<Value = Content> {
    (
        prop_oneof![Just("audio"), Just("video")],
        senders(),
        any::<bool>(),
        proptest::option::of(prop_oneof![Just(20u32), Just(30), Just(60)]),
        proptest::option::of((prop_oneof![Just("AS"), Just("TIAS")], 1u32..1_000_000)),
    )
        .prop_flat_map(|(media, senders, rtcp_mux, ptime, bw)| {
            (payload_types(ptime), transport(rtcp_mux)).prop_map(move |(pts, transport)| {
                let mut c = Content::new(media);
                c.senders = senders;
                c.description = Some(Description::Rtp(RtpDescription {
                    media: media.into(),
                    payload_types: pts,
                    rtcp_mux,
                    bandwidth: bw.map(|(kind, value)| Bandwidth {
                        kind: kind.into(),
                        value,
                    }),
                    ..RtpDescription::default()
                }));
                c.transport = Some(transport);
                c
            })
        })
}

fn contents() -> impl Strategy<Value = Vec<Content>> {
    vec(content(), 1..4).prop_map(|mut cs| {
        for (i, c) in cs.iter_mut().enumerate() {
            c.name = format!("c{i}");
        }
        cs
    })
}

/// Generated ids differ by design; everything else must match.
fn without_ids(mut cs: Vec<Content>) -> Vec<Content> {
    for c in &mut cs {
        match &mut c.transport {
            Some(Transport::IceUdp(t)) => t.candidates.iter_mut().for_each(|c| c.id.clear()),
            Some(Transport::RawUdp(t)) => t.candidates.iter_mut().for_each(|c| c.id.clear()),
            _ => {}
        }
    }
    cs
}

fn sdp_lines() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("m=audio 4000 RTP/AVP 0 8 101".to_owned()),
        Just("m=application 9 TCP/WSS/BFCP *".to_owned()),
        "m=[a-z]{0,6} [0-9]{0,6} [A-Z/]{0,12} [0-9 *]{0,12}",
        "c=IN IP[46] [0-9a-f.:]{0,20}",
        "a=(rtpmap|fmtp|candidate|ptime|rtcp|fingerprint|setup|ice-ufrag|ice-pwd|mid|group):[ -~]{0,40}",
        "a=(sendonly|recvonly|inactive|rtcp-mux)",
        "b=[A-Z]{0,4}:[0-9]{0,12}",
        "[a-z]=[ -~]{0,30}",
        "\\PC{0,20}",
    ];
    vec(line, 0..14).prop_map(|lines| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n{}\r\n",
            lines.join("\r\n")
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC*", a in author()) {
        let _ = sdp_offer_to_jingle(&s, a);
        let _ = jingle_to_sdp_answer(&[], &[], a, &origin("u"), &s);
    }

    #[test]
    fn sdp_like_input_never_panics(sdp in sdp_lines(), a in author(), cs in contents()) {
        if let Ok(m) = sdp_offer_to_jingle(&sdp, a) {
            let answer = jingle_to_sdp_answer(&m.contents, &[], a, &origin("u"), &sdp)
                .expect("answering our own mapping works");
            assert_valid_sdp(&answer);
        }
        let _ = sdp_answer_to_jingle(&sdp, &cs, a);
        let _ = jingle_to_sdp_answer(&cs, &[], a, &origin("u"), &sdp);
    }

    #[test]
    fn contents_survive_sdp_offer_round_trip(cs in contents(), a in author()) {
        let sdp = jingle_to_sdp_offer(&cs, &[], a, &origin("user")).expect("valid contents write");
        assert_valid_sdp(&sdp);
        let back = sdp_offer_to_jingle(&sdp, a).expect("our SDP maps back");
        prop_assert_eq!(back.origin_username.as_str(), "user");
        prop_assert!(back.declined.is_empty());
        prop_assert_eq!(without_ids(back.contents), without_ids(cs));
    }

    #[test]
    fn contents_survive_sdp_answer_round_trip(cs in contents(), a in author()) {
        let offer = jingle_to_sdp_offer(&cs, &[], SdpAuthor::Initiator, &origin("o")).expect("offer");
        let answer = jingle_to_sdp_answer(&cs, &[], a, &origin("user"), &offer).expect("answer");
        assert_valid_sdp(&answer);
        let back = sdp_answer_to_jingle(&answer, &cs, a).expect("our answer maps back");
        prop_assert_eq!(without_ids(back.contents), without_ids(cs));
    }
}
