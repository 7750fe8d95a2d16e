//! Just enough XML for a load driver: split the component stream into
//! top-level elements and read attributes off their start tags.
//!
//! The bench only ever talks to stox-gateway, whose output is well-formed
//! (minidom). The splitter is quote-aware and handles `<?…?>`, comments,
//! self-closing tags and prefixed names; it does not validate. A full parser
//! would cost the driver CPU that the gateway needs on a 2-core machine.

/// What the splitter found in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `<stream:stream …>`: the opening tag, as text.
    StreamOpen(String),
    /// One complete top-level element (a stanza, `<handshake/>` …).
    Element(String),
    /// `</stream:stream>`.
    StreamClose,
}

/// Resumable splitter: push bytes, pull events.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Where scanning resumes.
    pos: usize,
    /// Element depth below the stream root.
    depth: usize,
    /// True once `<stream:stream>` was seen: top level is depth 0 inside it.
    in_stream: bool,
    /// Start of the top-level element being read.
    start: Option<usize>,
}

enum Tag {
    Skip,
    Open { stream: bool },
    Close { stream: bool },
    Empty,
}

impl Splitter {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, or `None` until more bytes arrive.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let lt = self.buf[self.pos..].iter().position(|&b| b == b'<')? + self.pos;
            let (end, tag) = scan_tag(&self.buf, lt)?;
            self.pos = end;
            match tag {
                Tag::Skip => {}
                Tag::Open { stream: true } if self.depth == 0 && self.start.is_none() => {
                    self.in_stream = true;
                    let text = String::from_utf8_lossy(&self.buf[lt..end]).into_owned();
                    self.consume();
                    return Some(Event::StreamOpen(text));
                }
                Tag::Close { stream: true } if self.depth == 0 => {
                    self.consume();
                    return Some(Event::StreamClose);
                }
                Tag::Open { .. } => {
                    if self.depth == 0 {
                        self.start = Some(lt);
                    }
                    self.depth += 1;
                }
                Tag::Empty if self.depth == 0 => {
                    let text = String::from_utf8_lossy(&self.buf[lt..end]).into_owned();
                    self.consume();
                    return Some(Event::Element(text));
                }
                Tag::Empty => {}
                Tag::Close { .. } => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        let from = self.start.take().unwrap_or(lt);
                        let text = String::from_utf8_lossy(&self.buf[from..end]).into_owned();
                        self.consume();
                        return Some(Event::Element(text));
                    }
                }
            }
        }
    }

    /// Drops everything before `pos` (nothing before it is still needed when
    /// no element is open).
    fn consume(&mut self) {
        self.buf.drain(..self.pos);
        self.pos = 0;
    }
}

/// Scans the tag starting at `lt` (`buf[lt] == b'<'`). `None` if incomplete.
fn scan_tag(buf: &[u8], lt: usize) -> Option<(usize, Tag)> {
    let rest = &buf[lt..];
    if rest.len() < 2 {
        return None;
    }
    if rest.starts_with(b"<!--") {
        let end = find(rest, b"-->")?;
        return Some((lt + end + 3, Tag::Skip));
    }
    if rest.starts_with(b"<![CDATA[") {
        let end = find(rest, b"]]>")?;
        return Some((lt + end + 3, Tag::Skip));
    }
    // Find the closing '>' outside quotes.
    let mut quote = None;
    let mut gt = None;
    for (i, &b) in rest.iter().enumerate().skip(1) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'>') => {
                gt = Some(i);
                break;
            }
            _ => {}
        }
    }
    let gt = gt?;
    let end = lt + gt + 1;
    let inner = &rest[1..gt];
    let tag = match inner.first() {
        Some(b'?' | b'!') => Tag::Skip,
        Some(b'/') => Tag::Close {
            stream: is_stream(&inner[1..]),
        },
        _ if inner.last() == Some(&b'/') => Tag::Empty,
        _ => Tag::Open {
            stream: is_stream(inner),
        },
    };
    Some((end, tag))
}

fn is_stream(name_and_attrs: &[u8]) -> bool {
    let name_end = name_and_attrs
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/')
        .unwrap_or(name_and_attrs.len());
    let name = &name_and_attrs[..name_end];
    name == b"stream" || name.ends_with(b":stream")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The start tag of the first element named `local` (any prefix) in `xml`,
/// e.g. `start_tag(iq, "jingle")`.
pub fn start_tag<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    let bytes = xml.as_bytes();
    let mut from = 0;
    while let Some(off) = xml[from..].find('<') {
        let lt = from + off;
        let name_start = lt + 1;
        let name_end = xml[name_start..]
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .map_or(xml.len(), |e| name_start + e);
        let name = &xml[name_start..name_end];
        let matches = name == local
            || name
                .rsplit_once(':')
                .is_some_and(|(_, l)| l == local && !name.starts_with('/'));
        if matches {
            let (end, _) = scan_tag(bytes, lt)?;
            return Some(&xml[lt..end]);
        }
        from = name_start;
    }
    None
}

