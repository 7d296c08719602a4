-- A dokumentpakke is encrypted (CMS) and does not compress, but PostgreSQL tried: pglz went
-- through every 100 KB payload and threw the result away, 6% of all CPU in bench-chain on
-- PostgreSQL (perf). EXTERNAL keeps large values out of line without compressing them.
ALTER TABLE formidler_payloads ALTER COLUMN data SET STORAGE EXTERNAL;
