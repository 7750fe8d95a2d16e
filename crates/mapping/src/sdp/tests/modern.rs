//! Modern endpoints: WebRTC (Chrome-style), Conversations-style Jingle and
//! SDES (Asterisk-style), plus one test per XEP-0293/0294/0338/0339/SDES/ICE
//! feature in both directions.

use super::*;
use crate::jingle::{Crypto, Encryption, Group, RtcpFb, RtpHdrext, Source, SsrcGroup};

/// A Chrome-style offer through JsSIP: BUNDLE, session-level
/// extmap-allow-mixed, ICE with renomination, DTLS, rtcp-mux, rtcp-fb per
/// payload type and `*` (incl. trr-int), extmap with a direction,
/// ssrc + FID group + msid. Hand-written in the shape Chrome sends.
pub(super) const CHROME_OFFER: &str = "\
v=0\r\n\
o=- 8345216733907498329 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS 5d8c1f2e\r\n\
m=audio 50010 UDP/TLS/RTP/SAVPF 111 110\r\n\
c=IN IP4 198.51.100.10\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:3303154462 1 udp 2122260223 192.168.1.20 50010 typ host generation 0 network-id 1\r\n\
a=candidate:842163049 1 udp 1686052607 198.51.100.10 50010 typ srflx raddr 192.168.1.20 rport 50010 generation 0 network-id 1\r\n\
a=ice-ufrag:Kx9q\r\n\
a=ice-pwd:3lOvJHEyQAxNzc8MsTZy5Wq1\r\n\
a=ice-options:trickle renomination\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=sendrecv\r\n\
a=msid:5d8c1f2e 7a3c6e61\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=ssrc:1001 cname:Jn9mC5dTNoFrVr3k\r\n\
a=ssrc:1001 msid:5d8c1f2e 7a3c6e61\r\n\
m=video 50010 UDP/TLS/RTP/SAVPF 96 97\r\n\
c=IN IP4 198.51.100.10\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:3303154462 1 udp 2122260223 192.168.1.20 50010 typ host generation 0 network-id 1\r\n\
a=ice-ufrag:Kx9q\r\n\
a=ice-pwd:3lOvJHEyQAxNzc8MsTZy5Wq1\r\n\
a=ice-options:trickle renomination\r\n\
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=extmap:4/recvonly urn:3gpp:video-orientation\r\n\
a=sendrecv\r\n\
a=msid:5d8c1f2e 0b6f3a9d\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 ccm fir\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtcp-fb:* transport-cc\r\n\
a=rtcp-fb:* trr-int 100\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=ssrc-group:FID 2002 2003\r\n\
a=ssrc:2002 cname:Jn9mC5dTNoFrVr3k\r\n\
a=ssrc:2002 msid:5d8c1f2e 0b6f3a9d\r\n\
a=ssrc:2003 cname:Jn9mC5dTNoFrVr3k\r\n\
a=ssrc:2003 msid:5d8c1f2e 0b6f3a9d\r\n\
";

