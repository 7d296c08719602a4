-- Logins in progress now travel sealed in the browser's state cookie (oidc-rp): a login
-- start stores nothing, so a flood of login starts cannot fill this table and crowd out the
-- citizens' own logins. Rows left here belong to logins at most ten minutes old; those
-- citizens start their login again.
DROP TABLE rp_pending;
