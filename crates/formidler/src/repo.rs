//! Every SQL statement of the access point (portable: `$n` placeholders, epoch-ms times).

use store::{Db, Jobs, NewJob, StoreResult, sqlx, sqlx::Row};
use time::OffsetDateTime;

/// Message status at the access point (`GET /messages/out/{id}/statuses`).
pub const OPPRETTET: &str = "OPPRETTET";
pub const SENDT: &str = "SENDT";
pub const FEILET: &str = "FEILET";

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message_id: String,
    pub conversation_id: String,
    pub message_type: String,
    pub sender_orgnr: String,
    pub supplier_orgnr: Option<String>,
    pub avsenderidentifikator: Option<String>,
    pub receiver_orgnr: String,
    /// The letter's SBD sender (the databehandler, or the avsender itself): its receipts are
    /// addressed back to it.
    pub sbd_sender_orgnr: Option<String>,
    pub kanal: Option<String>,
    pub forretningsmelding: String,
    pub dokumentpakke_sha256: String,
    pub dokumentpakke_size: i64,
    /// The CMS bytes, kept in `formidler_payloads` until the message is finished.
    pub dokumentpakke: bytes::Bytes,
    pub deliver_by: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub message_id: String,
    pub sender_orgnr: String,
    /// Where the letter's receipts go besides the avsender (see [`Route`]).
    pub supplier_orgnr: Option<String>,
    pub avsenderidentifikator: Option<String>,
    pub kanal: Option<String>,
    pub receiver_orgnr: String,
    /// Empty once the message is finished (only its digest is kept then), except for a
    /// message accepted before digests were kept and not digested yet.
    pub forretningsmelding: String,
    pub forretningsmelding_sha256: Option<String>,
    pub dokumentpakke_sha256: Option<String>,
    pub dokumentpakke_size: Option<i64>,
    pub status: String,
    pub deliver_by: i64,
}

impl MessageRow {
    /// Whether `jws` is this message again, byte for byte (a retry).
    pub fn is_same_message(&self, jws: &str) -> bool {
        dpi::jws::is_same_message(
            &self.forretningsmelding,
            self.forretningsmelding_sha256.as_deref(),
            jws,
        )
    }

    /// The dokumentpakke's content address, while the message still has one (until finished).
    pub fn payload_ref(&self) -> Option<store::BlobRef> {
        Some(store::BlobRef::from_row(
            self.dokumentpakke_sha256.clone()?,
            self.dokumentpakke_size?,
        ))
    }
}

fn ms(t: OffsetDateTime) -> i64 {
    store::to_ms(t)
}

/// Inserts the message, its first status, its payload and its delivery `job` in one
/// transaction; `false` (and nothing written) when the id exists already.
pub async fn insert_message(
    db: &Db,
    jobs: &Jobs,
    m: &NewMessage,
    job: NewJob,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO formidler_messages (message_id, conversation_id, message_type, sender_orgnr, \
         supplier_orgnr, avsenderidentifikator, receiver_orgnr, kanal, forretningsmelding, \
         dokumentpakke_sha256, dokumentpakke_size, status, deliver_by, created_at, updated_at, \
         forretningsmelding_sha256, sbd_sender_orgnr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(&m.message_id)
    .bind(&m.conversation_id)
    .bind(&m.message_type)
    .bind(&m.sender_orgnr)
    .bind(m.supplier_orgnr.as_deref())
    .bind(m.avsenderidentifikator.as_deref())
    .bind(&m.receiver_orgnr)
    .bind(m.kanal.as_deref())
    .bind(&m.forretningsmelding)
    .bind(&m.dokumentpakke_sha256)
    .bind(m.dokumentpakke_size)
    .bind(OPPRETTET)
    .bind(ms(m.deliver_by))
    .bind(ms(now))
    .bind(dpi::jws::digest(&m.forretningsmelding))
    .bind(m.sbd_sender_orgnr.as_deref())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        sqlx::query(
            "INSERT INTO formidler_statuses (message_id, seq, status, beskrivelse, at) \
             VALUES ($1, 1, $2, NULL, $3)",
        )
        .bind(&m.message_id)
        .bind(OPPRETTET)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO formidler_payloads (message_id, data) VALUES ($1, $2)")
            .bind(&m.message_id)
            .bind(m.dokumentpakke.to_vec())
            .execute(&mut *tx)
            .await?;
        jobs.enqueue_in(&mut tx, job).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

const MESSAGE_COLUMNS: &str = "m.message_id, m.sender_orgnr, m.supplier_orgnr, \
    m.avsenderidentifikator, m.kanal, m.receiver_orgnr, \
    m.forretningsmelding, m.forretningsmelding_sha256, m.dokumentpakke_sha256, \
    m.dokumentpakke_size, m.status, m.deliver_by";

fn message_row(r: &sqlx::any::AnyRow) -> StoreResult<MessageRow> {
    Ok(MessageRow {
        message_id: r.try_get("message_id")?,
        sender_orgnr: r.try_get("sender_orgnr")?,
        supplier_orgnr: r.try_get("supplier_orgnr")?,
        avsenderidentifikator: r.try_get("avsenderidentifikator")?,
        kanal: r.try_get("kanal")?,
        receiver_orgnr: r.try_get("receiver_orgnr")?,
        forretningsmelding: r.try_get("forretningsmelding")?,
        forretningsmelding_sha256: r.try_get("forretningsmelding_sha256")?,
        dokumentpakke_sha256: r.try_get("dokumentpakke_sha256")?,
        dokumentpakke_size: r.try_get("dokumentpakke_size")?,
        status: r.try_get("status")?,
        deliver_by: r.try_get("deliver_by")?,
    })
}

pub async fn get_message(db: &Db, message_id: &str) -> StoreResult<Option<MessageRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM formidler_messages m WHERE m.message_id = $1"
    )))
    .bind(message_id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(message_row).transpose()
}

