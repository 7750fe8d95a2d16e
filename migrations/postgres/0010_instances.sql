-- PostgreSQL twin of migrations/0010_instances.sql (same version, same tables and
-- columns; docs/decisions/0010-scale-out.md). What differs from the SQLite
-- file is said where it does.
-- Several gateways on one store (docs/decisions/0010-scale-out.md). A
-- call's id is `instance << 40 | n`: each gateway numbers the calls of its
-- own instance number and restores only those after a restart.
-- store_instances: one row per instance number.
--   owner:   the gateway holding the number (its XMPP component), '' when
--            none; a gateway refuses to start on a number another owner
--            holds and refreshed within 30 s (seen_at).
--   last_id: the largest id of the instance whose row was deleted (by
--            retention or by hand: the trigger below), so that ids are
--            never handed out again once their rows are gone.
--   seen_at: when the owner last refreshed its claim (ISO-8601 UTC text),
--            '' after a clean stop.
CREATE TABLE store_instances (
    instance BIGINT PRIMARY KEY,
    owner    TEXT NOT NULL DEFAULT '',
    last_id  BIGINT NOT NULL DEFAULT 0,
    seen_at  TEXT NOT NULL DEFAULT ''
);
-- Whatever deletes a row (retention, an operator), its id is remembered
-- (SQLite's file does it with a trigger body; here a function).
CREATE FUNCTION sessions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO store_instances (instance, last_id) VALUES (OLD.id >> 40, OLD.id)
    ON CONFLICT (instance) DO UPDATE
        SET last_id = GREATEST(store_instances.last_id, excluded.last_id);
    RETURN OLD;
END
$$;
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_deleted();
