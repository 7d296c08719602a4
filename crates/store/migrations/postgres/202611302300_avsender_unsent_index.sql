-- Only unsent letters are looked up by status (the start-up sweeps), so only they are
-- indexed. A full index on status also matched the compare-and-set updates
-- (`WHERE letter_id = $1 AND status = $n`), and PostgreSQL's generic plan for those, made
-- while the table was empty, walked every letter of that status instead of the primary key.
DROP INDEX avsender_letters_status;
CREATE INDEX avsender_letters_unsent ON avsender_letters (letter_id) WHERE status = 'created';
