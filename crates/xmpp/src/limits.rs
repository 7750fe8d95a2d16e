//! Input limits on the component stream, enforced on the bytes before any
//! XML tree is built.
//!
//! [`StanzaFilter`] sits between the socket and tokio-xmpp's XML parser. It
//! lexes just enough XML to find where each stanza (a child of
//! `<stream:stream>`) starts and ends, and measures it while it is read:
//! nesting depth, element count, attributes per element, name, attribute
//! and text lengths, entity reference length, and total size. A stanza within
//! every limit is passed on whole; one over a limit is dropped — the parser
//! never sees a byte of it, so the stream stays well-formed and the
//! connection stays up — and reported as a [`Rejected`] with the routing
//! attributes of its top element, so that an IQ can be answered.
//!
//! The lexer is a byte-at-a-time state machine without recursion: memory is
//! the stanza being buffered (at most `max_stanza_bytes`) plus a few
//! counters, whatever the input. It does not validate XML (the parser does
//! that for the stanzas it is given); it only needs the structure: tags,
//! quoted attribute values, comments, CDATA sections and processing
//! instructions. XMPP forbids the last three inside a stream (RFC 6120
//! §11.1), so a stanza containing one is dropped too.

use std::fmt;

/// The limits; every one is a config key (`[xmpp.limits]`, see
/// docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StanzaLimits {
    /// Bytes of one stanza, as received (markup included).
    pub max_stanza_bytes: usize,
    /// Nesting depth inside a stanza (the stanza element itself is 1).
    pub max_depth: usize,
    /// Elements in one stanza.
    pub max_elements: usize,
    /// Attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
    /// Bytes of an element or attribute name (prefix included).
    pub max_name_bytes: usize,
    /// Bytes of one attribute value, as received (escaped).
    pub max_attribute_bytes: usize,
    /// Bytes of one run of character data between two tags.
    pub max_text_bytes: usize,
}

/// The XML parser underneath (rxml) fails the whole stream on an attribute
/// value or name longer than this: a limit must stay below it.
pub const PARSER_TOKEN_LIMIT: usize = 8192;

/// The longest entity or character reference accepted (`&#x10FFFF;` is 10).
const MAX_REFERENCE_BYTES: usize = 16;

/// Bytes allowed before the stream header is complete (XML declaration and
/// `<stream:stream …>`).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How much of a rejected stanza's `from`, `to`, `id` and `type` is kept to
/// answer it; a longer value cannot be answered.
const MAX_ROUTING_BYTES: usize = 3072;

impl Default for StanzaLimits {
    fn default() -> Self {
        StanzaLimits {
            max_stanza_bytes: 256 * 1024,
            max_depth: 32,
            max_elements: 4096,
            max_attributes: 64,
            max_name_bytes: 256,
            max_attribute_bytes: 4096,
            max_text_bytes: 64 * 1024,
        }
    }
}

impl StanzaLimits {
    /// Checks the limits against what the parser underneath can take.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("max_stanza_bytes", self.max_stanza_bytes),
            ("max_depth", self.max_depth),
            ("max_elements", self.max_elements),
            ("max_attributes", self.max_attributes),
            ("max_name_bytes", self.max_name_bytes),
            ("max_attribute_bytes", self.max_attribute_bytes),
            ("max_text_bytes", self.max_text_bytes),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("xmpp.limits.{key} must be at least 1"));
        }
        for (key, value) in [
            ("max_attribute_bytes", self.max_attribute_bytes),
            ("max_name_bytes", self.max_name_bytes),
        ] {
            if value >= PARSER_TOKEN_LIMIT {
                return Err(format!(
                    "xmpp.limits.{key} = {value}: must be below {PARSER_TOKEN_LIMIT} (the XML parser's token limit)"
                ));
            }
        }
        Ok(())
    }
}

/// Which limit a stanza broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    StanzaBytes(usize),
    Depth(usize),
    Elements(usize),
    Attributes(usize),
    NameBytes(usize),
    AttributeBytes(usize),
    TextBytes(usize),
    /// An entity or character reference longer than any XML defines.
    Reference,
    /// A comment, CDATA section, processing instruction or DTD inside a
    /// stanza (RFC 6120 §11.1 forbids them).
    Markup(&'static str),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::StanzaBytes(l) => write!(f, "stanza larger than {l} bytes"),
            Violation::Depth(l) => write!(f, "elements nested deeper than {l}"),
            Violation::Elements(l) => write!(f, "more than {l} elements"),
            Violation::Attributes(l) => write!(f, "more than {l} attributes on one element"),
            Violation::NameBytes(l) => write!(f, "a name longer than {l} bytes"),
            Violation::AttributeBytes(l) => {
                write!(f, "an attribute value longer than {l} bytes")
            }
            Violation::TextBytes(l) => write!(f, "character data longer than {l} bytes"),
            Violation::Reference => f.write_str("an overlong entity reference"),
            Violation::Markup(what) => write!(f, "{what} inside a stanza"),
        }
    }
}

