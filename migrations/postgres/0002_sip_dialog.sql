-- PostgreSQL twin of migrations/0002_sip_dialog.sql: the same statements (docs/decisions/0010-scale-out.md).
-- The confirmed SIP dialog of an answered call (the SIP adapter's own text
-- form: Call-ID, tags, CSeqs, remote target, route set), so that a restarted
-- gateway can still end the call with BYE and recognise the peer's BYE.
-- NULL until the dialog is confirmed; kept after the call ends for forensics.
ALTER TABLE sessions ADD COLUMN sip_dialog TEXT;
