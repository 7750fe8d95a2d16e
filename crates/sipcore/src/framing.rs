//! Message framing on a stream (TCP): RFC 3261 §18.3 and §7.5.
//!
//! A message on a stream ends where its header section (up to CRLFCRLF)
//! and its `Content-Length` say. That is all framing needs, so it is found
//! here, before the message is parsed: a message whose start line or
//! headers are malformed but whose length is known is one bad message (a
//! 400, and the connection goes on), not a lost stream. Only when the length
//! cannot be known — no `Content-Length`, an unreadable or contradictory
//! one, a header section or body over the limits — is framing lost; the
//! connection then ends (RFC 4475 §3.1.2.3: guessing where the next message
//! starts is how a body becomes a request).
//!
//! CRLFs between messages are skipped and counted (RFC 5626 §4.4.1:
//! CRLFCRLF is a keep-alive ping, CRLF its pong).

/// One message cut from the stream, not yet parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame(pub Vec<u8>);

/// Framing is lost: the connection must end. `head` is the header section
/// that could not be framed (for a 400 built from what it has), if any.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Lost {
    pub why: String,
    pub head: Option<Vec<u8>>,
    /// The answer due to the request in `head`: 400, or 413 for a body
    /// over the limit.
    pub status: u16,
}

#[derive(Debug)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    /// Bytes already searched for CRLFCRLF.
    scanned: usize,
    /// The header section in `buf` ends at this index, and the whole
    /// message at `.1`.
    framed: Option<(usize, usize)>,
    keepalives: usize,
    max_head: usize,
    max_body: usize,
    lost: bool,
}

