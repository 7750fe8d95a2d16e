//! Mid-call SDP (RFC 3264 §8): the direction of each stream (hold and
//! resume, §8.4), a new version of an SDP we sent (§8: the `o=` version goes
//! up by one), and whether a new offer changes anything but directions.
//!
//! Our SDP is edited as text, line by line, so that every attribute we do
//! not touch stays as it was sent.

use super::SdpError;
use super::raw::{RawSdp, attributes, first};

/// A stream's direction (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaDirection {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl MediaDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaDirection::SendRecv => "sendrecv",
            MediaDirection::SendOnly => "sendonly",
            MediaDirection::RecvOnly => "recvonly",
            MediaDirection::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<MediaDirection> {
        match s {
            "sendrecv" => Some(MediaDirection::SendRecv),
            "sendonly" => Some(MediaDirection::SendOnly),
            "recvonly" => Some(MediaDirection::RecvOnly),
            "inactive" => Some(MediaDirection::Inactive),
            _ => None,
        }
    }

    /// The direction an answer takes to an offered one (RFC 3264 §6.1).
    pub fn answer(self) -> MediaDirection {
        match self {
            MediaDirection::SendOnly => MediaDirection::RecvOnly,
            MediaDirection::RecvOnly => MediaDirection::SendOnly,
            other => other,
        }
    }

    /// Does the stream's author want to receive?
    pub fn receives(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::RecvOnly)
    }

    /// Does the stream's author want to send?
    pub fn sends(self) -> bool {
        matches!(self, MediaDirection::SendRecv | MediaDirection::SendOnly)
    }

    /// Sending only where both allow it, receiving only where both do.
    pub fn and(self, other: MediaDirection) -> MediaDirection {
        match (
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        ) {
            (true, true) => MediaDirection::SendRecv,
            (true, false) => MediaDirection::SendOnly,
            (false, true) => MediaDirection::RecvOnly,
            (false, false) => MediaDirection::Inactive,
        }
    }

    /// The same without receiving (what a party on hold offers or answers).
    pub fn without_receiving(self) -> MediaDirection {
        match self {
            MediaDirection::SendRecv => MediaDirection::SendOnly,
            MediaDirection::RecvOnly => MediaDirection::Inactive,
            other => other,
        }
    }
}

/// The direction of each stream of `sdp` in m= order, `None` for a declined
/// one (port 0). The old way to hold (RFC 2543, RFC 3264 §8.4), a `c=`
/// address of `0.0.0.0`, counts as not receiving.
pub fn stream_directions(sdp: &str) -> Result<Vec<Option<MediaDirection>>, SdpError> {
    let raw = RawSdp::parse(sdp)?;
    let direction_of = |lines: &[super::raw::Line]| {
        attributes(lines)
            .filter(|(_, v)| v.is_none())
            .find_map(|(n, _)| MediaDirection::parse(n))
    };
    let session_dir = direction_of(&raw.session);
    let session_null = first(&raw.session, 'c').is_some_and(is_null_connection);
    Ok(raw
        .media
        .iter()
        .map(|m| {
            if m.mline.port == 0 {
                return None;
            }
            let dir = direction_of(&m.lines)
                .or(session_dir)
                .unwrap_or(MediaDirection::SendRecv);
            let null = match first(&m.lines, 'c') {
                Some(c) => is_null_connection(c),
                None => session_null,
            };
            Some(if null { dir.without_receiving() } else { dir })
        })
        .collect())
}

/// Is every stream that is not declined one whose author does not want to
/// receive (the author holds the other party)? `false` when none is live.
pub fn holds(directions: &[Option<MediaDirection>]) -> bool {
    let live: Vec<MediaDirection> = directions.iter().flatten().copied().collect();
    !live.is_empty() && live.iter().all(|d| !d.receives())
}

/// The `o=` session version of `sdp`.
pub fn origin_version(sdp: &str) -> Option<u64> {
    sdp.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("o="))
        .and_then(|o| o.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
}

/// The `o=` version a new SDP of ours takes after `sdp` (RFC 3264 §8: one
/// up; 1 after an SDP without a readable one).
pub fn next_version(sdp: &str) -> u64 {
    origin_version(sdp).unwrap_or(0) + 1
}

