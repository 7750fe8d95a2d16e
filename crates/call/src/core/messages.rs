//! `<message/>` stanzas: XEP-0353 Jingle Message Initiation in both
//! directions.
//!
//! * XMPP → SIP: a `<propose/>` to a SIP address on the component domain is
//!   answered at once with `<proceed/>` from `…/stox-gateway` (the gateway is
//!   the one device that takes the call); the client's session-initiate then
//!   becomes the INVITE. A `<retract/>` before it is recorded and nothing
//!   reaches SIP.
//! * SIP → XMPP: `<ringing/>`, `<proceed/>` and `<reject/>` from the callee's
//!   devices are routed by (sid, bare JID) to the call that proposed.

use super::Core;
use crate::call::Ctx;
use crate::jmi::{self, GATEWAY_RESOURCE, Jmi, JmiKind};
use crate::policy::{Refusal, Route};
use crate::time::Millis;
use crate::types::{
    CallState, Direction, EndedBy, Fault, NextHop, Output, SessionRecord, TimerKey,
};
use minidom::Element;
use stox_mapping::address::{JidParts, gateway_jid_to_sip_user};
use stox_mapping::ids::{CallId, Sid};
use stox_mapping::status::ReasonCondition;

/// A proposal from an XMPP caller that the gateway proceeded to.
#[derive(Debug, Clone)]
pub(crate) struct Proposal {
    key: u64,
    /// The gateway JID the caller proposed to (bare).
    callee: String,
    sip_uri: String,
    created: Millis,
    /// The peer the policy routes it to.
    peer: Option<String>,
}

impl Core {
    pub(super) fn on_message(&mut self, now: Millis, el: &Element, out: &mut Vec<Output>) {
        if el.attr("type") == Some("error") {
            return;
        }
        let Some(msg) = Jmi::parse(el) else {
            return;
        };
        match msg.kind {
            JmiKind::Propose => self.on_propose(now, &msg, out),
            JmiKind::Retract => self.on_retract(now, &msg, out),
            JmiKind::Ringing | JmiKind::Proceed | JmiKind::Reject => {
                let key = (msg.id.clone(), jmi::bare(&msg.from).to_owned());
                let Some(&id) = self.by_proposal.get(&key) else {
                    return;
                };
                let Some(call) = self.calls.get_mut(&id) else {
                    return;
                };
                let mut ctx = Ctx {
                    now,
                    cfg: &self.cfg,
                    out,
                    iqs: &mut self.iqs,
                    iq_seq: &mut self.iq_seq,
                };
                call.on_jmi(&mut ctx, &msg);
                if !call.is_proposing() {
                    self.by_proposal.remove(&key);
                    if !call.is_finished() {
                        let peer = (call.sid().clone(), call.xmpp_peer().to_owned());
                        self.by_jingle.insert(peer, id);
                    }
                }
                self.reap(id);
            }
            // <accept/> is a device's note to its own account; <finish/>
            // comes with a session-terminate, which is what ends the call.
            JmiKind::Accept | JmiKind::Finish => {}
        }
    }

    fn on_propose(&mut self, now: Millis, msg: &Jmi, out: &mut Vec<Output>) {
        let callee = jmi::bare(&msg.to).to_owned();
        let key = (msg.id.clone(), msg.from.clone());
        if self.proposals.contains_key(&key) || self.by_jingle.contains_key(&key) {
            return; // a repeated propose (e.g. from the archive)
        }
        let uri = JidParts::parse(&callee)
            .map_err(|e| e.to_string())
            .and_then(|jid| {
                let node = jid
                    .node
                    .ok_or_else(|| format!("{callee} is the gateway itself"))?;
                gateway_jid_to_sip_user(&node, None).map_err(|e| e.to_string())
            })
            .map_err(|text| (ReasonCondition::Gone, text));
        let caller = jmi::bare(&msg.from).to_owned();
        let full = self.at_call_limit() || self.store_backlogged;
        let uri = uri.and_then(|uri| match full {
            // Like a busy phone: the caller may try again later.
            true => Err((
                ReasonCondition::Busy,
                "the gateway cannot take new calls now; try again later".to_owned(),
            )),
            false => Ok(uri),
        });
        // Every next hop down: the target and the refusal, for the row.
        let mut unavailable = None;
        let routed = uri.and_then(|uri| {
            match self
                .cfg
                .policy
                .as_ref()
                .map(|p| p.route(&caller, &uri, &self.down))
            {
                None | Some(Ok(Route::Proxy | Route::Registrar)) => Ok((uri, None)),
                Some(Ok(Route::Peer(name))) => Ok((uri, Some(name))),
                Some(Err(Refusal::Forbidden(why))) => {
                    out.push(Output::Fault {
                        call: 0,
                        fault: Fault::Forbidden {
                            caller: caller.clone(),
                            target: uri.to_string(),
                            why: why.clone(),
                        },
                    });
                    // The policy says no: the caller is told it was declined.
                    Err((ReasonCondition::Decline, why))
                }
                Some(Err(refusal @ Refusal::Unavailable(_))) => {
                    // As a session-initiate would be (service-unavailable):
                    // the reason a refused call's row gets.
                    let text = format!("{refusal}; try again later");
                    unavailable = Some((uri.to_string(), refusal));
                    Err((ReasonCondition::ConnectivityError, text))
                }
            }
        });
        let (uri, peer) = match routed {
            Ok(routed) => routed,
            Err((condition, text)) => {
                let reject = jmi::message(
                    JmiKind::Reject,
                    &msg.id,
                    &callee,
                    &msg.from,
                    Some((condition, Some(&text))),
                    &[],
                );
                out.push(Output::Xmpp(reject));
                if let Some((sip_uri, refusal)) = unavailable {
                    self.refused_proposal(now, msg, callee, sip_uri, &refusal, out);
                }
                return;
            }
        };
        let proceed = jmi::message(
            JmiKind::Proceed,
            &msg.id,
            &format!("{callee}/{GATEWAY_RESOURCE}"),
            &msg.from,
            None,
            &[],
        );
        out.push(Output::Xmpp(proceed));
        self.next_proposal += 1;
        let proposal_key = self.next_proposal;
        self.proposals.insert(
            key.clone(),
            Proposal {
                key: proposal_key,
                callee,
                sip_uri: uri.to_string(),
                created: now,
                peer,
            },
        );
        self.proposal_keys.insert(proposal_key, key);
        out.push(Output::SetTimer {
            key: TimerKey::ProposalTimeout {
                proposal: proposal_key,
            },
            at: now.plus_ms(self.cfg.ring_timeout_ms),
        });
    }

