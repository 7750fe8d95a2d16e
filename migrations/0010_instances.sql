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
    instance INTEGER PRIMARY KEY,
    owner    TEXT NOT NULL DEFAULT '',
    last_id  INTEGER NOT NULL DEFAULT 0,
    seen_at  TEXT NOT NULL DEFAULT ''
);
-- A file that was pruned before this migration: SQLite's own record of the
-- largest id (AUTOINCREMENT) carries over to instance 0.
INSERT INTO store_instances (instance, last_id)
SELECT 0, seq FROM sqlite_sequence WHERE name = 'sessions';
-- Whatever deletes a row (retention, an operator), its id is remembered.
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
BEGIN
    INSERT INTO store_instances (instance, last_id) VALUES (OLD.id >> 40, OLD.id)
    ON CONFLICT(instance) DO UPDATE SET last_id = MAX(last_id, excluded.last_id);
END;
