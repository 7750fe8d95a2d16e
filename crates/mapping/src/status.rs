//! SIP status ⇄ Jingle `<reason/>` ⇄ IQ error condition (RFC 7247 §6–7 and
//! the STOX media draft). The tables are documented in `docs/mapping.md`.
//!
//! Every function here is total: any `u16` status and any condition map to
//! something, so wire input can never make these panic.

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
    /// Every condition, in XEP-0166 order (handy for tests and tables).
    pub const ALL: [ReasonCondition; 17] = [
        Self::AlternativeSession,
        Self::Busy,
        Self::Cancel,
        Self::ConnectivityError,
        Self::Decline,
        Self::Expired,
        Self::FailedApplication,
        Self::FailedTransport,
        Self::GeneralError,
        Self::Gone,
        Self::IncompatibleParameters,
        Self::MediaError,
        Self::SecurityError,
        Self::Success,
        Self::Timeout,
        Self::UnsupportedApplications,
        Self::UnsupportedTransports,
    ];

    /// Element name, e.g. `busy`, `connectivity-error`; also the value stored in
    /// `sessions.end_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlternativeSession => "alternative-session",
            Self::Busy => "busy",
            Self::Cancel => "cancel",
            Self::ConnectivityError => "connectivity-error",
            Self::Decline => "decline",
            Self::Expired => "expired",
            Self::FailedApplication => "failed-application",
            Self::FailedTransport => "failed-transport",
            Self::GeneralError => "general-error",
            Self::Gone => "gone",
            Self::IncompatibleParameters => "incompatible-parameters",
            Self::MediaError => "media-error",
            Self::SecurityError => "security-error",
            Self::Success => "success",
            Self::Timeout => "timeout",
            Self::UnsupportedApplications => "unsupported-applications",
            Self::UnsupportedTransports => "unsupported-transports",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Reason for a session-terminate caused by a final SIP status of the INVITE
/// (or of a BYE: `success`).
///
/// | SIP status                         | Jingle reason             |
/// |------------------------------------|---------------------------|
/// | 2xx                                | `success`                 |
/// | 3xx (not followed by the gateway)  | `gone`                    |
/// | 401, 403, 407                      | `security-error`          |
/// | 404, 410, 480, 484, 604            | `gone`                    |
/// | 408                                | `timeout`                 |
/// | 415, 488, 606                      | `incompatible-parameters` |
/// | 486, 600                           | `busy`                    |
/// | 487                                | `cancel`                  |
/// | 603                                | `decline`                 |
/// | other 4xx, every 5xx, 1xx, junk    | `general-error`           |
/// | other 6xx                          | `decline`                 |
///
/// 5xx is `general-error` rather than `connectivity-error`: XEP-0166 keeps
/// `connectivity-error` for media connectivity, and a 5xx is a server failure.
pub fn reason_for_sip_status(status: u16) -> ReasonCondition {
    use ReasonCondition as R;
    match status {
        200..=299 => R::Success,
        486 | 600 => R::Busy,
        603 => R::Decline,
        487 => R::Cancel,
        408 => R::Timeout,
        404 | 410 | 480 | 484 | 604 => R::Gone,
        415 | 488 | 606 => R::IncompatibleParameters,
        401 | 403 | 407 => R::SecurityError,
        300..=399 => R::Gone,
        600..=699 => R::Decline,
        _ => R::GeneralError,
    }
}

