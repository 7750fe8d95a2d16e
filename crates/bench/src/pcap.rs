//! Gateway-added latency measured on the wire: a `tcpdump -i lo` capture of
//! the run gives kernel timestamps for the stanzas on the component
//! connection and the SIP datagrams on the gateway's port, so "stanza in →
//! INVITE out" and "200 in → session-accept out" are differences between two
//! packets the gateway received and sent, without SIPp's or the driver's
//! scheduling in them.
//!
//! Only what the bench itself produces is parsed: classic pcap (µs or ns
//! timestamps, little or big endian), Ethernet or Linux-cooked link layer,
//! IPv4, UDP and TCP (one connection, in order, as on loopback).

use crate::xml::{Event, Splitter, attr, start_tag};
use anyhow::{Context, bail};
use std::collections::HashMap;
use std::time::Duration;

/// One IPv4 packet's transport payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Capture time, nanoseconds.
    pub t_ns: u64,
    pub tcp: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub payload: Vec<u8>,
}

fn u16be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a whole classic pcap file.
pub fn parse(data: &[u8]) -> anyhow::Result<Vec<Packet>> {
    let magic = data.get(0..4).context("pcap too short")?;
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => bail!("not a classic pcap file"),
    };
    let rd = |at: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let link = rd(20).context("pcap header")?;
    let link_len = match link {
        1 => 14,   // Ethernet (Linux lo)
        113 => 16, // Linux cooked (-i any)
        _ => bail!("unsupported link type {link}"),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while let (Some(sec), Some(frac), Some(len)) = (rd(at), rd(at + 4), rd(at + 8)) {
        let start = at + 16;
        let end = start + len as usize;
        let Some(frame) = data.get(start..end) else {
            break;
        };
        at = end;
        let t_ns = u64::from(sec) * 1_000_000_000 + u64::from(frac) * if nanos { 1 } else { 1000 };
        if let Some(p) = ipv4(frame.get(link_len..).unwrap_or_default(), t_ns) {
            out.push(p);
        }
    }
    Ok(out)
}

fn ipv4(ip: &[u8], t_ns: u64) -> Option<Packet> {
    if ip.first()? >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16be(ip, 2)?).min(ip.len());
    let proto = *ip.get(9)?;
    let l4 = ip.get(ihl..total)?;
    match proto {
        17 => Some(Packet {
            t_ns,
            tcp: false,
            src_port: u16be(l4, 0)?,
            dst_port: u16be(l4, 2)?,
            seq: 0,
            payload: l4.get(8..)?.to_vec(),
        }),
        6 => {
            let off = usize::from(l4.get(12)? >> 4) * 4;
            Some(Packet {
                t_ns,
                tcp: true,
                src_port: u16be(l4, 0)?,
                dst_port: u16be(l4, 2)?,
                seq: u32be(l4, 4)?,
                payload: l4.get(off..)?.to_vec(),
            })
        }
        _ => None,
    }
}

/// A timestamped event at the gateway: `(t_ns, key)`, key like `in:si:SID`.
type Marks = HashMap<String, u64>;

fn mark(marks: &mut Marks, key: String, t: u64) {
    marks.entry(key).or_insert(t);
}

/// Stanzas on one direction of the component connection, each stamped with
/// the packet that completed it.
fn stanzas(packets: &[&Packet], dir: &str, marks: &mut Marks) {
    let mut splitter = Splitter::default();
    let mut next_seq: Option<u32> = None;
    for p in packets {
        if p.payload.is_empty() {
            continue;
        }
        if let Some(n) = next_seq
            && p.seq.wrapping_sub(n) > u32::MAX / 2
        {
            continue; // retransmission of bytes already seen
        }
        next_seq = Some(p.seq.wrapping_add(p.payload.len() as u32));
        splitter.push(&p.payload);
        while let Some(ev) = splitter.next_event() {
            let Event::Element(el) = ev else { continue };
            let Some(j) = start_tag(&el, "jingle") else {
                continue;
            };
            let (Some(action), Some(sid)) = (attr(j, "action"), attr(j, "sid")) else {
                continue;
            };
            let what = match action.as_str() {
                "session-initiate" => "si",
                "session-accept" => "acc",
                "session-info" if start_tag(&el, "ringing").is_some() => "ring",
                "session-terminate" => "term",
                _ => continue,
            };
            mark(marks, format!("{dir}:{what}:{sid}"), p.t_ns);
        }
    }
}

/// SIP datagrams to/from the gateway, keyed by the sid the gateway derives
/// from the Call-ID (its local part).
fn sip(p: &Packet, dir: &str, marks: &mut Marks) {
    let text = String::from_utf8_lossy(&p.payload);
    let first = text.lines().next().unwrap_or_default();
    let header = |name: &str, compact: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (k.eq_ignore_ascii_case(name) || k == compact).then(|| v.trim().to_owned())
        })
    };
    let Some(call_id) = header("Call-ID", "i") else {
        return;
    };
    let sid = call_id.split('@').next().unwrap_or_default().to_owned();
    let cseq = header("CSeq", "").unwrap_or_default();
    let what = if first.starts_with("INVITE ") {
        "invite"
    } else if first.starts_with("SIP/2.0 180") && cseq.ends_with("INVITE") {
        "180"
    } else if first.starts_with("SIP/2.0 200") && cseq.ends_with("INVITE") {
        "200"
    } else if first.starts_with("BYE ") {
        "bye"
    } else {
        return;
    };
    mark(marks, format!("{dir}:{what}:{sid}"), p.t_ns);
}

