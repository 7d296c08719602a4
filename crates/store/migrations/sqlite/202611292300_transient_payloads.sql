-- Encrypted dokumentpakker that live only minutes, kept in the database like the access
-- point's (formidler_payloads) instead of as one blob file each, and deleted in the
-- transaction that ends their use:
-- * the mailbox's raw inbound letter, until it is processed (the documents it holds are
--   stored as blobs of their own; the ciphertext was never deleted before, one 100 KB file
--   per letter kept for good);
-- * the sender's sealed letter, kept so that a retry posts the very same bytes, until the
--   letter leaves 'created'.
-- Rows written before this migration keep their payload in the blob store, by hash.
CREATE TABLE postkasse_payloads (
    tenant     TEXT  NOT NULL,
    message_id TEXT  NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (tenant, message_id),
    FOREIGN KEY (tenant, message_id) REFERENCES postkasse_inbound (tenant, message_id)
);
CREATE TABLE avsender_payloads (
    letter_id TEXT  PRIMARY KEY REFERENCES avsender_letters (letter_id),
    data      BLOB NOT NULL
);