/// Final SIP status to answer an INVITE with when the XMPP callee ends the
/// session before accepting it (busy → 486, decline → 603, …).
///
/// | Jingle reason                                   | SIP status |
/// |-------------------------------------------------|------------|
/// | `busy`, `alternative-session`                   | 486        |
/// | `decline`                                       | 603        |
/// | `cancel`                                        | 487        |
/// | `timeout`, `expired`                            | 408        |
/// | `gone`                                          | 480        |
/// | `success` (hung up before answering)            | 480        |
/// | `unsupported-applications`, `unsupported-transports`, `incompatible-parameters`, `media-error`, `failed-application`, `failed-transport` | 488 |
/// | `security-error`                                | 403        |
/// | `connectivity-error`                            | 503        |
/// | `general-error`                                 | 500        |
///
/// `success` before an answer is not a refusal (603) but "nobody took the
/// call", hence 480 Temporarily Unavailable; `gone` is 480 rather than the
/// permanent 410 because an XMPP resource going away says nothing about the
/// user's address.
pub fn sip_status_for_reason(reason: ReasonCondition) -> u16 {
    use ReasonCondition as R;
    match reason {
        R::Busy | R::AlternativeSession => 486,
        R::Decline => 603,
        R::Cancel => 487,
        R::Timeout | R::Expired => 408,
        R::Gone | R::Success => 480,
        R::UnsupportedApplications
        | R::UnsupportedTransports
        | R::IncompatibleParameters
        | R::MediaError
        | R::FailedApplication
        | R::FailedTransport => 488,
        R::SecurityError => 403,
        R::ConnectivityError => 503,
        R::GeneralError => 500,
    }
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
    /// Every condition, in RFC 6120 order.
    pub const ALL: [ErrorCondition; 22] = [
        Self::BadRequest,
        Self::Conflict,
        Self::FeatureNotImplemented,
        Self::Forbidden,
        Self::Gone,
        Self::InternalServerError,
        Self::ItemNotFound,
        Self::JidMalformed,
        Self::NotAcceptable,
        Self::NotAllowed,
        Self::NotAuthorized,
        Self::PolicyViolation,
        Self::RecipientUnavailable,
        Self::Redirect,
        Self::RegistrationRequired,
        Self::RemoteServerNotFound,
        Self::RemoteServerTimeout,
        Self::ResourceConstraint,
        Self::ServiceUnavailable,
        Self::SubscriptionRequired,
        Self::UndefinedCondition,
        Self::UnexpectedRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Conflict => "conflict",
            Self::FeatureNotImplemented => "feature-not-implemented",
            Self::Forbidden => "forbidden",
            Self::Gone => "gone",
            Self::InternalServerError => "internal-server-error",
            Self::ItemNotFound => "item-not-found",
            Self::JidMalformed => "jid-malformed",
            Self::NotAcceptable => "not-acceptable",
            Self::NotAllowed => "not-allowed",
            Self::NotAuthorized => "not-authorized",
            Self::PolicyViolation => "policy-violation",
            Self::RecipientUnavailable => "recipient-unavailable",
            Self::Redirect => "redirect",
            Self::RegistrationRequired => "registration-required",
            Self::RemoteServerNotFound => "remote-server-not-found",
            Self::RemoteServerTimeout => "remote-server-timeout",
            Self::ResourceConstraint => "resource-constraint",
            Self::ServiceUnavailable => "service-unavailable",
            Self::SubscriptionRequired => "subscription-required",
            Self::UndefinedCondition => "undefined-condition",
            Self::UnexpectedRequest => "unexpected-request",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The error type RFC 6120 §8.3.3 gives for this condition
    /// (`unexpected-request` allows wait or modify: wait is used).
    pub fn default_type(self) -> ErrorType {
        use ErrorCondition as E;
        match self {
            E::BadRequest
            | E::JidMalformed
            | E::NotAcceptable
            | E::PolicyViolation
            | E::Redirect => ErrorType::Modify,
            E::Forbidden | E::NotAuthorized | E::RegistrationRequired | E::SubscriptionRequired => {
                ErrorType::Auth
            }
            E::RecipientUnavailable
            | E::RemoteServerTimeout
            | E::ResourceConstraint
            | E::UnexpectedRequest => ErrorType::Wait,
            E::Conflict
            | E::FeatureNotImplemented
            | E::Gone
            | E::InternalServerError
            | E::ItemNotFound
            | E::NotAllowed
            | E::RemoteServerNotFound
            | E::ServiceUnavailable
            | E::UndefinedCondition => ErrorType::Cancel,
        }
    }
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Cancel => "cancel",
            Self::Continue => "continue",
            Self::Modify => "modify",
            Self::Wait => "wait",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Auth,
            Self::Cancel,
            Self::Continue,
            Self::Modify,
            Self::Wait,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// RFC 7247 §7 (XMPP → SIP): the SIP final status for an XMPP error received
/// in answer to a request the gateway forwarded. `to_full_jid` picks between
/// e.g. 405 and 501 for feature-not-implemented.
///
/// | XMPP condition                                                   | SIP |
/// |------------------------------------------------------------------|-----|
/// | bad-request, conflict, jid-malformed, undefined-condition        | 400 |
/// | feature-not-implemented                                          | 405 to a full JID, else 501 |
/// | forbidden, not-allowed, policy-violation, subscription-required  | 403 |
/// | gone                                                             | 410 |
/// | internal-server-error, resource-constraint                       | 500 |
/// | item-not-found, remote-server-not-found                          | 404 |
/// | not-acceptable                                                   | 406 |
/// | not-authorized                                                   | 401 |
/// | recipient-unavailable                                            | 480 |
/// | redirect                                                         | 302 |
/// | registration-required                                            | 407 |
/// | remote-server-timeout                                            | 408 |
/// | service-unavailable                                              | 405 to a full JID, else 403 (never 503) |
/// | unexpected-request                                               | 491 |
///
/// `unexpected-request` is 491 Request Pending: the function has no context,
/// and the case the gateway meets is a Jingle action racing another one.
pub fn sip_status_for_error(condition: ErrorCondition, to_full_jid: bool) -> u16 {
    use ErrorCondition as E;
    match condition {
        E::BadRequest | E::Conflict | E::JidMalformed | E::UndefinedCondition => 400,
        E::FeatureNotImplemented => {
            if to_full_jid {
                405
            } else {
                501
            }
        }
        E::Forbidden | E::NotAllowed | E::PolicyViolation | E::SubscriptionRequired => 403,
        E::Gone => 410,
        E::InternalServerError | E::ResourceConstraint => 500,
        E::ItemNotFound | E::RemoteServerNotFound => 404,
        E::NotAcceptable => 406,
        E::NotAuthorized => 401,
        E::RecipientUnavailable => 480,
        E::Redirect => 302,
        E::RegistrationRequired => 407,
        E::RemoteServerTimeout => 408,
        E::ServiceUnavailable => {
            if to_full_jid {
                405
            } else {
                403
            }
        }
        E::UnexpectedRequest => 491,
    }
}

/// RFC 7247 §6 (SIP → XMPP): the XMPP error condition for a SIP final status.
///
/// | SIP status                    | XMPP condition            |
/// |-------------------------------|---------------------------|
/// | 301, 410                      | gone                      |
/// | other 3xx                     | redirect                  |
/// | 400                           | bad-request               |
/// | 401                           | not-authorized            |
/// | 403                           | forbidden                 |
/// | 404, 481, 484, 485, 604       | item-not-found            |
/// | 405, 420, 501                 | feature-not-implemented   |
/// | 406, 415, 488, 606            | not-acceptable            |
/// | 407                           | registration-required     |
/// | 408, 504                      | remote-server-timeout     |
/// | 480, 486, 487, 600, 603       | recipient-unavailable     |
/// | 491                           | unexpected-request        |
/// | 502                           | remote-server-not-found   |
/// | other 5xx                     | internal-server-error     |
/// | other 6xx                     | recipient-unavailable     |
/// | anything else                 | undefined-condition       |
pub fn error_for_sip_status(status: u16) -> ErrorCondition {
    use ErrorCondition as E;
    match status {
        301 | 410 => E::Gone,
        300..=399 => E::Redirect,
        400 => E::BadRequest,
        401 => E::NotAuthorized,
        403 => E::Forbidden,
        404 | 481 | 484 | 485 | 604 => E::ItemNotFound,
        405 | 420 | 501 => E::FeatureNotImplemented,
        406 | 415 | 488 | 606 => E::NotAcceptable,
        407 => E::RegistrationRequired,
        408 | 504 => E::RemoteServerTimeout,
        480 | 486 | 487 | 600 | 603 => E::RecipientUnavailable,
        491 => E::UnexpectedRequest,
        502 => E::RemoteServerNotFound,
        500..=599 => E::InternalServerError,
        600..=699 => E::RecipientUnavailable,
        _ => E::UndefinedCondition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_round_trip() {
        for c in ReasonCondition::ALL {
            assert_eq!(ReasonCondition::parse(c.as_str()), Some(c));
        }
        assert_eq!(ReasonCondition::parse("no-error"), None);
    }

    #[test]
    fn error_names_round_trip() {
        for c in ErrorCondition::ALL {
            assert_eq!(ErrorCondition::parse(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCondition::parse("bogus"), None);
        assert_eq!(ErrorType::parse("wait"), Some(ErrorType::Wait));
    }

    #[test]
    fn call_outcomes_from_sip() {
        use ReasonCondition as R;
        let table = [
            (200, R::Success),
            (486, R::Busy),
            (600, R::Busy),
            (603, R::Decline),
            (487, R::Cancel),
            (408, R::Timeout),
            (404, R::Gone),
            (480, R::Gone),
            (488, R::IncompatibleParameters),
            (606, R::IncompatibleParameters),
            (403, R::SecurityError),
            (500, R::GeneralError),
            (503, R::GeneralError),
            (499, R::GeneralError),
            (699, R::Decline),
            (0, R::GeneralError),
            (u16::MAX, R::GeneralError),
        ];
        for (status, reason) in table {
            assert_eq!(reason_for_sip_status(status), reason, "status {status}");
        }
    }

    #[test]
    fn call_outcomes_to_sip() {
        use ReasonCondition as R;
        assert_eq!(sip_status_for_reason(R::Busy), 486);
        assert_eq!(sip_status_for_reason(R::Decline), 603);
        assert_eq!(sip_status_for_reason(R::Cancel), 487);
        assert_eq!(sip_status_for_reason(R::Timeout), 408);
        assert_eq!(sip_status_for_reason(R::Gone), 480);
        assert_eq!(sip_status_for_reason(R::Success), 480);
        assert_eq!(sip_status_for_reason(R::UnsupportedApplications), 488);
        assert_eq!(sip_status_for_reason(R::GeneralError), 500);
        for c in ReasonCondition::ALL {
            let s = sip_status_for_reason(c);
            assert!((400..700).contains(&s), "{c:?} → {s} is not a final error");
        }
        // The SIP-originated outcomes that matter come back unchanged.
        for s in [486, 603, 487, 408] {
            assert_eq!(sip_status_for_reason(reason_for_sip_status(s)), s);
        }
    }

    #[test]
    fn rfc7247_section7_xmpp_to_sip() {
        use ErrorCondition as E;
        assert_eq!(sip_status_for_error(E::BadRequest, false), 400);
        assert_eq!(sip_status_for_error(E::FeatureNotImplemented, true), 405);
        assert_eq!(sip_status_for_error(E::FeatureNotImplemented, false), 501);
        assert_eq!(sip_status_for_error(E::ServiceUnavailable, false), 403);
        assert_eq!(sip_status_for_error(E::ServiceUnavailable, true), 405);
        assert_eq!(sip_status_for_error(E::ItemNotFound, true), 404);
        assert_eq!(sip_status_for_error(E::RecipientUnavailable, true), 480);
        assert_eq!(sip_status_for_error(E::RemoteServerTimeout, true), 408);
        assert_eq!(sip_status_for_error(E::UnexpectedRequest, true), 491);
        for c in ErrorCondition::ALL {
            for full in [true, false] {
                assert_ne!(sip_status_for_error(c, full), 503, "{c:?}");
            }
        }
    }

    #[test]
    fn rfc7247_section6_sip_to_xmpp() {
        use ErrorCondition as E;
        let table = [
            (302, E::Redirect),
            (301, E::Gone),
            (400, E::BadRequest),
            (401, E::NotAuthorized),
            (403, E::Forbidden),
            (404, E::ItemNotFound),
            (481, E::ItemNotFound),
            (405, E::FeatureNotImplemented),
            (501, E::FeatureNotImplemented),
            (488, E::NotAcceptable),
            (407, E::RegistrationRequired),
            (408, E::RemoteServerTimeout),
            (486, E::RecipientUnavailable),
            (603, E::RecipientUnavailable),
            (491, E::UnexpectedRequest),
            (500, E::InternalServerError),
            (502, E::RemoteServerNotFound),
            (504, E::RemoteServerTimeout),
            (600, E::RecipientUnavailable),
            (100, E::UndefinedCondition),
        ];
        for (status, cond) in table {
            assert_eq!(error_for_sip_status(status), cond, "status {status}");
        }
    }

    #[test]
    fn rfc6120_default_types() {
        use ErrorCondition as E;
        assert_eq!(E::BadRequest.default_type(), ErrorType::Modify);
        assert_eq!(E::ItemNotFound.default_type(), ErrorType::Cancel);
        assert_eq!(E::NotAuthorized.default_type(), ErrorType::Auth);
        assert_eq!(E::RecipientUnavailable.default_type(), ErrorType::Wait);
        assert_eq!(E::ServiceUnavailable.default_type(), ErrorType::Cancel);
        assert_eq!(E::ServiceUnavailable.default_type().as_str(), "cancel");
    }
}