/// Conversations-style session-initiate: ICE-UDP + DTLS actpass + rtcp-mux,
/// audio and video with rtcp-fb (per payload type, `*`-level, trr-int),
/// rtp-hdrext (one with senders), sources with msid, an FID group and a
/// BUNDLE group. Hand-written after XEP-0166/0167/0176/0293/0294/0320/0338/0339.
const CONVERSATIONS_INITIATE: &str = "\
<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' initiator='romeo@montague.example/orchard' sid='c0nv3rs4t10ns'>\
 <content creator='initiator' name='0' senders='both'>\
  <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
   <payload-type id='111' name='opus' clockrate='48000' channels='2'>\
    <parameter name='useinbandfec' value='1'/>\
    <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/>\
   </payload-type>\
   <payload-type id='126' name='telephone-event' clockrate='8000'/>\
   <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
   <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='3' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
   <extmap-allow-mixed xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0'/>\
   <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2487362830'>\
    <parameter name='cname' value='w/2dM3Zq+nDJbGsf'/>\
    <parameter name='msid' value='my-stream my-audio'/>\
   </source>\
   <rtcp-mux/>\
  </description>\
  <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='2Vsu' pwd='R0i4nKvAVXh0ByCSfbd6rAy0'>\
   <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>62:27:6C:0B:3D:43:B9:31:53:72:10:3A:7A:0F:F8:68:A2:8B:D1:F5:1E:F6:B8:0D:21:5E:88:2D:FE:1C:F5:2B</fingerprint>\
   <candidate component='1' foundation='1138357548' generation='0' id='a1' ip='192.168.1.42' network='1' port='45126' priority='2122260223' protocol='udp' type='host'/>\
   <candidate component='1' foundation='842163049' generation='0' id='a2' ip='203.0.113.7' network='1' port='45126' priority='1686052607' protocol='udp' rel-addr='192.168.1.42' rel-port='45126' type='srflx'/>\
  </transport>\
 </content>\
 <content creator='initiator' name='1' senders='initiator'>\
  <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
   <payload-type id='96' name='VP8' clockrate='90000'>\
    <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
    <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>\
    <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='ccm' subtype='fir'/>\
   </payload-type>\
   <payload-type id='97' name='rtx' clockrate='90000'>\
    <parameter name='apt' value='96'/>\
   </payload-type>\
   <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='goog-remb'/>\
   <rtcp-fb-trr-int xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' value='100'/>\
   <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='4' uri='urn:3gpp:video-orientation' senders='initiator'/>\
   <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='3001'>\
    <parameter name='cname' value='w/2dM3Zq+nDJbGsf'/>\
    <parameter name='msid' value='my-stream my-video'/>\
   </source>\
   <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='3002'>\
    <parameter name='cname' value='w/2dM3Zq+nDJbGsf'/>\
    <parameter name='msid' value='my-stream my-video'/>\
   </source>\
   <ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'>\
    <source ssrc='3001'/><source ssrc='3002'/>\
   </ssrc-group>\
   <rtcp-mux/>\
  </description>\
  <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='2Vsu' pwd='R0i4nKvAVXh0ByCSfbd6rAy0'>\
   <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>62:27:6C:0B:3D:43:B9:31:53:72:10:3A:7A:0F:F8:68:A2:8B:D1:F5:1E:F6:B8:0D:21:5E:88:2D:FE:1C:F5:2B</fingerprint>\
   <candidate component='1' foundation='1138357548' generation='0' id='v1' ip='192.168.1.42' network='1' port='45126' priority='2122260223' protocol='udp' type='host'/>\
  </transport>\
 </content>\
 <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'>\
  <content name='0'/><content name='1'/>\
 </group>\
</jingle>";

const CONVERSATIONS_SDP: &str = "v=0\r
o=romeo 2890844526 1 IN IP4 203.0.113.7\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
m=audio 45126 UDP/TLS/RTP/SAVPF 111 126\r
c=IN IP4 203.0.113.7\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 useinbandfec=1\r
a=rtcp-fb:111 transport-cc\r
a=rtpmap:126 telephone-event/8000\r
a=fmtp:126 0-15\r
a=rtcp-mux\r
a=sendrecv\r
a=mid:0\r
a=ice-ufrag:2Vsu\r
a=ice-pwd:R0i4nKvAVXh0ByCSfbd6rAy0\r
a=candidate:1138357548 1 udp 2122260223 192.168.1.42 45126 typ host generation 0 network-id 1\r
a=candidate:842163049 1 udp 1686052607 203.0.113.7 45126 typ srflx raddr 192.168.1.42 rport 45126 generation 0 network-id 1\r
a=fingerprint:sha-256 62:27:6C:0B:3D:43:B9:31:53:72:10:3A:7A:0F:F8:68:A2:8B:D1:F5:1E:F6:B8:0D:21:5E:88:2D:FE:1C:F5:2B\r
a=setup:actpass\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap-allow-mixed\r
a=msid:my-stream my-audio\r
a=ssrc:2487362830 cname:w/2dM3Zq+nDJbGsf\r
a=ssrc:2487362830 msid:my-stream my-audio\r
m=video 45126 UDP/TLS/RTP/SAVPF 96 97\r
c=IN IP4 192.168.1.42\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtcp-fb:96 ccm fir\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtcp-fb:* goog-remb\r
a=rtcp-fb:* trr-int 100\r
a=rtcp-mux\r
a=sendonly\r
a=mid:1\r
a=ice-ufrag:2Vsu\r
a=ice-pwd:R0i4nKvAVXh0ByCSfbd6rAy0\r
a=candidate:1138357548 1 udp 2122260223 192.168.1.42 45126 typ host generation 0 network-id 1\r
a=fingerprint:sha-256 62:27:6C:0B:3D:43:B9:31:53:72:10:3A:7A:0F:F8:68:A2:8B:D1:F5:1E:F6:B8:0D:21:5E:88:2D:FE:1C:F5:2B\r
a=setup:actpass\r
a=extmap:4/sendonly urn:3gpp:video-orientation\r
a=msid:my-stream my-video\r
a=ssrc-group:FID 3001 3002\r
a=ssrc:3001 cname:w/2dM3Zq+nDJbGsf\r
a=ssrc:3001 msid:my-stream my-video\r
a=ssrc:3002 cname:w/2dM3Zq+nDJbGsf\r
a=ssrc:3002 msid:my-stream my-video\r
";