    /// A proposal refused because every next hop it could take is down:
    /// a log line, and an ended row that says why (nothing reached SIP).
    fn refused_proposal(
        &mut self,
        now: Millis,
        msg: &Jmi,
        callee: String,
        sip_uri: String,
        refusal: &Refusal,
        out: &mut Vec<Output>,
    ) {
        let Refusal::Unavailable(hops) = refusal else {
            return;
        };
        let why = refusal.to_string();
        let caller = jmi::bare(&msg.from).to_owned();
        out.push(Output::Fault {
            call: 0,
            fault: Fault::PeerDown {
                caller,
                target: sip_uri.clone(),
                hops: hops.iter().map(|(hop, _)| hop.clone()).collect(),
                why: why.clone(),
            },
        });
        let peer = hops.first().and_then(|(hop, _)| match hop {
            NextHop::Peer(name) => Some(name.clone()),
            NextHop::OutboundProxy => None,
        });
        let proposal = Proposal {
            key: 0,
            callee,
            sip_uri,
            created: now,
            peer,
        };
        let key = (msg.id.clone(), msg.from.clone());
        let reason = ReasonCondition::ConnectivityError;
        self.record_proposal_end(
            now,
            &key,
            &proposal,
            reason,
            EndedBy::Gateway,
            Some(why),
            out,
        );
    }

    /// The caller's session-initiate arrived: the proposal became a call.
    pub(super) fn take_proposal(&mut self, sid: &Sid, from: &str) -> bool {
        match self.proposals.remove(&(sid.clone(), from.to_owned())) {
            Some(p) => {
                self.proposal_keys.remove(&p.key);
                stox_mapping::tables::shrink(&mut self.proposals);
                stox_mapping::tables::shrink(&mut self.proposal_keys);
                true
            }
            None => false,
        }
    }

    fn on_retract(&mut self, now: Millis, msg: &Jmi, out: &mut Vec<Output>) {
        let key = (msg.id.clone(), msg.from.clone());
        let Some(p) = self.proposals.remove(&key) else {
            return;
        };
        self.proposal_keys.remove(&p.key);
        let reason = msg.reason.unwrap_or(ReasonCondition::Cancel);
        self.record_proposal_end(now, &key, &p, reason, EndedBy::Xmpp, None, out);
    }

    pub(super) fn proposal_timeout(&mut self, now: Millis, proposal: u64, out: &mut Vec<Output>) {
        let Some(key) = self.proposal_keys.remove(&proposal) else {
            return;
        };
        if let Some(p) = self.proposals.remove(&key) {
            self.record_proposal_end(
                now,
                &key,
                &p,
                ReasonCondition::Timeout,
                EndedBy::Gateway,
                None,
                out,
            );
        }
    }

    /// A proposal that never became a session is still a call attempt: one
    /// ended row (nothing reached SIP, so no SIP status).
    #[allow(clippy::too_many_arguments)]
    fn record_proposal_end(
        &mut self,
        now: Millis,
        (sid, caller): &(Sid, String),
        p: &Proposal,
        reason: ReasonCondition,
        by: EndedBy,
        detail: Option<String>,
        out: &mut Vec<Output>,
    ) {
        let id = self.allocate_id();
        out.push(Output::Persist {
            call: None,
            record: SessionRecord {
                id,
                jingle_sid: sid.clone(),
                sip_call_id: CallId::new(format!("{}@{}", sid, self.cfg.component)),
                direction: Direction::XmppToSip,
                xmpp_jid: caller.clone(),
                sip_uri: p.sip_uri.clone(),
                gateway_jid: p.callee.clone(),
                state: CallState::Ended,
                created_at: p.created,
                answered_at: None,
                ended_at: Some(now),
                end_reason: Some(reason.as_str().to_owned()),
                sip_status: None,
                ended_by: Some(by),
                end_detail: detail,
                local_sdp: None,
                remote_sdp: None,
                hold: crate::types::Hold::default(),
                sip_peer: p.peer.clone(),
                media_relay: None,
                updated_at: now,
            },
        });
    }
}
