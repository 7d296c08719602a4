//! Every SQL statement of the print provider (portable: `$n` placeholders, epoch-ms times).
//! State changes that owe the sender a receipt write the receipt row and its delivery job in
//! the same transaction, so a receipt exists if and only if the state change committed.

use store::{Db, Jobs, NewJob, StoreResult, sqlx, sqlx::Row};
use time::OffsetDateTime;

/// Letter states.
pub const RECEIVED: &str = "received";
pub const SPOOLED: &str = "spooled";
pub const PRINTED: &str = "printed";
pub const REJECTED: &str = "rejected";

/// Queue of letters waiting for validation and spooling.
pub const INTAKE_QUEUE: &str = "utskrift.intake";
/// Queue of receipts waiting to be handed to the access point.
pub const RECEIPT_QUEUE: &str = "utskrift.receipt";
/// Attempts of a job before it is dead: effectively "until it works", the backoff is capped.
pub const MAX_ATTEMPTS: u32 = 100_000;

fn ms(t: OffsetDateTime) -> i64 {
    store::to_ms(t)
}

#[derive(Debug, Clone)]
pub struct NewLetter<'a> {
    pub message_id: &'a str,
    pub conversation_id: Option<&'a str>,
    pub sender_orgnr: Option<&'a str>,
    pub forretningsmelding: &'a str,
    pub dokumentpakke_sha256: &'a str,
    pub dokumentpakke_size: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IntakeJob {
    pub message_id: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReceiptJob {
    pub receipt_id: String,
}

/// Stores a received letter and queues its validation; `false` when the id was seen before.
pub async fn insert_received(
    db: &Db,
    jobs: &Jobs,
    l: &NewLetter<'_>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO utskrift_letters (message_id, conversation_id, sender_orgnr, \
         forretningsmelding, dokumentpakke_sha256, dokumentpakke_size, status, received_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(l.message_id)
    .bind(l.conversation_id)
    .bind(l.sender_orgnr)
    .bind(l.forretningsmelding)
    .bind(l.dokumentpakke_sha256)
    .bind(l.dokumentpakke_size)
    .bind(RECEIVED)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let job = NewJob::new(
            INTAKE_QUEUE,
            &IntakeJob {
                message_id: l.message_id.to_owned(),
            },
        )?
        .dedup_key(l.message_id)
        .max_attempts(MAX_ATTEMPTS);
        jobs.enqueue_in(&mut tx, job).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

#[derive(Debug, Clone)]
pub struct LetterRow {
    pub message_id: String,
    pub forretningsmelding: String,
    pub dokumentpakke_sha256: Option<String>,
    pub dokumentpakke_size: Option<i64>,
    pub status: String,
    pub detail: Option<String>,
    pub returposthaandtering: Option<String>,
    pub spool_path: Option<String>,
    pub pages: Option<i64>,
    pub batch_date: Option<String>,
    pub batch_id: Option<String>,
    pub printed_at: Option<i64>,
    pub returned_at: Option<i64>,
}

pub async fn get_letter(db: &Db, message_id: &str) -> StoreResult<Option<LetterRow>> {
    let row = sqlx::query(
        "SELECT message_id, forretningsmelding, dokumentpakke_sha256, dokumentpakke_size, status, \
         detail, returposthaandtering, spool_path, pages, batch_date, batch_id, printed_at, \
         returned_at FROM utskrift_letters WHERE message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| -> StoreResult<LetterRow> {
        Ok(LetterRow {
            message_id: r.try_get("message_id")?,
            forretningsmelding: r.try_get("forretningsmelding")?,
            dokumentpakke_sha256: r.try_get("dokumentpakke_sha256")?,
            dokumentpakke_size: r.try_get("dokumentpakke_size")?,
            status: r.try_get("status")?,
            detail: r.try_get("detail")?,
            returposthaandtering: r.try_get("returposthaandtering")?,
            spool_path: r.try_get("spool_path")?,
            pages: r.try_get("pages")?,
            batch_date: r.try_get("batch_date")?,
            batch_id: r.try_get("batch_id")?,
            printed_at: r.try_get("printed_at")?,
            returned_at: r.try_get("returned_at")?,
        })
    })
    .transpose()
}

/// Counts one more examination of a letter and returns the count so far.
pub async fn count_examination(db: &Db, message_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "UPDATE utskrift_letters SET examinations = examinations + 1 WHERE message_id = $1 \
         RETURNING examinations",
    )
    .bind(message_id)
    .fetch_one(db.pool())
    .await?)
}

