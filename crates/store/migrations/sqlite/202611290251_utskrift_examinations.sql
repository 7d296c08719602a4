-- How often the print provider started examining a letter (decrypting it, parsing its PDFs).
-- A letter that keeps taking its worker down is refused instead of retried forever.
ALTER TABLE utskrift_letters ADD COLUMN examinations BIGINT NOT NULL DEFAULT 0;
