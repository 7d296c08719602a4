-- No statement looks up inbound messages by state alone; the index only misled the
-- compare-and-set update by (tenant, message_id) (see 202611302300_avsender_unsent_index).
DROP INDEX postkasse_inbound_state;
