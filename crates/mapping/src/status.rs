//! SIP status ⇄ Jingle `<reason/>` ⇄ IQ error condition (RFC 7247 §6–7 and
//! the STOX media draft). The tables are documented in `docs/mapping.md`.
//!
//! INTERFACE SKELETON — implementation in progress.

/// Jingle reason conditions (XEP-0166 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCondition {
    AlternativeSession,
    Busy,
    Cancel,
    ConnectivityError,
    Decline,
    Expired,
    FailedApplication,
    FailedTransport,
    GeneralError,
    Gone,
    IncompatibleParameters,
    MediaError,
    SecurityError,
    Success,
    Timeout,
    UnsupportedApplications,
    UnsupportedTransports,
}

impl ReasonCondition {
    /// Element name, e.g. `busy`, `connectivity-error`; also the value stored in
    /// `sessions.end_reason`.
    pub fn as_str(self) -> &'static str {
        todo!()
    }
    pub fn parse(s: &str) -> Option<Self> {
        let _ = s;
        todo!()
    }
}

/// Reason for a session-terminate caused by a final SIP status of the INVITE
/// (or of a BYE: `success`).
pub fn reason_for_sip_status(status: u16) -> ReasonCondition {
    let _ = status;
    todo!()
}

/// Final SIP status to answer an INVITE with when the XMPP callee ends the
/// session before accepting it (busy → 486, decline → 603, …).
pub fn sip_status_for_reason(reason: ReasonCondition) -> u16 {
    let _ = reason;
    todo!()
}

/// RFC 6120 §8.3.3 stanza error conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCondition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

/// RFC 6120 error `type` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorCondition {
    pub fn as_str(self) -> &'static str {
        todo!()
    }
    pub fn parse(s: &str) -> Option<Self> {
        let _ = s;
        todo!()
    }
    /// The error type RFC 6120 §8.3.3 gives for this condition.
    pub fn default_type(self) -> ErrorType {
        todo!()
    }
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        todo!()
    }
}

/// RFC 7247 §7 (XMPP → SIP): the SIP final status for an XMPP error received
/// in answer to a request the gateway forwarded. `to_full_jid` picks between
/// e.g. 405 and 501 for feature-not-implemented.
pub fn sip_status_for_error(condition: ErrorCondition, to_full_jid: bool) -> u16 {
    let _ = (condition, to_full_jid);
    todo!()
}

/// RFC 7247 §6 (SIP → XMPP): the XMPP error condition for a SIP final status.
pub fn error_for_sip_status(status: u16) -> ErrorCondition {
    let _ = status;
    todo!()
}