/// `sdp` (one we sent) with each live stream's direction set to
/// `directions` (m= order; `None` leaves a stream as it is), no session-level
/// direction, and `o=` version `version`. Every other line is kept as it was.
pub fn with_directions(
    sdp: &str,
    directions: &[Option<MediaDirection>],
    version: u64,
) -> Result<String, SdpError> {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(sdp.len() + 16);
    // The m= section being copied: its index and the direction it gets.
    let mut section: Option<(usize, Option<MediaDirection>)> = None;
    let mut sections = 0usize;
    let close = |out: &mut String, section: Option<(usize, Option<MediaDirection>)>| {
        if let Some((_, Some(dir))) = section {
            out.push_str("a=");
            out.push_str(dir.as_str());
            out.push_str(eol);
        }
    };
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        if let Some(dir) = line.strip_prefix("a=")
            && MediaDirection::parse(dir).is_some()
        {
            // Direction lines are written anew at the end of each section.
            if section.is_some_and(|(_, d)| d.is_none()) {
                out.push_str(line);
                out.push_str(eol);
            }
            continue;
        }
        if line.starts_with("m=") {
            close(&mut out, section);
            let dir = directions.get(sections).copied().flatten();
            let declined = line.split_whitespace().nth(1) == Some("0");
            section = Some((sections, if declined { None } else { dir }));
            sections += 1;
        }
        if let Some(origin) = line.strip_prefix("o=") {
            let mut fields: Vec<&str> = origin.split_whitespace().collect();
            if fields.len() != 6 {
                return Err(SdpError::Parse(format!("bad o= line: {line:?}")));
            }
            let v = version.to_string();
            fields[2] = &v;
            out.push_str("o=");
            out.push_str(&fields.join(" "));
            out.push_str(eol);
            continue;
        }
        out.push_str(line);
        out.push_str(eol);
    }
    close(&mut out, section);
    if sections != directions.len() {
        return Err(SdpError::Parse(format!(
            "{} directions for {sections} m= sections",
            directions.len()
        )));
    }
    Ok(out)
}

/// Does `new` describe the same media as `old` but for stream directions,
/// the `o=` line and a hold address (`c=0.0.0.0`)? A session refresh, a hold
/// or a resume, and nothing else.
pub fn same_media(old: &str, new: &str) -> bool {
    let null = |sdp: &str| {
        sdp.lines()
            .filter_map(|l| l.trim().strip_prefix("c="))
            .any(is_null_connection)
    };
    // Holding or resuming the old way swaps the address for 0.0.0.0 or back.
    let drop_c = null(old) || null(new);
    normalized(old, drop_c).eq(normalized(new, drop_c))
}

/// [`same_media`] once both offers are cut down to the formats of `ours`
/// (our answer): a peer may narrow its format list in a later offer (RFC
/// 3264 §8.3.2; baresip offers only the codec in use after the first
/// exchange), and the session does not change while every format we
/// answered stays offered with the same definition.
pub fn same_media_for(old: &str, new: &str, ours: &str) -> bool {
    if same_media(old, new) {
        return true;
    }
    let (_, our_sections) = sections(ours);
    let used: Vec<Vec<&str>> = our_sections.iter().map(|s| section_formats(s)).collect();
    match (restricted(old, &used), restricted(new, &used)) {
        (Some(a), Some(b)) => same_media(&a, &b),
        _ => false,
    }
}

/// The formats of an m= section's m= line.
fn section_formats(section: &str) -> Vec<&str> {
    section
        .lines()
        .find_map(|l| l.strip_prefix("m="))
        .map(|m| m.split_whitespace().skip(3).collect())
        .unwrap_or_default()
}

/// `sdp` with each m= section's formats cut down to `keep` of the same
/// index (format lists and the a=rtpmap/fmtp/rtcp-fb lines of others
/// dropped); None when the section counts differ.
fn restricted(sdp: &str, keep: &[Vec<&str>]) -> Option<String> {
    let (head, secs) = sections(sdp);
    if secs.len() != keep.len() {
        return None;
    }
    let mut out = head;
    for (section, keep) in secs.iter().zip(keep) {
        for line in section.lines() {
            let kept = if let Some(m) = line.strip_prefix("m=") {
                let f: Vec<&str> = m.split_whitespace().collect();
                let formats = f.iter().skip(3).filter(|x| keep.contains(x));
                let line: Vec<&str> = f.iter().take(3).chain(formats).copied().collect();
                Some(format!("m={}", line.join(" ")))
            } else {
                let pt = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
                    .iter()
                    .find_map(|p| line.strip_prefix(p))
                    .and_then(|rest| rest.split_whitespace().next());
                match pt {
                    Some(pt) if pt != "*" && !keep.contains(&pt) => None,
                    _ => Some(line.to_owned()),
                }
            };
            if let Some(l) = kept {
                out.push_str(&l);
                out.push_str("\r\n");
            }
        }
    }
    Some(out)
}

