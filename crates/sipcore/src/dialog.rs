//! Dialogs (RFC 3261 §12): their state, the requests sent in them, and the
//! text form a confirmed dialog is stored in so that a call survives a
//! restart.
//!
//! The stored form is one `key: value` line per field after a version line
//! (the same format the gateway has stored since answered calls first
//! survived restarts, so rows written by earlier versions still restore):
//!
//! ```text
//! stox-sip-dialog/1
//! role: uac
//! call-id: 7f3a@sip.example.com
//! local-tag: a1b2
//! remote-tag: c3d4
//! from: <sip:juliet@example.com>;tag=a1b2
//! to: <sip:romeo@example.net>;tag=c3d4
//! local-cseq: 3
//! remote-cseq: 0
//! local-contact: sip:192.0.2.1:5060;transport=tcp
//! remote-target: sip:romeo@198.51.100.7:5060;transport=tcp
//! route: <sip:proxy.example.net;lr>
//! 100rel: yes
//! ```
//!
//! A call with a session timer (RFC 4028) adds
//! `session-timer: 1800;refresher=us` (or `peer`: who refreshes).
//!
//! `from`/`to` are the INVITE's From and To (with tags), whichever side the
//! gateway was. `route` repeats once per route-set entry, in order;
//! `remote-contact`, `100rel` and `session-id-*` lines are accepted and
//! ignored. Anything else — an unknown key or version, a duplicate, a value
//! that does not parse, tags that disagree with From/To, a CSeq of 2^31 or
//! more (RFC 3261 §8.1.1.5) — is an error; decoding never panics.

use crate::api::Transport;
use crate::msg;

/// Which side of the INVITE the gateway is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the INVITE.
    Uac,
    /// We received it.
    Uas,
}

pub(crate) const MAGIC: &str = "stox-sip-dialog/1";

/// RFC 3261 §8.1.1.5: a CSeq number is below 2^31.
pub(crate) const CSEQ_LIMIT: u32 = 1 << 31;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub role: Role,
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// The INVITE's From and To header values, tags included.
    pub from: String,
    pub to: String,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    /// Our Contact URI in this dialog.
    pub local_contact: String,
    /// The peer's Contact URI: where requests in the dialog go.
    pub remote_target: String,
    /// Route header values (name-addrs), in the order requests carry them.
    pub route_set: Vec<String>,
}

impl Dialog {
    /// The From of requests we send in the dialog.
    pub fn local_party(&self) -> &str {
        match self.role {
            Role::Uac => &self.from,
            Role::Uas => &self.to,
        }
    }

    /// The To of requests we send in the dialog.
    pub fn remote_party(&self) -> &str {
        match self.role {
            Role::Uac => &self.to,
            Role::Uas => &self.from,
        }
    }

