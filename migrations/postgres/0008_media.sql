-- PostgreSQL twin of migrations/0008_media.sql (same version, same tables and
-- columns; docs/decisions/0010-scale-out.md). What differs from the SQLite
-- file is said where it does.
-- Media anchored by rtpengine (docs/media.md).
-- media_relay: the NG address of the rtpengine that anchors the call's
-- media (the first configured one that answered); NULL when the media
-- passes through. A restart finds it here to delete the session of a call
-- it cannot resume.
-- media_packets_from_xmpp / media_packets_from_sip: packets (RTP and RTCP)
-- rtpengine received from each side, and media_errors: packets it could
-- not relay (bad SRTP, unknown source), from the answer to the `delete`
-- that ended its session. NULL until then (and for calls not anchored).
ALTER TABLE sessions ADD COLUMN media_relay TEXT;
ALTER TABLE sessions ADD COLUMN media_packets_from_xmpp BIGINT;
ALTER TABLE sessions ADD COLUMN media_packets_from_sip BIGINT;
ALTER TABLE sessions ADD COLUMN media_errors BIGINT;