fn normalized(sdp: &str, drop_c: bool) -> impl Iterator<Item = &str> {
    // With rtcp-mux (RFC 5761 §5.1.3) RTCP shares the RTP port: the
    // `a=rtcp` fallback and the RTCP component's candidates say nothing
    // about the session (rtpengine drops both once rtcp-mux is agreed).
    let muxed = sdp.lines().any(|l| l.trim() == "a=rtcp-mux");
    sdp.lines().map(str::trim).filter(move |l| {
        let direction = l
            .strip_prefix("a=")
            .is_some_and(|a| MediaDirection::parse(a).is_some());
        let skipped = l.is_empty() || l.starts_with("o=") || (drop_c && l.starts_with("c="));
        let rtcp_fallback = muxed && (l.starts_with("a=rtcp:") || is_rtcp_candidate(l));
        // A controlling ICE agent names the pair it nominated in its later
        // offers (RFC 8839 §5.3, RFC 5245 §9.1.2.2): ICE state, not media.
        let nominated = l.starts_with("a=remote-candidates:");
        !(skipped || direction || rtcp_fallback || nominated)
    })
}

/// An `a=candidate` line of component 2 (RTCP, RFC 8839 §5.1).
fn is_rtcp_candidate(line: &str) -> bool {
    line.strip_prefix("a=candidate:")
        .and_then(|rest| rest.split_whitespace().nth(1))
        == Some("2")
}

/// The part of `sdp` before its first m= line and the text of each m=
/// section, line endings made CRLF.
pub fn sections(sdp: &str) -> (String, Vec<String>) {
    let mut head = String::new();
    let mut out: Vec<String> = Vec::new();
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            out.push(String::new());
        }
        let target = out.last_mut().unwrap_or(&mut head);
        target.push_str(line);
        target.push_str("\r\n");
    }
    (head, out)
}

/// The `a=mid` of each m= section of `sdp`.
pub fn section_mids(sdp: &str) -> Vec<Option<String>> {
    sections(sdp)
        .1
        .iter()
        .map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("a=mid:"))
                .map(|m| m.trim().to_owned())
        })
        .collect()
}

/// `local` (an SDP we sent) with the m= sections `added` after its own, their
/// mids joined to its BUNDLE group (RFC 8843) when it has one, and `o=`
/// version `version` (RFC 3264 §8.1: streams are added at the end).
pub fn with_sections_added(
    local: &str,
    added: &[String],
    version: u64,
) -> Result<String, SdpError> {
    let (head, mut own) = sections(local);
    let new_mids: Vec<String> = added
        .iter()
        .filter_map(|s| s.lines().find_map(|l| l.strip_prefix("a=mid:")))
        .map(|m| m.trim().to_owned())
        .collect();
    own.extend(added.iter().cloned());
    let head = head
        .lines()
        .map(|l| match l.strip_prefix("a=group:BUNDLE") {
            Some(rest) if !new_mids.is_empty() => {
                let mut mids: Vec<&str> = rest.split_whitespace().collect();
                mids.extend(new_mids.iter().map(String::as_str));
                format!("a=group:BUNDLE {}\r\n", mids.join(" "))
            }
            _ => format!("{l}\r\n"),
        })
        .collect::<String>();
    with_version(&(head + &own.concat()), version)
}

