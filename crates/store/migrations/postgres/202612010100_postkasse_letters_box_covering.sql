-- The inbox page's rows come from the index alone where the visibility map allows: every
-- column the list shows is included, so a page of 20 letters skips the heap on pages
-- autovacuum has marked all-visible (see the SQLite twin of this migration).
DROP INDEX postkasse_letters_box;
CREATE INDEX postkasse_letters_box ON postkasse_letters (citizen_id, folder, visible_from, id)
    INCLUDE (sender_orgnr, sender_name, ikkesensitivtittel, tittel, sikkerhetsnivaa,
             aapningskvittering, opened_at, receipt_accepted_at, attachments);
