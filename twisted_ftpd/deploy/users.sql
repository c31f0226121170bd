-- twisted-ftpd users in PostgreSQL (README.md, "Users in PostgreSQL").
--
-- One row per user, with exactly the fields of a users.db line
-- (name:hash:perms:home[:key=value...]); `options` holds the key=value fields as a
-- JSON object of strings ({"max_sessions": "2", "quota": "500M", "tls": "required"}).
-- The server reads the row at every login, so an INSERT, UPDATE or DELETE counts
-- from the next login on. `twisted-ftpd users --db postgresql://... import users.db`
-- runs this file itself; running it again changes nothing.

CREATE TABLE IF NOT EXISTS ftpd_users (
    name          text PRIMARY KEY CHECK (name <> ''),
    -- $scrypt$... as `twisted-ftpd users` writes it; empty only for `anonymous`
    password_hash text NOT NULL DEFAULT '',
    -- permission letters, elradfmwMT (read-only: elr)
    perms         text NOT NULL DEFAULT 'elr',
    -- the user's root: empty means --root, relative paths are below --root
    home          text NOT NULL DEFAULT '',
    options       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