/// `sdp` with the m= sections at `declined` set to port 0 (RFC 3264 §8.2)
/// and their mids out of its BUNDLE group (RFC 8843 §7.3.3), `o=` version
/// `version`.
pub fn with_sections_declined(
    sdp: &str,
    declined: &[usize],
    version: u64,
) -> Result<String, SdpError> {
    let (head, mut own) = sections(sdp);
    let mut gone: Vec<String> = Vec::new();
    for &i in declined {
        let Some(section) = own.get_mut(i) else {
            return Err(SdpError::Parse(format!("no m= section {i}")));
        };
        let mut lines: Vec<String> = section.lines().map(str::to_owned).collect();
        let mut fields: Vec<String> = lines[0].split(' ').map(str::to_owned).collect();
        if fields.len() < 4 {
            return Err(SdpError::Parse(format!("bad m= line: {:?}", lines[0])));
        }
        fields[1] = "0".to_owned();
        lines[0] = fields.join(" ");
        if let Some(mid) = lines.iter().find_map(|l| l.strip_prefix("a=mid:")) {
            gone.push(mid.trim().to_owned());
        }
        *section = lines.iter().map(|l| format!("{l}\r\n")).collect();
    }
    let head = head
        .lines()
        .filter_map(|l| match l.strip_prefix("a=group:BUNDLE") {
            Some(rest) => {
                let mids: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|m| !gone.iter().any(|g| g == m))
                    .collect();
                (!mids.is_empty()).then(|| format!("a=group:BUNDLE {}\r\n", mids.join(" ")))
            }
            None => Some(format!("{l}\r\n")),
        })
        .collect::<String>();
    with_version(&(head + &own.concat()), version)
}

/// How a new offer changes the streams of the previous SDP of its author,
/// when that is all it changes (directions aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChange {
    /// New m= sections at these indexes, after the old ones (RFC 3264 §8.1).
    Added(Vec<usize>),
    /// The m= sections at these indexes set to port 0 (RFC 3264 §8.2).
    Removed(Vec<usize>),
}