/// Asterisk-style SDES offer: `RTP/SAVP` with two `a=crypto` lines.
const SDES_OFFER: &str = "v=0\r
o=- 1052385739 1052385739 IN IP4 198.51.100.20\r
s=Asterisk\r
c=IN IP4 198.51.100.20\r
t=0 0\r
m=audio 13810 RTP/SAVP 0 8 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=sendrecv\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32 UNENCRYPTED_SRTCP\r
";

fn jingle(xml: &str) -> Jingle {
    Jingle::parse(&xml.parse().expect("XML")).expect("Jingle")
}

fn pt(c: &Content, id: u8) -> &PayloadType {
    rtp(c)
        .payload_types
        .iter()
        .find(|p| p.id == id)
        .expect("payload type")
}

fn fb(kind: &str, subtype: Option<&str>) -> RtcpFb {
    RtcpFb {
        kind: kind.into(),
        subtype: subtype.map(str::to_owned),
        ..RtcpFb::default()
    }
}

fn hdrext(id: u16, uri: &str, senders: Senders) -> RtpHdrext {
    RtpHdrext {
        id,
        uri: uri.into(),
        senders,
        ..RtpHdrext::default()
    }
}

fn source(ssrc: u32, params: &[(&str, &str)]) -> Source {
    Source {
        ssrc,
        parameters: params.iter().map(|(n, v)| Parameter::new(*n, *v)).collect(),
        other: vec![],
    }
}

fn bundle(names: &[&str]) -> Vec<Group> {
    vec![Group {
        semantics: "BUNDLE".into(),
        contents: names.iter().map(|n| (*n).to_owned()).collect(),
    }]
}

/// Candidate ids are generated when mapping from SDP.
fn without_candidate_ids(mut cs: Vec<Content>) -> Vec<Content> {
    for c in &mut cs {
        if let Some(Transport::IceUdp(t)) = &mut c.transport {
            t.candidates.iter_mut().for_each(|c| c.id.clear());
        }
    }
    cs
}

