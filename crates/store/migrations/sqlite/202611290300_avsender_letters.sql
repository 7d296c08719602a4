-- Sender service (avsender, corner 1): letters submitted by case systems, their state machine
-- history, and the receipts that moved them. Times are epoch milliseconds.
CREATE TABLE avsender_letters (
    letter_id             TEXT    PRIMARY KEY,
    request_sha256        TEXT    NOT NULL,
    request_json          TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    error_code            TEXT,
    error_detail          TEXT,
    channel               TEXT,
    provider_orgnr        TEXT,
    message_id            TEXT    NOT NULL UNIQUE,
    conversation_id       TEXT    NOT NULL UNIQUE,
    forretningsmelding    TEXT,
    dokumentpakke_sha256  TEXT,
    dokumentpakke_size    BIGINT,
    token_expires_at      BIGINT,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);
CREATE INDEX avsender_letters_status ON avsender_letters (status);

CREATE TABLE avsender_history (
    letter_id   TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    detail      TEXT,
    receipt_id  TEXT,
    at          BIGINT  NOT NULL,
    PRIMARY KEY (letter_id, seq)
);

CREATE TABLE avsender_receipts (
    receipt_id         TEXT    PRIMARY KEY,
    letter_id          TEXT,
    message_type       TEXT,
    issuer_orgnr       TEXT,
    tidspunkt          TEXT,
    outcome            TEXT    NOT NULL,
    reason             TEXT,
    forretningsmelding TEXT    NOT NULL,
    received_at        BIGINT  NOT NULL
);
CREATE INDEX avsender_receipts_letter ON avsender_receipts (letter_id, received_at);