/// A receipt to owe the sender.
#[derive(Debug, Clone)]
pub struct NewReceipt<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub detaljer: Option<&'a str>,
    pub tidspunkt: OffsetDateTime,
}

/// Inserts the receipt (once per letter and kind) and queues its delivery, on `tx`.
async fn owe_receipt(
    tx: &mut sqlx::AnyConnection,
    jobs: &Jobs,
    message_id: &str,
    r: &NewReceipt<'_>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO utskrift_receipts (id, message_id, kind, detaljer, tidspunkt, status, \
         created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6) \
         ON CONFLICT (message_id, kind) DO NOTHING",
    )
    .bind(r.id)
    .bind(message_id)
    .bind(r.kind)
    .bind(r.detaljer)
    .bind(ms(r.tidspunkt))
    .bind(ms(now))
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let job = NewJob::new(
            RECEIPT_QUEUE,
            &ReceiptJob {
                receipt_id: r.id.to_owned(),
            },
        )?
        .dedup_key(r.id)
        .max_attempts(MAX_ATTEMPTS);
        jobs.enqueue_in(tx, job).await?;
    }
    Ok(inserted)
}

/// Where a validated letter went in the spool.
#[derive(Debug, Clone)]
pub struct Spooled<'a> {
    pub spool_path: &'a str,
    pub pages: i64,
    pub batch_date: &'a str,
    pub batch_due_at: OffsetDateTime,
    pub returposthaandtering: &'a str,
}

/// `received` → `spooled`, owing a `mottakskvittering`. `false` if it had moved already.
pub async fn mark_spooled(
    db: &Db,
    jobs: &Jobs,
    message_id: &str,
    s: &Spooled<'_>,
    receipt: &NewReceipt<'_>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let moved = sqlx::query(
        "UPDATE utskrift_letters SET status = $2, spool_path = $3, pages = $4, batch_date = $5, \
         batch_due_at = $6, returposthaandtering = $7, dokumentpakke_sha256 = NULL, \
         spooled_at = $8, updated_at = $8 WHERE message_id = $1 AND status = $9",
    )
    .bind(message_id)
    .bind(SPOOLED)
    .bind(s.spool_path)
    .bind(s.pages)
    .bind(s.batch_date)
    .bind(ms(s.batch_due_at))
    .bind(s.returposthaandtering)
    .bind(ms(now))
    .bind(RECEIVED)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if moved {
        owe_receipt(&mut tx, jobs, message_id, receipt, now).await?;
    }
    tx.commit().await?;
    Ok(moved)
}

/// `received` → `rejected` with the reason, owing a `feil` when `receipt` is given.
pub async fn mark_rejected(
    db: &Db,
    jobs: &Jobs,
    message_id: &str,
    detail: &str,
    receipt: Option<&NewReceipt<'_>>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let moved = sqlx::query(
        "UPDATE utskrift_letters SET status = $2, detail = $3, dokumentpakke_sha256 = NULL, \
         updated_at = $4 WHERE message_id = $1 AND status = $5",
    )
    .bind(message_id)
    .bind(REJECTED)
    .bind(detail)
    .bind(ms(now))
    .bind(RECEIVED)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if moved && let Some(r) = receipt {
        owe_receipt(&mut tx, jobs, message_id, r, now).await?;
    }
    tx.commit().await?;
    Ok(moved)
}

/// Whether another letter still references the payload blob `sha256`.
pub async fn blob_still_needed(db: &Db, sha256: &str) -> StoreResult<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM utskrift_letters WHERE dokumentpakke_sha256 = $1")
            .bind(sha256)
            .fetch_one(db.pool())
            .await?;
    Ok(n > 0)
}

/// Spooled letters whose planned batch is due at `due_before` (all of them when `None`).
pub async fn spooled_ids(db: &Db, due_before: Option<OffsetDateTime>) -> StoreResult<Vec<String>> {
    // The state is written out: the partial index `utskrift_letters_spooled` covers it.
    let ids = sqlx::query_scalar(
        "SELECT message_id FROM utskrift_letters WHERE status = 'spooled' \
         AND ($1 IS NULL OR batch_due_at <= $1) ORDER BY batch_due_at, message_id",
    )
    .bind(due_before.map(ms))
    .fetch_all(db.pool())
    .await?;
    Ok(ids)
}

