//! XEP-0338 `<group semantics><content name/></group>` ⇄ session-level
//! `a=group:<semantics> <mid> …` (RFC 5888, BUNDLE per RFC 8843).
//!
//! Reading, each mid is replaced by the name of the content its m= line
//! became; mids of m= lines that were not mapped (declined, rejected) are
//! left out, and a group left empty is dropped. Writing, each content name
//! becomes the `a=mid` written for it; names with no m= line (or no
//! `a=mid`, e.g. answering an offer without mids) are left out.

use super::check::is_sdp_token;
use super::raw::{Line, attributes};
use crate::jingle::Group;

/// Groups from the session-level lines; `mids` maps a written `a=mid` to
/// the content name its m= line became.
pub(super) fn read(session: &[Line], mids: &[(String, String)]) -> Vec<Group> {
    attributes(session)
        .filter(|(name, _)| *name == "group")
        .filter_map(|(_, value)| {
            let mut tokens = value?.split_ascii_whitespace();
            let semantics = tokens.next().filter(|s| is_sdp_token(s))?.to_owned();
            let contents: Vec<String> = tokens
                .filter_map(|mid| mids.iter().find(|(m, _)| m == mid))
                .map(|(_, name)| name.clone())
                .collect();
            (!contents.is_empty()).then_some(Group {
                semantics,
                contents,
            })
        })
        .collect()
}

/// `a=group` lines; `mids` maps a content name to the `a=mid` written for it.
pub(super) fn lines(groups: &[Group], mids: &[(String, String)]) -> Vec<String> {
    groups
        .iter()
        .filter(|g| is_sdp_token(&g.semantics))
        .filter_map(|g| {
            let members: Vec<&str> = g
                .contents
                .iter()
                .filter_map(|name| mids.iter().find(|(n, _)| n == name))
                .map(|(_, mid)| mid.as_str())
                .collect();
            (!members.is_empty()).then(|| format!("a=group:{} {}", g.semantics, members.join(" ")))
        })
        .collect()
}