impl Violation {
    /// The config key of the limit (for log lines and docs).
    pub fn key(&self) -> &'static str {
        match self {
            Violation::StanzaBytes(_) => "max_stanza_bytes",
            Violation::Depth(_) => "max_depth",
            Violation::Elements(_) => "max_elements",
            Violation::Attributes(_) => "max_attributes",
            Violation::NameBytes(_) => "max_name_bytes",
            Violation::AttributeBytes(_) => "max_attribute_bytes",
            Violation::TextBytes(_) => "max_text_bytes",
            Violation::Reference => "reference",
            Violation::Markup(_) => "markup",
        }
    }
}

/// A stanza that was dropped, with what is needed to answer it. Routing
/// attributes are unescaped; one longer than 3 KiB is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Local name of the top element (`iq`, `message`, `presence`, …),
    /// truncated to 64 bytes.
    pub name: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub id: Option<String>,
    pub kind: Option<String>,
    pub violation: Violation,
}

/// The stream itself is unusable (not a stanza problem): the connection
/// must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FatalError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data (or nothing yet).
    Text,
    /// After `<`.
    TagOpen,
    StartName,
    /// Inside a start tag, between attributes.
    InTag,
    AttrName,
    /// After an attribute name, before `=`.
    AfterAttrName,
    /// After `=`, before the opening quote.
    BeforeValue,
    AttrValue(u8),
    /// After `/` in a start tag.
    EmptyClose,
    EndName,
    /// After `<!`: how many bytes of `--` / `[CDATA[` matched so far.
    Bang(usize),
    /// Inside a comment: number of `-` just seen.
    Comment(u8),
    /// Inside CDATA: number of `]` just seen.
    CData(u8),
    /// Inside a processing instruction: the last byte was `?`.
    Pi(bool),
    /// Inside `<!DOCTYPE …>` or another `<!` declaration.
    Declaration,
}

/// Which routing attribute of the top element is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    From,
    To,
    Id,
    Type,
}

/// See the module docs.
pub struct StanzaFilter {
    limits: StanzaLimits,
    lex: Lex,
    /// Open elements, the stream element included.
    depth: usize,
    /// The stream element has been closed.
    ended: bool,
    /// Bytes passed before the stream header completed.
    header_bytes: usize,
    /// The stanza being read, when it is within limits so far.
    stanza: Vec<u8>,
    in_stanza: bool,
    /// Set at the first limit broken: the rest of the stanza is skipped.
    violation: Option<Violation>,
    // Counters of the current stanza / token.
    elements: usize,
    attributes: usize,
    name_bytes: usize,
    value_bytes: usize,
    text_bytes: usize,
    /// Inside a reference (`&…;`): its length so far.
    reference: Option<usize>,
    // Top element of the stanza.
    top_name: Vec<u8>,
    reading_top_tag: bool,
    attr_name: Vec<u8>,
    routing: Option<Routing>,
    routing_value: Vec<u8>,
    routing_overflow: bool,
    from: Option<String>,
    to: Option<String>,
    id: Option<String>,
    kind: Option<String>,
}

