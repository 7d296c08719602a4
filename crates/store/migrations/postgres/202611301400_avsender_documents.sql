-- The documents of a letter the sender has not sent yet, kept with the letter instead of in
-- the blob store, and deleted in the transaction that moves the letter out of 'created'
-- (sent, or failed before sending): the case system keeps the record, so the sender holds a
-- citizen's documents only as long as it needs them to seal the letter. Before, every
-- submitted document stayed in the blob store for good. Letters submitted before this
-- migration keep their documents in the blob store, by hash.
CREATE TABLE avsender_documents (
    letter_id TEXT   NOT NULL REFERENCES avsender_letters (letter_id),
    n         BIGINT NOT NULL,
    data      BYTEA  NOT NULL,
    PRIMARY KEY (letter_id, n)
);
-- PDFs and images are compressed already; see formidler_payloads_uncompressed.
ALTER TABLE avsender_documents ALTER COLUMN data SET STORAGE EXTERNAL;
