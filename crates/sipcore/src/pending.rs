//! Unanswered INVITEs across a restart: [`Sip::pending_snapshot`],
//! [`Sip::restore_pending`], and ending them on the wire afterwards.
//!
//! A call killed with the process while it was being set up cannot be
//! resumed (its transactions died), but it can be ended properly: our own
//! INVITE with a CANCEL (RFC 3261 §9.1), the peer's with a final response
//! (§17.2.1). Both need only the INVITE's head, stored with the call's row
//! while it rings (column `sip_pending`):
//!
//! ```text
//! stox-sip-pending/1
//! role: uas
//! local-tag: 1a2b3c
//!
//! INVITE sip:juliet@example.com SIP/2.0
//! Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776;rport=5060;received=…
//! …every header line as received (uas) or sent (uac), no body
//! ```
//!
//! `role: uac` may add `peer: trunk1`, the configured peer it went to (the
//! CANCEL goes to that peer's `uri`).
//!
//! `role: uac` is our INVITE: the CANCEL is built from it as for a live call
//! and sent in a client transaction of its own (retransmitted over UDP until
//! answered). The callee's 487 that follows is not ACKed — the INVITE
//! transaction that would do it died with the old process — so the callee
//! retransmits it until its timer H and gives up.
//!
//! `role: uas` is the peer's INVITE: a server transaction is created for it
//! as if the old one had never gone, the final response goes where its Via
//! says, is retransmitted over UDP until the ACK, and the ACK is absorbed.

use crate::api::{CallKey, Command, Transport};
use crate::dialog::{Role, strip_angles};
use crate::engine::{Hop, Invite, Origin, Purpose, Sip, TxInfo, reliability, reply_dest, uri_hop};
use crate::msg::{self, HeaderName, Message, Method, Request};
use std::net::SocketAddr;

const MAGIC: &str = "stox-sip-pending/1";

/// An INVITE restored from its snapshot, waiting to be ended.
#[derive(Debug, Clone)]
pub(crate) struct Recovered {
    role: Role,
    request: Request,
    local_tag: Option<String>,
    peer: Option<String>,
}

impl Sip {
    /// The INVITE of `call` while it is unanswered (ours, or the peer's we
    /// have not answered) as text for the store; `None` once answered.
    pub fn pending_snapshot(&self, call: CallKey) -> Option<String> {
        let c = self.calls.get(&call)?;
        match c.invite.as_ref()? {
            Invite::Uac(u) if c.dialog.is_none() => {
                Some(encode(Role::Uac, &u.request, None, u.peer.as_deref()))
            }
            Invite::Uas(u) if !u.answered => {
                Some(encode(Role::Uas, &u.request, Some(&u.local_tag), None))
            }
            _ => None,
        }
    }

    /// Takes back an unanswered INVITE from [`Sip::pending_snapshot`] text
    /// after a restart, so that `Cancel` (ours) or `Respond` with a final
    /// 3xx–6xx (the peer's) can end it. Each is used once.
    pub fn restore_pending(
        &mut self,
        call: CallKey,
        call_id: &str,
        text: &str,
    ) -> Result<(), String> {
        let recovered = decode(text)?;
        let stored = msg::call_id(&recovered.request.headers).unwrap_or_default();
        if stored != call_id {
            return Err(format!("the snapshot belongs to Call-ID {stored}"));
        }
        self.recovered.insert(call, recovered);
        Ok(())
    }

    pub(crate) fn cancel_recovered(&mut self, call: CallKey) -> Result<(), String> {
        let r = self.recovered.remove(&call).ok_or("no such call")?;
        if r.role != Role::Uac {
            return Err("not our INVITE".into());
        }
        let peer_uri = r.peer.as_ref().map(|name| {
            self.cfg
                .peers
                .iter()
                .find(|p| &p.name == name)
                .and_then(|p| p.uri.clone())
                .unwrap_or_else(|| r.request.uri.to_string())
        });
        let hop = match peer_uri {
            Some(uri) => uri_hop(&uri)?,
            None => invite_hop(&r.request)?,
        };
        let cancel = cancel_request(&r.request)?;
        self.send_request(cancel, hop, None, Purpose::Other(Command::Cancel))
            .ok_or("the CANCEL could not start a transaction")?;
        Ok(())
    }

