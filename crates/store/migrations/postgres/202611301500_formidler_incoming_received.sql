-- The access point deletes receipts once past keeping (read ones after
-- [formidler] keep_read_receipts_days, unread ones after keep_unread_receipts_days), walking
-- them by arrival.
CREATE INDEX formidler_incoming_received ON formidler_incoming (received_at);
