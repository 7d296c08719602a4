-- Access point (formidler): a receipt is addressed back to its letter's SBD sender (the
-- databehandler, or the avsender sending itself), so that sender is kept with the letter to
-- tell which of several letters sharing a conversation id a receipt answers. Conversation ids
-- are chosen by senders and need not be unique. NULL for letters accepted before this column
-- (their receipts are matched without it).
ALTER TABLE formidler_messages ADD COLUMN sbd_sender_orgnr TEXT;
