//! SIP messages: the one module that knows the parsing/printing crate
//! (sipx-sip, chosen by measurement: docs/decisions/0008-sip-layer.md). The
//! rest of the SIP layer uses the types and helpers re-exported here, so the
//! crate underneath can be replaced in one place.

use bytes::Bytes;
pub use sipx_sip::headers::{CSeq, MaxForwards, Via};
pub use sipx_sip::transaction::{Dispatch, TuEvent};
pub use sipx_sip::{
    Address, Header, HeaderName, Headers, Limits, Message, Method, Request, Response, Scheme,
    StatusCode, TransactionKey, TransactionLayer, Uri,
};
pub use sipx_sip::{Output as TxOutput, Reliability, Timer as TxTimer, Timers as TxTimers};

/// Parses one UDP datagram (octets after the message are ignored, RFC 3261
/// §18.3).
pub fn parse_datagram(data: &[u8], limits: &Limits) -> Result<Message, String> {
    sipx_sip::parse_datagram(Bytes::copy_from_slice(data), limits).map_err(|e| e.to_string())
}

/// Parses the one message a WebSocket message carries (RFC 7118 §5).
pub fn parse_frame(data: &[u8], limits: &Limits) -> Result<Message, String> {
    sipx_sip::parse_frame(Bytes::copy_from_slice(data), limits).map_err(|e| e.to_string())
}

/// The findings of RFC 3261 §8.1.1 validation (status 400 or 505 each).
pub fn findings(msg: &Message) -> Vec<(u16, String)> {
    sipx_sip::validate(msg)
        .into_iter()
        .map(|f| (f.status(), format!("{f:?}")))
        .collect()
}

pub fn to_bytes(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + msg.body().len());
    msg.write_to(&mut out);
    out
}

/// The raw value of the first header `name`, as text.
pub fn value(headers: &sipx_sip::Headers, name: &HeaderName) -> Option<String> {
    headers
        .value(name)
        .map(|v| String::from_utf8_lossy(&v).trim().to_owned())
}

/// Every value of header `name`, in order (one per header field).
pub fn values(headers: &sipx_sip::Headers, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .map(|h| String::from_utf8_lossy(&h.value()).trim().to_owned())
        .collect()
}

pub fn call_id(headers: &sipx_sip::Headers) -> Option<String> {
    value(headers, &HeaderName::CallId)
}

pub fn cseq(headers: &sipx_sip::Headers) -> Option<CSeq> {
    headers.typed::<CSeq>()?.ok()
}

pub fn top_via(headers: &sipx_sip::Headers) -> Option<Via> {
    headers.typed::<Via>()?.ok()
}

fn tag_of(headers: &sipx_sip::Headers, name: &HeaderName) -> Option<String> {
    let raw = headers.value(name)?;
    let address = sipx_sip::Address::parse(&raw, "tag").ok()?;
    address
        .tag()
        .map(|t| String::from_utf8_lossy(t).into_owned())
}

pub fn from_tag(headers: &sipx_sip::Headers) -> Option<String> {
    tag_of(headers, &HeaderName::From)
}

pub fn to_tag(headers: &sipx_sip::Headers) -> Option<String> {
    tag_of(headers, &HeaderName::To)
}

/// The URI of an address header (`From`, `To`, `Contact` …) as text.
pub fn address_uri(headers: &sipx_sip::Headers, name: &HeaderName) -> Option<String> {
    let raw = headers.value(name)?;
    let address = sipx_sip::Address::parse(&raw, "address").ok()?;
    Some(address.uri.to_string())
}

/// Option tags of every header `name` (`Supported`, `Require`), lower-cased.
pub fn tokens(headers: &sipx_sip::Headers, name: &HeaderName) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in headers.get_all(name) {
        for tag in String::from_utf8_lossy(&h.value()).split(',') {
            let tag = tag.trim().to_ascii_lowercase();
            if !tag.is_empty() && !out.contains(&tag) {
                out.push(tag);
            }
        }
    }
    out
}

/// The Content-Type (media type, parameters kept) of a message with a body.
pub fn content_type(msg: &Message) -> Option<String> {
    value(msg.headers(), &HeaderName::ContentType)
}

/// The body as text, when there is one and it is UTF-8.
pub fn body_text(msg: &Message) -> Option<String> {
    let body = msg.body();
    if body.is_empty() {
        return None;
    }
    String::from_utf8(body.to_vec()).ok()
}

/// The body, if the message says it is SDP.
pub fn sdp(msg: &Message) -> Option<String> {
    let ct = content_type(msg)?;
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/sdp") {
        return None;
    }
    body_text(msg)
}

/// RFC 3261 §25.1: `callid = word [ "@" word ]`.
pub fn is_call_id(value: &str) -> bool {
    const WORD: &[u8] = b"-.!%*_+`'~()<>:\\\"/[]?{}";
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || WORD.contains(&b))
    };
    let mut parts = value.split('@');
    parts.next().is_some_and(word) && parts.next().is_none_or(word) && parts.next().is_none()
}

