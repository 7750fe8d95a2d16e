//! Bytes → `SipUri::parse` → `Display` → `SipUri::parse`: what parses once
//! is written so that it parses again to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stox_mapping::address::SipUri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = SipUri::parse(text) else {
        return;
    };
    let written = uri.to_string();
    let again = SipUri::parse(&written)
        .unwrap_or_else(|e| panic!("{text:?} → {written:?} does not parse again: {e}"));
    assert_eq!(uri, again, "{text:?} → {written:?} parses to another URI");
});
