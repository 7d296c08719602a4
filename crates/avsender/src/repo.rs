//! Every SQL statement of the sender service (portable: `$n` placeholders, epoch-ms times).

use store::blob_release::{self, ReleaseTables, placeholders};
use store::{BlobRef, Db, Jobs, NewJob, StoreError, StoreResult, sqlx, sqlx::Row};
use time::OffsetDateTime;

use crate::status::{self, Event, Status};

fn ms(t: OffsetDateTime) -> i64 {
    store::to_ms(t)
}

fn bad_row(message: impl Into<String>) -> StoreError {
    StoreError::InvalidRow {
        table: "avsender_letters",
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct NewLetter {
    pub letter_id: String,
    pub request_sha256: String,
    pub request_json: String,
    pub message_id: String,
    pub conversation_id: String,
    /// The name of the API key that submits it.
    pub api_key_name: String,
    /// The avsender when sent on another organization's behalf; `None` = this organization.
    pub avsender_orgnr: Option<String>,
}

/// What happened to a submitted letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The same id with the same content, from the same API key.
    Same,
    /// The same id with other content, from the same API key.
    Conflict,
    /// The id belongs to a letter of another API key.
    OtherKey,
}

/// Whether the API key `caller` may see a letter submitted by `owner` (`None`: stored before
/// letters recorded their key, seen by every key).
pub fn visible_to(owner: Option<&str>, caller: &str) -> bool {
    owner.is_none_or(|o| o == caller)
}

/// Inserts the letter, its documents' blob references, its `created` history entry and its
/// send job in one transaction. The blobs must be stored before, and checked again after (see
/// [`collect_released_blobs`]).
pub async fn insert_letter(
    db: &Db,
    jobs: &Jobs,
    job: NewJob,
    l: &NewLetter,
    blobs: &[BlobRef],
    now: OffsetDateTime,
) -> StoreResult<Inserted> {
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO avsender_letters (letter_id, request_sha256, request_json, status, \
         message_id, conversation_id, created_at, updated_at, api_key_name, avsender_orgnr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) ON CONFLICT (letter_id) DO NOTHING",
    )
    .bind(&l.letter_id)
    .bind(&l.request_sha256)
    .bind(&l.request_json)
    .bind(Status::Created.as_str())
    .bind(&l.message_id)
    .bind(&l.conversation_id)
    .bind(ms(now))
    .bind(&l.api_key_name)
    .bind(l.avsender_orgnr.as_deref())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        tx.rollback().await?;
        // What this request stored belongs to no new letter: released, it goes unless a
        // letter refers to it (the same letter, still unsent, keeps it).
        if !blobs.is_empty() {
            let mut tx = db.begin_write().await?;
            for b in blobs {
                release_in(&mut tx, b, now).await?;
            }
            tx.commit().await?;
        }
        let existing = sqlx::query(
            "SELECT request_sha256, api_key_name FROM avsender_letters WHERE letter_id = $1",
        )
        .bind(&l.letter_id)
        .fetch_optional(db.pool())
        .await?;
        let Some(existing) = existing else {
            return Ok(Inserted::Conflict);
        };
        let owner: Option<String> = existing.try_get("api_key_name")?;
        if !visible_to(owner.as_deref(), &l.api_key_name) {
            return Ok(Inserted::OtherKey);
        }
        let h: String = existing.try_get("request_sha256")?;
        return Ok(if h == l.request_sha256 {
            Inserted::Same
        } else {
            Inserted::Conflict
        });
    }
    sqlx::query(
        "INSERT INTO avsender_history (letter_id, seq, status, detail, receipt_id, at) \
         VALUES ($1, 1, $2, NULL, NULL, $3)",
    )
    .bind(&l.letter_id)
    .bind(Status::Created.as_str())
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;
    let mut sorted: Vec<&BlobRef> = blobs.iter().collect();
    sorted.sort();
    for b in sorted {
        sqlx::query(
            "INSERT INTO avsender_letter_blobs (sha256, letter_id, size) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&b.sha256)
        .bind(&l.letter_id)
        .bind(b.row_size())
        .execute(&mut *tx)
        .await?;
    }
    // Held against a collector of the same content until the commit.
    blob_release::claim_in(&mut tx, &BLOB_TABLES, blobs).await?;
    jobs.enqueue_in(&mut tx, job).await?;
    tx.commit().await?;
    Ok(Inserted::New)
}

