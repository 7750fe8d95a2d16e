//! Helpers shared by the fuzz targets (included with `#[path]`).

#![allow(dead_code)]

use bytesstr::BytesStr;
use stox_mapping::sdp::{SdpError, SdpOrigin};

pub fn origin() -> SdpOrigin {
    SdpOrigin {
        username: "fuzz".to_owned(),
        session_id: 1,
        session_version: 1,
    }
}

/// SDP the gateway wrote must parse again, with our reader (any error but
/// "does not parse" is fine: an answer may decline everything) and with an
/// independent one (ezk-sdp-types).
pub fn assert_reparses(sdp: &str, what: &str) {
    if let Err(SdpError::Parse(e)) =
        stox_mapping::sdp::sdp_offer_to_jingle(sdp, stox_mapping::sdp::SdpAuthor::Initiator)
    {
        panic!("{what}: our own SDP does not parse again: {e}\n{sdp}");
    }
    // ezk only knows the media types audio/video/text/application; any
    // other RFC 8866 token (`m=image`, `m=audio.`) is valid SDP it refuses.
    let ezk_media = sdp.lines().filter_map(|l| l.strip_prefix("m=")).all(|m| {
        matches!(
            m.split(' ').next(),
            Some("audio" | "video" | "text" | "application")
        )
    });
    if !ezk_media {
        return;
    }
    if let Err(e) = ezk_sdp_types::SessionDescription::parse(&BytesStr::from(sdp.to_owned())) {
        panic!("{what}: ezk-sdp-types rejects our SDP: {e}\n{sdp}");
    }
}

/// Parses `data` as a `<jingle/>` element, if it is one.
pub fn jingle(data: &[u8]) -> Option<stox_mapping::jingle::Jingle> {
    let text = std::str::from_utf8(data).ok()?;
    let el: minidom::Element = text.parse().ok()?;
    stox_mapping::jingle::Jingle::parse(&el).ok()
}
