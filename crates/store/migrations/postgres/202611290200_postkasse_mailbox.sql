-- Mailbox provider (postkasse, corner 4): raw inbound letters until processed, citizens per
-- tenant (provider), stored letters and their documents, and signed receipts waiting to be
-- sent. Tenants are identified by their organization number. Times are epoch milliseconds.
CREATE TABLE postkasse_inbound (
    tenant               TEXT    NOT NULL,
    message_id           TEXT    NOT NULL,
    forretningsmelding   TEXT    NOT NULL,
    dokumentpakke_sha256 TEXT    NOT NULL,
    dokumentpakke_size   BIGINT  NOT NULL,
    state                TEXT    NOT NULL,
    reason               TEXT,
    received_at          BIGINT  NOT NULL,
    processed_at         BIGINT,
    PRIMARY KEY (tenant, message_id)
);
CREATE INDEX postkasse_inbound_state ON postkasse_inbound (state);

CREATE TABLE postkasse_citizens (
    id               TEXT    PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    postkasseadresse TEXT    NOT NULL,
    fnr              TEXT    NOT NULL,
    name             TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    UNIQUE (tenant, postkasseadresse),
    UNIQUE (tenant, fnr)
);

CREATE TABLE postkasse_letters (
    id                    TEXT    PRIMARY KEY,
    tenant                TEXT    NOT NULL,
    citizen_id            TEXT    NOT NULL REFERENCES postkasse_citizens (id),
    message_id            TEXT    NOT NULL,
    conversation_id       TEXT    NOT NULL,
    sender_orgnr          TEXT    NOT NULL,
    sender_name           TEXT,
    avsenderidentifikator TEXT,
    ikkesensitivtittel    TEXT    NOT NULL,
    tittel                TEXT,
    sikkerhetsnivaa       BIGINT  NOT NULL,
    spraak                TEXT    NOT NULL,
    aapningskvittering    BIGINT  NOT NULL,
    lenke                 TEXT,
    forretningsmelding    TEXT    NOT NULL,
    folder                TEXT    NOT NULL,
    visible_from          BIGINT  NOT NULL,
    received_at           BIGINT  NOT NULL,
    opened_at             BIGINT,
    receipt_accepted_at   BIGINT,
    UNIQUE (tenant, message_id)
);
CREATE INDEX postkasse_letters_box ON postkasse_letters (citizen_id, folder, visible_from, id);

CREATE TABLE postkasse_documents (
    letter_id  TEXT    NOT NULL REFERENCES postkasse_letters (id),
    n          BIGINT  NOT NULL,
    href       TEXT    NOT NULL,
    mime       TEXT    NOT NULL,
    title      TEXT,
    lang       TEXT,
    role       TEXT    NOT NULL,
    sha256     TEXT    NOT NULL,
    size       BIGINT  NOT NULL,
    extension  TEXT,
    PRIMARY KEY (letter_id, n)
);

CREATE TABLE postkasse_receipts (
    id          TEXT    PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    jws         TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    sent_at     BIGINT,
    last_error  TEXT,
    UNIQUE (tenant, message_id, kind)
);
