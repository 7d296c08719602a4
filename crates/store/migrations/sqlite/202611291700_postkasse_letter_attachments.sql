-- A letter's attachment count is fixed when the letter is stored, and the inbox shows it on
-- every row: counting the documents of each listed letter cost one index probe per row.
ALTER TABLE postkasse_letters ADD COLUMN attachments BIGINT NOT NULL DEFAULT 0;
UPDATE postkasse_letters SET attachments = (
    SELECT COUNT(*) FROM postkasse_documents d
    WHERE d.letter_id = postkasse_letters.id AND d.role = 'vedlegg'
);
