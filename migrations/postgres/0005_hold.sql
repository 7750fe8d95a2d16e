-- PostgreSQL twin of migrations/0005_hold.sql: the same statements (docs/decisions/0010-scale-out.md).
-- Mid-call changes (hold and resume): the SIP peer's last SDP is kept whole
-- (a new offer is compared with it: a refresh, a hold or resume, or a change
-- not supported yet) instead of the digest of 0004, and who holds the call.
-- remote_sdp: the SDP the SIP peer last sent (offer or answer), NULL until
-- it sent one. hold: NULL (nobody), 'xmpp', 'sip' or 'both'.
ALTER TABLE sessions ADD COLUMN remote_sdp TEXT;
ALTER TABLE sessions ADD COLUMN hold TEXT CHECK (hold IN ('xmpp', 'sip', 'both'));
ALTER TABLE sessions DROP COLUMN remote_sdp_digest;