/// Latency samples (gateway in → gateway out) by name.
pub type Latencies = Vec<(&'static str, Vec<Duration>)>;

/// Pairs up what went into the gateway with what came out for the same call.
/// `component_port` is the driver's listener, `sip_port` the gateway's.
pub fn gateway_latencies(packets: &[Packet], component_port: u16, sip_port: u16) -> Latencies {
    let mut marks = Marks::new();
    // The driver is the server of the component connection: packets to its
    // listening port come out of the gateway, packets from it go in.
    let gw_out: Vec<&Packet> = packets
        .iter()
        .filter(|p| p.tcp && p.dst_port == component_port)
        .collect();
    let gw_in: Vec<&Packet> = packets
        .iter()
        .filter(|p| p.tcp && p.src_port == component_port)
        .collect();
    stanzas(&gw_out, "out", &mut marks);
    stanzas(&gw_in, "in", &mut marks);
    for p in packets.iter().filter(|p| !p.tcp) {
        if p.dst_port == sip_port {
            sip(p, "in", &mut marks);
        } else if p.src_port == sip_port {
            sip(p, "out", &mut marks);
        }
    }
    let pairs: [(&'static str, &str, &str); 6] = [
        ("session_initiate_in_to_invite_out", "in:si", "out:invite"),
        ("sip_180_in_to_ringing_out", "in:180", "out:ring"),
        ("sip_200_in_to_session_accept_out", "in:200", "out:acc"),
        ("invite_in_to_session_initiate_out", "in:invite", "out:si"),
        ("ringing_in_to_sip_180_out", "in:ring", "out:180"),
        ("session_accept_in_to_sip_200_out", "in:acc", "out:200"),
    ];
    let mut out = Vec::new();
    for (name, from, to) in pairs {
        let mut v = Vec::new();
        for (key, t0) in &marks {
            let Some(sid) = key.strip_prefix(from).and_then(|k| k.strip_prefix(':')) else {
                continue;
            };
            if let Some(t1) = marks.get(&format!("{to}:{sid}"))
                && t1 >= t0
            {
                v.push(Duration::from_nanos(t1 - t0));
            }
        }
        if !v.is_empty() {
            out.push((name, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian µs pcap with Ethernet frames.
    fn pcap(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend([0; 8]);
        f.extend(65535u32.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        for (t_us, frame) in frames {
            f.extend(((t_us / 1_000_000) as u32).to_le_bytes());
            f.extend(((t_us % 1_000_000) as u32).to_le_bytes());
            f.extend((frame.len() as u32).to_le_bytes());
            f.extend((frame.len() as u32).to_le_bytes());
            f.extend(frame);
        }
        f
    }

    fn frame(tcp: bool, src: u16, dst: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend(src.to_be_bytes());
        l4.extend(dst.to_be_bytes());
        if tcp {
            l4.extend(seq.to_be_bytes());
            l4.extend([0; 4]);
            l4.extend([5 << 4, 0x18, 0, 0, 0, 0, 0, 0]);
        } else {
            l4.extend(((8 + payload.len()) as u16).to_be_bytes());
            l4.extend([0, 0]);
        }
        l4.extend(payload);
        let mut ip = vec![0x45, 0];
        ip.extend(((20 + l4.len()) as u16).to_be_bytes());
        ip.extend([
            0,
            0,
            0,
            0,
            64,
            if tcp { 6 } else { 17 },
            0,
            0,
            127,
            0,
            0,
            1,
            127,
            0,
            0,
            1,
        ]);
        ip.extend(l4);
        let mut eth = vec![0; 12];
        eth.extend([0x08, 0x00]);
        eth.extend(ip);
        eth
    }

    #[test]
    fn pairs_stanza_in_with_invite_out() {
        let si = b"<iq type='set' id='si0'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='b0'>";
        let si_end = b"</jingle></iq>";
        let invite = b"INVITE sip:romeo0@example.net SIP/2.0\r\nCall-ID: b0@sip.example.com\r\nCSeq: 1 INVITE\r\n\r\n";
        let ok = b"SIP/2.0 200 OK\r\ni: b0@sip.example.com\r\nCSeq: 1 INVITE\r\n\r\n";
        let acc = b"<iq type='set' id='g1'><jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='b0'/></iq>";
        let data = pcap(&[
            (1_000_000, frame(true, 5347, 40000, 1, si)),
            (
                1_000_100,
                frame(true, 5347, 40000, 1 + si.len() as u32, si_end),
            ),
            (1_000_100, frame(true, 5347, 40000, 1, si)), // retransmission: ignored
            (1_000_350, frame(false, 5060, 5070, 0, invite)),
            (1_002_000, frame(false, 5070, 5060, 0, ok)),
            (1_002_400, frame(true, 40000, 5347, 9, acc)),
        ]);
        let packets = parse(&data).expect("pcap");
        assert_eq!(packets.len(), 6);
        let lat = gateway_latencies(&packets, 5347, 5060);
        let get = |n: &str| lat.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get("session_initiate_in_to_invite_out"),
            Some(vec![Duration::from_micros(250)])
        );
        assert_eq!(
            get("sip_200_in_to_session_accept_out"),
            Some(vec![Duration::from_micros(400)])
        );
        assert!(get("invite_in_to_session_initiate_out").is_none());
        assert!(parse(b"nope").is_err());
    }
}
