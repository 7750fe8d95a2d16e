//! What may be written into SDP: token checks for values taken from Jingle,
//! and a last check of every `a=` line against ezk-sdp-types' own attribute
//! parsers, so that no line we write makes a strict SDP parser reject the
//! whole body.

use bytesstr::BytesStr;
use ezk_sdp_types as ezk;

/// Printable ASCII without spaces: safe as one SDP token.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Safe as the rest of an SDP line (no control characters such as CR/LF).
pub(super) fn is_text(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// RFC 8866 `token`.
pub(super) fn is_sdp_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

/// RFC 8839 `ice-char`: ALPHA / DIGIT / "+" / "/" (what ufrag and pwd consist of).
pub(super) fn is_ice_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// RFC 8122 fingerprint: `2UHEX *(":" 2UHEX)` (lower case accepted too).
pub(super) fn is_fingerprint_value(s: &str) -> bool {
    !s.is_empty()
        && s.split(':')
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Does ezk-sdp-types accept this attribute value (`a=<name>:<value>`)?
/// Attributes ezk does not type are always accepted.
pub(super) fn ezk_accepts(name: &str, value: &str) -> bool {
    let src = BytesStr::from(value.to_owned());
    let bytes = src.as_ref();
    let i = src.as_str();
    match name {
        "group" => ezk::Group::parse(bytes, i).is_ok(),
        "rtcp" => ezk::Rtcp::parse(bytes, i).is_ok(),
        "rtcp-fb" => ezk::RtcpFeedback::parse(bytes, i).is_ok(),
        "msid" => ezk::MsId::parse(bytes, i).is_ok(),
        "rtpmap" => ezk::RtpMap::parse(bytes, i).is_ok(),
        "fmtp" => ezk::Fmtp::parse(bytes, i).is_ok(),
        "ice-options" => ezk::IceOptions::parse(bytes, i).is_ok(),
        "ice-ufrag" => ezk::IceUsernameFragment::parse(bytes, i).is_ok(),
        "ice-pwd" => ezk::IcePassword::parse(bytes, i).is_ok(),
        "candidate" => ezk::IceCandidate::parse(bytes, i).is_ok(),
        "crypto" => ezk::SrtpCrypto::parse(bytes, i).is_ok(),
        "extmap" => ezk::ExtMap::parse(bytes, i).is_ok(),
        "ssrc" => ezk::Ssrc::parse(bytes, i).is_ok(),
        "fingerprint" => ezk::Fingerprint::parse(bytes, i).is_ok(),
        "imageattr" => ezk::ImageAttr::parse(i).is_ok(),
        _ => true,
    }
}

/// A whole `a=…` line (without CRLF) is safe to write.
pub(super) fn is_writable_attribute(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("a=") else {
        return is_text(line);
    };
    is_text(rest)
        && match rest.split_once(':') {
            Some((name, value)) => is_token(name) && ezk_accepts(name, value),
            None => is_token(rest),
        }
}
