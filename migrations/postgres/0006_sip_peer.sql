-- PostgreSQL twin of migrations/0006_sip_peer.sql: the same statements (docs/decisions/0010-scale-out.md).
-- The configured SIP peer (`[[sip.peers]]` name) an XMPP -> SIP call was
-- routed to; NULL for a call through the outbound proxy or from SIP. Lets
-- operators count and bill calls per trunk with plain SQL.
ALTER TABLE sessions ADD COLUMN sip_peer TEXT;
