-- The mailbox keeps an inbound letter's business message (the signed SBD) only until it has
-- processed the letter (a stored letter has its own copy); after that only its SHA-256 stays,
-- which tells an identical retry from another letter under a used id.
ALTER TABLE postkasse_inbound ADD COLUMN forretningsmelding_sha256 TEXT;
-- Letters from before this migration have no digest; a task at start digests them (and
-- empties the processed ones). This index holds only those.
CREATE INDEX postkasse_inbound_undigested ON postkasse_inbound (tenant, message_id)
    WHERE forretningsmelding_sha256 IS NULL;
