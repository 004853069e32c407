-- Direct messages between two users. A conversation is the ordered pair (user_a < user_b);
-- its messages are numbered seq 1, 2, 3 … with no gaps, like chat rooms.
CREATE TABLE direct_messages (
    user_a BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_b BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    client_id TEXT NOT NULL,
    sender_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_a, user_b, seq),
    UNIQUE (user_a, user_b, sender_id, client_id)
);
CREATE INDEX direct_messages_b ON direct_messages (user_b, user_a);

CREATE TABLE direct_read_markers (
    user_a BIGINT NOT NULL,
    user_b BIGINT NOT NULL,
    reader_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_seq BIGINT NOT NULL,
    PRIMARY KEY (user_a, user_b, reader_id)
);
