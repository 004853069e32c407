-- Addresses each account logged in from successfully, with the last time. A correct password
-- from an address the account used recently is not held back by the per-account login limit,
-- so someone guessing a public login id cannot lock its owner out.
CREATE TABLE login_addresses (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip TEXT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, ip)
);
