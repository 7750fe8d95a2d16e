//! Bytes → XML → `Jingle::parse` → `to_element` → `Jingle::parse`: the
//! second parse succeeds and gives the same value (the model is lossless).

#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use stox_mapping::jingle::Jingle;

fuzz_target!(|data: &[u8]| {
    let Some(first) = common::jingle(data) else {
        return;
    };
    let element = first.to_element();
    let second = Jingle::parse(&element).unwrap_or_else(|e| {
        panic!(
            "our own <jingle/> does not parse: {e}\n{}",
            String::from(&element)
        )
    });
    assert_eq!(first, second, "Jingle changed after to_element → parse");
});
