-- The unread-receipts index covers only unread rows, in the order the sender's listing
-- reads them. As a full index on (recipient_orgnr, read_at, received_at) it also matched the
-- lookups of one receipt by id and recipient, and PostgreSQL's generic plan for those, made
-- while the table was empty, walked it instead of the primary key: every mark-read read all
-- of the sender's receipts, for as long as the connection lived.
DROP INDEX formidler_incoming_unread;
CREATE INDEX formidler_incoming_unread ON formidler_incoming (recipient_orgnr, received_at, id)
    WHERE read_at IS NULL;