    /// The next local CSeq number.
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq = self.local_cseq.saturating_add(1).min(CSEQ_LIMIT - 1);
        self.local_cseq
    }

    /// RFC 3261 §12.2.2: a request with a CSeq not above the last one is
    /// out of order (answered 500); otherwise it becomes the last one.
    pub fn accept_remote_cseq(&mut self, cseq: u32) -> bool {
        if self.remote_cseq.is_some_and(|last| cseq <= last) {
            return false;
        }
        self.remote_cseq = Some(cseq);
        true
    }

    /// Where requests in the dialog go first: the first route (loose
    /// routing), else the remote target.
    pub fn next_hop_uri(&self) -> String {
        match self.route_set.first() {
            Some(route) => strip_angles(route),
            None => self.remote_target.clone(),
        }
    }

    /// The transport a request in the dialog takes toward its next hop.
    pub fn transport(&self) -> Transport {
        uri_transport(&self.next_hop_uri()).unwrap_or(Transport::Udp)
    }

    /// The stored text form (see the module docs).
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(512);
        s.push_str(MAGIC);
        s.push('\n');
        let role = match self.role {
            Role::Uac => "uac",
            Role::Uas => "uas",
        };
        for (key, value) in [
            ("role", role),
            ("call-id", &self.call_id),
            ("local-tag", &self.local_tag),
            ("remote-tag", &self.remote_tag),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            s.push_str(&format!("{key}: {value}\n"));
        }
        s.push_str(&format!("local-cseq: {}\n", self.local_cseq));
        s.push_str(&format!("remote-cseq: {}\n", self.remote_cseq.unwrap_or(0)));
        s.push_str(&format!("local-contact: {}\n", self.local_contact));
        s.push_str(&format!("remote-target: {}\n", self.remote_target));
        for route in &self.route_set {
            s.push_str(&format!("route: {route}\n"));
        }
        s
    }

    /// Parses [`Dialog::encode`]'s text (and the older rsipstack-era rows).
    pub fn decode(text: &str) -> Result<Dialog, String> {
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        if lines.next() != Some(MAGIC) {
            return Err(format!("not a {MAGIC} snapshot"));
        }
        let mut fields: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        let mut route_set = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("not a `key: value` line: {line:?}"))?;
            if value.chars().any(char::is_control) {
                return Err(format!("control character in {key}"));
            }
            match key {
                "route" => route_set.push(value.to_owned()),
                "role" | "call-id" | "local-tag" | "remote-tag" | "from" | "to" | "local-cseq"
                | "remote-cseq" | "local-contact" | "remote-target" | "remote-contact"
                | "100rel" | "session-id-local" | "session-id-remote" | "session-timer" => {
                    if fields.insert(key, value).is_some() {
                        return Err(format!("{key} twice"));
                    }
                }
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        let get = |key: &str| fields.get(key).copied().ok_or_else(|| format!("no {key}"));
        let role = match get("role")? {
            "uac" => Role::Uac,
            "uas" => Role::Uas,
            other => return Err(format!("role {other:?}")),
        };
        let cseq = |key: &str| -> Result<u32, String> {
            let n: u32 = get(key)?
                .parse()
                .map_err(|_| format!("{key} is not a number"))?;
            if n >= CSEQ_LIMIT {
                return Err(format!("{key} {n} is not below 2^31"));
            }
            Ok(n)
        };
        let from = get("from")?.to_owned();
        let to = get("to")?.to_owned();
        let local_tag = get("local-tag")?.to_owned();
        let remote_tag = get("remote-tag")?.to_owned();
        let (local, remote) = match role {
            Role::Uac => (&from, &to),
            Role::Uas => (&to, &from),
        };
        if tag_in(local).as_deref() != Some(local_tag.as_str())
            || tag_in(remote).as_deref() != Some(remote_tag.as_str())
        {
            return Err("tags disagree with From/To".into());
        }
        let remote_target = get("remote-target")?.to_owned();
        msg::parse_uri(&remote_target)?;
        let local_contact = fields
            .get("local-contact")
            .copied()
            .unwrap_or("")
            .to_owned();
        for route in &route_set {
            msg::parse_uri(&strip_angles(route))?;
        }
        let call_id = get("call-id")?.to_owned();
        if !msg::is_call_id(&call_id) {
            return Err("call-id is not word[@word]".into());
        }
        let remote_cseq = cseq("remote-cseq")?;
        Ok(Dialog {
            role,
            call_id,
            local_tag,
            remote_tag,
            from,
            to,
            local_cseq: cseq("local-cseq")?,
            remote_cseq: (remote_cseq > 0).then_some(remote_cseq),
            local_contact,
            remote_target,
            route_set,
        })
    }
}

/// The `session-timer` line of a snapshot.
pub(crate) fn encode_session_timer(timer: crate::api::SessionTimer) -> String {
    let who = match timer.refresher {
        crate::api::Refresher::Us => "us",
        crate::api::Refresher::Peer => "peer",
    };
    format!("session-timer: {};refresher={who}\n", timer.interval)
}

/// The session timer a snapshot stores, if any (its other lines are
/// [`Dialog::decode`]'s).
pub(crate) fn decode_session_timer(text: &str) -> Result<Option<crate::api::SessionTimer>, String> {
    let Some(value) = text
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("session-timer: "))
    else {
        return Ok(None);
    };
    let bad = || format!("session-timer {value:?} is not <seconds>;refresher=us|peer");
    let (secs, who) = value.split_once(";refresher=").ok_or_else(bad)?;
    let interval: u32 = secs.parse().map_err(|_| bad())?;
    if interval == 0 || interval > 86_400 {
        return Err(bad());
    }
    let refresher = match who {
        "us" => crate::api::Refresher::Us,
        "peer" => crate::api::Refresher::Peer,
        _ => return Err(bad()),
    };
    Ok(Some(crate::api::SessionTimer {
        interval,
        refresher,
    }))
}

