-- A citizen may delete a letter in the bin for good. Its documents' blobs are shared by
-- content with other letters at the provider, so the deletion releases them here and a
-- collector deletes a blob once no letter refers to it (the protocol of store::blob_release).
CREATE TABLE postkasse_blob_release (
    sha256      TEXT   PRIMARY KEY,
    size        BIGINT NOT NULL,
    released_at BIGINT NOT NULL
);
CREATE INDEX postkasse_documents_sha256 ON postkasse_documents (sha256);