#[test]
fn chrome_offer_to_jingle() {
    let m = sdp_offer_to_jingle(CHROME_OFFER, SdpAuthor::Initiator).unwrap();
    assert_eq!(m.groups, bundle(&["0", "1"]));
    let (audio, video) = (&m.contents[0], &m.contents[1]);

    // XEP-0293: per payload type, `*`, trr-int.
    assert_eq!(pt(audio, 111).rtcp_fb, [fb("transport-cc", None)]);
    assert_eq!(
        pt(video, 96).rtcp_fb,
        [
            fb("goog-remb", None),
            fb("ccm", Some("fir")),
            fb("nack", None),
            fb("nack", Some("pli"))
        ]
    );
    assert_eq!(rtp(video).rtcp_fb, [fb("transport-cc", None)]);
    assert_eq!(rtp(video).rtcp_fb_trr_int, Some(100));
    assert!(pt(video, 97).rtcp_fb.is_empty());

    // XEP-0294: media level, direction role-aware, session-level allow-mixed.
    const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
    assert_eq!(
        rtp(audio).hdrexts,
        [
            hdrext(
                1,
                "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
                Senders::Both
            ),
            hdrext(
                2,
                "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                Senders::Both
            ),
            hdrext(3, TWCC, Senders::Both),
        ]
    );
    assert_eq!(
        rtp(video).hdrexts,
        [
            hdrext(14, "urn:ietf:params:rtp-hdrext:toffset", Senders::Both),
            hdrext(3, TWCC, Senders::Both),
            hdrext(4, "urn:3gpp:video-orientation", Senders::Responder),
        ]
    );
    assert!(rtp(audio).extmap_allow_mixed && rtp(video).extmap_allow_mixed);

    // XEP-0339: ssrc lines grouped per source, msid folded into them.
    assert_eq!(
        rtp(audio).sources,
        [source(
            1001,
            &[("cname", "Jn9mC5dTNoFrVr3k"), ("msid", "5d8c1f2e 7a3c6e61")]
        )]
    );
    let cname_msid = [("cname", "Jn9mC5dTNoFrVr3k"), ("msid", "5d8c1f2e 0b6f3a9d")];
    assert_eq!(
        rtp(video).sources,
        [source(2002, &cname_msid), source(2003, &cname_msid)]
    );
    assert_eq!(
        rtp(video).ssrc_groups,
        [SsrcGroup {
            semantics: "FID".into(),
            sources: vec![2002, 2003],
            other: vec![],
        }]
    );

    // Kept on purpose: no XEP element for these.
    assert_eq!(
        sdp_attrs(video),
        [
            ("rtcp".into(), Some("9 IN IP4 0.0.0.0".into()), false),
            (
                "ice-options".into(),
                Some("trickle renomination".into()),
                false
            ),
            ("rtcp-rsize".into(), None, false),
            ("msid-semantic".into(), Some(" WMS 5d8c1f2e".into()), true),
        ]
    );
    assert_offer_round_trip(CHROME_OFFER, SdpAuthor::Initiator);
}

#[test]
fn chrome_offer_back_to_sdp() {
    let m = sdp_offer_to_jingle(CHROME_OFFER, SdpAuthor::Initiator).unwrap();
    let sdp =
        jingle_to_sdp_offer(&m.contents, &m.groups, SdpAuthor::Initiator, &origin("-")).unwrap();
    assert_valid_sdp(&sdp);
    let video = &sdp[sdp.find("m=video").unwrap()..];
    assert_eq!(
        video,
        "m=video 50010 UDP/TLS/RTP/SAVPF 96 97\r
c=IN IP4 192.168.1.20\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 ccm fir\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtcp-fb:* transport-cc\r
a=rtcp-fb:* trr-int 100\r
a=rtcp-mux\r
a=sendrecv\r
a=mid:1\r
a=ice-ufrag:Kx9q\r
a=ice-pwd:3lOvJHEyQAxNzc8MsTZy5Wq1\r
a=candidate:3303154462 1 udp 2122260223 192.168.1.20 50010 typ host generation 0 network-id 1\r
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r
a=setup:actpass\r
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4/recvonly urn:3gpp:video-orientation\r
a=extmap-allow-mixed\r
a=msid:5d8c1f2e 0b6f3a9d\r
a=ssrc-group:FID 2002 2003\r
a=ssrc:2002 cname:Jn9mC5dTNoFrVr3k\r
a=ssrc:2002 msid:5d8c1f2e 0b6f3a9d\r
a=ssrc:2003 cname:Jn9mC5dTNoFrVr3k\r
a=ssrc:2003 msid:5d8c1f2e 0b6f3a9d\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-options:trickle renomination\r
a=rtcp-rsize\r
"
    );
    // Session level: the group once, the kept attribute once; ICE,
    // fingerprint and extmap-allow-mixed at media level in every section.
    assert!(
        sdp.contains("t=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic: WMS 5d8c1f2e\r\nm=audio"),
        "{sdp}"
    );
    assert_eq!(sdp.matches("a=extmap-allow-mixed\r\n").count(), 2, "{sdp}");
    assert_eq!(sdp.matches("a=group:").count(), 1, "{sdp}");
}

#[test]
fn conversations_session_initiate_to_sdp_and_back() {
    let j = jingle(CONVERSATIONS_INITIATE);
    assert_eq!(j.groups, bundle(&["0", "1"]));
    assert!(j.other.is_empty(), "{:?}", j.other);
    for c in &j.contents {
        assert!(rtp(c).other.is_empty(), "{:?}", rtp(c).other);
    }
    let sdp = jingle_to_sdp_offer(
        &j.contents,
        &j.groups,
        SdpAuthor::Initiator,
        &origin("romeo"),
    )
    .unwrap();
    assert_eq!(sdp, CONVERSATIONS_SDP);
    assert_valid_sdp(&sdp);

    let back = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator).unwrap();
    assert_eq!(back.groups, j.groups);
    assert_eq!(
        without_candidate_ids(back.contents),
        without_candidate_ids(j.contents.clone())
    );
    assert!(back.declined.is_empty());
}

