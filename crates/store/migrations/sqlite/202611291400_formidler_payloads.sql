-- The access point keeps a message's dokumentpakke only until the provider has it. In the
-- database, not as a file: it commits with the message row (one write for a 201) and goes in
-- the same transaction that ends the delivery. Files created and deleted hundreds of times a
-- second kept ext4's inode allocator busy (up to 15% of the chain's CPU in perf, bench-chain).
-- Messages accepted before this table keep their payload in the blob store until delivered.
CREATE TABLE formidler_payloads (
    message_id TEXT PRIMARY KEY REFERENCES formidler_messages (message_id),
    data       BLOB NOT NULL
);
