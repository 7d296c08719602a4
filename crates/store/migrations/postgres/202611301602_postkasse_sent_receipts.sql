-- A receipt the access point has taken is not sent again: the mailbox keeps its row (one
-- receipt of each kind per letter) but not its signed message. Receipts given up on keep it.
UPDATE postkasse_receipts SET jws = '' WHERE sent_at IS NOT NULL AND last_error IS NULL;