/// A message with its stored dokumentpakke, in one query for the delivery worker. The payload
/// is `None` once the message is finished, or for a message accepted before payloads moved
/// into the database (its payload is in the blob store).
pub async fn message_for_delivery(
    db: &Db,
    message_id: &str,
) -> StoreResult<Option<(MessageRow, Option<Vec<u8>>)>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS}, p.data FROM formidler_messages m \
         LEFT JOIN formidler_payloads p ON p.message_id = m.message_id WHERE m.message_id = $1"
    )))
    .bind(message_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((message_row(&r)?, r.try_get("data")?)))
        .transpose()
}

/// What [`finish_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The message left `OPPRETTET` now (not before).
    pub moved: bool,
    /// Its payload was not in `formidler_payloads`: a message accepted before payloads moved
    /// into the database, whose payload the caller forgets from the blob store.
    pub payload_in_blobs: bool,
}

/// Moves a message out of `OPPRETTET` to `status` (once; `moved` is `false` if it had moved
/// already) and forgets its payload, which the access point must not keep after delivery, and
/// its business message, of which the digest stays (a message without one keeps it until
/// [`digest_old_messages`] has made one).
pub async fn finish_message(
    db: &Db,
    message_id: &str,
    status: &str,
    beskrivelse: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<Finished> {
    finish(db, message_id, status, beskrivelse, None, now).await
}

/// [`finish_message`] to `FEILET`, leaving `feil` for the sender in the same transaction and
/// only if the message moved now: a letter delivered meanwhile (by a receipt or another worker)
/// gets no feil.
pub async fn fail_message(
    db: &Db,
    message_id: &str,
    reason: &str,
    feil: Option<&NewIncoming<'_>>,
    now: OffsetDateTime,
) -> StoreResult<Finished> {
    finish(db, message_id, FEILET, Some(reason), feil, now).await
}

async fn finish(
    db: &Db,
    message_id: &str,
    status: &str,
    beskrivelse: Option<&str>,
    feil: Option<&NewIncoming<'_>>,
    now: OffsetDateTime,
) -> StoreResult<Finished> {
    let mut tx = db.begin_write().await?;
    let moved = sqlx::query(
        "UPDATE formidler_messages SET status = $2, dokumentpakke_sha256 = NULL, updated_at = $3, \
         forretningsmelding = CASE WHEN forretningsmelding_sha256 IS NULL \
         THEN forretningsmelding ELSE '' END \
         WHERE message_id = $1 AND status = $4",
    )
    .bind(message_id)
    .bind(status)
    .bind(ms(now))
    .bind(OPPRETTET)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let mut payload_in_blobs = false;
    if moved {
        payload_in_blobs = sqlx::query("DELETE FROM formidler_payloads WHERE message_id = $1")
            .bind(message_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 0;
        sqlx::query(
            "INSERT INTO formidler_statuses (message_id, seq, status, beskrivelse, at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM formidler_statuses \
             WHERE message_id = $1",
        )
        .bind(message_id)
        .bind(status)
        .bind(beskrivelse)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        if let Some(feil) = feil {
            insert_incoming_with(&mut *tx, feil, now).await?;
        }
    }
    tx.commit().await?;
    Ok(Finished {
        moved,
        payload_in_blobs,
    })
}

/// Digests up to `limit` messages accepted before digests were kept (walking the index that
/// holds only those) and empties the finished ones; the number digested, 0 when none is left.
pub async fn digest_old_messages(db: &Db, limit: i64) -> StoreResult<u64> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT message_id, forretningsmelding FROM formidler_messages \
         WHERE forretningsmelding_sha256 IS NULL ORDER BY message_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin_write().await?;
    let mut n = 0;
    for (message_id, jws) in &rows {
        // The status decides at the write, so a delivery finishing meanwhile is covered; a
        // row without a digest is never emptied, so `jws` is still what the row holds.
        n += sqlx::query(
            "UPDATE formidler_messages SET forretningsmelding_sha256 = $2, \
             forretningsmelding = CASE WHEN status = $3 THEN forretningsmelding ELSE '' END \
             WHERE message_id = $1 AND forretningsmelding_sha256 IS NULL",
        )
        .bind(message_id)
        .bind(dpi::jws::digest(jws))
        .bind(OPPRETTET)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

/// Whether any other undelivered message still needs the blob `sha256`.
pub async fn blob_still_needed(db: &Db, sha256: &str) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM formidler_messages WHERE dokumentpakke_sha256 = $1",
    )
    .bind(sha256)
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

pub struct StatusRow {
    pub status: String,
    pub beskrivelse: Option<String>,
    pub at: i64,
}

pub async fn statuses(db: &Db, message_id: &str) -> StoreResult<Vec<StatusRow>> {
    let rows = sqlx::query(
        "SELECT status, beskrivelse, at FROM formidler_statuses WHERE message_id = $1 ORDER BY seq",
    )
    .bind(message_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StatusRow {
                status: r.try_get("status")?,
                beskrivelse: r.try_get("beskrivelse")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

/// Messages still waiting for delivery (for the start-up sweep that re-enqueues them).
pub async fn pending_ids(db: &Db) -> StoreResult<Vec<String>> {
    // The state is written out: the partial index `formidler_messages_pending` covers it.
    let ids =
        sqlx::query_scalar("SELECT message_id FROM formidler_messages WHERE status = 'OPPRETTET'")
            .fetch_all(db.pool())
            .await?;
    Ok(ids)
}

/// Where a letter's receipts go (§3.4: C2 keeps avsender and databehandler to route them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The avsender (token `consumer`).
    pub sender_orgnr: String,
    /// The databehandler that sent the letter on the sender's behalf (token `supplier`).
    pub supplier_orgnr: Option<String>,
    pub avsenderidentifikator: Option<String>,
    pub kanal: Option<String>,
}

/// A letter a receipt may answer: what a receipt tells of its letter, and the letter's route.
#[derive(Debug, Clone)]
pub struct ReceiptTarget {
    pub message_id: String,
    pub message_type: String,
    pub status: String,
    /// `None` for letters accepted before it was kept.
    pub sbd_sender_orgnr: Option<String>,
    pub route: Route,
}

/// The letters of a conversation that went to `receiver_orgnr`, oldest first.
pub async fn letters_to(
    db: &Db,
    conversation_id: &str,
    receiver_orgnr: &str,
) -> StoreResult<Vec<ReceiptTarget>> {
    let rows = sqlx::query(
        "SELECT message_id, message_type, status, sbd_sender_orgnr, sender_orgnr, \
         supplier_orgnr, avsenderidentifikator, kanal FROM formidler_messages \
         WHERE conversation_id = $1 AND receiver_orgnr = $2 ORDER BY created_at, message_id",
    )
    .bind(conversation_id)
    .bind(receiver_orgnr)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReceiptTarget {
                message_id: r.try_get("message_id")?,
                message_type: r.try_get("message_type")?,
                status: r.try_get("status")?,
                sbd_sender_orgnr: r.try_get("sbd_sender_orgnr")?,
                route: Route {
                    sender_orgnr: r.try_get("sender_orgnr")?,
                    supplier_orgnr: r.try_get("supplier_orgnr")?,
                    avsenderidentifikator: r.try_get("avsenderidentifikator")?,
                    kanal: r.try_get("kanal")?,
                },
            })
        })
        .collect()
}

/// Whether any letter of the conversation passed this access point.
pub async fn conversation_known(db: &Db, conversation_id: &str) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM formidler_messages WHERE conversation_id = $1 \
         LIMIT 1) AS known",
    )
    .bind(conversation_id)
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

