-- The sender keeps a submitted letter's documents in the blob store only while an unsent
-- letter needs them. Content is shared between letters (a mass mailing's one attachment is
-- one blob), so a blob goes with the last unsent letter that refers to it:
-- * avsender_letter_blobs: the blobs of each letter still 'created';
-- * avsender_blob_release: blobs whose letter left 'created' (sent, or failed before
--   sending); the sender's collector deletes such a blob unless a letter still refers to it.
-- Documents submitted before this migration are not collected.
CREATE TABLE avsender_letter_blobs (
    sha256    TEXT   NOT NULL,
    letter_id TEXT   NOT NULL REFERENCES avsender_letters (letter_id),
    size      BIGINT NOT NULL,
    PRIMARY KEY (sha256, letter_id)
);
CREATE INDEX avsender_letter_blobs_letter ON avsender_letter_blobs (letter_id);
CREATE TABLE avsender_blob_release (
    sha256      TEXT   PRIMARY KEY,
    size        BIGINT NOT NULL,
    released_at BIGINT NOT NULL
);