impl StanzaFilter {
    pub fn new(limits: StanzaLimits) -> StanzaFilter {
        StanzaFilter {
            limits,
            lex: Lex::Text,
            depth: 0,
            ended: false,
            header_bytes: 0,
            stanza: Vec::new(),
            in_stanza: false,
            violation: None,
            elements: 0,
            attributes: 0,
            name_bytes: 0,
            value_bytes: 0,
            text_bytes: 0,
            reference: None,
            top_name: Vec::new(),
            reading_top_tag: false,
            attr_name: Vec::new(),
            routing: None,
            routing_value: Vec::new(),
            routing_overflow: false,
            from: None,
            to: None,
            id: None,
            kind: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &StanzaLimits {
        &self.limits
    }

    /// Lexes `input`: bytes for the parser are appended to `out`, dropped
    /// stanzas to `rejected`. Call again with the next bytes; a stanza may
    /// span any number of calls.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        rejected: &mut Vec<Rejected>,
    ) -> Result<(), FatalError> {
        for &b in input {
            if self.ended || (self.depth == 0 && !self.in_stanza) {
                // Before the stream header is complete (and after the end):
                // straight through, bounded.
                out.push(b);
                if !self.ended {
                    self.header_bytes += 1;
                    if self.header_bytes > MAX_HEADER_BYTES {
                        return Err(FatalError(format!(
                            "no stream header within {MAX_HEADER_BYTES} bytes"
                        )));
                    }
                    self.step_outside(b);
                }
                continue;
            }
            if !self.in_stanza {
                // At stream level: `<` starts a stanza (or the stream's end
                // tag); character data there (whitespace pings) is dropped.
                if b != b'<' {
                    continue;
                }
                self.start_stanza();
            }
            if self.violation.is_none() {
                self.stanza.push(b);
                if self.stanza.len() > self.limits.max_stanza_bytes {
                    self.violate(Violation::StanzaBytes(self.limits.max_stanza_bytes));
                }
            }
            self.step(b);
            if self.in_stanza && self.depth <= 1 && self.lex == Lex::Text {
                self.finish_stanza(out, rejected);
            }
        }
        Ok(())
    }

    /// Lexing before the stream header: only the header's start tag matters.
    fn step_outside(&mut self, b: u8) {
        match (self.lex, b) {
            (Lex::Text, b'<') => self.lex = Lex::TagOpen,
            (Lex::Text, _) => {}
            (Lex::TagOpen, b'?') => self.lex = Lex::Pi(false),
            (Lex::TagOpen, b'!') => self.lex = Lex::Declaration,
            (Lex::TagOpen, _) => self.lex = Lex::StartName,
            (Lex::Pi(q), b'>') if q => self.lex = Lex::Text,
            (Lex::Pi(_), _) => self.lex = Lex::Pi(b == b'?'),
            (Lex::Declaration, b'>') => self.lex = Lex::Text,
            (Lex::Declaration, _) => {}
            (Lex::AttrValue(q), _) if b == q => self.lex = Lex::InTag,
            (Lex::AttrValue(_), _) => {}
            (Lex::StartName | Lex::InTag, b'\'' | b'"') => self.lex = Lex::AttrValue(b),
            (Lex::StartName | Lex::InTag, b'>') => {
                self.depth = 1;
                self.lex = Lex::Text;
            }
            (Lex::StartName | Lex::InTag, _) => self.lex = Lex::InTag,
            _ => self.lex = Lex::Text,
        }
    }

    fn start_stanza(&mut self) {
        self.in_stanza = true;
        self.stanza.clear();
        self.violation = None;
        self.elements = 0;
        self.text_bytes = 0;
        self.reference = None;
        self.top_name.clear();
        self.reading_top_tag = false;
        self.from = None;
        self.to = None;
        self.id = None;
        self.kind = None;
    }

    fn finish_stanza(&mut self, out: &mut Vec<u8>, rejected: &mut Vec<Rejected>) {
        self.in_stanza = false;
        match self.violation.take() {
            None => out.extend_from_slice(&self.stanza),
            Some(violation) => rejected.push(Rejected {
                name: String::from_utf8_lossy(&self.top_name).into_owned(),
                from: self.from.take(),
                to: self.to.take(),
                id: self.id.take(),
                kind: self.kind.take(),
                violation,
            }),
        }
        self.stanza.clear();
        if self.stanza.capacity() > 64 * 1024 {
            self.stanza.shrink_to(64 * 1024);
        }
        if self.depth == 0 {
            // That was the stream's end tag.
            self.ended = true;
        }
    }

    fn violate(&mut self, v: Violation) {
        if self.violation.is_none() {
            self.violation = Some(v);
            self.stanza = Vec::new();
        }
    }

    fn check(&mut self, count: usize, limit: usize, v: fn(usize) -> Violation) {
        if count > limit {
            self.violate(v(limit));
        }
    }

    /// A byte inside an entity or character reference (`&amp;`, `&#x41;`):
    /// counted, ended by `;`, and a violation past `MAX_REFERENCE_BYTES`.
    /// False when no reference is open.
    fn reference_byte(&mut self, b: u8) -> bool {
        let Some(n) = self.reference.as_mut() else {
            return false;
        };
        *n += 1;
        if b == b';' {
            self.reference = None;
        } else if *n > MAX_REFERENCE_BYTES {
            self.reference = None;
            self.violate(Violation::Reference);
        }
        true
    }

    /// One byte inside a stanza (or the stream's end tag).
    fn step(&mut self, b: u8) {
        let l = self.limits;
        match self.lex {
            Lex::Text => {
                self.reference_byte(b);
                match b {
                    b'<' => {
                        self.reference = None;
                        self.lex = Lex::TagOpen;
                    }
                    _ => {
                        if b == b'&' {
                            self.reference = Some(0);
                        }
                        self.text_bytes += 1;
                        self.check(self.text_bytes, l.max_text_bytes, Violation::TextBytes);
                    }
                }
            }
            Lex::TagOpen => {
                self.text_bytes = 0;
                self.name_bytes = 0;
                match b {
                    b'/' => self.lex = Lex::EndName,
                    b'!' => self.lex = Lex::Bang(0),
                    b'?' => {
                        self.violate(Violation::Markup("a processing instruction"));
                        self.lex = Lex::Pi(false);
                    }
                    _ => {
                        self.elements += 1;
                        self.attributes = 0;
                        self.check(self.elements, l.max_elements, Violation::Elements);
                        self.reading_top_tag = self.depth == 1;
                        self.lex = Lex::StartName;
                        self.name_byte(b);
                    }
                }
            }
            Lex::StartName => match b {
                b'>' => self.open_element(),
                b'/' => self.lex = Lex::EmptyClose,
                _ if b.is_ascii_whitespace() => self.lex = Lex::InTag,
                _ => self.name_byte(b),
            },
            Lex::InTag => match b {
                b'>' => self.open_element(),
                b'/' => self.lex = Lex::EmptyClose,
                _ if b.is_ascii_whitespace() => {}
                _ => {
                    self.attributes += 1;
                    self.check(self.attributes, l.max_attributes, Violation::Attributes);
                    self.name_bytes = 0;
                    self.attr_name.clear();
                    self.lex = Lex::AttrName;
                    self.name_byte(b);
                }
            },
            Lex::AttrName => match b {
                b'=' => self.begin_value_wait(),
                _ if b.is_ascii_whitespace() => self.lex = Lex::AfterAttrName,
                b'>' => self.open_element(),
                _ => self.name_byte(b),
            },
            Lex::AfterAttrName => match b {
                b'=' => self.begin_value_wait(),
                _ if b.is_ascii_whitespace() => {}
                // Not XML; the parser will say so if the stanza is kept.
                _ => self.lex = Lex::InTag,
            },
            Lex::BeforeValue => match b {
                b'\'' | b'"' => {
                    self.value_bytes = 0;
                    self.reference = None;
                    self.routing = if self.reading_top_tag {
                        match self.attr_name.as_slice() {
                            b"from" => Some(Routing::From),
                            b"to" => Some(Routing::To),
                            b"id" => Some(Routing::Id),
                            b"type" => Some(Routing::Type),
                            _ => None,
                        }
                    } else {
                        None
                    };
                    self.routing_value.clear();
                    self.routing_overflow = false;
                    self.lex = Lex::AttrValue(b);
                }
                _ if b.is_ascii_whitespace() => {}
                _ => self.lex = Lex::InTag,
            },
            Lex::AttrValue(q) if b == q => {
                self.end_routing_value();
                self.reference = None;
                self.lex = Lex::InTag;
            }
            Lex::AttrValue(_) => {
                self.value_bytes += 1;
                self.check(
                    self.value_bytes,
                    l.max_attribute_bytes,
                    Violation::AttributeBytes,
                );
                if !self.reference_byte(b) && b == b'&' {
                    self.reference = Some(0);
                }
                if self.routing.is_some() {
                    if self.routing_value.len() < MAX_ROUTING_BYTES {
                        self.routing_value.push(b);
                    } else {
                        self.routing_overflow = true;
                    }
                }
            }
            Lex::EmptyClose => {
                if b == b'>' {
                    // An element opened and closed at once, one level below
                    // the open ones.
                    self.reading_top_tag = false;
                    self.check(self.depth, self.limits.max_depth, Violation::Depth);
                    self.lex = Lex::Text;
                } else {
                    self.lex = Lex::InTag;
                }
            }
            Lex::EndName => match b {
                b'>' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.lex = Lex::Text;
                }
                _ if b.is_ascii_whitespace() => {}
                _ => self.name_byte(b),
            },
            Lex::Bang(n) => self.bang(n, b),
            Lex::Comment(dashes) => {
                self.lex = match (dashes, b) {
                    (2.., b'>') => Lex::Text,
                    (_, b'-') => Lex::Comment(dashes.saturating_add(1)),
                    _ => Lex::Comment(0),
                }
            }
            Lex::CData(brackets) => {
                self.lex = match (brackets, b) {
                    (2.., b'>') => Lex::Text,
                    (_, b']') => Lex::CData(brackets.saturating_add(1)),
                    _ => Lex::CData(0),
                }
            }
            Lex::Pi(q) => {
                self.lex = if q && b == b'>' {
                    Lex::Text
                } else {
                    Lex::Pi(b == b'?')
                }
            }
            Lex::Declaration => {
                if b == b'>' {
                    self.lex = Lex::Text;
                }
            }
        }
    }

