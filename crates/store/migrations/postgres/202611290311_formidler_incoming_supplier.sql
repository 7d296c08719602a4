-- Access point (formidler): receipts are routed to the party that sent the letter — the avsender
-- (token consumer) and, when a databehandler sent it on the avsender's behalf, that databehandler
-- (token supplier). NULL: the avsender sent it itself (and for receipts stored before this column).
ALTER TABLE formidler_incoming ADD COLUMN supplier_orgnr TEXT;