/// The sender's blob reference tables (see [`store::blob_release`]).
const BLOB_TABLES: ReleaseTables = ReleaseTables {
    release: "avsender_blob_release",
    references: "avsender_letter_blobs",
};

/// Marks `b` as possibly unneeded, for [`collect_released_blobs`].
async fn release_in(
    conn: &mut store::sqlx::AnyConnection,
    b: &BlobRef,
    now: OffsetDateTime,
) -> StoreResult<()> {
    blob_release::release_in(conn, &BLOB_TABLES, b, now).await
}

/// Releases, for [`collect_released_blobs`], those of `found` (blobs in the store) that no
/// unsent letter refers to: documents a request stored but never committed a letter for (it
/// failed, or the process died in between), and anything else left behind. The collector's
/// locking then decides for each, as for any released blob; the number released.
pub async fn release_unreferenced(
    db: &Db,
    found: &[BlobRef],
    now: OffsetDateTime,
) -> StoreResult<usize> {
    let mut released = 0;
    for chunk in found.chunks(100) {
        // An unsent letter of an earlier version may name its sealed letter in the store.
        let sql = format!(
            "SELECT sha256 FROM avsender_letter_blobs WHERE sha256 IN ({list}) \
             UNION SELECT dokumentpakke_sha256 FROM avsender_letters \
             WHERE status = 'created' AND dokumentpakke_sha256 IN ({list})",
            list = placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
        for b in chunk {
            q = q.bind(b.sha256.clone());
        }
        let referenced: std::collections::HashSet<String> =
            q.fetch_all(db.pool()).await?.into_iter().collect();
        let mut tx = db.begin_write().await?;
        for b in chunk.iter().filter(|b| !referenced.contains(&b.sha256)) {
            release_in(&mut tx, b, now).await?;
            released += 1;
        }
        tx.commit().await?;
    }
    Ok(released)
}

/// Deletes from `blobs` up to `limit` released documents that no unsent letter refers to;
/// returns how many it deleted. A letter being submitted with the same content holds it
/// against the collector in its transaction ([`insert_letter`]) and checks its blobs after
/// its commit (the protocol of [`store::blob_release`]).
pub async fn collect_released_blobs(
    db: &Db,
    blobs: &store::BlobStore,
    now: OffsetDateTime,
    limit: i64,
) -> StoreResult<usize> {
    blob_release::collect_released(db, blobs, &BLOB_TABLES, now, limit).await
}

/// Records the blobs of letters submitted before blob references were kept, for those still
/// unsent: their content may be shared with later letters, whose release must not take it.
pub async fn record_blobs_of_unsent(db: &Db) -> StoreResult<usize> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.letter_id, l.request_json FROM avsender_letters l WHERE l.status = 'created' \
         AND NOT EXISTS (SELECT 1 FROM avsender_letter_blobs b WHERE b.letter_id = l.letter_id)",
    )
    .fetch_all(db.pool())
    .await?;
    let mut n = 0;
    for (letter_id, json) in rows {
        let Ok(stored) = serde_json::from_str::<crate::letter::StoredLetter>(&json) else {
            continue;
        };
        let mut tx = db.begin_write().await?;
        for d in &stored.documents {
            sqlx::query(
                "INSERT INTO avsender_letter_blobs (sha256, letter_id, size) \
                 SELECT $1, letter_id, $3 FROM avsender_letters \
                 WHERE letter_id = $2 AND status = $4 ON CONFLICT DO NOTHING",
            )
            .bind(&d.sha256)
            .bind(&letter_id)
            .bind(i64::try_from(d.size).unwrap_or(i64::MAX))
            .bind(Status::Created.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        n += 1;
    }
    Ok(n)
}

#[derive(Debug, Clone)]
pub struct LetterRow {
    pub letter_id: String,
    pub request_json: String,
    pub status: Status,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub channel: Option<String>,
    pub provider_orgnr: Option<String>,
    pub message_id: String,
    pub conversation_id: String,
    pub forretningsmelding: Option<String>,
    pub dokumentpakke_sha256: Option<String>,
    pub dokumentpakke_size: Option<i64>,
    pub token_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The API key that submitted it (`None`: stored before keys were recorded).
    pub api_key_name: Option<String>,
    /// The avsender when sent on another organization's behalf; `None` = this organization.
    pub avsender_orgnr: Option<String>,
}

impl LetterRow {
    /// Where a version that kept sealed letters in the blob store put this one's dokumentpakke
    /// (`None` for letters sealed since).
    pub fn sealed_blob(&self) -> Option<store::BlobRef> {
        Some(store::BlobRef::from_row(
            self.dokumentpakke_sha256.clone()?,
            self.dokumentpakke_size?,
        ))
    }
}

macro_rules! select_letter {
    ($where:literal) => {
        concat!(
            "SELECT letter_id, request_json, status, error_code, error_detail, channel, \
             provider_orgnr, message_id, conversation_id, forretningsmelding, \
             dokumentpakke_sha256, dokumentpakke_size, token_expires_at, created_at, updated_at, \
             api_key_name, avsender_orgnr FROM avsender_letters WHERE ",
            $where
        )
    };
}

fn letter_row(r: &store::sqlx::any::AnyRow) -> StoreResult<LetterRow> {
    let status: String = r.try_get("status")?;
    Ok(LetterRow {
        letter_id: r.try_get("letter_id")?,
        request_json: r.try_get("request_json")?,
        status: Status::parse(&status).ok_or_else(|| bad_row(format!("status {status}")))?,
        error_code: r.try_get("error_code")?,
        error_detail: r.try_get("error_detail")?,
        channel: r.try_get("channel")?,
        provider_orgnr: r.try_get("provider_orgnr")?,
        message_id: r.try_get("message_id")?,
        conversation_id: r.try_get("conversation_id")?,
        forretningsmelding: r.try_get("forretningsmelding")?,
        dokumentpakke_sha256: r.try_get("dokumentpakke_sha256")?,
        dokumentpakke_size: r.try_get("dokumentpakke_size")?,
        token_expires_at: r.try_get("token_expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        api_key_name: r.try_get("api_key_name")?,
        avsender_orgnr: r.try_get("avsender_orgnr")?,
    })
}

/// Whether any letter was sent for this avsender (`None` = this organization).
pub async fn has_letters(db: &Db, avsender_orgnr: Option<&str>) -> StoreResult<bool> {
    let q = match avsender_orgnr {
        None => sqlx::query_scalar::<_, String>(
            "SELECT letter_id FROM avsender_letters WHERE avsender_orgnr IS NULL LIMIT 1",
        ),
        Some(o) => sqlx::query_scalar::<_, String>(
            "SELECT letter_id FROM avsender_letters WHERE avsender_orgnr = $1 LIMIT 1",
        )
        .bind(o.to_owned()),
    };
    Ok(q.fetch_optional(db.pool()).await?.is_some())
}

pub async fn get_letter(db: &Db, letter_id: &str) -> StoreResult<Option<LetterRow>> {
    let row = sqlx::query(select_letter!("letter_id = $1"))
        .bind(letter_id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(letter_row).transpose()
}

pub async fn letter_by_conversation(
    db: &Db,
    conversation_id: &str,
) -> StoreResult<Option<LetterRow>> {
    let row = sqlx::query(select_letter!("conversation_id = $1"))
        .bind(conversation_id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(letter_row).transpose()
}

/// Letters not yet sent (for the start-up sweep that queues their jobs again).
pub async fn unsent_ids(db: &Db) -> StoreResult<Vec<String>> {
    // The state is written out, here and in the other sweeps of unsent letters: the partial
    // index `avsender_letters_unsent` covers it.
    Ok(
        sqlx::query_scalar("SELECT letter_id FROM avsender_letters WHERE status = 'created'")
            .fetch_all(db.pool())
            .await?,
    )
}

/// What sealing decided, recorded before the letter is posted: the receipts that come back
/// are checked against the provider it went to.
pub struct Sealed<'a> {
    pub channel: &'a str,
    pub provider_orgnr: &'a str,
    pub forretningsmelding: &'a str,
    /// Size of the encrypted dokumentpakke (the bytes themselves are not kept).
    pub dokumentpakke_size: usize,
    pub token_expires_at: i64,
}

/// Records the route and the business message of a letter about to be posted (one statement;
/// nothing if the letter has left `created`).
pub async fn record_sealed(
    db: &Db,
    letter_id: &str,
    s: &Sealed<'_>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    // The hash column names a payload in the blob store, which sealed letters no longer use.
    sqlx::query(
        "UPDATE avsender_letters SET channel = $2, provider_orgnr = $3, forretningsmelding = $4, \
         dokumentpakke_sha256 = NULL, dokumentpakke_size = $5, token_expires_at = $6, \
         updated_at = $7 WHERE letter_id = $1 AND status = $8",
    )
    .bind(letter_id)
    .bind(s.channel)
    .bind(s.provider_orgnr)
    .bind(s.forretningsmelding)
    .bind(i64::try_from(s.dokumentpakke_size).unwrap_or(i64::MAX))
    .bind(s.token_expires_at)
    .bind(ms(now))
    .bind(Status::Created.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The sealed dokumentpakke an earlier version stored for a letter it had not sent yet;
/// `None` when there is none (or it is in the blob store, for a letter sealed by a version
/// before payloads moved into the database).
pub async fn sealed_payload(db: &Db, letter_id: &str) -> StoreResult<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT data FROM avsender_payloads WHERE letter_id = $1")
            .bind(letter_id)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Forgets the sealed form (its token was refused); the next attempt seals again.
pub async fn clear_sealed(db: &Db, letter_id: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE avsender_letters SET forretningsmelding = NULL, token_expires_at = NULL \
         WHERE letter_id = $1",
    )
    .bind(letter_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Outcome of applying an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The letter moved through these statuses.
    Moved(Vec<Status>),
    /// The state machine refused the event; nothing changed.
    Refused(status::Impossible),
    NoSuchLetter,
}

pub struct EventInfo<'a> {
    pub detail: Option<&'a str>,
    pub receipt_id: Option<&'a str>,
    /// For `failed`: the error code stored on the letter.
    pub error_code: Option<&'a str>,
}

/// Applies `event` to the letter inside `tx`: reads the status, asks the state machine, and
/// moves the letter only if nobody moved it in between (compare-and-set on the status).
async fn apply_in(
    conn: &mut store::sqlx::AnyConnection,
    letter_id: &str,
    event: Event,
    info: &EventInfo<'_>,
    now: OffsetDateTime,
) -> StoreResult<Applied> {
    let current: Option<String> =
        sqlx::query_scalar("SELECT status FROM avsender_letters WHERE letter_id = $1")
            .bind(letter_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(current) = current.as_deref().and_then(Status::parse) else {
        return Ok(Applied::NoSuchLetter);
    };
    let path = match status::path(current, event) {
        Ok(p) => p,
        Err(e) => return Ok(Applied::Refused(e)),
    };
    let Some(last) = path.last().copied() else {
        return Ok(Applied::Refused(status::Impossible {
            from: current,
            event,
        }));
    };
    let (error_code, error_detail) = if last == Status::Failed {
        (info.error_code, info.detail)
    } else {
        (None, None)
    };
    let moved = sqlx::query(
        "UPDATE avsender_letters SET status = $2, error_code = COALESCE($3, error_code), \
         error_detail = COALESCE($4, error_detail), updated_at = $5 \
         WHERE letter_id = $1 AND status = $6",
    )
    .bind(letter_id)
    .bind(last.as_str())
    .bind(error_code)
    .bind(error_detail)
    .bind(ms(now))
    .bind(current.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !moved {
        return Err(bad_row("the letter changed concurrently; retry"));
    }
    if current == Status::Created && last != Status::Created {
        // Sent or failed: the letter is never sealed or posted again (a sealed letter an
        // earlier version kept goes).
        sqlx::query("DELETE FROM avsender_payloads WHERE letter_id = $1")
            .bind(letter_id)
            .execute(&mut *conn)
            .await?;
        // Its documents may go, unless another unsent letter shares them.
        let blobs: Vec<(String, i64)> = sqlx::query_as(
            "SELECT sha256, size FROM avsender_letter_blobs WHERE letter_id = $1 ORDER BY sha256",
        )
        .bind(letter_id)
        .fetch_all(&mut *conn)
        .await?;
        for (sha256, size) in blobs {
            release_in(conn, &BlobRef::from_row(sha256, size), now).await?;
        }
        sqlx::query("DELETE FROM avsender_letter_blobs WHERE letter_id = $1")
            .bind(letter_id)
            .execute(&mut *conn)
            .await?;
    }
    for (i, s) in path.iter().enumerate() {
        let implied = i + 1 < path.len();
        sqlx::query(
            "INSERT INTO avsender_history (letter_id, seq, status, detail, receipt_id, at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM avsender_history \
             WHERE letter_id = $1",
        )
        .bind(letter_id)
        .bind(s.as_str())
        .bind(if implied {
            Some("implied by a later receipt")
        } else {
            info.detail
        })
        .bind(if implied { None } else { info.receipt_id })
        .bind(ms(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(Applied::Moved(path))
}

/// Applies an event that is not a receipt (sent, or a refusal on our side).
pub async fn apply(
    db: &Db,
    letter_id: &str,
    event: Event,
    info: &EventInfo<'_>,
    now: OffsetDateTime,
) -> StoreResult<Applied> {
    let mut tx = db.begin_write().await?;
    let r = apply_in(&mut tx, letter_id, event, info, now).await?;
    tx.commit().await?;
    Ok(r)
}

pub struct NewReceipt<'a> {
    pub receipt_id: &'a str,
    pub letter_id: Option<&'a str>,
    pub message_type: Option<&'a str>,
    pub issuer_orgnr: Option<&'a str>,
    pub tidspunkt: Option<&'a str>,
    pub forretningsmelding: &'a str,
}

/// What became of a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptOutcome {
    Applied(Vec<Status>),
    /// Seen before (same receipt id): nothing done.
    Duplicate,
    /// Verified, but the state machine refused it.
    OutOfOrder(String),
    /// Not verified or not ours; stored for the record, never applied.
    Rejected(String),
}

impl ReceiptOutcome {
    fn column(&self) -> (&'static str, Option<&str>) {
        match self {
            ReceiptOutcome::Applied(_) => ("applied", None),
            ReceiptOutcome::Duplicate => ("duplicate", None),
            ReceiptOutcome::OutOfOrder(r) => ("out_of_order", Some(r)),
            ReceiptOutcome::Rejected(r) => ("rejected", Some(r)),
        }
    }
}

async fn insert_receipt_in(
    conn: &mut store::sqlx::AnyConnection,
    r: &NewReceipt<'_>,
    outcome: &ReceiptOutcome,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let (outcome, reason) = outcome.column();
    Ok(sqlx::query(
        "INSERT INTO avsender_receipts (receipt_id, letter_id, message_type, issuer_orgnr, \
         tidspunkt, outcome, reason, forretningsmelding, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (receipt_id) DO NOTHING",
    )
    .bind(r.receipt_id)
    .bind(r.letter_id)
    .bind(r.message_type)
    .bind(r.issuer_orgnr)
    .bind(r.tidspunkt)
    .bind(outcome)
    .bind(reason)
    .bind(r.forretningsmelding)
    .bind(ms(now))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

/// Records a receipt that will not be applied (rejected); `false` when its id is known.
pub async fn record_rejected(
    db: &Db,
    r: &NewReceipt<'_>,
    reason: &str,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut conn = db.pool().acquire().await?;
    insert_receipt_in(
        &mut conn,
        r,
        &ReceiptOutcome::Rejected(reason.to_owned()),
        now,
    )
    .await
}

/// Stores a verified receipt and applies its event to the letter in one transaction; a
/// receipt id seen before changes nothing.
pub async fn apply_receipt(
    db: &Db,
    r: &NewReceipt<'_>,
    letter_id: &str,
    event: Event,
    detail: Option<&str>,
    error_code: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<ReceiptOutcome> {
    let mut tx = db.begin_write().await?;
    let seen: Option<String> =
        sqlx::query_scalar("SELECT receipt_id FROM avsender_receipts WHERE receipt_id = $1")
            .bind(r.receipt_id)
            .fetch_optional(&mut *tx)
            .await?;
    if seen.is_some() {
        tx.rollback().await?;
        return Ok(ReceiptOutcome::Duplicate);
    }
    let info = EventInfo {
        detail,
        receipt_id: Some(r.receipt_id),
        error_code,
    };
    let outcome = match apply_in(&mut tx, letter_id, event, &info, now).await? {
        Applied::Moved(path) => ReceiptOutcome::Applied(path),
        Applied::Refused(e) => ReceiptOutcome::OutOfOrder(e.to_string()),
        Applied::NoSuchLetter => ReceiptOutcome::Rejected("unknown letter".into()),
    };
    if !insert_receipt_in(&mut tx, r, &outcome, now).await? {
        // A concurrent poller stored it first; its transaction applied the event.
        tx.rollback().await?;
        return Ok(ReceiptOutcome::Duplicate);
    }
    tx.commit().await?;
    Ok(outcome)
}

pub struct HistoryRow {
    pub status: String,
    pub detail: Option<String>,
    pub receipt_id: Option<String>,
    pub at: i64,
}

pub async fn history(db: &Db, letter_id: &str) -> StoreResult<Vec<HistoryRow>> {
    let rows = sqlx::query(
        "SELECT status, detail, receipt_id, at FROM avsender_history WHERE letter_id = $1 \
         ORDER BY seq",
    )
    .bind(letter_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryRow {
                status: r.try_get("status")?,
                detail: r.try_get("detail")?,
                receipt_id: r.try_get("receipt_id")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
}

pub struct ReceiptRow {
    pub receipt_id: String,
    pub message_type: Option<String>,
    pub issuer_orgnr: Option<String>,
    pub tidspunkt: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub forretningsmelding: String,
    pub received_at: i64,
}

pub async fn receipts(db: &Db, letter_id: &str) -> StoreResult<Vec<ReceiptRow>> {
    let rows = sqlx::query(
        "SELECT receipt_id, message_type, issuer_orgnr, tidspunkt, outcome, reason, \
         forretningsmelding, received_at FROM avsender_receipts WHERE letter_id = $1 \
         ORDER BY received_at, receipt_id",
    )
    .bind(letter_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReceiptRow {
                receipt_id: r.try_get("receipt_id")?,
                message_type: r.try_get("message_type")?,
                issuer_orgnr: r.try_get("issuer_orgnr")?,
                tidspunkt: r.try_get("tidspunkt")?,
                outcome: r.try_get("outcome")?,
                reason: r.try_get("reason")?,
                forretningsmelding: r.try_get("forretningsmelding")?,
                received_at: r.try_get("received_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_letter(id: &str, request_json: &str) -> NewLetter {
        NewLetter {
            letter_id: id.into(),
            request_sha256: format!("sha-of-{id}"),
            request_json: request_json.into(),
            message_id: uuid::Uuid::new_v4().to_string(),
            conversation_id: uuid::Uuid::new_v4().to_string(),
            api_key_name: "sak".into(),
            avsender_orgnr: None,
        }
    }

    async fn insert(db: &Db, id: &str, blobs: &[BlobRef]) -> Inserted {
        let jobs = Jobs::new(db.clone());
        let job = crate::send::job(id).unwrap();
        let l = new_letter(id, "{}");
        insert_letter(db, &jobs, job, &l, blobs, OffsetDateTime::now_utc())
            .await
            .unwrap()
    }

    async fn sent(db: &Db, id: &str) {
        let info = EventInfo {
            detail: None,
            receipt_id: None,
            error_code: None,
        };
        let moved = apply(db, id, Event::Sent, &info, OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert_eq!(moved, Applied::Moved(vec![Status::Sent]));
    }

    async fn collect(db: &Db, blobs: &store::BlobStore) -> usize {
        collect_released_blobs(db, blobs, OffsetDateTime::now_utc(), 100)
            .await
            .unwrap()
    }

    /// A document shared by two letters stays while either is unsent; a letter's own
    /// document goes once it is sent; a repeat of a sent letter stores its documents again
    /// and they go again.
    #[tokio::test]
    async fn a_shared_document_goes_with_the_last_unsent_letter() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let blobs = store::BlobStore::memory();
        let shared = blobs.put(&b"%PDF-1.7 shared"[..]).await.unwrap();
        let own = blobs.put(&b"%PDF-1.7 own"[..]).await.unwrap();
        assert_eq!(
            insert(db, "a", &[shared.clone(), own.clone()]).await,
            Inserted::New
        );
        assert_eq!(
            insert(db, "b", std::slice::from_ref(&shared)).await,
            Inserted::New
        );
        assert_eq!(collect(db, &blobs).await, 0, "both unsent");
        sent(db, "a").await;
        assert_eq!(collect(db, &blobs).await, 1);
        assert!(!blobs.exists(&own).await.unwrap());
        assert!(blobs.exists(&shared).await.unwrap(), "b still needs it");
        assert_eq!(collect(db, &blobs).await, 0, "nothing released now");
        sent(db, "b").await;
        assert_eq!(collect(db, &blobs).await, 1);
        assert!(!blobs.exists(&shared).await.unwrap());

        // Another letter under a used id: what that request stored goes.
        let stray = blobs.put(&b"%PDF-1.7 stray"[..]).await.unwrap();
        let jobs = Jobs::new(db.clone());
        let mut other = new_letter("b", "{}");
        other.request_sha256 = "other content".into();
        let job = crate::send::job("b").unwrap();
        let outcome = insert_letter(
            db,
            &jobs,
            job,
            &other,
            std::slice::from_ref(&stray),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
        assert_eq!(outcome, Inserted::Conflict);
        assert_eq!(collect(db, &blobs).await, 1);
        assert!(!blobs.exists(&stray).await.unwrap());

        // The case system submits "a" again after it went: the same letter, its document
        // stored again by the request, and released at once.
        blobs.put(&b"%PDF-1.7 own"[..]).await.unwrap();
        assert_eq!(
            insert(db, "a", std::slice::from_ref(&own)).await,
            Inserted::Same
        );
        assert_eq!(collect(db, &blobs).await, 1);
        assert!(!blobs.exists(&own).await.unwrap());
    }

    /// A document a request stored without committing a letter is found in the store,
    /// released and collected; a document of an unsent letter, and an earlier version's
    /// sealed letter that an unsent letter names, are not.
    #[tokio::test]
    async fn documents_no_letter_refers_to_are_found_and_collected() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let blobs = store::BlobStore::memory();
        let kept = blobs.put(&b"%PDF-1.7 kept"[..]).await.unwrap();
        let orphan = blobs.put(&b"%PDF-1.7 orphan"[..]).await.unwrap();
        let sealed = blobs
            .put(&b"sealed by an earlier version"[..])
            .await
            .unwrap();
        assert_eq!(
            insert(db, "a", std::slice::from_ref(&kept)).await,
            Inserted::New
        );
        assert_eq!(insert(db, "b", &[]).await, Inserted::New);
        sqlx::query(
            "UPDATE avsender_letters SET dokumentpakke_sha256 = $1, dokumentpakke_size = $2 \
             WHERE letter_id = 'b'",
        )
        .bind(&sealed.sha256)
        .bind(i64::try_from(sealed.size).unwrap())
        .execute(db.pool())
        .await
        .unwrap();

        let now = OffsetDateTime::now_utc();
        let found = blobs
            .list_written_before(now + time::Duration::seconds(5))
            .await
            .unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(release_unreferenced(db, &found, now).await.unwrap(), 1);
        assert_eq!(collect(db, &blobs).await, 1);
        assert!(!blobs.exists(&orphan).await.unwrap());
        assert!(blobs.exists(&kept).await.unwrap());
        assert!(blobs.exists(&sealed).await.unwrap());
        // Found again, the unsent letter's document is still not released; once the letter
        // is sent it goes.
        assert_eq!(
            release_unreferenced(db, std::slice::from_ref(&kept), now)
                .await
                .unwrap(),
            0
        );
        assert_eq!(collect(db, &blobs).await, 0);
        assert!(blobs.exists(&kept).await.unwrap());
        sent(db, "a").await;
        assert_eq!(collect(db, &blobs).await, 1);
        assert!(!blobs.exists(&kept).await.unwrap());
    }

    /// A letter submitted before references were kept, still unsent at the upgrade, gets its
    /// references from its stored JSON, so a sent letter with the same document does not
    /// take it away.
    #[tokio::test]
    async fn documents_of_letters_unsent_at_the_upgrade_are_recorded() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let blobs = store::BlobStore::memory();
        let doc = blobs.put(&b"%PDF-1.7 brev"[..]).await.unwrap();
        let json = serde_json::json!({
            "id": "old",
            "personidentifikator": "01819000049",
            "ikkesensitivtittel": "Brev",
            "sikkerhetsnivaa": 3,
            "spraak": "NO",
            "documents": [{
                "filename": "brev.pdf",
                "mime": "application/pdf",
                "lang": "NO",
                "sha256": doc.sha256,
                "size": doc.size,
            }],
        })
        .to_string();
        let jobs = Jobs::new(db.clone());
        let l = new_letter("old", &json);
        let job = crate::send::job("old").unwrap();
        insert_letter(db, &jobs, job, &l, &[], OffsetDateTime::now_utc())
            .await
            .unwrap();
        assert_eq!(
            insert(db, "new", std::slice::from_ref(&doc)).await,
            Inserted::New
        );
        // The unsent letter submitted again: released by the repeat, kept for the letter.
        assert_eq!(
            insert(db, "new", std::slice::from_ref(&doc)).await,
            Inserted::Same
        );
        assert_eq!(collect(db, &blobs).await, 0);
        assert!(blobs.exists(&doc).await.unwrap());
        assert_eq!(record_blobs_of_unsent(db).await.unwrap(), 1);
        assert_eq!(record_blobs_of_unsent(db).await.unwrap(), 0, "once");
        sent(db, "new").await;
        assert_eq!(collect(db, &blobs).await, 0);
        assert!(blobs.exists(&doc).await.unwrap(), "the old letter needs it");
        sent(db, "old").await;
        assert_eq!(collect(db, &blobs).await, 1);
        assert!(!blobs.exists(&doc).await.unwrap());
    }
}
