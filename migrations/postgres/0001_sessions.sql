-- PostgreSQL twin of migrations/0001_sessions.sql (same version, same tables and
-- columns; docs/decisions/0010-scale-out.md). What differs from the SQLite
-- file is said where it does.
-- One row per call through the gateway. Every state change is written when it
-- happens, so this table is both the operators' call log and what the gateway
-- reloads after a restart. Times are ISO-8601 UTC text (YYYY-MM-DDTHH:MM:SS.sssZ).
CREATE TABLE sessions (
    -- Given by the gateway (instance << 40 | n), never by the database.
    id           BIGINT PRIMARY KEY,
    jingle_sid   TEXT NOT NULL,
    sip_call_id  TEXT NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('xmpp-to-sip', 'sip-to-xmpp')),
    -- The XMPP user's JID (full JID when known).
    xmpp_jid     TEXT NOT NULL,
    -- The SIP user's URI.
    sip_uri      TEXT NOT NULL,
    -- The JID that stands for the SIP user on the gateway's component domain.
    gateway_jid  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'ringing', 'active', 'ended')),
    created_at   TEXT NOT NULL,
    answered_at  TEXT,
    ended_at     TEXT,
    -- Jingle reason name: success, busy, decline, cancel, timeout, gone, ...
    end_reason   TEXT,
    -- Final status of the INVITE (200 for answered calls).
    sip_status   INTEGER,
    -- Who ended the call: 'xmpp', 'sip' or 'gateway'.
    ended_by     TEXT CHECK (ended_by IN ('xmpp', 'sip', 'gateway')),
    updated_at   TEXT NOT NULL
);

CREATE INDEX sessions_by_sid ON sessions (jingle_sid);
CREATE INDEX sessions_by_call_id ON sessions (sip_call_id);
CREATE INDEX sessions_live ON sessions (state) WHERE state <> 'ended';
CREATE INDEX sessions_by_created ON sessions (created_at);
