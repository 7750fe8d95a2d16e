-- PostgreSQL twin of migrations/0003_end_detail_and_pending.sql: the same statements (docs/decisions/0010-scale-out.md).
-- What ended the call, in the gateway's words, when the reason name alone
-- does not say it: why a SIP command failed, what a restart told each side.
ALTER TABLE sessions ADD COLUMN end_detail TEXT;
-- The unanswered INVITE of a call being set up (the SIP adapter's own text
-- form: who sent it, over which transport, its header lines), so that a
-- gateway restarted before the answer can still end it on the wire: CANCEL
-- for ours, a final response for theirs. NULL when there is none; kept after
-- the call ends for forensics.
ALTER TABLE sessions ADD COLUMN sip_pending TEXT;