pub struct NewIncoming<'a> {
    pub id: &'a str,
    pub conversation_id: &'a str,
    pub message_type: &'a str,
    pub recipient_orgnr: &'a str,
    /// The databehandler that sent the letter (only it sees the receipt), if any.
    pub supplier_orgnr: Option<&'a str>,
    pub avsenderidentifikator: Option<&'a str>,
    pub kanal: Option<&'a str>,
    pub forretningsmelding: &'a str,
}

/// Stores an incoming receipt; `false` when its id was stored before.
pub async fn insert_incoming(
    db: &Db,
    m: &NewIncoming<'_>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    insert_incoming_with(db.pool(), m, now).await
}

async fn insert_incoming_with<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    m: &NewIncoming<'_>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    Ok(sqlx::query(
        "INSERT INTO formidler_incoming (id, conversation_id, message_type, recipient_orgnr, \
         avsenderidentifikator, kanal, forretningsmelding, received_at, supplier_orgnr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
    )
    .bind(m.id)
    .bind(m.conversation_id)
    .bind(m.message_type)
    .bind(m.recipient_orgnr)
    .bind(m.avsenderidentifikator)
    .bind(m.kanal)
    .bind(m.forretningsmelding)
    .bind(ms(now))
    .bind(m.supplier_orgnr)
    .execute(executor)
    .await?
    .rows_affected()
        == 1)
}

