//! SIP adapter for stox-gateway.
//!
//! A thin layer over rsipstack: it owns the transports (UDP, TCP, WebSocket
//! with subprotocol `sip`, RFC 7118), the transaction layer (RFC 3261
//! retransmissions and timers) and the INVITE dialogs. It knows nothing about
//! Jingle: the gateway core tells it what to send with [`SipCommand`]-style
//! method calls and hears back through [`SipEvent`]s, keyed by Call-ID.
//!
//! INTERFACE SKELETON — implementation in progress.

use std::net::SocketAddr;
use stox_mapping::ids::CallId;

/// Listener and routing configuration (the `[sip]` table of the config file).
#[derive(Debug, Clone, Default)]
pub struct SipConfig {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    /// `sip:host:port[;transport=tcp]`: every out-of-dialog request goes there.
    pub outbound_proxy: Option<String>,
    pub user_agent: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    #[error("cannot listen on {addr} ({transport}): {detail}")]
    Listen { transport: &'static str, addr: SocketAddr, detail: String },
    #[error("invalid SIP URI '{0}'")]
    InvalidUri(String),
    #[error("no such call {0}")]
    UnknownCall(CallId),
    #[error("{0}")]
    Stack(String),
}

/// An INVITE the gateway sends (XMPP → SIP).
#[derive(Debug, Clone)]
pub struct OutgoingInvite {
    pub call_id: CallId,
    /// Request-URI and To, e.g. `sip:romeo@example.net`.
    pub request_uri: String,
    /// From URI, e.g. `sip:juliet@example.com` (a From tag is added).
    pub from: String,
    /// The SDP offer.
    pub sdp: String,
}

/// What the SIP side reports to the gateway core.
#[derive(Debug, Clone)]
pub enum SipEvent {
    /// A new INVITE outside any dialog. `100 Trying` has already been sent.
    IncomingInvite {
        call_id: CallId,
        request_uri: String,
        from: String,
        to: String,
        sdp: Option<String>,
        transport: &'static str,
        source: SocketAddr,
    },
    /// A provisional response (101–199) to our INVITE.
    Provisional { call_id: CallId, status: u16, sdp: Option<String> },
    /// A 2xx to our INVITE; the ACK has been sent.
    Answered { call_id: CallId, status: u16, sdp: Option<String> },
    /// A final non-2xx to our INVITE, or a transaction timeout (408).
    Rejected { call_id: CallId, status: u16, reason: String },
    /// The ACK for our 2xx arrived.
    Acked { call_id: CallId },
    /// The caller cancelled our pending incoming INVITE; 200 to the CANCEL and
    /// 487 to the INVITE have been sent.
    Cancelled { call_id: CallId },
    /// The peer sent BYE; 200 has been sent.
    Bye { call_id: CallId },
    /// The dialog ended for another reason (no ACK, BYE timed out, transport
    /// gone …).
    Terminated { call_id: CallId, reason: String },
}

/// The running SIP endpoint. Cheap to clone.
#[derive(Clone)]
pub struct SipEndpoint {}

impl SipEndpoint {
    /// Binds the configured listeners and starts the stack. Events arrive on
    /// the returned receiver until `cancel` fires.
    pub async fn start(
        config: SipConfig,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(SipEndpoint, tokio::sync::mpsc::Receiver<SipEvent>), SipError> {
        let _ = (config, cancel);
        todo!()
    }

    /// Sends an INVITE; progress comes back as events for `invite.call_id`.
    pub fn invite(&self, invite: OutgoingInvite) -> Result<(), SipError> {
        let _ = invite;
        todo!()
    }

    /// Answers a pending incoming INVITE: 180/183 (optionally with SDP),
    /// 200 with the SDP answer, or a final 3xx–6xx.
    pub fn respond(
        &self,
        call_id: &CallId,
        status: u16,
        reason: Option<String>,
        sdp: Option<String>,
    ) -> Result<(), SipError> {
        let _ = (call_id, status, reason, sdp);
        todo!()
    }

    /// CANCELs our pending outgoing INVITE.
    pub fn cancel(&self, call_id: &CallId) -> Result<(), SipError> {
        let _ = call_id;
        todo!()
    }

    /// Sends BYE in an established dialog (either direction).
    pub fn bye(&self, call_id: &CallId) -> Result<(), SipError> {
        let _ = call_id;
        todo!()
    }

    /// The local addresses actually bound, per transport (useful with port 0).
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        todo!()
    }
}
