-- Chat rooms: at most 3 open per study; messages numbered per room (seq 1, 2, 3 … with no
-- gaps), committed before anyone sees them; reactions; per-member read markers.
CREATE TABLE chat_rooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,                   -- general | qna | resources | off_topic
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    closed_at BIGINT,
    closed_by BIGINT REFERENCES users (id)
);
CREATE INDEX chat_rooms_study ON chat_rooms (study_id);

CREATE TABLE chat_messages (
    room_id BIGINT NOT NULL REFERENCES chat_rooms (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    client_id TEXT NOT NULL,                  -- the sender's id for the message: resends are deduplicated
    author_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    mentions TEXT NOT NULL,                   -- JSON array of user ids
    created_at BIGINT NOT NULL,
    edited_at BIGINT,
    deleted_at BIGINT,
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, author_id, client_id)
);

CREATE TABLE chat_reactions (
    room_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji TEXT NOT NULL,
    PRIMARY KEY (room_id, seq, user_id, emoji),
    FOREIGN KEY (room_id, seq) REFERENCES chat_messages (room_id, seq) ON DELETE CASCADE
);

CREATE TABLE chat_read_markers (
    room_id BIGINT NOT NULL REFERENCES chat_rooms (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_seq BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
