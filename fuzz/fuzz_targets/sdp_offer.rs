//! Bytes → `sdp_offer_to_jingle` (both roles); what maps goes back through
//! `jingle_to_sdp_offer` and is answered with `jingle_to_sdp_answer`, and
//! both results must parse again.

#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use stox_mapping::sdp::{
    SdpAuthor, jingle_to_sdp_answer, jingle_to_sdp_offer, sdp_offer_to_jingle,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for author in [SdpAuthor::Initiator, SdpAuthor::Responder] {
        let Ok(mapped) = sdp_offer_to_jingle(text, author) else {
            continue;
        };
        if let Ok(offer) =
            jingle_to_sdp_offer(&mapped.contents, &mapped.groups, author, &common::origin())
        {
            common::assert_reparses(&offer, "offer written from a mapped offer");
        }
        if let Ok(answer) = jingle_to_sdp_answer(
            &mapped.contents,
            &mapped.groups,
            SdpAuthor::Responder,
            &common::origin(),
            text,
        ) {
            common::assert_reparses(&answer, "answer written to a fuzzed offer");
        }
    }
});