    /// After `<!`: `--` opens a comment, `[CDATA[` a CDATA section,
    /// anything else a declaration. All are refused inside a stanza.
    fn bang(&mut self, matched: usize, b: u8) {
        const CDATA: &[u8] = b"[CDATA[";
        if matched == 0 {
            match b {
                b'-' => self.lex = Lex::Bang(1),
                b'[' => self.lex = Lex::Bang(101),
                b'>' => {
                    self.violate(Violation::Markup("a declaration"));
                    self.lex = Lex::Text;
                }
                _ => {
                    self.violate(Violation::Markup("a declaration"));
                    self.lex = Lex::Declaration;
                }
            }
            return;
        }
        if matched < 100 {
            // Matching `--`.
            if b == b'-' {
                self.violate(Violation::Markup("a comment"));
                self.lex = Lex::Comment(0);
            } else {
                self.violate(Violation::Markup("a declaration"));
                self.lex = if b == b'>' {
                    Lex::Text
                } else {
                    Lex::Declaration
                };
            }
            return;
        }
        // Matching `[CDATA[` (101 = `[` seen).
        let at = matched - 100;
        if at < CDATA.len() && CDATA[at] == b {
            if at + 1 == CDATA.len() {
                self.violate(Violation::Markup("a CDATA section"));
                self.lex = Lex::CData(0);
            } else {
                self.lex = Lex::Bang(matched + 1);
            }
        } else {
            self.violate(Violation::Markup("a declaration"));
            self.lex = if b == b'>' {
                Lex::Text
            } else {
                Lex::Declaration
            };
        }
    }