#[test]
fn conversations_answer_from_a_webrtc_200() {
    // The SIP side (a browser) answers the Conversations offer: the answer's
    // directions and groups come back role-aware in the session-accept.
    let j = jingle(CONVERSATIONS_INITIATE);
    let answer = CONVERSATIONS_SDP
        .replace("o=romeo", "o=alice")
        .replace("a=setup:actpass", "a=setup:active")
        .replace("a=sendonly", "a=recvonly")
        .replace("a=extmap:4/sendonly", "a=extmap:4/recvonly");
    let m = sdp_answer_to_jingle(&answer, &j.contents, SdpAuthor::Responder).unwrap();
    assert_eq!(m.groups, bundle(&["0", "1"]));
    assert_eq!(m.contents[1].senders, Senders::Initiator);
    assert_eq!(rtp(&m.contents[1]).hdrexts[0].senders, Senders::Initiator);
    assert_eq!(
        ice(&m.contents[0]).fingerprints[0].setup.as_deref(),
        Some("active")
    );
    assert_eq!(
        pt(&m.contents[1], 96).rtcp_fb,
        pt(&j.contents[1], 96).rtcp_fb
    );
    assert_eq!(rtp(&m.contents[1]).sources, rtp(&j.contents[1]).sources);
}

#[test]
fn sdes_offer_both_ways() {
    let m = sdp_offer_to_jingle(SDES_OFFER, SdpAuthor::Initiator).unwrap();
    let c = &m.contents[0];
    assert_eq!(
        rtp(c).encryption,
        Some(Encryption {
            required: true,
            cryptos: vec![
                Crypto {
                    suite: "AES_CM_128_HMAC_SHA1_80".into(),
                    key_params: "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32".into(),
                    session_params: None,
                    tag: "1".into(),
                    other: vec![],
                },
                Crypto {
                    suite: "AES_CM_128_HMAC_SHA1_32".into(),
                    key_params: "inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32".into(),
                    session_params: Some("UNENCRYPTED_SRTCP".into()),
                    tag: "2".into(),
                    other: vec![],
                },
            ],
            other: vec![],
        })
    );
    assert!(sdp_attrs(c).is_empty(), "{:?}", sdp_attrs(c));
    let mut j = Jingle::new(crate::jingle::Action::SessionInitiate, "s".into());
    j.contents = m.contents.clone();
    let xml = String::from(&j.to_element());
    assert!(
        xml.contains("<encryption required='1'><crypto crypto-suite='AES_CM_128_HMAC_SHA1_80'"),
        "{xml}"
    );

    let sdp = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert_valid_sdp(&sdp);
    assert!(sdp.contains("m=audio 13810 RTP/SAVP 0 8 101\r\n"), "{sdp}");
    assert!(
        sdp.ends_with(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:32 UNENCRYPTED_SRTCP\r\n"
        ),
        "{sdp}"
    );
    assert_offer_round_trip(SDES_OFFER, SdpAuthor::Initiator);

    // Best-effort SRTP: a=crypto over RTP/AVP is not required, and stays AVP.
    let optional = SDES_OFFER.replace("RTP/SAVP", "RTP/AVP");
    let m = sdp_offer_to_jingle(&optional, SdpAuthor::Initiator).unwrap();
    let e = rtp(&m.contents[0]).encryption.clone().unwrap();
    assert!(!e.required);
    assert_eq!(e.cryptos.len(), 2);
    let sdp = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert!(sdp.contains("m=audio 13810 RTP/AVP 0 8 101\r\n"), "{sdp}");
    assert_eq!(sdp.matches("a=crypto:").count(), 2);

    // An answer repeats the offered profile; the accepted crypto maps back.
    let mut accepted = m.contents.clone();
    if let Some(Description::Rtp(r)) = &mut accepted[0].description {
        r.encryption.as_mut().unwrap().cryptos.truncate(1);
    }
    let answer = jingle_to_sdp_answer(
        &accepted,
        &[],
        SdpAuthor::Responder,
        &origin("j"),
        SDES_OFFER,
    )
    .unwrap();
    assert!(
        answer.contains("m=audio 13810 RTP/SAVP 0 8 101\r\n"),
        "{answer}"
    );
    let back = sdp_answer_to_jingle(&answer, &m.contents, SdpAuthor::Responder).unwrap();
    let e = rtp(&back.contents[0]).encryption.clone().unwrap();
    assert!(e.required, "RTP/SAVP answer");
    assert_eq!(e.cryptos.len(), 1);
}

