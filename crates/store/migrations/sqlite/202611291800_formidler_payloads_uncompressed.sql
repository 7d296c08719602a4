-- PostgreSQL only (stop compressing encrypted payloads); SQLite never compresses values.
-- The migration exists here too so both dialects keep the same list of versions.
SELECT 1;
