//! Trickle ICE over SIP (RFC 8840 / RFC 8838): candidates ⇄ the
//! `application/trickle-ice-sdpfrag` body of a SIP INFO, and the Jingle side's
//! XEP-0176 `transport-info` contents.
//!
//! A fragment looks like:
//!
//! ```text
//! a=ice-ufrag:8hhY
//! a=ice-pwd:asd88fgpdd777uzjYhagZg
//! m=audio 9 RTP/AVP 0
//! a=mid:audio
//! a=candidate:1 1 udp 2130706431 192.0.2.1 4000 typ host generation 0
//! a=end-of-candidates
//! ```

use super::SdpError;
use super::check::is_token;
use super::transport::{candidate_line, ice_candidate, is_ice_pwd, is_ice_ufrag};
use crate::jingle::{Content, IceCandidate, IceUdpTransport, Transport};

/// The MIME type of a trickle-ICE INFO body.
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// The ICE candidates of `contents` (transport-info) as an sdpfrag, one m=
/// section per content with its `a=mid`. `None` when there is no candidate.
pub fn contents_to_sdpfrag(contents: &[Content], end_of_candidates: bool) -> Option<String> {
    let mut out = String::new();
    let mut any = false;
    let mut creds_written = false;
    for c in contents {
        let Some(Transport::IceUdp(t)) = &c.transport else {
            continue;
        };
        if let (false, Some(ufrag), Some(pwd)) = (creds_written, &t.ufrag, &t.pwd)
            && is_ice_ufrag(ufrag)
            && is_ice_pwd(pwd)
        {
            out.push_str(&format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"));
            creds_written = true;
        }
        out.push_str("m=audio 9 RTP/AVP 0\r\n");
        if is_token(&c.name) {
            out.push_str(&format!("a=mid:{}\r\n", c.name));
        }
        for cand in &t.candidates {
            if let Some(line) = candidate_line(cand) {
                out.push_str(&line);
                out.push_str("\r\n");
                any = true;
            }
        }
        if end_of_candidates {
            out.push_str("a=end-of-candidates\r\n");
        }
    }
    any.then_some(out)
}

/// The candidates of an sdpfrag as transport-info contents. m= sections are
/// matched to `offered` by `a=mid`, else by position.
pub fn sdpfrag_to_contents(frag: &str, offered: &[Content]) -> Result<Vec<Content>, SdpError> {
    let mut ufrag = None;
    let mut pwd = None;
    let mut sections: Vec<(Option<String>, Vec<IceCandidate>)> = Vec::new();
    for line in frag.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push((None, Vec::new()));
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
        let index = sections.len().saturating_sub(1);
        match (name, sections.last_mut()) {
            ("ice-ufrag", _) => ufrag = Some(value.trim().to_owned()),
            ("ice-pwd", _) => pwd = Some(value.trim().to_owned()),
            ("mid", Some(section)) => section.0 = Some(value.trim().to_owned()),
            ("candidate", Some(section)) => {
                let id = format!("t{index}c{}", section.1.len());
                let cand = ice_candidate(value, id)
                    .ok_or_else(|| SdpError::Parse(format!("bad candidate line: {line}")))?;
                section.1.push(cand);
            }
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err(SdpError::NothingMappable(
            "the sdpfrag has no m= section".to_owned(),
        ));
    }
    let mut contents = Vec::new();
    for (index, (mid, candidates)) in sections.into_iter().enumerate() {
        let name = match mid {
            Some(mid) => mid,
            None => match offered.get(index) {
                Some(c) => c.name.clone(),
                None => continue,
            },
        };
        let mut content = Content::new(name);
        content.transport = Some(Transport::IceUdp(IceUdpTransport {
            ufrag: ufrag.clone(),
            pwd: pwd.clone(),
            candidates,
            ..IceUdpTransport::default()
        }));
        contents.push(content);
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ice_content(name: &str, ports: &[u16]) -> Content {
        let mut c = Content::new(name);
        c.transport = Some(Transport::IceUdp(IceUdpTransport {
            ufrag: Some("8hhY".into()),
            pwd: Some("asd88fgpdd777uzjYhagZg".into()),
            candidates: ports
                .iter()
                .enumerate()
                .map(|(i, p)| IceCandidate {
                    component: 1,
                    foundation: format!("{}", i + 1),
                    generation: 0,
                    id: format!("c{i}"),
                    ip: "192.0.2.1".into(),
                    port: *p,
                    priority: 2_130_706_431,
                    protocol: "udp".into(),
                    kind: "host".into(),
                    rel_addr: None,
                    rel_port: None,
                    tcptype: None,
                    network: None,
                })
                .collect(),
            ..IceUdpTransport::default()
        }));
        c
    }

    #[test]
    fn candidates_round_trip_through_an_sdpfrag() {
        let contents = vec![
            ice_content("audio", &[4000, 4002]),
            ice_content("video", &[5000]),
        ];
        let frag = contents_to_sdpfrag(&contents, true).expect("has candidates");
        assert!(frag.starts_with("a=ice-ufrag:8hhY\r\na=ice-pwd:asd88fgpdd777uzjYhagZg\r\nm=audio 9 RTP/AVP 0\r\na=mid:audio\r\n"), "{frag}");
        assert!(
            frag.contains(
                "a=candidate:1 1 udp 2130706431 192.0.2.1 4000 typ host generation 0\r\n"
            )
        );
        assert_eq!(frag.matches("a=end-of-candidates").count(), 2);
        let back = sdpfrag_to_contents(&frag, &[]).expect("parses");
        let ports: Vec<(String, Vec<u16>)> = back
            .iter()
            .map(|c| match &c.transport {
                Some(Transport::IceUdp(t)) => (
                    c.name.clone(),
                    t.candidates.iter().map(|x| x.port).collect(),
                ),
                _ => (c.name.clone(), vec![]),
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("audio".into(), vec![4000, 4002]),
                ("video".into(), vec![5000])
            ]
        );
    }

    #[test]
    fn sections_without_mid_are_named_by_position_and_garbage_is_an_error() {
        let offered = vec![Content::new("voice")];
        let frag = "m=audio 9 RTP/AVP 0\r\na=candidate:2 1 UDP 1658497328 198.51.100.33 5002 typ srflx raddr 10.0.0.1 rport 9\r\n";
        let back = sdpfrag_to_contents(frag, &offered).expect("parses");
        assert_eq!(back[0].name, "voice");
        let Some(Transport::IceUdp(t)) = &back[0].transport else {
            panic!("ice")
        };
        assert_eq!(t.candidates[0].protocol, "udp");
        assert_eq!(t.candidates[0].rel_port, Some(9));
        assert!(sdpfrag_to_contents("a=candidate:x\r\n", &offered).is_err());
        assert!(
            sdpfrag_to_contents("m=audio 9 RTP/AVP 0\r\na=candidate:1 1 udp\r\n", &offered)
                .is_err()
        );
        assert_eq!(contents_to_sdpfrag(&[Content::new("a")], false), None);
    }
}
