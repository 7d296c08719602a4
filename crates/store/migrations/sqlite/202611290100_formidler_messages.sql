-- Access point (formidler, corners 2/3): outgoing letters until delivered, their statuses, and
-- incoming receipts waiting for their sender. Times are epoch milliseconds.
CREATE TABLE formidler_messages (
    message_id            TEXT    PRIMARY KEY,
    conversation_id       TEXT    NOT NULL,
    message_type          TEXT    NOT NULL,
    sender_orgnr          TEXT    NOT NULL,
    supplier_orgnr        TEXT,
    avsenderidentifikator TEXT,
    receiver_orgnr        TEXT    NOT NULL,
    kanal                 TEXT,
    forretningsmelding    TEXT    NOT NULL,
    dokumentpakke_sha256  TEXT,
    dokumentpakke_size    BIGINT,
    status                TEXT    NOT NULL,
    deliver_by            BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);
CREATE INDEX formidler_messages_conversation ON formidler_messages (conversation_id);
CREATE INDEX formidler_messages_status ON formidler_messages (status);

CREATE TABLE formidler_statuses (
    message_id  TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    status      TEXT    NOT NULL,
    beskrivelse TEXT,
    at          BIGINT  NOT NULL,
    PRIMARY KEY (message_id, seq)
);

CREATE TABLE formidler_incoming (
    id                    TEXT    PRIMARY KEY,
    conversation_id       TEXT    NOT NULL,
    message_type          TEXT    NOT NULL,
    recipient_orgnr       TEXT    NOT NULL,
    avsenderidentifikator TEXT,
    kanal                 TEXT,
    forretningsmelding    TEXT    NOT NULL,
    received_at           BIGINT  NOT NULL,
    read_at               BIGINT
);
CREATE INDEX formidler_incoming_unread ON formidler_incoming (recipient_orgnr, read_at, received_at);
