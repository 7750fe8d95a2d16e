//! Jingle contents ⇄ SDP (RFC 8866 / RFC 3264), after the STOX media draft.
//!
//! Role awareness: Jingle `senders` is always seen from the session
//! initiator, SDP direction from the SDP's author. [`SdpAuthor`] says who
//! wrote (or will be said to have written) the SDP.
//!
//! INTERFACE SKELETON — implementation in progress.

use crate::jingle::Content;

/// Which Jingle party the SDP speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpAuthor {
    Initiator,
    Responder,
}

/// `o=` line values for SDP the gateway writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpOrigin {
    /// The initiator's local part (STOX: initiator local part ⇄ o= username).
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP does not parse: {0}")]
    Parse(String),
    #[error("nothing in the session can be mapped: {0}")]
    NothingMappable(String),
    #[error("answer does not match the offer: {0}")]
    AnswerMismatch(String),
}

/// What an SDP became on the Jingle side.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedSdp {
    /// One content per mappable m= line, in m= order.
    pub contents: Vec<Content>,
    /// The `o=` username.
    pub origin_username: String,
    /// Indices of m= lines that could not be mapped (declined with port 0 in
    /// any answer we write for this offer).
    pub declined: Vec<usize>,
}

/// Maps an SDP offer to Jingle contents (creator = initiator). Content names
/// come from `a=mid`, else the media type (`audio`, `video`, deduplicated
/// with a numeric suffix), so mapping the same offer twice gives the same names.
pub fn sdp_offer_to_jingle(sdp: &str, author: SdpAuthor) -> Result<MappedSdp, SdpError> {
    let _ = (sdp, author);
    todo!()
}

/// Maps an SDP answer to Jingle contents, naming the m= lines after the
/// `offered` contents in order (RFC 3264: one m= line per offered one).
/// Rejected m= lines (port 0) are left out of `contents`.
pub fn sdp_answer_to_jingle(
    sdp: &str,
    offered: &[Content],
    author: SdpAuthor,
) -> Result<MappedSdp, SdpError> {
    let _ = (sdp, offered, author);
    todo!()
}

/// Writes an SDP offer for the RTP contents (one m= line each, `a=mid` = content name).
pub fn jingle_to_sdp_offer(
    contents: &[Content],
    author: SdpAuthor,
    origin: &SdpOrigin,
) -> Result<String, SdpError> {
    let _ = (contents, author, origin);
    todo!()
}

/// Writes an SDP answer to `offer`: one m= line per offered m= line, in the
/// offer's order, matched to `contents` by name as [`sdp_offer_to_jingle`]
/// named them; an offered m= line with no accepted content gets port 0.
pub fn jingle_to_sdp_answer(
    contents: &[Content],
    author: SdpAuthor,
    origin: &SdpOrigin,
    offer: &str,
) -> Result<String, SdpError> {
    let _ = (contents, author, origin, offer);
    todo!()
}