    pub(crate) fn respond_recovered(
        &mut self,
        call: CallKey,
        status: u16,
        reason: Option<String>,
    ) -> Result<(), String> {
        let r = self.recovered.remove(&call).ok_or("no such call")?;
        if r.role != Role::Uas || !(300..=699).contains(&status) {
            return Err(
                "only a final 3xx-6xx can answer an INVITE left by the previous run".into(),
            );
        }
        let via = msg::top_via(&r.request.headers).ok_or("no Via")?;
        let transport = Transport::from_token(&via.transport).unwrap_or(Transport::Udp);
        let source = via_source(&via).ok_or("the INVITE's Via names no address")?;
        let origin = Origin {
            transport,
            source,
            conn: None,
        };
        let dispatch = self
            .tl
            .receive(Message::Request(r.request.clone()), reliability(transport));
        let msg::Dispatch::Created { key, outputs } = dispatch else {
            return Err("a transaction for this INVITE exists already".into());
        };
        self.txs.insert(
            key.clone(),
            TxInfo {
                call: None,
                purpose: Purpose::Server,
                hop: Hop {
                    transport,
                    dest: reply_dest(origin, Some(&via)),
                },
                answered: None,
            },
        );
        // Its first output hands the request up: not news to anyone here.
        self.run_tx(&key, outputs);
        let phrase = reason.unwrap_or_else(|| crate::uas::default_phrase(status).to_owned());
        let resp = self.answer(&r.request, status, &phrase, r.local_tag.as_deref());
        self.send_response(&key, resp);
        Ok(())
    }
}

/// The address a Via names: `received` (or the host) and `rport` (or the
/// port, 5060).
fn via_source(via: &msg::Via) -> Option<SocketAddr> {
    let host = match via.received() {
        Some(r) => String::from_utf8_lossy(r).into_owned(),
        None => via.host.to_string(),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = via
        .rport()
        .flatten()
        .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
        .or(via.port)
        .unwrap_or(5060);
    Some(SocketAddr::new(host.parse().ok()?, port))
}

/// Where our INVITE went: its first Route (loose routing), else its
/// Request-URI.
fn invite_hop(invite: &Request) -> Result<Hop, String> {
    match msg::value(&invite.headers, &HeaderName::Route) {
        Some(route) => uri_hop(&strip_angles(&route)),
        None => uri_hop(&invite.uri.to_string()),
    }
}

fn encode(role: Role, request: &Request, local_tag: Option<&str>, peer: Option<&str>) -> String {
    let mut head = request.clone();
    head.set_body(bytes::Bytes::new());
    head.headers.remove_all(&HeaderName::ContentType);
    head.headers.remove_all(&HeaderName::ContentLength);
    let mut text = format!(
        "{MAGIC}\nrole: {}\n",
        match role {
            Role::Uac => "uac",
            Role::Uas => "uas",
        }
    );
    if let Some(tag) = local_tag {
        text.push_str(&format!("local-tag: {tag}\n"));
    }
    if let Some(peer) = peer {
        text.push_str(&format!("peer: {peer}\n"));
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&msg::to_bytes(&Message::Request(
        head,
    ))));
    text
}

fn decode(text: &str) -> Result<Recovered, String> {
    let (meta, head) = text
        .split_once("\n\n")
        .ok_or("no blank line between the fields and the request")?;
    let mut lines = meta.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("not a {MAGIC} snapshot"));
    }
    let mut role = None;
    let mut local_tag = None;
    let mut peer = None;
    for line in lines {
        match line.split_once(": ") {
            Some(("role", "uac")) => role = Some(Role::Uac),
            Some(("role", "uas")) => role = Some(Role::Uas),
            Some(("local-tag", tag)) if !tag.is_empty() => local_tag = Some(tag.to_owned()),
            Some(("peer", name)) if !name.is_empty() && !name.chars().any(char::is_control) => {
                peer = Some(name.to_owned());
            }
            _ => return Err(format!("unknown line {line:?}")),
        }
    }
    let role = role.ok_or("no role")?;
    let mut head = head.trim_end().to_owned();
    head.push_str("\r\n\r\n");
    let request = match msg::parse_datagram(head.as_bytes(), &msg::Limits::datagram()) {
        Ok(Message::Request(r)) if r.method == Method::Invite => r,
        Ok(_) => return Err("the stored message is not an INVITE".into()),
        Err(e) => return Err(format!("the stored INVITE does not parse: {e}")),
    };
    if msg::call_id(&request.headers).is_none()
        || msg::cseq(&request.headers).is_none()
        || msg::top_via(&request.headers).is_none()
    {
        return Err("the stored INVITE lacks Call-ID, CSeq or Via".into());
    }
    Ok(Recovered {
        role,
        request,
        local_tag,
        peer,
    })
}

