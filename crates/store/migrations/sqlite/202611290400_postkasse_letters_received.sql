-- The notification scanner of the citizen web app reads letters in the order they were stored
-- (keyset on received_at, id) every few seconds; without this index each scan reads the whole
-- table.
CREATE INDEX postkasse_letters_received ON postkasse_letters (received_at, id);