/// Does `new` add streams at the end of `old`, or remove some, and change
/// nothing else (directions, the `o=` line and BUNDLE groups aside)?
pub fn stream_change(old: &str, new: &str) -> Option<StreamChange> {
    let (old_head, old_secs) = sections(old);
    let (new_head, new_secs) = sections(new);
    let ungrouped = |head: &str| {
        head.lines()
            .filter(|l| !l.starts_with("a=group:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !same_media(&ungrouped(&old_head), &ungrouped(&new_head)) {
        return None;
    }
    let port = |s: &str| s.split_whitespace().nth(1).map(str::to_owned);
    if new_secs.len() > old_secs.len() {
        let kept = old_secs
            .iter()
            .zip(&new_secs)
            .all(|(o, n)| same_media(o, n));
        return kept.then(|| StreamChange::Added((old_secs.len()..new_secs.len()).collect()));
    }
    if new_secs.len() != old_secs.len() {
        return None;
    }
    let mut removed = Vec::new();
    for (i, (o, n)) in old_secs.iter().zip(&new_secs).enumerate() {
        if port(o).as_deref() != Some("0") && port(n).as_deref() == Some("0") {
            removed.push(i);
        } else if !same_media(o, n) {
            return None;
        }
    }
    (!removed.is_empty()).then_some(StreamChange::Removed(removed))
}

/// The answer to offered m= sections that are declined (RFC 3264 §6): each
/// one's m= line with port 0, nothing else.
pub fn declined_sections(offer: &str, indexes: &[usize]) -> Vec<String> {
    let secs = sections(offer).1;
    indexes
        .iter()
        .filter_map(|&i| secs.get(i))
        .filter_map(|s| s.lines().next())
        .map(|m| {
            let mut fields: Vec<&str> = m.split(' ').collect();
            if fields.len() > 1 {
                fields[1] = "0";
            }
            format!("{}\r\n", fields.join(" "))
        })
        .collect()
}

/// The first `a=ice-ufrag` of `sdp` (session or media level).
pub fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(|u| u.trim().to_owned())
}

/// Is `new` an ICE restart of `old` (RFC 8839 §4.4.1.1.1: new ufrag and
/// pwd), with the media otherwise unchanged? Candidates, default addresses
/// and ports, and `a=rtcp` may change with it.
pub fn ice_restart(old: &str, new: &str) -> bool {
    let ice_free = |sdp: &str| -> Vec<String> {
        sdp.lines()
            .map(str::trim)
            .filter(|l| {
                // A direction change rides along as a hold, not as part of
                // the restart: compared like any other line.
                let transport = [
                    "o=",
                    "c=",
                    "a=ice-ufrag:",
                    "a=ice-pwd:",
                    "a=candidate:",
                    "a=end-of-candidates",
                    "a=remote-candidates:",
                    "a=rtcp:",
                ]
                .iter()
                .any(|p| l.starts_with(p));
                !(l.is_empty() || transport)
            })
            .map(|l| match l.strip_prefix("m=") {
                // m=<media> <port> <proto> <fmt …>: the port may move.
                Some(m) => {
                    let mut f: Vec<&str> = m.split(' ').collect();
                    if f.len() > 1 && f[1] != "0" {
                        f[1] = "*";
                    }
                    format!("m={}", f.join(" "))
                }
                None => l.to_owned(),
            })
            .collect()
    };
    let (a, b) = (ice_ufrag(old), ice_ufrag(new));
    a.is_some() && b.is_some() && a != b && ice_free(old) == ice_free(new)
}

/// `sdp` (one we sent) with new ICE credentials and, per m= section, its
/// candidates (a section without any in `candidates` keeps none): an ICE
/// restart (RFC 8839 §4.4.1.1.1). `o=` version `version`.
pub fn with_ice(
    sdp: &str,
    ufrag: &str,
    pwd: &str,
    candidates: &[Vec<crate::jingle::IceCandidate>],
    version: u64,
) -> Result<String, SdpError> {
    if !super::transport::is_ice_ufrag(ufrag) || !super::transport::is_ice_pwd(pwd) {
        return Err(SdpError::Parse("invalid ICE ufrag or pwd".to_owned()));
    }
    let (head, secs) = sections(sdp);
    let rewrite = |text: &str, cands: Option<&Vec<crate::jingle::IceCandidate>>| -> String {
        let mut out = String::new();
        for line in text.lines() {
            if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
                continue;
            }
            if line.starts_with("a=ice-ufrag:") {
                out.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
            } else if line.starts_with("a=ice-pwd:") {
                out.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
            } else {
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        for c in cands.into_iter().flatten() {
            if let Some(line) = super::transport::candidate_line(c) {
                out.push_str(&line);
                out.push_str("\r\n");
            }
        }
        out
    };
    let mut out = rewrite(&head, None);
    for (i, s) in secs.iter().enumerate() {
        out.push_str(&rewrite(s, candidates.get(i)));
    }
    with_version(&out, version)
}

/// `sdp` with `o=` version `version`, everything else as it is.
fn with_version(sdp: &str, version: u64) -> Result<String, SdpError> {
    let mut out = String::with_capacity(sdp.len() + 4);
    for line in sdp.lines() {
        match line.strip_prefix("o=") {
            Some(origin) => {
                let mut fields: Vec<&str> = origin.split_whitespace().collect();
                if fields.len() != 6 {
                    return Err(SdpError::Parse(format!("bad o= line: {line:?}")));
                }
                let v = version.to_string();
                fields[2] = &v;
                out.push_str("o=");
                out.push_str(&fields.join(" "));
            }
            None => out.push_str(line),
        }
        out.push_str("\r\n");
    }
    Ok(out)
}

/// `IN IP4 0.0.0.0` (RFC 3264 §8.4's old hold).
fn is_null_connection(c: &str) -> bool {
    c.split_whitespace().nth(2) == Some("0.0.0.0")
}

#[cfg(test)]
mod tests {
    use super::MediaDirection::*;
    use super::*;

    const OURS: &str = "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        a=sendrecv\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=x-unknown:kept\r\nm=video 0 RTP/AVP 96\r\nm=video 4002 RTP/AVP 97\r\na=recvonly\r\n\
        a=rtpmap:97 VP8/90000\r\n";

    #[test]
    fn rfc3264_8_4_directions_per_stream_session_level_and_null_address() {
        assert_eq!(
            stream_directions(OURS).expect("parses"),
            [Some(SendRecv), None, Some(RecvOnly)]
        );
        let old_hold = "v=0\r\no=a 1 2 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            stream_directions(old_hold).expect("parses"),
            [Some(SendOnly)]
        );
        assert!(holds(&stream_directions(old_hold).expect("parses")));
        assert!(!holds(&stream_directions(OURS).expect("parses")));
        assert!(!holds(&[None]), "nothing live is no hold");
    }

    #[test]
    fn rfc3264_6_1_answer_directions() {
        assert_eq!(SendOnly.answer(), RecvOnly);
        assert_eq!(RecvOnly.answer(), SendOnly);
        assert_eq!(Inactive.answer(), Inactive);
        assert_eq!(SendRecv.answer().without_receiving(), SendOnly);
        assert_eq!(SendOnly.answer().without_receiving(), Inactive);
    }

    #[test]
    fn rfc3264_8_a_new_version_changes_directions_and_the_origin_only() {
        let held =
            with_directions(OURS, &[Some(SendOnly), None, Some(Inactive)], 2).expect("parses");
        assert_eq!(origin_version(&held), Some(2));
        assert_eq!(
            stream_directions(&held).expect("parses"),
            [Some(SendOnly), None, Some(Inactive)]
        );
        assert!(held.contains("a=x-unknown:kept\r\n"), "{held}");
        assert!(
            !held.contains("a=sendrecv"),
            "no session-level direction left"
        );
        assert!(held.contains("m=video 0 RTP/AVP 96\r\nm=video"), "{held}");
        assert!(same_media(OURS, &held));
        assert!(with_directions(OURS, &[Some(SendOnly)], 2).is_err());
    }

    const BUNDLED: &str = "v=0\r\no=- 7 3 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=mid:0\r\na=sendrecv\r\n";

    #[test]
    fn rfc3264_8_1_a_stream_is_added_at_the_end_and_joins_the_bundle() {
        let video =
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n";
        let out = with_sections_added(BUNDLED, &[video.to_owned()], 4).expect("adds");
        assert!(out.contains("a=group:BUNDLE 0 1\r\n"), "{out}");
        assert!(out.ends_with(video), "{out}");
        assert_eq!(origin_version(&out), Some(4));
        assert_eq!(section_mids(&out), [Some("0".into()), Some("1".into())]);
        // … and is removed with port 0, out of the bundle.
        let removed = with_sections_declined(&out, &[1], 5).expect("declines");
        assert!(
            removed.contains("m=video 0 UDP/TLS/RTP/SAVPF 96\r\n"),
            "{removed}"
        );
        assert!(removed.contains("a=group:BUNDLE 0\r\n"), "{removed}");
        assert!(removed.contains("m=audio 9 "), "the rest as it was");
        assert_eq!(origin_version(&removed), Some(5));
        assert!(with_sections_declined(&out, &[2], 5).is_err());
    }

    #[test]
    fn rfc3264_8_a_new_offer_that_adds_or_removes_streams_and_nothing_else() {
        let video =
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n";
        let added = with_sections_added(BUNDLED, &[video.to_owned()], 4).expect("adds");
        assert_eq!(
            stream_change(BUNDLED, &added),
            Some(StreamChange::Added(vec![1]))
        );
        let removed = with_sections_declined(&added, &[1], 5).expect("declines");
        assert_eq!(
            stream_change(&added, &removed),
            Some(StreamChange::Removed(vec![1]))
        );
        let moved = added.replace("m=audio 9 ", "m=audio 10 ");
        assert_eq!(
            stream_change(BUNDLED, &moved),
            None,
            "the audio changed too"
        );
        assert_eq!(stream_change(BUNDLED, BUNDLED), None, "nothing changed");
    }

    #[test]
    fn rfc8839_4_4_1_1_1_an_ice_restart_is_new_credentials_and_nothing_else() {
        let ice = "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 4000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=ice-ufrag:8hhY\r\n\
            a=ice-pwd:asd88fgpdd777uzjYhagZg\r\na=mid:0\r\n\
            a=candidate:1 1 udp 2130706431 127.0.0.1 4000 typ host generation 0\r\na=sendrecv\r\n";
        let restarted = ice
            .replace("8hhY", "n3wU")
            .replace("m=audio 4000", "m=audio 5000")
            .replace("127.0.0.1 4000 typ", "127.0.0.1 5000 typ");
        assert!(ice_restart(ice, &restarted));
        assert!(!ice_restart(ice, ice), "same credentials");
        assert!(
            !ice_restart(ice, &restarted.replace(" 111", " 0")),
            "codecs changed too"
        );
        assert!(
            !ice_restart(ice, &restarted.replace("a=sendrecv", "a=sendonly")),
            "a hold rides along: not a pure restart"
        );
        let cand = crate::jingle::IceCandidate {
            component: 1,
            foundation: "2".into(),
            generation: 0,
            id: "x".into(),
            ip: "127.0.0.2".into(),
            port: 6000,
            priority: 1,
            protocol: "udp".into(),
            kind: "host".into(),
            rel_addr: None,
            rel_port: None,
            tcptype: None,
            network: None,
        };
        let ours = with_ice(ice, "aaaa", "bbbbbbbbbbbbbbbbbbbbbbbb", &[vec![cand]], 2).expect("ok");
        assert_eq!(ice_ufrag(&ours).as_deref(), Some("aaaa"));
        assert!(ours.contains("a=ice-pwd:bbbbbbbbbbbbbbbbbbbbbbbb\r\n"));
        assert!(
            ours.contains("a=candidate:2 1 udp 1 127.0.0.2 6000 typ host"),
            "{ours}"
        );
        assert!(!ours.contains("127.0.0.1 4000 typ"), "{ours}");
        assert_eq!(origin_version(&ours), Some(2));
        assert!(with_ice(ice, "a b", "x", &[], 2).is_err());
    }

    #[test]
    fn rfc3264_8_3_2_a_narrowed_format_list_keeping_ours_is_the_same_media() {
        let first = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
        let ours = "v=0\r\no=- 9 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 5000 RTP/AVP 8 101\r\nc=IN IP4 127.0.0.1\r\na=rtpmap:8 PCMA/8000\r\n\
            a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
        // baresip's hold: only the formats in use, sendonly.
        let hold = first
            .replace("RTP/AVP 8 0 101", "RTP/AVP 8 101")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "")
            .replace("a=sendrecv", "a=sendonly")
            .replace(" 1 1 IN", " 1 2 IN");
        assert!(!same_media(first, &hold));
        assert!(same_media_for(first, &hold, ours));
        let without_pcma = first
            .replace("RTP/AVP 8 0 101", "RTP/AVP 0 101")
            .replace("a=rtpmap:8 PCMA/8000\r\n", "");
        assert!(
            !same_media_for(first, &without_pcma, ours),
            "our codec is gone"
        );
        let redefined = hold.replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:8 PCMA/16000");
        assert!(
            !same_media_for(first, &redefined, ours),
            "our codec changed"
        );
        let moved = hold.replace("m=audio 4000", "m=audio 4002");
        assert!(
            !same_media_for(first, &moved, ours),
            "a new port is not a hold"
        );
    }

    #[test]
    fn rfc5761_5_1_3_and_rfc8839_5_3_rtcp_fallback_and_remote_candidates_do_not_change_the_media() {
        // rtpengine's first offer toward a WebRTC client, then its re-offer
        // (a hold) once rtcp-mux was agreed: the a=rtcp port and the RTCP
        // component's candidate are gone.
        let first = "v=0\r\no=phone 5 5 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 31028 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n\
            a=rtcp:31029\r\na=rtcp-mux\r\na=ice-ufrag:q3YA\r\n\
            a=candidate:31g 1 UDP 2130706431 127.0.0.1 31028 typ host\r\n\
            a=candidate:31g 2 UDP 2130706430 127.0.0.1 31029 typ host\r\n";
        let held = "v=0\r\no=phone 5 6 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
            m=audio 31028 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n\
            a=rtcp:31028\r\na=rtcp-mux\r\na=ice-ufrag:q3YA\r\n\
            a=candidate:31g 1 UDP 2130706431 127.0.0.1 31028 typ host\r\n";
        assert!(same_media(first, held));
        // Without rtcp-mux the RTCP port is part of the session.
        let plain = |sdp: &str| sdp.replace("a=rtcp-mux\r\n", "");
        assert!(!same_media(&plain(first), &plain(held)));
        // rtpengine, the controlling agent, names the nominated pair.
        let nominated = format!("{held}a=remote-candidates:1 127.0.0.1 48927\r\n");
        assert!(same_media(first, &nominated));
        // An RTP candidate that changes is a change all the same.
        let moved = held.replace("127.0.0.1 31028 typ", "127.0.0.1 31030 typ");
        assert!(!same_media(first, &moved));
    }

    #[test]
    fn rfc3264_8_same_media_sees_through_refresh_and_hold_only() {
        let hold = OURS
            .replace("o=- 7 1", "o=- 7 2")
            .replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        assert!(same_media(OURS, &hold));
        assert!(same_media(&hold, OURS), "and back");
        let moved = OURS.replace("m=audio 4000", "m=audio 4100");
        assert!(!same_media(OURS, &moved));
        let readdressed = OURS.replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.2");
        assert!(!same_media(OURS, &readdressed));
        let lf = OURS.replace("\r\n", "\n");
        assert!(same_media(OURS, &lf));
    }
}
