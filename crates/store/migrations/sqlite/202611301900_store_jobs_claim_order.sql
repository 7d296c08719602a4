-- A claim takes the queued job first in line by (run_at, created_at). With only run_at in the
-- index, PostgreSQL fetched and sorted every due job of the queue at each claim (415 rows and
-- 400 buffers per claim with a sender's backlog in the chain bench) and SQLite sorted them in
-- a temporary B-tree. With created_at in the index the walk stops at the first job.
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (queue, state, run_at, created_at);
