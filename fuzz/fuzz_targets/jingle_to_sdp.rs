//! Bytes → XML → `Jingle::parse` → `jingle_to_sdp_offer` (and an answer to
//! that offer from the same contents); every SDP written must parse again
//! and the offer must map back to Jingle without a parse error.

#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use stox_mapping::sdp::{SdpAuthor, jingle_to_sdp_answer, jingle_to_sdp_offer};

fuzz_target!(|data: &[u8]| {
    let Some(j) = common::jingle(data) else {
        return;
    };
    let Ok(offer) = jingle_to_sdp_offer(
        &j.contents,
        &j.groups,
        SdpAuthor::Initiator,
        &common::origin(),
    ) else {
        return;
    };
    common::assert_reparses(&offer, "offer written from fuzzed Jingle");
    if let Ok(answer) = jingle_to_sdp_answer(
        &j.contents,
        &j.groups,
        SdpAuthor::Responder,
        &common::origin(),
        &offer,
    ) {
        common::assert_reparses(&answer, "answer written from fuzzed Jingle");
    }
});
