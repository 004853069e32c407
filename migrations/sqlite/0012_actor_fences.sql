-- Fencing tokens: the highest lease token seen per actor key (cluster issue). A keyed actor
-- raises its key's fence when it starts, and its single-owner writes (chat and DM sequence
-- numbers) check it in the same transaction, so an old owner that was paused past its lease
-- cannot write over the new owner's log.
CREATE TABLE actor_fences (
    actor_key TEXT PRIMARY KEY,
    token BIGINT NOT NULL
);