/// The value of attribute `name` on a start tag (unescaped for the five XML
/// entities). `name` must not be a suffix of another attribute's name that
/// comes first, so it is matched after whitespace.
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let bytes = tag.as_bytes();
    let mut from = 0;
    while let Some(off) = tag[from..].find(name) {
        let at = from + off;
        from = at + name.len();
        let before_ok = at > 0 && bytes[at - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let rest = rest.trim_start();
        let quote = rest.chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let value = &rest[1..];
        let end = value.find(quote)?;
        return Some(unescape(&value[..end]));
    }
    None
}

/// Text between the first start tag and its end tag (for `<handshake>`).
pub fn text(element: &str) -> String {
    let Some(gt) = element.find('>') else {
        return String::new();
    };
    if element[..gt].ends_with('/') {
        return String::new();
    }
    let body = &element[gt + 1..];
    let end = body.rfind("</").unwrap_or(body.len());
    unescape(body[..end].trim())
}

pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Escapes text for an attribute value in single or double quotes.
pub fn escape(s: &str) -> String {
    if !s.contains(['&', '<', '>', '\'', '"']) {
        return s.to_owned();
    }
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &mut Splitter) -> Vec<Event> {
        std::iter::from_fn(|| s.next_event()).collect()
    }

    #[test]
    fn splits_a_stream_byte_by_byte() {
        let input = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
            xmlns:stream='http://etherx.jabber.org/streams' to='sip.example.com'>\
            <handshake>abc</handshake> \n<iq type='set' id='a>b'><jingle xmlns='urn:xmpp:jingle:1' \
            action=\"session-info\"><ringing/><!-- x --></jingle></iq><iq type='result' id='2'/>\
            </stream:stream>";
        let mut s = Splitter::default();
        let mut got = Vec::new();
        for b in input.as_bytes() {
            s.push(&[*b]);
            got.extend(all(&mut s));
        }
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(matches!(&got[0], Event::StreamOpen(t) if t.contains("to='sip.example.com'")));
        assert_eq!(got[1], Event::Element("<handshake>abc</handshake>".into()));
        assert!(
            matches!(&got[2], Event::Element(t) if t.starts_with("<iq type='set'") && t.ends_with("</iq>"))
        );
        assert_eq!(got[3], Event::Element("<iq type='result' id='2'/>".into()));
        assert_eq!(got[4], Event::StreamClose);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn nested_same_name_elements() {
        let mut s = Splitter::default();
        s.push(b"<stream:stream><a><a><a/></a></a><b/>");
        let got = all(&mut s);
        assert_eq!(got[1], Event::Element("<a><a><a/></a></a>".into()));
        assert_eq!(got[2], Event::Element("<b/>".into()));
    }

    #[test]
    fn attributes_and_start_tags() {
        let iq = "<iq xmlns=\"jabber:component:accept\" type=\"set\" id=\"x1\" \
            from=\"romeo\\40example.net@sip.example.com\" to=\"u@example.com/res\">\
            <jingle xmlns=\"urn:xmpp:jingle:1\" action=\"session-initiate\" sid=\"s&amp;1\"/></iq>";
        assert_eq!(attr(iq, "type").as_deref(), Some("set"));
        assert_eq!(attr(iq, "id").as_deref(), Some("x1"));
        assert_eq!(
            attr(iq, "from").as_deref(),
            Some("romeo\\40example.net@sip.example.com")
        );
        let j = start_tag(iq, "jingle").expect("jingle");
        assert_eq!(attr(j, "action").as_deref(), Some("session-initiate"));
        assert_eq!(attr(j, "sid").as_deref(), Some("s&1"));
        // `id` must not match inside `sid`.
        assert_eq!(attr(j, "id"), None);
        assert!(start_tag(iq, "ringing").is_none());
        assert!(start_tag("<x><rtp:ringing xmlns:rtp='y'/></x>", "ringing").is_some());
    }

    #[test]
    fn handshake_text_and_escaping() {
        assert_eq!(text("<handshake xmlns='x'> ab12 </handshake>"), "ab12");
        assert_eq!(text("<handshake/>"), "");
        assert_eq!(escape("a'b<c&"), "a&apos;b&lt;c&amp;");
        assert_eq!(unescape(&escape("a'b<c&\"")), "a'b<c&\"");
    }
}