const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";

#[test]
fn rtcp_fb_parameters_and_unwritable_feedback() {
    let sdp = format!(
        "{HEAD}m=video 4000 RTP/AVPF 96\r\na=rtpmap:96 H264/90000\r\n\
         a=rtcp-fb:96 ccm tmmbr smaxpr=120\r\na=rtcp-fb:96 ccm vbcm 1 2\r\n\
         a=rtcp-fb:97 nack\r\na=rtcp-fb:96 trr-int x\r\na=rtcp-fb:*\r\n"
    );
    let m = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator).unwrap();
    let c = &m.contents[0];
    assert_eq!(
        pt(c, 96).rtcp_fb,
        [
            RtcpFb {
                parameters: vec![Parameter::new("smaxpr", "120")],
                ..fb("ccm", Some("tmmbr"))
            },
            RtcpFb {
                parameters: vec![Parameter::new("1", ""), Parameter::new("2", "")],
                ..fb("ccm", Some("vbcm"))
            },
        ]
    );
    // For a format not on the m= line, or malformed: dropped on purpose.
    assert!(sdp_attrs(c).is_empty(), "{:?}", sdp_attrs(c));
    let out = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert!(out.contains("m=video 4000 RTP/AVPF 96\r\n"), "{out}");
    assert!(
        out.contains("a=rtcp-fb:96 ccm tmmbr smaxpr=120\r\na=rtcp-fb:96 ccm vbcm 1 2\r\n"),
        "{out}"
    );

    // Parameters without a subtype cannot be written (they would read back
    // as the subtype); without any feedback written the profile has no F.
    let mut c = c.clone();
    if let Some(Description::Rtp(r)) = &mut c.description {
        r.payload_types[0].rtcp_fb = vec![RtcpFb {
            parameters: vec![Parameter::new("x", "1")],
            ..fb("app", None)
        }];
    }
    let out = jingle_to_sdp_offer(&[c], &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert!(out.contains("m=video 4000 RTP/AVP 96\r\n"), "{out}");
    assert!(!out.contains("rtcp-fb"), "{out}");
}

#[test]
fn extmap_directions_are_role_aware_and_session_level_extmap_applies_everywhere() {
    let sdp = format!(
        "{HEAD}a=extmap:5 urn:example:session\r\na=extmap-allow-mixed\r\n\
         m=audio 4000 RTP/AVP 0\r\na=extmap:1/sendonly urn:a\r\na=extmap:2/recvonly urn:b x=1 y\r\n\
         a=extmap:3/inactive urn:c\r\na=extmap:5 urn:example:media\r\na=extmap:4096 urn:too-big\r\n\
         m=video 4002 RTP/AVP 31\r\n"
    );
    for (author, me, peer) in [
        (SdpAuthor::Initiator, Senders::Initiator, Senders::Responder),
        (SdpAuthor::Responder, Senders::Responder, Senders::Initiator),
    ] {
        let m = sdp_offer_to_jingle(&sdp, author).unwrap();
        let audio = rtp(&m.contents[0]);
        assert_eq!(
            audio.hdrexts,
            [
                hdrext(1, "urn:a", me),
                RtpHdrext {
                    parameters: vec![Parameter::new("x", "1"), Parameter::new("y", "")],
                    ..hdrext(2, "urn:b", peer)
                },
                hdrext(3, "urn:c", Senders::None),
                hdrext(5, "urn:example:media", Senders::Both),
            ],
            "media-level id 5 wins over the session-level one"
        );
        let video = rtp(&m.contents[1]);
        assert_eq!(
            video.hdrexts,
            [hdrext(5, "urn:example:session", Senders::Both)]
        );
        assert!(audio.extmap_allow_mixed && video.extmap_allow_mixed);
        let out = jingle_to_sdp_offer(&m.contents, &[], author, &origin("-")).unwrap();
        assert_valid_sdp(&out);
        assert!(
            out.contains(
                "a=extmap:1/sendonly urn:a\r\na=extmap:2/recvonly urn:b x=1 y\r\n\
                 a=extmap:3/inactive urn:c\r\na=extmap:5 urn:example:media\r\na=extmap-allow-mixed\r\n"
            ),
            "{out}"
        );
        assert!(
            out.ends_with("a=extmap:5 urn:example:session\r\na=extmap-allow-mixed\r\n"),
            "{out}"
        );
        assert!(!out.contains("4096"), "{out}");
        assert_offer_round_trip(&sdp, author);
    }
}

