-- PostgreSQL only (stop trying to compress business messages and receipts); SQLite never
-- compresses values. The migration exists here too so both dialects keep the same list of
-- versions.
SELECT 1;
