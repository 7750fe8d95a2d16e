-- PostgreSQL twin of migrations/0004_media_session.sql: the same statements (docs/decisions/0010-scale-out.md).
-- The media session of an answered call, so that a call resumed after a
-- restart still answers a session refresh (RFC 4028; a re-INVITE or UPDATE
-- that changes nothing) with the SDP it sent, unchanged (RFC 3264 §8: same
-- o= version). local_sdp: the SDP the gateway last sent to the SIP side
-- (offer or answer). remote_sdp_digest: FNV-1a (hex) of the SDP the SIP peer
-- last sent, its o= line left out — a refresh's SDP is compared with it.
-- NULL until the call has exchanged SDP; kept after the call ends.
ALTER TABLE sessions ADD COLUMN local_sdp TEXT;
ALTER TABLE sessions ADD COLUMN remote_sdp_digest TEXT;
