-- Whether a payload blob is still referenced is asked after every delivery; without these
-- indexes each question scanned the whole table, so delivery slowed as letters piled up.
CREATE INDEX formidler_messages_dokumentpakke ON formidler_messages (dokumentpakke_sha256);
CREATE INDEX utskrift_letters_dokumentpakke ON utskrift_letters (dokumentpakke_sha256);