    fn begin_value_wait(&mut self) {
        self.lex = Lex::BeforeValue;
    }

    fn name_byte(&mut self, b: u8) {
        self.name_bytes += 1;
        self.check(
            self.name_bytes,
            self.limits.max_name_bytes,
            Violation::NameBytes,
        );
        match self.lex {
            Lex::StartName if self.reading_top_tag && self.top_name.len() < 64 => {
                // The local name: what follows a prefix's colon.
                if b == b':' {
                    self.top_name.clear();
                } else {
                    self.top_name.push(b);
                }
            }
            Lex::AttrName if self.reading_top_tag && self.attr_name.len() < 8 => {
                self.attr_name.push(b);
            }
            Lex::AttrName if self.reading_top_tag => self.attr_name.push(b'?'),
            _ => {}
        }
    }

    fn open_element(&mut self) {
        self.reading_top_tag = false;
        self.depth += 1;
        let limit = self.limits.max_depth;
        // The stream element is depth 1; the stanza element depth 2.
        self.check(self.depth - 1, limit, Violation::Depth);
        self.lex = Lex::Text;
        self.text_bytes = 0;
    }

    fn end_routing_value(&mut self) {
        let Some(which) = self.routing.take() else {
            return;
        };
        if self.routing_overflow {
            return;
        }
        let value = unescape(&self.routing_value);
        match which {
            Routing::From => self.from = value,
            Routing::To => self.to = value,
            Routing::Id => self.id = value,
            Routing::Type => self.kind = value,
        }
    }
}

/// An attribute value as received → its text (the five predefined entities
/// and character references); `None` when it is not valid UTF-8 or has an
/// unknown reference.
fn unescape(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    if !text.contains('&') {
        return Some(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';')?;
        let name = &after[..end];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()?
                } else {
                    return None;
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests;
