-- PostgreSQL twin of migrations/0009_reporting.sql (same version, same tables and
-- columns; docs/decisions/0010-scale-out.md). What differs from the SQLite
-- file is said where it does.
-- Reporting (docs/sql.md): two views operators query with plain SQL, the
-- same ones `stox-gateway sessions` prints, and the index retention needs.
-- Here the stored text `YYYY-MM-DDTHH:MM:SS.sssZ` is read as timestamptz
-- (where SQLite's file uses julianday()); the columns have the same names,
-- types and values: whole seconds truncated (age_s, talk_s) and seconds
-- rounded to the millisecond as double precision (setup_s, duration_s).

-- Ended rows by when they ended: retention (Store::prune_ended) deletes the
-- oldest first, and "calls that ended in …" reports read a range of it.
-- Live rows have no ended_at and stay out of it. (The live rows and
-- created_at have their indexes since 0001: sessions_live, sessions_by_created.)
CREATE INDEX sessions_by_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;

-- Calls not ended, with their age. `state <> 'ended'` (not an IN list)
-- so that the database reads them from the partial index sessions_live.
-- age_s: whole seconds since the call was created; talk_s: since it was
-- answered (NULL while it rings).
CREATE VIEW active_sessions AS
SELECT
    id,
    direction,
    xmpp_jid,
    sip_uri,
    state,
    created_at,
    answered_at,
    TRUNC(EXTRACT(EPOCH FROM (now() - created_at::timestamptz)))::bigint AS age_s,
    TRUNC(EXTRACT(EPOCH FROM (now() - answered_at::timestamptz)))::bigint AS talk_s,
    hold,
    sip_peer,
    media_relay,
    jingle_sid,
    sip_call_id
FROM sessions
WHERE state <> 'ended';

-- One row per call attempt (every row of sessions, ended or not).
-- caller / callee: the XMPP user's JID and the SIP URI, by direction.
-- setup_s: created → answered; duration_s: answered → ended (NULL when the
-- call was never answered or is not over).
-- outcome, first rule that matches (docs/sql.md explains each):
--   in-progress  not ended yet
--   answered     answered (however it ended afterwards)
--   cancelled    the caller gave up before the answer: its side ended the
--                call, or the Jingle reason is cancel
--   busy         busy, alternative-session; 486, 600
--   rejected     the callee or a policy refused: decline, security-error;
--                401, 403, 407, 603
--   no-answer    nobody answered in time: timeout, expired; 408
--   unavailable  the callee cannot be reached: gone; 404, 410, 480, 484, 604
--   failed       anything else: the gateway, the network or a server failed
--                (connectivity-error, general-error, incompatible-parameters,
--                5xx, 488, refusals by the gateway with 400 or 503 …)
CREATE VIEW call_records AS
SELECT
    id,
    direction,
    CASE direction WHEN 'xmpp-to-sip' THEN xmpp_jid ELSE sip_uri END AS caller,
    CASE direction WHEN 'xmpp-to-sip' THEN sip_uri ELSE xmpp_jid END AS callee,
    created_at AS started_at,
    answered_at,
    ended_at,
    ROUND(EXTRACT(EPOCH FROM (answered_at::timestamptz - created_at::timestamptz)), 3)::double precision AS setup_s,
    ROUND(EXTRACT(EPOCH FROM (ended_at::timestamptz - answered_at::timestamptz)), 3)::double precision AS duration_s,
    CASE
        WHEN state <> 'ended' THEN 'in-progress'
        WHEN answered_at IS NOT NULL THEN 'answered'
        WHEN end_reason = 'cancel'
            OR ended_by = CASE direction WHEN 'xmpp-to-sip' THEN 'xmpp' ELSE 'sip' END
            THEN 'cancelled'
        WHEN end_reason IN ('busy', 'alternative-session') OR sip_status IN (486, 600)
            THEN 'busy'
        WHEN end_reason IN ('decline', 'security-error') OR sip_status IN (401, 403, 407, 603)
            THEN 'rejected'
        WHEN end_reason IN ('timeout', 'expired') OR sip_status = 408
            THEN 'no-answer'
        WHEN end_reason = 'gone' OR sip_status IN (404, 410, 480, 484, 604)
            THEN 'unavailable'
        ELSE 'failed'
    END AS outcome,
    sip_status,
    end_reason,
    ended_by,
    end_detail,
    sip_peer,
    media_relay,
    media_packets_from_xmpp,
    media_packets_from_sip,
    media_errors,
    jingle_sid,
    sip_call_id
FROM sessions;
