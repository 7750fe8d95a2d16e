//! Round trips of every capture in `testdata/` (see its README for where
//! each comes from), judged on meaning, not layout:
//!
//! * SDP offer → Jingle → SDP offer, and the same offer answered (port 0 for
//!   what Jingle cannot carry, the rest of the session goes on);
//! * SDP answer (to its offer) → Jingle → SDP answer;
//! * Jingle session-initiate → SDP offer → Jingle;
//! * Jingle session-accept (to its session-initiate) → SDP answer → Jingle.
//!
//! SDP is compared through an ezk-sdp-types view ([`sdp_view`]), Jingle
//! through a view read from the XML ([`jingle_view`]); neither uses the
//! mapper's own parsing. One test per capture; a failure lists every
//! differing feature.

#[path = "captures/jingle_view.rs"]
mod jingle_view;
#[path = "captures/sdp_view.rs"]
mod sdp_view;

use minidom::Element;
use sdp_view::{Differ, MediaView, answer_direction, compare_media, compare_session};
use stox_mapping::jingle::{Content, Group, Jingle, Senders};
use stox_mapping::sdp::{
    MappedSdp, SdpAuthor, SdpOrigin, jingle_to_sdp_answer, jingle_to_sdp_offer,
    sdp_answer_to_jingle, sdp_offer_to_jingle,
};

/// The only place that calls the Jingle → SDP writers and builds Jingle
/// from a mapping, so an API change (e.g. BUNDLE groups as a parameter) is
/// adapted here once.
mod api {
    use super::*;

    pub fn origin() -> SdpOrigin {
        SdpOrigin {
            username: "romeo".to_owned(),
            session_id: 4_242_424_242,
            session_version: 1,
        }
    }

    /// SDP offer for a parsed Jingle (its contents and groups).
    pub fn offer_for_jingle(j: &Jingle, author: SdpAuthor) -> String {
        jingle_to_sdp_offer(&j.contents, &j.groups, author, &origin())
            .expect("the contents map to an offer")
    }

    /// SDP offer for an SDP offer mapped to Jingle.
    pub fn offer_for_mapped(m: &MappedSdp, author: SdpAuthor) -> String {
        jingle_to_sdp_offer(&m.contents, &m.groups, author, &origin())
            .expect("the mapped offer maps back")
    }

    /// SDP answer to `offer` from accepted contents.
    pub fn answer(contents: &[Content], groups: &[Group], offer: &str) -> String {
        jingle_to_sdp_answer(contents, groups, SdpAuthor::Responder, &origin(), offer)
            .expect("the accepted contents map to an answer")
    }

    pub fn answer_for_jingle(j: &Jingle, offer: &str) -> String {
        answer(&j.contents, &j.groups, offer)
    }

    pub fn answer_for_mapped(m: &MappedSdp, offer: &str) -> String {
        answer(&m.contents, &m.groups, offer)
    }

    /// A `<jingle/>` like `like` (action, sid, initiator, responder) with the
    /// contents (and groups) of a mapping.
    pub fn jingle_from_mapped(like: &Jingle, m: &MappedSdp) -> Element {
        let mut j = Jingle::new(like.action, like.sid.clone());
        j.initiator = like.initiator.clone();
        j.responder = like.responder.clone();
        j.contents = m.contents.clone();
        j.groups = m.groups.clone();
        j.to_element()
    }
}