pub struct IncomingRow {
    pub id: String,
    pub forretningsmelding: String,
}

// A sender's unread receipts, oldest first (the partial index `formidler_incoming_unread`).
const LIST_UNREAD: &str = "SELECT id, forretningsmelding FROM formidler_incoming \
     WHERE recipient_orgnr = $1 AND read_at IS NULL \
     AND ($2 IS NULL OR avsenderidentifikator = $2) AND ($3 IS NULL OR kanal = $3) \
     AND COALESCE(supplier_orgnr, '') = $6 \
     ORDER BY received_at, id LIMIT $4 OFFSET $5";
// One receipt by id, for its recipient only (the primary key).
const GET_INCOMING: &str = "SELECT id, forretningsmelding FROM formidler_incoming WHERE id = $1 \
     AND recipient_orgnr = $2 AND COALESCE(supplier_orgnr, '') = $3";
const MARK_READ: &str = "UPDATE formidler_incoming SET read_at = COALESCE(read_at, $3) \
     WHERE id = $1 AND recipient_orgnr = $2 AND COALESCE(supplier_orgnr, '') = $4";

/// Unread incoming messages of `recipient` sent through `supplier` (`""`: sent by the
/// recipient itself), oldest first, optionally narrowed by avsenderidentifikator and kanal.
pub async fn list_incoming(
    db: &Db,
    recipient: &str,
    supplier: &str,
    avsenderidentifikator: Option<&str>,
    kanal: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<Vec<IncomingRow>> {
    let rows = sqlx::query(LIST_UNREAD)
        .bind(recipient)
        .bind(avsenderidentifikator)
        .bind(kanal)
        .bind(limit)
        .bind(offset)
        .bind(supplier)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(IncomingRow {
                id: r.try_get("id")?,
                forretningsmelding: r.try_get("forretningsmelding")?,
            })
        })
        .collect()
}

pub async fn get_incoming(
    db: &Db,
    recipient: &str,
    supplier: &str,
    id: &str,
) -> StoreResult<Option<IncomingRow>> {
    let row = sqlx::query(GET_INCOMING)
        .bind(id)
        .bind(recipient)
        .bind(supplier)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| -> StoreResult<IncomingRow> {
        Ok(IncomingRow {
            id: r.try_get("id")?,
            forretningsmelding: r.try_get("forretningsmelding")?,
        })
    })
    .transpose()
}