#[test]
fn msid_rules() {
    // One a=msid and sources without one: folded into every source.
    let sdp = format!(
        "{HEAD}m=audio 4000 RTP/AVP 0\r\na=msid:s t\r\na=ssrc:1 cname:c\r\na=ssrc:2 cname:c\r\n"
    );
    let m = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator).unwrap();
    let both = [("cname", "c"), ("msid", "s t")];
    assert_eq!(
        rtp(&m.contents[0]).sources,
        [source(1, &both), source(2, &both)]
    );
    // …and written back in the form it came in (media level only).
    let out = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert!(
        out.ends_with("a=ssrc:1 cname:c\r\na=ssrc:2 cname:c\r\na=msid:s t\r\n"),
        "{out}"
    );
    assert_offer_round_trip(&sdp, SdpAuthor::Initiator);
    // No sources, or a source that says otherwise: a=msid stays as it was.
    for body in [
        "a=msid:s t\r\n",
        "a=msid:s t\r\na=ssrc:1 msid:s u\r\n",
        "a=msid:s t\r\na=msid:s2 t\r\na=ssrc:1 cname:c\r\n",
    ] {
        let sdp = format!("{HEAD}m=audio 4000 RTP/AVP 0\r\n{body}");
        let m = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator).unwrap();
        assert!(
            sdp_attrs(&m.contents[0])
                .iter()
                .any(|(n, _, _)| n == "msid"),
            "{body:?}"
        );
        let out =
            jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
        assert_eq!(
            out.matches("a=msid:").count(),
            body.matches("a=msid:").count()
        );
        assert_offer_round_trip(&sdp, SdpAuthor::Initiator);
    }
}

#[test]
fn groups_skip_declined_lines_and_answers_without_mids() {
    let sdp = format!(
        "{HEAD}a=group:BUNDLE a d v\r\na=group:LS d\r\n\
         m=audio 4000 RTP/AVP 0\r\na=mid:a\r\n\
         m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:d\r\n\
         m=video 4002 RTP/AVP 31\r\na=mid:v\r\n"
    );
    let m = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator).unwrap();
    assert_eq!(m.declined, [1]);
    assert_eq!(
        m.groups,
        bundle(&["a", "v"]),
        "LS of the declined line dropped"
    );
    // Our answer: the accepted mids only.
    let answer = jingle_to_sdp_answer(
        &m.contents,
        &m.groups,
        SdpAuthor::Responder,
        &origin("j"),
        &sdp,
    )
    .unwrap();
    assert_valid_sdp(&answer);
    assert!(
        answer.contains("t=0 0\r\na=group:BUNDLE a v\r\n"),
        "{answer}"
    );
    // An offer without mids: nothing to group in the answer.
    let plain = format!("{HEAD}m=audio 4000 RTP/AVP 0\r\n");
    let m = sdp_offer_to_jingle(&plain, SdpAuthor::Initiator).unwrap();
    let answer = jingle_to_sdp_answer(
        &m.contents,
        &bundle(&["audio"]),
        SdpAuthor::Responder,
        &origin("j"),
        &plain,
    )
    .unwrap();
    assert!(!answer.contains("a=group"), "{answer}");
}

