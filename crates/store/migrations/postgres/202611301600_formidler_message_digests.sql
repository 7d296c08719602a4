-- The access point keeps a business message (the signed SBD: the citizen's national identity
-- number, the addresses for notifications, the title, a Maskinporten token) only until it has
-- delivered the letter or given up on it; after that only its SHA-256 stays, which tells an
-- identical retry from another letter under a used id.
ALTER TABLE formidler_messages ADD COLUMN forretningsmelding_sha256 TEXT;
-- Messages from before this migration have no digest; a task at start digests them (and
-- empties the finished ones). This index holds only those.
CREATE INDEX formidler_messages_undigested ON formidler_messages (message_id)
    WHERE forretningsmelding_sha256 IS NULL;