/// Marks an incoming message read; `false` when `recipient` has no such message.
pub async fn mark_read(
    db: &Db,
    recipient: &str,
    supplier: &str,
    id: &str,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let n = sqlx::query(MARK_READ)
        .bind(id)
        .bind(recipient)
        .bind(ms(now))
        .bind(supplier)
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Deletes up to `limit` receipts received before `read_before` and read, or received before
/// `unread_before`; returns how many. Walks the receipts by arrival (`received_at` ≤
/// `read_at`, so every read receipt to delete arrived before `read_before`).
pub async fn purge_receipts(
    db: &Db,
    read_before: OffsetDateTime,
    unread_before: OffsetDateTime,
    limit: i64,
) -> StoreResult<u64> {
    Ok(sqlx::query(
        "DELETE FROM formidler_incoming WHERE id IN (SELECT id FROM formidler_incoming \
         WHERE received_at < $1 AND ((read_at IS NOT NULL AND read_at < $1) \
         OR received_at < $2) LIMIT $3)",
    )
    .bind(ms(read_before))
    .bind(ms(unread_before))
    .bind(limit)
    .execute(db.pool())
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements on receipts walk the index made for them, in a database as fresh as a
    /// new installation's: PostgreSQL plans a pooled connection's statement once, with the
    /// statistics of that moment, and keeps the plan while the connection lives.
    #[tokio::test]
    async fn receipt_statements_walk_their_index_from_the_first_receipt() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let walks = |plan: &[String], index: &str| plan.iter().any(|l| l.contains(index));
        const TEXT_ID: (&str, &str) = ("text", "'r1'");
        const ORGNR: (&str, &str) = ("text", "'910000001'");
        const SUPPLIER: (&str, &str) = ("text", "''");
        let pk = match db.backend() {
            store::Backend::Postgres => "formidler_incoming_pkey",
            store::Backend::Sqlite => "sqlite_autoindex_formidler_incoming_1",
        };
        for (sql, args) in [
            (GET_INCOMING, &[TEXT_ID, ORGNR, SUPPLIER][..]),
            (MARK_READ, &[TEXT_ID, ORGNR, ("bigint", "1"), SUPPLIER][..]),
        ] {
            let plan = store::testing::plan_of(db, sql, args).await;
            assert!(walks(&plan, pk), "{sql}\n{plan:#?}");
        }
        let plan = store::testing::plan_of(
            db,
            LIST_UNREAD,
            &[
                ORGNR,
                ("text", "NULL"),
                ("text", "NULL"),
                ("bigint", "100"),
                ("bigint", "0"),
                SUPPLIER,
            ],
        )
        .await;
        assert!(walks(&plan, "formidler_incoming_unread"), "{plan:#?}");
        assert!(
            !plan
                .iter()
                .any(|l| l.contains("TEMP B-TREE") || l.contains("Sort")),
            "{plan:#?}"
        );
    }

    /// Read receipts go after the read keep time, unread ones after the longer one; the
    /// rest stay, and a purge takes at most its limit.
    #[tokio::test]
    async fn receipts_past_keeping_are_deleted() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let now = OffsetDateTime::now_utc();
        let days = |n: i64| now - time::Duration::days(n);
        // (id, received, read)
        let receipts = [
            ("read-old", days(10), Some(days(9))),
            ("read-recent", days(10), Some(days(1))),
            ("read-new", days(1), Some(days(1))),
            ("unread-old", days(31), None),
            ("unread-older", days(40), None),
            ("unread-recent", days(10), None),
        ];
        for (id, received, read) in receipts {
            let m = NewIncoming {
                id,
                conversation_id: "c",
                message_type: "leveringskvittering",
                recipient_orgnr: "991825827",
                supplier_orgnr: None,
                avsenderidentifikator: None,
                kanal: None,
                forretningsmelding: "jws",
            };
            assert!(insert_incoming(db, &m, received).await.unwrap());
            if let Some(at) = read {
                assert!(mark_read(db, "991825827", "", id, at).await.unwrap());
            }
        }
        let (read_before, unread_before) = (days(7), days(30));
        assert_eq!(
            purge_receipts(db, read_before, unread_before, 2)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            purge_receipts(db, read_before, unread_before, 2)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            purge_receipts(db, read_before, unread_before, 2)
                .await
                .unwrap(),
            0
        );
        for (id, _, _) in receipts {
            let kept = get_incoming(db, "991825827", "", id)
                .await
                .unwrap()
                .is_some();
            let expected = matches!(id, "read-recent" | "read-new" | "unread-recent");
            assert_eq!(kept, expected, "{id}");
        }
    }

    fn message(id: &str, jws: &str) -> NewMessage {
        NewMessage {
            message_id: id.into(),
            conversation_id: format!("c-{id}"),
            message_type: "digital".into(),
            sender_orgnr: "991825827".into(),
            supplier_orgnr: None,
            avsenderidentifikator: None,
            receiver_orgnr: "984661185".into(),
            sbd_sender_orgnr: Some("991825827".into()),
            kanal: None,
            forretningsmelding: jws.into(),
            dokumentpakke_sha256: "00".into(),
            dokumentpakke_size: 1,
            dokumentpakke: bytes::Bytes::from_static(b"cms"),
            deliver_by: OffsetDateTime::now_utc(),
        }
    }

    async fn kept(db: &Db, id: &str) -> (String, Option<String>) {
        sqlx::query_as(
            "SELECT forretningsmelding, forretningsmelding_sha256 FROM formidler_messages \
             WHERE message_id = $1",
        )
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap()
    }

    /// A finished message keeps only the digest of its business message, which still tells
    /// the same message from another one.
    #[tokio::test]
    async fn a_finished_message_keeps_only_its_digest() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let jobs = Jobs::new(db.clone());
        let now = OffsetDateTime::now_utc();
        let job = || NewJob::new("test.deliver", &()).unwrap();
        assert!(
            insert_message(db, &jobs, &message("m1", "a.b.c"), job(), now)
                .await
                .unwrap()
        );
        let digest = dpi::jws::digest("a.b.c");
        assert_eq!(kept(db, "m1").await, ("a.b.c".into(), Some(digest.clone())));
        let row = get_message(db, "m1").await.unwrap().unwrap();
        assert!(row.is_same_message("a.b.c") && !row.is_same_message("a.b.d"));

        assert!(
            finish_message(db, "m1", SENDT, None, now)
                .await
                .unwrap()
                .moved
        );
        assert_eq!(kept(db, "m1").await, (String::new(), Some(digest)));
        let row = get_message(db, "m1").await.unwrap().unwrap();
        assert!(row.is_same_message("a.b.c"));
        assert!(!row.is_same_message("a.b.d"));
        assert!(!row.is_same_message(""));
    }

    /// Messages accepted before digests were kept: one finished by that version, one still
    /// waiting, and one finished after the upgrade but before the task ran (which keeps its
    /// message, having no digest). The task digests them in batches, empties the finished
    /// ones and leaves the waiting one its message for delivery.
    #[tokio::test]
    async fn messages_from_before_digests_are_digested() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let jobs = Jobs::new(db.clone());
        let now = OffsetDateTime::now_utc();
        for id in ["old-sent", "old-waiting", "old-finished-now"] {
            let job = NewJob::new("test.deliver", &id).unwrap();
            assert!(
                insert_message(db, &jobs, &message(id, &format!("jws-{id}")), job, now)
                    .await
                    .unwrap()
            );
        }
        sqlx::query("UPDATE formidler_messages SET forretningsmelding_sha256 = NULL")
            .execute(db.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE formidler_messages SET status = $1 WHERE message_id = 'old-sent'")
            .bind(SENDT)
            .execute(db.pool())
            .await
            .unwrap();
        assert!(
            finish_message(db, "old-finished-now", FEILET, Some("x"), now)
                .await
                .unwrap()
                .moved
        );
        assert_eq!(
            kept(db, "old-finished-now").await,
            ("jws-old-finished-now".into(), None)
        );

        assert_eq!(digest_old_messages(db, 2).await.unwrap(), 2);
        assert_eq!(digest_old_messages(db, 2).await.unwrap(), 1);
        assert_eq!(digest_old_messages(db, 2).await.unwrap(), 0);
        for id in ["old-sent", "old-finished-now"] {
            assert_eq!(
                kept(db, id).await,
                (String::new(), Some(dpi::jws::digest(&format!("jws-{id}")))),
                "{id}"
            );
        }
        assert_eq!(
            kept(db, "old-waiting").await,
            (
                "jws-old-waiting".into(),
                Some(dpi::jws::digest("jws-old-waiting"))
            )
        );
        // Delivered now, it goes like any other.
        assert!(
            finish_message(db, "old-waiting", SENDT, None, now)
                .await
                .unwrap()
                .moved
        );
        assert_eq!(kept(db, "old-waiting").await.0, "");
    }
}
