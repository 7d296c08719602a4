-- Print provider (utskrift, corner 4 print): letters from intake to print batch and return,
-- the receipts owed to their senders, and the batches run. Times are epoch milliseconds.
CREATE TABLE utskrift_letters (
    message_id            TEXT    PRIMARY KEY,
    conversation_id       TEXT,
    sender_orgnr          TEXT,
    forretningsmelding    TEXT    NOT NULL,
    dokumentpakke_sha256  TEXT,
    dokumentpakke_size    BIGINT,
    status                TEXT    NOT NULL,
    detail                TEXT,
    returposthaandtering  TEXT,
    spool_path            TEXT,
    pages                 BIGINT,
    batch_date            TEXT,
    batch_due_at          BIGINT,
    batch_id              TEXT,
    received_at           BIGINT  NOT NULL,
    spooled_at            BIGINT,
    printed_at            BIGINT,
    returned_at           BIGINT,
    updated_at            BIGINT  NOT NULL
);
CREATE INDEX utskrift_letters_status ON utskrift_letters (status, batch_due_at);

CREATE TABLE utskrift_receipts (
    id          TEXT    PRIMARY KEY,
    message_id  TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    detaljer    TEXT,
    tidspunkt   BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    last_error  TEXT,
    created_at  BIGINT  NOT NULL,
    sent_at     BIGINT,
    UNIQUE (message_id, kind)
);

CREATE TABLE utskrift_batches (
    batch_id    TEXT    PRIMARY KEY,
    started_at  BIGINT  NOT NULL,
    finished_at BIGINT,
    letters     BIGINT  NOT NULL
);