impl Framer {
    pub fn new(max_head: usize, max_body: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            scanned: 0,
            framed: None,
            keepalives: 0,
            max_head,
            max_body,
            lost: false,
        }
    }

    /// CRLF pairs skipped between messages since the last call.
    pub fn take_keepalives(&mut self) -> usize {
        std::mem::take(&mut self.keepalives)
    }

    /// Appends `data`; returns the messages it completed. After a `Lost`
    /// every later call returns `Lost` again.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Frame>, Lost> {
        if self.lost {
            return Err(Lost {
                why: "framing was lost earlier".into(),
                head: None,
                status: 400,
            });
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.framed.is_none() {
                let skip = self
                    .buf
                    .chunks(2)
                    .take_while(|pair| *pair == b"\r\n")
                    .count();
                if skip > 0 {
                    self.buf.drain(..skip * 2);
                    self.scanned = self.scanned.saturating_sub(skip * 2);
                    self.keepalives += skip;
                }
                let from = self.scanned.saturating_sub(3);
                let Some(at) = find(&self.buf[from..], b"\r\n\r\n").map(|i| i + from) else {
                    self.scanned = self.buf.len();
                    if self.buf.len() > self.max_head {
                        return Err(
                            self.lose(format!("header section over {} bytes", self.max_head))
                        );
                    }
                    return Ok(out);
                };
                if at > self.max_head {
                    return Err(self.lose(format!("header section over {} bytes", self.max_head)));
                }
                let head = &self.buf[..at];
                let length = match content_length(head) {
                    Ok(Some(n)) if n <= self.max_body => n,
                    Ok(Some(n)) => {
                        let why = format!("Content-Length {n} is over the {} limit", self.max_body);
                        let mut lost = self.lose_with_head(why, at);
                        lost.status = 413;
                        return Err(lost);
                    }
                    Ok(None) => {
                        let why = "Content-Length is required on a stream (RFC 3261 §18.3)";
                        return Err(self.lose_with_head(why.into(), at));
                    }
                    Err(why) => return Err(self.lose_with_head(why, at)),
                };
                self.framed = Some((at, at + 4 + length));
            }
            let Some((_, end)) = self.framed else {
                return Ok(out);
            };
            if self.buf.len() < end {
                return Ok(out);
            }
            let rest = self.buf.split_off(end);
            out.push(Frame(std::mem::replace(&mut self.buf, rest)));
            self.framed = None;
            self.scanned = 0;
        }
    }

    fn lose_with_head(&mut self, why: String, head_end: usize) -> Lost {
        let head = self.buf[..head_end].to_vec();
        let mut lost = self.lose(why);
        lost.head = Some(head);
        lost
    }

    fn lose(&mut self, why: String) -> Lost {
        self.lost = true;
        self.buf = Vec::new();
        Lost {
            why,
            head: None,
            status: 400,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `Content-Length` (or compact `l`) of a header section: `Ok(None)`
/// when there is none, an error when a value is not a number or two values
/// disagree.
fn content_length(head: &[u8]) -> Result<Option<usize>, String> {
    let mut found: Option<usize> = None;
    let mut lines = head.split(|b| *b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let mut value = line[colon + 1..].trim_ascii().to_vec();
        // A folded value continues on lines that start with white space.
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                value.push(b' ');
                value.extend_from_slice(next.trim_ascii());
                lines.next();
            } else {
                break;
            }
        }
        let text = String::from_utf8_lossy(value.trim_ascii());
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.len() > 10 {
            return Err(format!("Content-Length {text:?} is not a length"));
        }
        let n: usize = text
            .parse()
            .map_err(|_| format!("Content-Length {text:?} is not a length"))?;
        if found.is_some_and(|m| m != n) {
            return Err("two Content-Length values disagree".into());
        }
        found = Some(n);
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn framer() -> Framer {
        Framer::new(1024, 4096)
    }

    #[test]
    fn rfc3261_18_3_messages_end_at_their_content_length() {
        let mut f = framer();
        let two = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\nabcINFO sip:b SIP/2.0\r\nl: 0\r\n\r\n";
        let frames = f.push(two).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[0].0.ends_with(b"\r\n\r\nabc"));
        assert!(frames[1].0.starts_with(b"INFO"));
        assert!(f.buf.is_empty());
    }

    #[test]
    fn rfc3261_18_3_a_message_split_anywhere_is_reassembled() {
        let msg = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..msg.len() {
            let mut f = framer();
            let mut frames = f.push(&msg[..cut]).unwrap();
            frames.extend(f.push(&msg[cut..]).unwrap());
            assert_eq!(frames, vec![Frame(msg.to_vec())], "cut at {cut}");
        }
    }

    #[test]
    fn rfc5626_4_4_1_crlfs_between_messages_are_counted_keepalives() {
        let mut f = framer();
        assert!(f.push(b"\r\n\r\n").unwrap().is_empty());
        assert_eq!(f.take_keepalives(), 2);
        let frames = f.push(b"\r\nBYE sip:a SIP/2.0\r\nl: 0\r\n\r\n").unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(f.take_keepalives(), 1);
    }

    #[test]
    fn rfc4475_3_1_2_a_bad_start_line_with_known_length_is_still_framed() {
        let mut f = framer();
        let frames = f
            .push(b"INVITE <sip:u@h> SIP/2.0\r\nContent-Length: 2\r\n\r\nv=OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n")
            .unwrap();
        assert_eq!(frames.len(), 2, "the malformed one and the next");
    }

    #[test]
    fn rfc3261_18_3_no_or_bad_content_length_loses_framing() {
        for (head, why) in [
            ("INVITE sip:a SIP/2.0\r\nCall-ID: x\r\n\r\n", "required"),
            (
                "INVITE sip:a SIP/2.0\r\nContent-Length: -999\r\n\r\n",
                "not a length",
            ),
            (
                "INVITE sip:a SIP/2.0\r\nl: 2\r\nContent-Length: 3\r\n\r\n",
                "disagree",
            ),
            (
                "INVITE sip:a SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
                "limit",
            ),
        ] {
            let mut f = framer();
            let lost = f.push(head.as_bytes()).unwrap_err();
            assert!(lost.why.contains(why), "{head:?}: {lost:?}");
            assert!(lost.head.is_some());
            assert_eq!(lost.status, if why == "limit" { 413 } else { 400 });
            assert!(f.push(b"OPTIONS sip:a SIP/2.0\r\nl: 0\r\n\r\n").is_err());
        }
    }

    #[test]
    fn a_header_section_over_the_limit_loses_framing() {
        let mut f = framer();
        let lost = f.push(&[b'a'; 2000]).unwrap_err();
        assert!(lost.why.contains("header section"), "{lost:?}");
    }

    #[test]
    fn folded_content_length_is_read() {
        assert_eq!(
            content_length(b"X sip:a SIP/2.0\r\nContent-Length:\r\n  7"),
            Ok(Some(7))
        );
    }
}