fn testdata(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn xml(name: &str) -> Element {
    testdata(name)
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not XML: {e}"))
}

fn jingle(name: &str) -> Jingle {
    Jingle::parse(&xml(name)).unwrap_or_else(|e| panic!("{name} is not Jingle: {e}"))
}

/// Can a Jingle RTP content carry this m= line? Decided here, from RFC 3550
/// profiles, not by asking the mapper.
fn mappable(m: &MediaView) -> bool {
    const RTP_PROFILES: [&str; 6] = [
        "RTP/AVP",
        "RTP/AVPF",
        "RTP/SAVP",
        "RTP/SAVPF",
        "UDP/TLS/RTP/SAVP",
        "UDP/TLS/RTP/SAVPF",
    ];
    matches!(m.media.as_str(), "audio" | "video")
        && m.port != 0
        && RTP_PROFILES.contains(&m.proto.as_str())
        && !m.formats.is_empty()
}

/// The m= line as a written offer states it: Jingle has no profile, so the
/// writer recomputes it from what is present (docs/mapping.md, "Profile
/// written": `F` added when an `a=rtcp-fb` line is written). An `RTP/AVP`
/// or `RTP/SAVP` line that carries `a=rtcp-fb` anyway (baresip offers
/// `RTP/AVP` with `a=rtcp-fb:* nack pli` on video) comes back as
/// `RTP/AVPF`/`RTP/SAVPF`; everything else must come back unchanged. Answers
/// repeat the offered profile and are compared without this.
fn offered_profile_recomputed(m: &MediaView) -> MediaView {
    let mut m = m.clone();
    if !m.rtcp_fb.is_empty() && matches!(m.proto.as_str(), "RTP/AVP" | "RTP/SAVP") {
        m.proto.push('F');
    }
    m
}

/// `senders` for a direction written by `author` (docs/mapping.md table).
fn expected_senders(direction: &str, author: SdpAuthor) -> Senders {
    match (direction, author) {
        ("sendonly", SdpAuthor::Initiator) | ("recvonly", SdpAuthor::Responder) => {
            Senders::Initiator
        }
        ("sendonly", SdpAuthor::Responder) | ("recvonly", SdpAuthor::Initiator) => {
            Senders::Responder
        }
        ("inactive", _) => Senders::None,
        _ => Senders::Both,
    }
}

fn check_senders(d: &mut Differ, contents: &[Content], lines: &[&MediaView], author: SdpAuthor) {
    d.check(
        "content count",
        "mapped Jingle",
        &lines.len(),
        &contents.len(),
    );
    for (c, m) in contents.iter().zip(lines) {
        d.check(
            "senders (role-aware)",
            &format!("content '{}'", c.name),
            &expected_senders(&m.direction, author),
            &c.senders,
        );
    }
}

/// SDP offer → Jingle → SDP offer, then the offer answered from the same
/// contents: every m= line answered in order, declined ones with port 0.
fn sdp_offer(name: &str) {
    let input = testdata(name);
    let in_view = sdp_view::view(&input, name);
    let mapped = sdp_offer_to_jingle(&input, SdpAuthor::Initiator)
        .unwrap_or_else(|e| panic!("{name}: offer does not map: {e}"));
    let mut d = Differ::new();

    let expected_declined: Vec<usize> = (0..in_view.media.len())
        .filter(|&i| !mappable(&in_view.media[i]))
        .collect();
    d.check(
        "declined m= lines",
        "offer",
        &expected_declined,
        &mapped.declined,
    );
    let kept: Vec<&MediaView> = in_view.media.iter().filter(|m| mappable(m)).collect();
    check_senders(&mut d, &mapped.contents, &kept, SdpAuthor::Initiator);

    let output = api::offer_for_mapped(&mapped, SdpAuthor::Initiator);
    let out_view = sdp_view::view(&output, &format!("{name} mapped back"));
    compare_session(&mut d, &in_view, &out_view);
    d.check(
        "m= line count (mappable ones)",
        "offer",
        &kept.len(),
        &out_view.media.len(),
    );
    for (i, (a, b)) in kept.iter().zip(&out_view.media).enumerate() {
        let a = offered_profile_recomputed(a);
        compare_media(&mut d, &format!("offer m={} #{i}", a.media), &a, b);
    }

    // The same offer answered from the mapped contents (as if the XMPP
    // side accepted everything): RFC 3264 §6 shape and directions.
    let answer = api::answer_for_mapped(&mapped, &input);
    let a_view = sdp_view::view(&answer, &format!("{name} answered"));
    d.check(
        "answer m= line count",
        "answer",
        &in_view.media.len(),
        &a_view.media.len(),
    );
    for (i, (o, a)) in in_view.media.iter().zip(&a_view.media).enumerate() {
        let at = format!("answer m={} #{i}", o.media);
        d.check("media", &at, &o.media, &a.media);
        d.check("proto", &at, &o.proto, &a.proto);
        if mappable(o) {
            d.check("accepted (port != 0)", &at, &true, &(a.port != 0));
            d.check(
                "direction",
                &at,
                &answer_direction(&o.direction).to_owned(),
                &a.direction,
            );
            d.check("formats", &at, &o.formats, &a.formats);
            if o.mid.is_some() {
                d.check("mid", &at, &o.mid, &a.mid);
            }
        } else {
            d.check("declined port", &at, &0, &a.port);
        }
    }
    d.assert_none(name);
}

/// SDP answer to `offer_name` → Jingle → SDP answer.
fn sdp_answer(name: &str, offer_name: &str) {
    let offer = testdata(offer_name);
    let input = testdata(name);
    let in_view = sdp_view::view(&input, name);
    let offered = sdp_offer_to_jingle(&offer, SdpAuthor::Initiator)
        .unwrap_or_else(|e| panic!("{offer_name}: offer does not map: {e}"));
    let mapped = sdp_answer_to_jingle(&input, &offered.contents, SdpAuthor::Responder)
        .unwrap_or_else(|e| panic!("{name}: answer does not map: {e}"));
    let mut d = Differ::new();
    let kept: Vec<&MediaView> = in_view.media.iter().filter(|m| mappable(m)).collect();
    check_senders(&mut d, &mapped.contents, &kept, SdpAuthor::Responder);

    let output = api::answer_for_mapped(&mapped, &offer);
    let out_view = sdp_view::view(&output, &format!("{name} mapped back"));
    compare_session(&mut d, &in_view, &out_view);
    d.check(
        "m= line count",
        "answer",
        &in_view.media.len(),
        &out_view.media.len(),
    );
    for (i, (a, b)) in in_view.media.iter().zip(&out_view.media).enumerate() {
        let at = format!("answer m={} #{i}", a.media);
        if a.port == 0 {
            d.check("media", &at, &a.media, &b.media);
            d.check("declined port", &at, &0, &b.port);
        } else {
            compare_media(&mut d, &at, a, b);
        }
    }
    d.assert_none(name);
}

/// Jingle session-initiate → SDP offer → Jingle.
fn jingle_offer(name: &str) {
    let raw = xml(name);
    let j = jingle(name);
    let in_view = jingle_view::view(&raw);
    let mut d = Differ::new();
    jingle_view::compare(&mut d, &in_view, &jingle_view::view(&j.to_element()));
    d.assert_none(&format!("{name}: Jingle parse → to_element"));

    let sdp = api::offer_for_jingle(&j, SdpAuthor::Initiator);
    sdp_view::view(&sdp, &format!("{name} as an SDP offer"));
    let mapped = sdp_offer_to_jingle(&sdp, SdpAuthor::Initiator)
        .unwrap_or_else(|e| panic!("{name}: written offer does not map back: {e}\n{sdp}"));
    let out_view = jingle_view::view(&api::jingle_from_mapped(&j, &mapped));
    jingle_view::compare(&mut d, &in_view, &out_view);
    d.assert_none(&format!("{name} (via SDP offer)\n{sdp}"));
}

/// Jingle session-accept (to `initiate_name`) → SDP answer → Jingle.
fn jingle_answer(name: &str, initiate_name: &str) {
    let init = jingle(initiate_name);
    let raw = xml(name);
    let accept = jingle(name);
    let in_view = jingle_view::view(&raw);
    let mut d = Differ::new();
    jingle_view::compare(&mut d, &in_view, &jingle_view::view(&accept.to_element()));
    d.assert_none(&format!("{name}: Jingle parse → to_element"));

    let offer = api::offer_for_jingle(&init, SdpAuthor::Initiator);
    let answer = api::answer_for_jingle(&accept, &offer);
    sdp_view::view(&answer, &format!("{name} as an SDP answer"));
    let mapped = sdp_answer_to_jingle(&answer, &init.contents, SdpAuthor::Responder)
        .unwrap_or_else(|e| panic!("{name}: written answer does not map back: {e}\n{answer}"));
    let out_view = jingle_view::view(&api::jingle_from_mapped(&accept, &mapped));
    jingle_view::compare(&mut d, &in_view, &out_view);
    d.assert_none(&format!("{name} (via SDP answer)\n{answer}"));
}

macro_rules! captures {
    ($($test:ident => $run:ident($($arg:literal),+);)*) => {
        $(#[test]
        fn $test() {
            $run($($arg),+);
        })*
    };
}

captures! {
    // SDP offers.
    chrome_offer => sdp_offer("chrome-offer.sdp");
    webrtc_offer => sdp_offer("webrtc-offer.sdp");
    firefox_offer => sdp_offer("firefox-offer.sdp");
    asterisk_offer => sdp_offer("asterisk-offer.sdp");
    asterisk_sdes_offer => sdp_offer("asterisk-sdes-offer.sdp");
    freeswitch_offer => sdp_offer("freeswitch-offer.sdp");
    baresip_offer => sdp_offer("baresip-offer.sdp");
    linphone_offer => sdp_offer("linphone-offer.sdp");
    stox_draft_invite => sdp_offer("stox-draft-invite.sdp");
    bfcp_ws_offer => sdp_offer("bfcp-ws-offer.sdp");
    bfcp_ws_server_offer => sdp_offer("bfcp-ws-server-offer.sdp");
    // Real captures (testdata/README.md, "Real captures").
    chromium_offer => sdp_offer("chromium-offer.sdp");
    firefox_offer_real => sdp_offer("firefox-offer-real.sdp");
    baresip_real_offer => sdp_offer("baresip-real-offer.sdp");
    baresip_dtls_real_offer => sdp_offer("baresip-dtls-real-offer.sdp");
    baresip_sdes_real_offer => sdp_offer("baresip-sdes-real-offer.sdp");
    linphone_real_offer => sdp_offer("linphone-real-offer.sdp");
    // SDP answers, against their offers.
    chrome_answer => sdp_answer("chrome-answer.sdp", "chrome-offer.sdp");
    stox_draft_200ok => sdp_answer("stox-draft-200ok.sdp", "stox-draft-invite.sdp");
    chromium_answer => sdp_answer("chromium-answer.sdp", "chromium-offer.sdp");
    firefox_answer_real => sdp_answer("firefox-answer-real.sdp", "firefox-offer-real.sdp");
    // Jingle session-initiate.
    conversations_session_initiate => jingle_offer("conversations-session-initiate.xml");
    dino_session_initiate => jingle_offer("dino-session-initiate.xml");
    stox_draft_session_initiate => jingle_offer("stox-draft-session-initiate.xml");
    xep0167_session_initiate => jingle_offer("xep0167-session-initiate.xml");
    xep0176_session_initiate => jingle_offer("xep0176-session-initiate.xml");
    xep0293_session_initiate => jingle_offer("xep0293-session-initiate.xml");
    xep0294_session_initiate => jingle_offer("xep0294-session-initiate.xml");
    xep0320_session_initiate => jingle_offer("xep0320-session-initiate.xml");
    xep0338_0339_session_initiate => jingle_offer("xep0338-0339-session-initiate.xml");
    // Jingle session-accept, against their session-initiate.
    conversations_session_accept =>
        jingle_answer("conversations-session-accept.xml", "conversations-session-initiate.xml");
    dino_session_accept => jingle_answer("dino-session-accept.xml", "dino-session-initiate.xml");
    stox_draft_session_accept =>
        jingle_answer("stox-draft-session-accept.xml", "stox-draft-session-initiate.xml");
}

/// Every capture in `testdata/` is exercised above (a new file without a
/// test fails here).
#[test]
fn every_capture_has_a_test() {
    let this = include_str!("captures.rs");
    let dir = format!("{}/testdata", env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("testdata directory") {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy().into_owned();
        if name.ends_with(".md") {
            continue;
        }
        if !this.contains(&format!("\"{name}\"")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "captures without a test: {missing:?}");
}