pub async fn start_batch(db: &Db, batch_id: &str, now: OffsetDateTime) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO utskrift_batches (batch_id, started_at, letters) VALUES ($1, $2, 0) \
         ON CONFLICT (batch_id) DO NOTHING",
    )
    .bind(batch_id)
    .bind(ms(now))
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn finish_batch(
    db: &Db,
    batch_id: &str,
    letters: i64,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("UPDATE utskrift_batches SET finished_at = $2, letters = $3 WHERE batch_id = $1")
        .bind(batch_id)
        .bind(ms(now))
        .bind(letters)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// `spooled` → `printed` in `batch_id` for each of `message_ids`, in one transaction, each
/// owing a `leveringskvittering` (kind `kind`). Returns how many moved; a letter another batch
/// (or process) took first is skipped.
pub async fn mark_printed(
    db: &Db,
    jobs: &Jobs,
    message_ids: &[String],
    batch_id: &str,
    kind: &str,
    now: OffsetDateTime,
) -> StoreResult<usize> {
    let mut tx = db.pool().begin().await?;
    let mut moved = 0usize;
    for id in message_ids {
        let n = sqlx::query(
            "UPDATE utskrift_letters SET status = $2, batch_id = $3, printed_at = $4, \
             updated_at = $4 WHERE message_id = $1 AND status = $5",
        )
        .bind(id)
        .bind(PRINTED)
        .bind(batch_id)
        .bind(ms(now))
        .bind(SPOOLED)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            let receipt_id = domain::MessageId::new().to_string();
            let receipt = NewReceipt {
                id: &receipt_id,
                kind,
                detaljer: None,
                tidspunkt: now,
            };
            owe_receipt(&mut tx, jobs, id, &receipt, now).await?;
            moved += 1;
        }
    }
    tx.commit().await?;
    Ok(moved)
}

/// Records the return of a printed letter (once), owing a `returpostkvittering` when
/// `receipt` is given. `false` when it was recorded before (or is not printed).
pub async fn mark_returned(
    db: &Db,
    jobs: &Jobs,
    message_id: &str,
    receipt: Option<&NewReceipt<'_>>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.pool().begin().await?;
    let moved = sqlx::query(
        "UPDATE utskrift_letters SET returned_at = $2, updated_at = $2 \
         WHERE message_id = $1 AND status = $3 AND returned_at IS NULL",
    )
    .bind(message_id)
    .bind(ms(now))
    .bind(PRINTED)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if moved && let Some(r) = receipt {
        owe_receipt(&mut tx, jobs, message_id, r, now).await?;
    }
    tx.commit().await?;
    Ok(moved)
}

#[derive(Debug, Clone)]
pub struct ReceiptRow {
    pub id: String,
    pub message_id: String,
    pub kind: String,
    pub detaljer: Option<String>,
    pub tidspunkt: i64,
    pub status: String,
}

pub async fn get_receipt(db: &Db, id: &str) -> StoreResult<Option<ReceiptRow>> {
    let row = sqlx::query(
        "SELECT id, message_id, kind, detaljer, tidspunkt, status FROM utskrift_receipts \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| -> StoreResult<ReceiptRow> {
        Ok(ReceiptRow {
            id: r.try_get("id")?,
            message_id: r.try_get("message_id")?,
            kind: r.try_get("kind")?,
            detaljer: r.try_get("detaljer")?,
            tidspunkt: r.try_get("tidspunkt")?,
            status: r.try_get("status")?,
        })
    })
    .transpose()
}

/// Receipts of a letter as (kind, status), oldest first.
pub async fn receipts_of(db: &Db, message_id: &str) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT kind, status FROM utskrift_receipts WHERE message_id = $1 ORDER BY created_at, id",
    )
    .bind(message_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("kind")?, r.try_get("status")?)))
        .collect()
}

/// Final state of a receipt: `sent`, or `refused` with the access point's answer.
pub async fn finish_receipt(
    db: &Db,
    id: &str,
    status: &str,
    error: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE utskrift_receipts SET status = $2, last_error = $3, sent_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(ms(now))
    .execute(db.pool())
    .await?;
    Ok(())
}
