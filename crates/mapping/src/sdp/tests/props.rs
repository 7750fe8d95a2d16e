//! Property tests: the mappers never panic, and valid contents survive
//! Jingle → SDP → Jingle with their meaning intact.

use super::*;
use crate::jingle::{
    Bandwidth, Crypto, Encryption, Fingerprint, Group, RemoteCandidate, RtcpFb, RtpHdrext, Source,
    SsrcGroup,
};
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
        vec(rtcp_fb(), 0..3),
        proptest::option::of(0u32..10_000),
    );
    (
        proptest::sample::subsequence((0u8..=127).collect::<Vec<_>>(), 1..5),
        vec(pt, 5),
    )
        .prop_map(move |(ids, pts)| {
            ids.into_iter()
                .zip(pts)
                .map(
                    |(id, (name, clockrate, channels, parameters, rtcp_fb, rtcp_fb_trr_int))| {
                        PayloadType {
                            id,
                            name: Some(name),
                            clockrate: Some(clockrate),
                            channels,
                            ptime,
                            maxptime: ptime.map(|p| p * 3),
                            parameters,
                            rtcp_fb,
                            rtcp_fb_trr_int,
                            other: vec![],
                        }
                    },
                )
                .collect()
        })
}

/// XEP-0293/0294 parameters: a bare name or name=value (both tokens).
fn ext_params() -> impl Strategy<Value = Vec<Parameter>> {
    vec(
        ("[a-z][a-z0-9-]{0,6}", "([A-Za-z0-9.]{1,6})?").prop_map(|(n, v)| Parameter::new(n, v)),
        0..3,
    )
}

fn rtcp_fb() -> impl Strategy<Value = RtcpFb> {
    let kind = prop_oneof![
        Just("nack"),
        Just("ccm"),
        Just("ack"),
        Just("goog-remb"),
        Just("transport-cc"),
        Just("x-app")
    ];
    let subtype = proptest::option::of(prop_oneof![
        Just("pli"),
        Just("fir"),
        Just("sli"),
        Just("tmmbr"),
        Just("rpsi")
    ]);
    (kind, subtype, ext_params()).prop_map(|(kind, subtype, parameters)| RtcpFb {
        kind: kind.into(),
        // Parameters need a subtype before them in SDP.
        parameters: if subtype.is_some() {
            parameters
        } else {
            vec![]
        },
        subtype: subtype.map(str::to_owned),
        other: vec![],
    })
}

fn hdrexts() -> impl Strategy<Value = Vec<RtpHdrext>> {
    let ext = ("[a-z]{1,6}:[a-z0-9:/.-]{1,20}", senders(), ext_params());
    (
        proptest::sample::subsequence((1u16..=255).collect::<Vec<_>>(), 0..4),
        vec(ext, 4),
    )
        .prop_map(|(ids, exts)| {
            ids.into_iter()
                .zip(exts)
                .map(|(id, (uri, senders, parameters))| RtpHdrext {
                    id,
                    uri,
                    senders,
                    parameters,
                    other: vec![],
                })
                .collect()
        })
}

fn sources() -> impl Strategy<Value = (Vec<Source>, Vec<SsrcGroup>)> {
    let param = (
        prop_oneof![Just("cname"), Just("label"), Just("mslabel"), Just("x-y")],
        "([A-Za-z0-9+/.:-]{1,12})?",
    )
        .prop_map(|(n, v)| Parameter::new(n, v));
    let msid = proptest::option::of("[a-z0-9]{1,6} [a-z0-9]{1,6}");
    let ssrcs = proptest::sample::subsequence(vec![1u32, 42, 1001, 3_000_000_000, u32::MAX], 0..4);
    let group = (
        prop_oneof![Just("FID"), Just("FEC"), Just("SIM")],
        vec(any::<u32>(), 0..3),
    )
        .prop_map(|(semantics, sources)| SsrcGroup {
            semantics: semantics.into(),
            sources,
            other: vec![],
        });
    (ssrcs, vec(vec(param, 1..3), 4), msid, vec(group, 0..2)).prop_map(
        |(ssrcs, params, msid, groups)| {
            let sources = ssrcs
                .into_iter()
                .zip(params)
                .map(|(ssrc, mut parameters)| {
                    if let Some(msid) = &msid {
                        parameters.push(Parameter::new("msid", msid));
                    }
                    Source {
                        ssrc,
                        parameters,
                        other: vec![],
                    }
                })
                .collect();
            (sources, groups)
        },
    )
}

