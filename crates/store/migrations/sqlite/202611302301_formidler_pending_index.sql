-- Only messages waiting for delivery are looked up by status (the start-up sweep), so only
-- they are indexed; see 202611302300_avsender_unsent_index for why a full status index
-- hurt the compare-and-set updates by message id.
DROP INDEX formidler_messages_status;
CREATE INDEX formidler_messages_pending ON formidler_messages (message_id)
    WHERE status = 'OPPRETTET';