#[test]
fn ice_extras_remote_candidates_lite_options_end_of_candidates() {
    let sdp = format!(
        "{HEAD}a=ice-lite\r\na=ice-options:trickle renomination\r\n\
         a=ice-ufrag:8hhY\r\na=ice-pwd:asd88fgpdd777uzjYhagZg\r\n\
         m=audio 4000 RTP/AVP 0\r\na=rtcp:4001\r\n\
         a=candidate:1 1 udp 2130706431 192.0.2.1 4000 typ host generation 0\r\n\
         a=remote-candidates:1 192.0.2.9 5000 2 192.0.2.9 5001\r\na=end-of-candidates\r\n\
         m=video 4002 RTP/AVP 31\r\n"
    );
    let m = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator).unwrap();
    let t = ice(&m.contents[0]);
    assert_eq!(
        t.remote_candidates,
        [
            crate::jingle::RemoteCandidate {
                component: 1,
                ip: "192.0.2.9".into(),
                port: 5000
            },
            crate::jingle::RemoteCandidate {
                component: 2,
                ip: "192.0.2.9".into(),
                port: 5001
            },
        ]
    );
    assert_eq!(ice(&m.contents[1]).ufrag.as_deref(), Some("8hhY"));
    assert_eq!(
        sdp_attrs(&m.contents[0]),
        [
            ("rtcp".into(), Some("4001".into()), false),
            ("end-of-candidates".into(), None, false),
            ("ice-lite".into(), None, true),
            (
                "ice-options".into(),
                Some("trickle renomination".into()),
                true
            ),
        ]
    );
    let out = jingle_to_sdp_offer(&m.contents, &[], SdpAuthor::Initiator, &origin("-")).unwrap();
    assert_valid_sdp(&out);
    assert!(
        out.contains("t=0 0\r\na=ice-lite\r\na=ice-options:trickle renomination\r\nm=audio"),
        "session level, once: {out}"
    );
    assert!(
        out.contains(
            "a=candidate:1 1 udp 2130706431 192.0.2.1 4000 typ host generation 0\r\n\
             a=remote-candidates:1 192.0.2.9 5000 2 192.0.2.9 5001\r\n"
        ),
        "{out}"
    );
    assert_eq!(
        out.matches("a=ice-ufrag:8hhY\r\n").count(),
        2,
        "media level: {out}"
    );
    assert_offer_round_trip(&sdp, SdpAuthor::Initiator);
}

#[test]
fn jingle_elements_that_do_not_fit_stay_in_other() {
    let j = jingle(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>\
         <content creator='initiator' name='a'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
         <payload-type id='0' name='PCMU'><rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0'/></payload-type>\
         <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='x' uri='u'/>\
         <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='99999999999'/>\
         <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='7' name='a0'><ssrc-info xmlns='urn:example' owner='x'/></source>\
         <encryption required='true'><crypto crypto-suite='S' key-params='inline:k' tag='1'/><zrtp-hash xmlns='urn:xmpp:jingle:apps:rtp:zrtp:1'>ab</zrtp-hash></encryption>\
         </description>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'><remote-candidate component='1' ip='1.2.3.4'/></transport>\
         </content>\
         <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE' x='1'><content name='a'/></group>\
         <group xmlns='urn:xmpp:jingle:apps:grouping:0'><content name='a'/></group>\
         </jingle>",
    );
    assert!(j.groups.is_empty());
    assert_eq!(j.other.len(), 2, "both groups kept whole");
    let c = &j.contents[0];
    let r = rtp(c);
    assert_eq!(r.payload_types[0].other.len(), 1, "rtcp-fb without type");
    assert_eq!(
        r.other.len(),
        2,
        "hdrext with a bad id, source with a bad ssrc"
    );
    assert_eq!(r.sources.len(), 1);
    assert_eq!(r.sources[0].other.len(), 2, "name attribute + ssrc-info");
    let e = r.encryption.as_ref().unwrap();
    assert!(e.required);
    assert_eq!(e.cryptos.len(), 1);
    assert_eq!(e.other.len(), 1, "zrtp-hash");
    assert_eq!(ice(c).other.len(), 1, "remote-candidate without port");
    let xml = String::from(&j.to_element());
    for needle in [
        "99999999999",
        "name='a0'",
        "ssrc-info",
        "zrtp-hash",
        "x='1'",
        "id='x'",
    ] {
        assert!(xml.contains(needle), "{needle}: {xml}");
    }
    assert_eq!(Jingle::parse(&j.to_element()).unwrap(), j);
}