/// RFC 3261 §9.1: the CANCEL of `invite` (its Request-URI, Call-ID, To,
/// From, top Via, Route set and CSeq number; method CANCEL; no body).
pub(crate) fn cancel_request(invite: &Request) -> Result<Request, String> {
    let mut req = Request::new(Method::Cancel, invite.uri.clone());
    let mut first_via = true;
    for h in invite.headers.iter() {
        let keep = match h.name() {
            HeaderName::Via => std::mem::replace(&mut first_via, false),
            HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::Route => true,
            HeaderName::MaxForwards => true,
            _ => false,
        };
        if keep {
            req.headers.push(h.clone());
        }
    }
    let seq = msg::cseq(&invite.headers).ok_or("no CSeq")?.sequence;
    req.headers
        .push(msg::header(HeaderName::CSeq, format!("{seq} CANCEL"))?);
    msg::fix_content_length(&mut req.headers, 0)?;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:romeo@example.net SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKdef\r\n\
        Max-Forwards: 70\r\n\
        Route: <sip:127.0.0.1:5070;lr>\r\n\
        From: <sip:juliet@example.com>;tag=f1\r\n\
        To: <sip:romeo@example.net>\r\n\
        Call-ID: s1@sip.example.com\r\n\
        CSeq: 7 INVITE\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn invite() -> Request {
        match msg::parse_datagram(INVITE.as_bytes(), &msg::Limits::datagram()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_snapshot_round_trips_without_its_body() {
        let text = encode(Role::Uas, &invite(), Some("lt1"), None);
        assert!(text.starts_with("stox-sip-pending/1\nrole: uas\nlocal-tag: lt1\n\nINVITE "));
        assert!(!text.contains("v=0"), "no body: {text}");
        let back = decode(&text).expect("decodes");
        assert_eq!(
            (back.role, back.local_tag.as_deref()),
            (Role::Uas, Some("lt1"))
        );
        assert_eq!(back.request.uri.to_string(), "sip:romeo@example.net");
        let ours = encode(Role::Uac, &invite(), None, Some("trunk1"));
        assert!(ours.starts_with("stox-sip-pending/1\nrole: uac\npeer: trunk1\n\nINVITE "));
        assert_eq!(
            decode(&ours).expect("decodes").peer.as_deref(),
            Some("trunk1")
        );
    }

    #[test]
    fn corrupt_snapshots_are_refused_not_panicked_on() {
        for bad in [
            "",
            "stox-sip-pending/1\nrole: uac\n",
            "stox-sip-pending/9\nrole: uac\n\nINVITE sip:a@b SIP/2.0\r\n\r\n",
            "stox-sip-pending/1\nrole: xyz\n\nINVITE sip:a@b SIP/2.0\r\n\r\n",
            "stox-sip-pending/1\nrole: uac\n\nBYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nCall-ID: x\r\nCSeq: 1 BYE\r\n\r\n",
            "stox-sip-pending/1\nrole: uac\n\ngarbage",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    /// RFC 3261 §9.1: the CANCEL has the INVITE's Request-URI, Call-ID,
    /// To, From, CSeq number and Route, one Via (the top one), no body.
    #[test]
    fn rfc3261_9_1_cancel_is_built_from_the_invite() {
        let cancel = cancel_request(&invite()).expect("builds");
        let text = String::from_utf8(msg::to_bytes(&Message::Request(cancel))).expect("utf-8");
        assert!(
            text.starts_with("CANCEL sip:romeo@example.net SIP/2.0\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("Via:").count(), 1, "{text}");
        assert!(text.contains("branch=z9hG4bKabc"));
        assert!(text.contains("CSeq: 7 CANCEL"));
        assert!(text.contains("Route: <sip:127.0.0.1:5070;lr>"));
        assert!(text.contains("To: <sip:romeo@example.net>\r\n"));
        assert!(text.contains("Content-Length: 0"));
        assert!(!text.contains("application/sdp"));
    }

    #[test]
    fn the_peers_invite_is_answered_where_its_via_says() {
        let v = msg::top_via(&invite().headers).expect("via");
        assert_eq!(
            via_source(&v),
            Some("127.0.0.1:5060".parse().expect("addr"))
        );
    }
}
