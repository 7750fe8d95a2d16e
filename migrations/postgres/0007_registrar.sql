-- PostgreSQL twin of migrations/0007_registrar.sql: the same statements (docs/decisions/0010-scale-out.md).
-- The registrar (docs/security.md): its users and their bindings.
-- sip_users: one row per SIP user `user@domain` of a registrar domain, with
-- the digest HA1 of `user:domain:password` per algorithm (never the
-- password). Managed with `stox-gateway user add|list|remove`.
CREATE TABLE sip_users (
    aor        TEXT PRIMARY KEY,
    ha1_md5    TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- sip_bindings: where a registered user is reached (RFC 3261 §10), until
-- expires_at (ISO-8601 UTC). binding_key is `+sip.instance;reg-id=N` for an
-- RFC 5626 flow, else the contact URI. transport and source: how the
-- REGISTER came (a WebSocket binding cannot be reached after a restart
-- until the client registers again).
CREATE TABLE sip_bindings (
    aor         TEXT NOT NULL,
    binding_key TEXT NOT NULL,
    contact     TEXT NOT NULL,
    transport   TEXT NOT NULL,
    source      TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (aor, binding_key)
);
