-- When a letter went to the bin (NULL outside it): the bin is emptied of letters that have
-- lain there longer than the provider's configured number of days. Letters already in the
-- bin count from this migration.
ALTER TABLE postkasse_letters ADD COLUMN binned_at BIGINT;
UPDATE postkasse_letters SET binned_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
    WHERE folder = 'bin';
CREATE INDEX postkasse_letters_binned ON postkasse_letters (binned_at)
    WHERE binned_at IS NOT NULL;
