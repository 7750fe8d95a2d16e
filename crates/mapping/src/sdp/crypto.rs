//! XEP-0167 SDES `<encryption><crypto/></encryption>` ⇄ `a=crypto` (RFC 4568).
//!
//! `required` ⇄ the profile: an m= line over `RTP/SAVP` or `RTP/SAVPF`
//! requires SDES-keyed SRTP; `a=crypto` over `RTP/AVP(F)` is best-effort
//! SRTP, and over `UDP/TLS/RTP/SAVPF` an alternative to DTLS (as Dino offers
//! it, `required='0'`): both read as not required. Writing an offer, a
//! required `<encryption/>` with at least one writable `<crypto/>` selects
//! `RTP/SAVP(F)`, an optional one keeps `RTP/AVP(F)` with the `a=crypto`
//! lines; with a DTLS fingerprint the profile is `UDP/TLS/RTP/SAVPF` either
//! way (so a required SDES next to DTLS reads back as not required). An
//! `<encryption/>` without any `<crypto/>` has no SDP form.

use super::check::{ezk_accepts, is_text, is_token};
use super::raw::Line;
use super::read::attributes_indexed;
use crate::jingle::{Crypto, Encryption};

/// RFC 4568 `tag = 1*9DIGIT`.
fn is_tag(s: &str) -> bool {
    (1..=9).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Is `proto` a profile that mandates SDES-keyed SRTP?
pub(super) fn is_secure_profile(proto: &str) -> bool {
    matches!(proto, "RTP/SAVP" | "RTP/SAVPF")
}

fn parse(value: &str) -> Option<Crypto> {
    if !ezk_accepts("crypto", value) || !value.split_ascii_whitespace().all(is_token) {
        return None;
    }
    let mut tokens = value.split_ascii_whitespace();
    let tag = tokens.next().filter(|t| is_tag(t))?.to_owned();
    let suite = tokens.next()?.to_owned();
    let key_params = tokens.next()?.to_owned();
    let session_params = tokens.collect::<Vec<_>>().join(" ");
    Some(Crypto {
        suite,
        key_params,
        session_params: (!session_params.is_empty()).then_some(session_params),
        tag,
        other: Vec::new(),
    })
}

/// Reads the `a=crypto` lines of an m= section over `proto`.
pub(super) fn read(lines: &[Line], proto: &str, consumed: &mut Vec<usize>) -> Option<Encryption> {
    let mut cryptos = Vec::new();
    for (i, (name, value)) in attributes_indexed(lines) {
        if let ("crypto", Some(c)) = (name, value.and_then(parse)) {
            cryptos.push(c);
            consumed.push(i);
        }
    }
    (!cryptos.is_empty()).then(|| Encryption {
        required: is_secure_profile(proto),
        cryptos,
        other: Vec::new(),
    })
}

/// The `a=crypto` lines for `encryption`.
pub(super) fn lines(encryption: Option<&Encryption>, out: &mut Vec<String>) {
    for c in encryption.map(|e| e.cryptos.as_slice()).unwrap_or_default() {
        let session_ok = c
            .session_params
            .as_deref()
            .is_none_or(|p| is_text(p) && !p.trim().is_empty());
        if !is_tag(&c.tag) || !is_token(&c.suite) || !is_token(&c.key_params) || !session_ok {
            continue;
        }
        let mut value = format!("{} {} {}", c.tag, c.suite, c.key_params);
        if let Some(p) = &c.session_params {
            value.push(' ');
            value.push_str(p);
        }
        // Only what reads back as the same crypto (single spaces, ezk-valid).
        let same = parse(&value).is_some_and(|back| {
            (
                &back.tag,
                &back.suite,
                &back.key_params,
                &back.session_params,
            ) == (&c.tag, &c.suite, &c.key_params, &c.session_params)
        });
        if same {
            out.push(format!("a=crypto:{value}"));
        }
    }
}