fn encryption() -> impl Strategy<Value = Option<Encryption>> {
    let crypto = (
        "[1-9][0-9]{0,3}",
        prop_oneof![
            Just("AES_CM_128_HMAC_SHA1_80"),
            Just("AES_CM_128_HMAC_SHA1_32"),
            Just("AEAD_AES_256_GCM")
        ],
        "[A-Za-z0-9+/]{20,40}",
        prop_oneof![Just(""), Just("|2^20|1:32"), Just("|2^31")],
        proptest::option::of(prop_oneof![
            Just("UNENCRYPTED_SRTCP"),
            Just("KDR=1"),
            Just("WSH=64 UNENCRYPTED_SRTP")
        ]),
    )
        .prop_map(|(tag, suite, key, lifetime, session)| Crypto {
            suite: suite.into(),
            key_params: format!("inline:{key}{lifetime}"),
            session_params: session.map(str::to_owned),
            tag,
            other: vec![],
        });
    proptest::option::of((any::<bool>(), vec(crypto, 1..3))).prop_map(|e| {
        e.map(|(required, cryptos)| Encryption {
            required,
            cryptos,
            other: vec![],
        })
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
        vec((1u8..=2, ip(), 1u16..), 0..3),
    )
        .prop_map(|(ufrag, pwd, candidates, fp, remote)| {
            Transport::IceUdp(IceUdpTransport {
                ufrag: Some(ufrag),
                pwd: Some(pwd),
                candidates,
                remote_candidates: remote
                    .into_iter()
                    .map(|(component, ip, port)| RemoteCandidate {
                        component,
                        ip,
                        port,
                    })
                    .collect(),
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

/// The description-level extensions of a generated content.
#[derive(Debug, Clone)]
struct Extensions {
    rtcp_fb: Vec<RtcpFb>,
    rtcp_fb_trr_int: Option<u32>,
    hdrexts: Vec<RtpHdrext>,
    extmap_allow_mixed: bool,
    sources: (Vec<Source>, Vec<SsrcGroup>),
    encryption: Option<Encryption>,
}

fn extensions() -> impl Strategy<Value = Extensions> {
    (
        vec(rtcp_fb(), 0..3),
        proptest::option::of(0u32..10_000),
        hdrexts(),
        any::<bool>(),
        sources(),
        encryption(),
    )
        .prop_map(
            |(rtcp_fb, rtcp_fb_trr_int, hdrexts, extmap_allow_mixed, sources, encryption)| {
                Extensions {
                    rtcp_fb,
                    rtcp_fb_trr_int,
                    hdrexts,
                    extmap_allow_mixed,
                    sources,
                    encryption,
                }
            },
        )
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
            (payload_types(ptime), transport(rtcp_mux), extensions()).prop_map(
                move |(pts, transport, ext)| {
                    let dtls =
                        matches!(&transport, Transport::IceUdp(t) if !t.fingerprints.is_empty());
                    let mut encryption = ext.encryption;
                    // With DTLS the profile is UDP/TLS/RTP/SAVPF: SDES reads back as optional.
                    if let (true, Some(e)) = (dtls, encryption.as_mut()) {
                        e.required = false;
                    }
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
                        rtcp_fb: ext.rtcp_fb,
                        rtcp_fb_trr_int: ext.rtcp_fb_trr_int,
                        hdrexts: ext.hdrexts,
                        extmap_allow_mixed: ext.extmap_allow_mixed,
                        sources: ext.sources.0,
                        ssrc_groups: ext.sources.1,
                        encryption,
                        ..RtpDescription::default()
                    }));
                    c.transport = Some(transport);
                    c
                },
            )
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

/// Contents and XEP-0338 groups over their names.
fn session() -> impl Strategy<Value = (Vec<Content>, Vec<Group>)> {
    contents().prop_flat_map(|cs| {
        let names: Vec<String> = cs.iter().map(|c| c.name.clone()).collect();
        let group = (
            prop_oneof![Just("BUNDLE"), Just("LS")],
            proptest::sample::subsequence(names.clone(), 1..=names.len()),
        )
            .prop_map(|(semantics, contents)| Group {
                semantics: semantics.into(),
                contents,
            });
        (Just(cs), vec(group, 0..3))
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
        "a=(rtcp-fb|extmap|ssrc|ssrc-group|msid|crypto|remote-candidates):[ -~]{0,40}",
        Just("a=rtcp-fb:* nack pli".to_owned()),
        Just("a=rtcp-fb:0 trr-int 100".to_owned()),
        Just("a=extmap:1/sendonly urn:ietf:params:rtp-hdrext:toffset x=1".to_owned()),
        Just("a=ssrc:1 cname:x".to_owned()),
        Just("a=ssrc:2 msid:s t".to_owned()),
        Just("a=msid:s t".to_owned()),
        Just("a=ssrc-group:FID 1 2".to_owned()),
        Just("a=group:BUNDLE 0 a audio".to_owned()),
        Just("a=mid:a".to_owned()),
        Just("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32".to_owned()),
        Just("a=ice-ufrag:abcd".to_owned()),
        Just("a=ice-pwd:0123456789012345678901".to_owned()),
        Just("a=remote-candidates:1 1.2.3.4 5000".to_owned()),
        "a=(sendonly|recvonly|inactive|rtcp-mux|extmap-allow-mixed|end-of-candidates|ice-lite)",
        "b=[A-Z]{0,4}:[0-9]{0,12}",
        "[a-z]=[ -~]{0,30}",
        "\\PC{0,20}",
    ];
    vec(line, 0..20).prop_map(|lines| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n{}\r\n",
            lines.join("\r\n")
        )
    })
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=3000 for a longer run.
    #![proptest_config(ProptestConfig::default())]

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
    fn sdp_survives_jingle_and_back(sdp in sdp_lines(), a in author()) {
        // SDP → Jingle → SDP → Jingle: the second mapping sees what the
        // first one made of it, unchanged.
        if let Ok(first) = sdp_offer_to_jingle(&sdp, a) {
            let written = jingle_to_sdp_offer(&first.contents, &first.groups, a, &origin("u"))
                .expect("our mapping writes");
            assert_valid_sdp(&written);
            let second = sdp_offer_to_jingle(&written, a).expect("our SDP maps back");
            prop_assert_eq!(without_ids(second.contents), without_ids(first.contents));
            prop_assert_eq!(second.groups, first.groups);
        }
    }

    #[test]
    fn contents_survive_sdp_offer_round_trip((cs, groups) in session(), a in author()) {
        let sdp = jingle_to_sdp_offer(&cs, &groups, a, &origin("user")).expect("valid contents write");
        assert_valid_sdp(&sdp);
        let back = sdp_offer_to_jingle(&sdp, a).expect("our SDP maps back");
        prop_assert_eq!(back.origin_username.as_str(), "user");
        prop_assert!(back.declined.is_empty());
        prop_assert_eq!(without_ids(back.contents), without_ids(cs));
        prop_assert_eq!(back.groups, groups);
    }

    #[test]
    fn contents_survive_sdp_answer_round_trip((cs, groups) in session(), a in author()) {
        let offer = jingle_to_sdp_offer(&cs, &groups, SdpAuthor::Initiator, &origin("o")).expect("offer");
        let answer = jingle_to_sdp_answer(&cs, &groups, a, &origin("user"), &offer).expect("answer");
        assert_valid_sdp(&answer);
        let back = sdp_answer_to_jingle(&answer, &cs, a).expect("our answer maps back");
        prop_assert_eq!(without_ids(back.contents), without_ids(cs));
        prop_assert_eq!(back.groups, groups);
    }
}