/// The `tag` parameter of an address header value.
pub(crate) fn tag_in(value: &str) -> Option<String> {
    let address = msg::Address::parse(value.as_bytes(), "tag").ok()?;
    address
        .tag()
        .map(|t| String::from_utf8_lossy(t).into_owned())
}

/// `<sip:x;lr>` → `sip:x;lr` (header parameters after `>` dropped).
pub(crate) fn strip_angles(value: &str) -> String {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => v[a + 1..b].to_owned(),
        _ => v.to_owned(),
    }
}

/// The transport a URI names (`;transport=tcp`), if any.
pub(crate) fn uri_transport(uri: &str) -> Option<Transport> {
    let parsed = msg::parse_uri(uri).ok()?;
    parsed.transport().and_then(Transport::from_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog {
            role: Role::Uac,
            call_id: "7f3a@sip.example.com".into(),
            local_tag: "a1b2".into(),
            remote_tag: "c3d4".into(),
            from: "<sip:juliet@example.com>;tag=a1b2".into(),
            to: "<sip:romeo@example.net>;tag=c3d4".into(),
            local_cseq: 3,
            remote_cseq: Some(7),
            local_contact: "sip:192.0.2.1:5060;transport=tcp".into(),
            remote_target: "sip:romeo@198.51.100.7:5060;transport=tcp".into(),
            route_set: vec!["<sip:proxy.example.net;lr>".into()],
        }
    }

    #[test]
    fn a_dialog_round_trips_and_routes_by_its_first_route() {
        let d = dialog();
        let text = d.encode();
        assert_eq!(Dialog::decode(&text), Ok(d.clone()));
        assert_eq!(d.next_hop_uri(), "sip:proxy.example.net;lr");
        assert_eq!(d.transport(), Transport::Udp);
        let mut no_route = d.clone();
        no_route.route_set.clear();
        assert_eq!(no_route.transport(), Transport::Tcp);
        assert_eq!(no_route.local_party(), d.from);
    }

    #[test]
    fn rows_of_the_rsipstack_era_still_restore() {
        let old = "stox-sip-dialog/1\nrole: uas\ncall-id: c1@h\nlocal-tag: l\nremote-tag: r\n\
                   from: <sip:a@example.net>;tag=r\nto: <sip:b@example.com>;tag=l\n\
                   local-cseq: 0\nremote-cseq: 1\nlocal-contact: sip:192.0.2.1:5060\n\
                   remote-target: sip:a@192.0.2.9:5062\nremote-contact: <sip:a@192.0.2.9:5062>\n\
                   100rel: no\nsession-id-local: 0123\n";
        let d = Dialog::decode(old).expect("decodes");
        assert_eq!((d.role, d.remote_cseq), (Role::Uas, Some(1)));
        assert_eq!(d.local_party(), "<sip:b@example.com>;tag=l");
    }

    #[test]
    fn corrupt_snapshots_are_refused_with_a_reason_never_a_panic() {
        let good = dialog().encode();
        let cases = [
            good.replace("stox-sip-dialog/1", "stox-sip-dialog/2"),
            good.replace("local-tag: a1b2", "local-tag: zz"),
            good.replace("local-cseq: 3", "local-cseq: 2147483648"),
            good.replace("role: uac", "role: x"),
            format!("{good}call-id: again\n"),
            format!("{good}bogus: 1\n"),
            good.replace("remote-target: sip:", "remote-target: <nonsense"),
            String::new(),
            "stox-sip-dialog/1\nrole".into(),
        ];
        for text in cases {
            assert!(Dialog::decode(&text).is_err(), "{text}");
        }
        for cut in 0..good.len() {
            let _ = Dialog::decode(good.get(..cut).unwrap_or(""));
        }
    }

    #[test]
    fn rfc3261_12_2_2_remote_cseq_must_increase() {
        let mut d = dialog();
        assert!(!d.accept_remote_cseq(7));
        assert!(d.accept_remote_cseq(9));
        assert_eq!(d.next_cseq(), 4);
    }
}
