-- Login sessions of the relying parties (the mailbox app), so that a restart or a second
-- instance does not log citizens out. `id` is the SHA-256 of the cookie secret, never the
-- cookie itself; `data` is the session as JSON; `expires_at` is in Unix seconds.
CREATE TABLE rp_sessions (
    client_id  TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    sid        TEXT,
    expires_at BIGINT NOT NULL,
    data       TEXT   NOT NULL,
    PRIMARY KEY (client_id, id)
);
-- Front-channel logout ends every session of an ID-porten session id.
CREATE INDEX rp_sessions_sid ON rp_sessions (client_id, sid);
CREATE INDEX rp_sessions_expires ON rp_sessions (expires_at);
-- Logins on their way through ID-porten (nonce, PKCE verifier, where to return), under the
-- SHA-256 of their `state`: the callback may reach another instance than the one that sent
-- the browser off. Taken once; expired ones go with the next login.
CREATE TABLE rp_pending (
    client_id  TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    data       TEXT   NOT NULL,
    PRIMARY KEY (client_id, id)
);
CREATE INDEX rp_pending_expires ON rp_pending (expires_at);
