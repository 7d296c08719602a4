-- Business messages (SBD JSON with an embedded token) and receipt JWSs are 3.5-5 KB. Over
-- PostgreSQL's 2 KB row threshold, it tried pglz on each of them on every insert and on every
-- update that rewrote the row, and every try failed (base64 saves less than the 25% pglz asks
-- for: no stored value was compressed), so each was then moved out of line uncompressed
-- anyway. The attempts were 2.7% of the server's CPU in bench-chain (perf). EXTERNAL moves them
-- out of line the same way without trying.
ALTER TABLE avsender_letters ALTER COLUMN forretningsmelding SET STORAGE EXTERNAL;
ALTER TABLE avsender_receipts ALTER COLUMN forretningsmelding SET STORAGE EXTERNAL;
ALTER TABLE formidler_messages ALTER COLUMN forretningsmelding SET STORAGE EXTERNAL;
ALTER TABLE formidler_incoming ALTER COLUMN forretningsmelding SET STORAGE EXTERNAL;
ALTER TABLE postkasse_letters ALTER COLUMN forretningsmelding SET STORAGE EXTERNAL;
ALTER TABLE postkasse_receipts ALTER COLUMN jws SET STORAGE EXTERNAL;
