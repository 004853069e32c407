-- Accounts, sessions and per-user preferences. Timestamps are Unix milliseconds (BIGINT) on
-- both dialects so one query text and one decoder serve SQLite and Postgres.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    login_id TEXT NOT NULL UNIQUE,            -- stored lower-cased: unique ignoring case
    display_name TEXT NOT NULL,
    display_name_key TEXT NOT NULL UNIQUE,    -- lower-cased display name: unique ignoring case
    password_hash TEXT NOT NULL,              -- Argon2id PHC string
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE,          -- SHA-256 of the cookie token; the token is never stored
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,               -- absolute lifetime
    revoked_at BIGINT,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE user_prefs (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    pref_key TEXT NOT NULL,
    pref_value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, pref_key)
);
