-- Only spooled letters are looked up by status (the daily batch, by due time), so only they
-- are indexed, in the batch's order; see 202611302300_avsender_unsent_index for why a full
-- status index hurt the compare-and-set updates by message id.
DROP INDEX utskrift_letters_status;
CREATE INDEX utskrift_letters_spooled ON utskrift_letters (batch_due_at, message_id)
    WHERE status = 'spooled';
