//! Bytes → `sdp_answer_to_jingle` against an offer, and back with
//! `jingle_to_sdp_answer`; the result must parse again. Input with a NUL
//! byte is `offer\0answer` (both fuzzed); otherwise the whole input is an
//! answer to the Chrome capture.

#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use stox_mapping::sdp::{
    SdpAuthor, jingle_to_sdp_answer, sdp_answer_to_jingle, sdp_offer_to_jingle,
};

const CHROME_OFFER: &str = include_str!("../../crates/mapping/testdata/chrome-offer.sdp");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (offer, answer) = text.split_once('\0').unwrap_or((CHROME_OFFER, text));
    let Ok(offered) = sdp_offer_to_jingle(offer, SdpAuthor::Initiator) else {
        return;
    };
    let Ok(mapped) = sdp_answer_to_jingle(answer, &offered.contents, SdpAuthor::Responder) else {
        return;
    };
    if let Ok(sdp) = jingle_to_sdp_answer(
        &mapped.contents,
        &mapped.groups,
        SdpAuthor::Responder,
        &common::origin(),
        offer,
    ) {
        common::assert_reparses(&sdp, "answer written from a mapped answer");
    }
});