/// RFC 3261 §25.1 `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

pub fn header(name: HeaderName, value: impl Into<Bytes>) -> Result<Header, String> {
    Header::build(name, value).map_err(|e| e.to_string())
}

pub fn other_header(name: &'static str, value: impl Into<Bytes>) -> Result<Header, String> {
    header(
        HeaderName::Other(Bytes::from_static(name.as_bytes())),
        value,
    )
}

/// A response to `req` with the RFC 3261 §8.2.6.2 headers copied, a To tag
/// added when given and missing, and a reason phrase.
pub fn response(
    req: &Request,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Result<Response, String> {
    let code = StatusCode::new(status).ok_or_else(|| format!("bad status {status}"))?;
    let reason = reason.replace(['\r', '\n'], " ");
    let mut resp = sipx_sip::ResponseBuilder::to_request(req, code, reason)
        .map_err(|e| e.to_string())?
        .build();
    if let Some(tag) = to_tag
        && status != 100
        && to_tag_missing(&resp.headers)
    {
        add_to_tag(&mut resp.headers, tag)?;
    }
    Ok(resp)
}

fn to_tag_missing(headers: &sipx_sip::Headers) -> bool {
    to_tag(headers).is_none()
}

/// Appends `;tag=…` to the To header.
pub fn add_to_tag(headers: &mut sipx_sip::Headers, tag: &str) -> Result<(), String> {
    let to = value(headers, &HeaderName::To).ok_or("no To")?;
    headers.remove_all(&HeaderName::To);
    let pos = headers
        .iter()
        .position(|h| *h.name() == HeaderName::CallId)
        .unwrap_or(0);
    headers.insert(pos, header(HeaderName::To, format!("{to};tag={tag}"))?);
    Ok(())
}

/// Sets the body and its Content-Type (or clears both).
pub fn set_body(
    msg_headers: &mut sipx_sip::Headers,
    content_type: Option<&str>,
) -> Result<(), String> {
    msg_headers.remove_all(&HeaderName::ContentType);
    if let Some(ct) = content_type {
        msg_headers.push(header(HeaderName::ContentType, ct.to_owned())?);
    }
    Ok(())
}

/// A digest challenge (RFC 7616) read from a `WWW-Authenticate` or
/// `Proxy-Authenticate` value.
pub use sipx_sip::auth::Challenge;

/// The strongest of the challenges offered (RFC 8760: SHA-256 before MD5).
pub fn strongest_challenge(offered: Vec<Challenge>) -> Option<Challenge> {
    sipx_sip::auth::strongest(offered)
}

/// The `Authorization` / `Proxy-Authorization` value answering `challenge`.
pub fn digest_response(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce_count: u32,
    cnonce: &str,
) -> String {
    let creds = sipx_sip::auth::Credentials::new(username, password);
    sipx_sip::auth::respond(challenge, &creds, method, uri, nonce_count, cnonce)
}

/// Sets header `name` to `value`: in the place of the first one there was
/// (the others removed), else at the end.
pub fn replace_header(
    headers: &mut sipx_sip::Headers,
    name: HeaderName,
    value: String,
) -> Result<(), String> {
    let pos = headers.iter().position(|h| *h.name() == name);
    headers.remove_all(&name);
    let h = header(name, value)?;
    match pos {
        Some(pos) => headers.insert(pos, h),
        None => headers.push(h),
    }
    Ok(())
}

/// Sets Content-Length to the body's length.
pub fn fix_content_length(headers: &mut sipx_sip::Headers, len: usize) -> Result<(), String> {
    headers.remove_all(&HeaderName::ContentLength);
    headers.push(header(HeaderName::ContentLength, len.to_string())?);
    Ok(())
}

pub fn parse_uri(text: &str) -> Result<Uri, String> {
    let trimmed = text.trim().trim_start_matches('<').trim_end_matches('>');
    Uri::parse(Bytes::copy_from_slice(trimmed.as_bytes())).map_err(|e| format!("{text:?}: {e}"))
}

/// A response to a request that lacks some of the headers a response
/// copies (RFC 4475 §3.3.1): whatever of Via, From, To, Call-ID and CSeq it
/// has.
pub fn bare_response(req: &Request, status: u16, reason: &str) -> Response {
    let code = StatusCode::new(status)
        .or_else(|| StatusCode::new(400))
        .expect("400 is a valid status");
    let mut resp = Response::new(code, Bytes::from(reason.replace(['\r', '\n'], " ")));
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        for h in req.headers.get_all(&name) {
            resp.headers.push(h.clone());
        }
    }
    if let Ok(h) = header(HeaderName::ContentLength, "0") {
        resp.headers.push(h);
    }
    resp
}
