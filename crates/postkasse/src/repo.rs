//! Every SQL statement of the mailbox provider (portable: `$n` placeholders, epoch-ms times,
//! flags as 0/1 integers). Letter queries always carry the citizen's id in the `WHERE` clause.

use store::blob_release::{self, ReleaseTables};
use store::{
    BlobRef, Db, Jobs, NativeReads, NewJob, StoreResult, rusqlite, sqlx, sqlx::Row,
    sqlx::any::AnyRow,
};
use time::OffsetDateTime;

use crate::receipts::RECEIPT_QUEUE;

pub const RECEIVED: &str = "received";
pub const STORED: &str = "stored";
pub const REJECTED: &str = "rejected";

/// The mailbox's blob reference tables (see [`store::blob_release`]).
pub const BLOB_TABLES: ReleaseTables = ReleaseTables {
    release: "postkasse_blob_release",
    references: "postkasse_documents",
};

fn ms(t: OffsetDateTime) -> i64 {
    store::to_ms(t)
}

// ---------------------------------------------------------------------------------------------
// Inbound

/// A received letter as the intake saw it.
pub struct NewInbound<'a> {
    pub tenant: &'a str,
    pub message_id: &'a str,
    pub forretningsmelding: &'a str,
    /// Digest and size of the encrypted dokumentpakke: they tell a repeat of the same
    /// letter from another letter under a used message id.
    pub sha256: &'a str,
    pub size: i64,
}

/// The job of a letter received by an earlier version, which stored the ciphertext and
/// processed it in a worker (see [`crate::process`]).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ProcessJob {
    pub tenant: String,
    pub message_id: String,
}

/// What processing a letter decided: the letter to store (or the reason it is refused) and
/// the signed receipt answering it.
pub struct Outcome<'a> {
    pub letter: Option<&'a NewLetter>,
    pub receipt: Option<&'a NewReceipt>,
    pub reason: Option<&'a str>,
}

/// Records a letter the intake has just processed, with its outcome, in one transaction;
/// `false` when the tenant has seen the message id before (nothing written). Nothing of the
/// ciphertext is kept: the row holds its digest, and the business message's digest (the
/// stored letter keeps the message itself).
pub async fn store_processed(
    db: &Db,
    jobs: &Jobs,
    m: &NewInbound<'_>,
    outcome: &Outcome<'_>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO postkasse_inbound (tenant, message_id, forretningsmelding, \
         dokumentpakke_sha256, dokumentpakke_size, state, received_at, forretningsmelding_sha256, \
         reason, processed_at) \
         VALUES ($1, $2, '', $3, $4, $5, $6, $7, $8, $6) ON CONFLICT (tenant, message_id) DO NOTHING",
    )
    .bind(m.tenant)
    .bind(m.message_id)
    .bind(m.sha256)
    .bind(m.size)
    .bind(if outcome.letter.is_some() { STORED } else { REJECTED })
    .bind(ms(now))
    .bind(dpi::jws::digest(m.forretningsmelding))
    .bind(outcome.reason)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        tx.rollback().await?;
        return Ok(false);
    }
    record_outcome_in(
        &mut tx,
        jobs,
        m.tenant,
        m.message_id,
        m.forretningsmelding,
        outcome,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub struct InboundRow {
    /// Empty once processed (the digest stays), except for a letter received before digests
    /// were kept and not digested yet.
    pub forretningsmelding: String,
    pub forretningsmelding_sha256: Option<String>,
    pub sha256: String,
    pub size: i64,
    pub state: String,
    /// The encrypted dokumentpakke; `None` once processed, or for a letter received before
    /// payloads moved into the database (its payload is in the blob store, by `sha256`).
    pub dokumentpakke: Option<Vec<u8>>,
}

pub async fn get_inbound(
    db: &Db,
    tenant: &str,
    message_id: &str,
) -> StoreResult<Option<InboundRow>> {
    let row = sqlx::query(
        "SELECT i.forretningsmelding, i.forretningsmelding_sha256, i.dokumentpakke_sha256, \
         i.dokumentpakke_size, i.state, p.data FROM postkasse_inbound i LEFT JOIN postkasse_payloads p \
         ON p.tenant = i.tenant AND p.message_id = i.message_id \
         WHERE i.tenant = $1 AND i.message_id = $2",
    )
    .bind(tenant)
    .bind(message_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| -> StoreResult<InboundRow> {
        Ok(InboundRow {
            forretningsmelding: r.try_get("forretningsmelding")?,
            forretningsmelding_sha256: r.try_get("forretningsmelding_sha256")?,
            sha256: r.try_get("dokumentpakke_sha256")?,
            size: r.try_get("dokumentpakke_size")?,
            state: r.try_get("state")?,
            dokumentpakke: r.try_get("data")?,
        })
    })
    .transpose()
}

/// Digests up to `limit` inbound letters received before digests were kept (walking the index
/// that holds only those) and empties the processed ones; the number digested, 0 when none is
/// left.
pub async fn digest_old_inbound(db: &Db, limit: i64) -> StoreResult<u64> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT tenant, message_id, forretningsmelding FROM postkasse_inbound \
         WHERE forretningsmelding_sha256 IS NULL ORDER BY tenant, message_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin_write().await?;
    let mut n = 0;
    for (tenant, message_id, jws) in &rows {
        // The state decides at the write (a letter processed meanwhile is emptied too); a row
        // without a digest is never emptied, so `jws` is still what the row holds.
        n += sqlx::query(
            "UPDATE postkasse_inbound SET forretningsmelding_sha256 = $3, \
             forretningsmelding = CASE WHEN state = $4 THEN forretningsmelding ELSE '' END \
             WHERE tenant = $1 AND message_id = $2 AND forretningsmelding_sha256 IS NULL",
        )
        .bind(tenant)
        .bind(message_id)
        .bind(dpi::jws::digest(jws))
        .bind(RECEIVED)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

/// Deletes one of the citizen's letters in the bin for good with its documents' rows, and
/// releases their blobs for [`collect_released_blobs`]; `false` when the citizen has no such
/// letter in the bin.
pub async fn delete_from_bin(
    db: &Db,
    citizen_id: &str,
    letter_id: &str,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    delete_in_bin(db, citizen_id, letter_id, None, now).await
}

/// [`delete_from_bin`], and only when the letter went to the bin before `binned_before` when
/// that is given (a letter restored and binned again since it was chosen is not due).
async fn delete_in_bin(
    db: &Db,
    citizen_id: &str,
    letter_id: &str,
    binned_before: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    // Only constant fragments are concatenated; every value is a bind parameter.
    let mut sql = String::from(
        "SELECT id FROM postkasse_letters WHERE id = $1 AND citizen_id = $2 AND folder = 'bin'",
    );
    if binned_before.is_some() {
        sql.push_str(" AND binned_at < $3");
    }
    let mut found = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
        .bind(letter_id)
        .bind(citizen_id);
    if let Some(before) = binned_before {
        found = found.bind(ms(before));
    }
    let found = found.fetch_optional(&mut *tx).await?;
    if found.is_none() {
        tx.rollback().await?;
        return Ok(false);
    }
    // One release row per content (a letter may carry the same document twice).
    let blobs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT sha256, MAX(size) FROM postkasse_documents WHERE letter_id = $1 \
         GROUP BY sha256 ORDER BY sha256",
    )
    .bind(letter_id)
    .fetch_all(&mut *tx)
    .await?;
    for (sha256, size) in blobs {
        let blob = BlobRef::from_row(sha256, size);
        blob_release::release_in(&mut tx, &BLOB_TABLES, &blob, now).await?;
    }
    sqlx::query("DELETE FROM postkasse_documents WHERE letter_id = $1")
        .bind(letter_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM postkasse_letters WHERE id = $1 AND citizen_id = $2")
        .bind(letter_id)
        .bind(citizen_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes for good up to `limit` letters that went to the bin before `binned_before`, as
/// [`delete_from_bin`] does; how many.
pub async fn empty_bins(
    db: &Db,
    binned_before: OffsetDateTime,
    now: OffsetDateTime,
    limit: i64,
) -> StoreResult<usize> {
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT citizen_id, id FROM postkasse_letters \
         WHERE binned_at < $1 AND folder = 'bin' ORDER BY binned_at LIMIT $2",
    )
    .bind(ms(binned_before))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut deleted = 0;
    for (citizen_id, letter_id) in due {
        if delete_in_bin(db, &citizen_id, &letter_id, Some(binned_before), now).await? {
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes up to `limit` blobs of deleted letters that no letter refers to any more; how many.
pub async fn collect_released_blobs(
    db: &Db,
    blobs: &store::BlobStore,
    now: OffsetDateTime,
    limit: i64,
) -> StoreResult<usize> {
    blob_release::collect_released(db, blobs, &BLOB_TABLES, now, limit).await
}

pub async fn inbound_status(
    db: &Db,
    tenant: &str,
    message_id: &str,
) -> StoreResult<Option<(String, Option<String>)>> {
    let row = sqlx::query(
        "SELECT state, reason FROM postkasse_inbound WHERE tenant = $1 AND message_id = $2",
    )
    .bind(tenant)
    .bind(message_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| -> StoreResult<(String, Option<String>)> {
        Ok((r.try_get("state")?, r.try_get("reason")?))
    })
    .transpose()
}

// ---------------------------------------------------------------------------------------------
// Citizens

pub async fn upsert_citizen(
    db: &Db,
    tenant: &str,
    postkasseadresse: &str,
    fnr: &str,
    name: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    // The address is the DPI key; a citizen who changes address at the same provider keeps
    // their letters (same fnr row, new address).
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM postkasse_citizens WHERE tenant = $1 AND fnr = $2")
            .bind(tenant)
            .bind(fnr)
            .fetch_optional(db.pool())
            .await?;
    if let Some(existing) = existing {
        sqlx::query(
            "UPDATE postkasse_citizens SET postkasseadresse = $2, name = COALESCE($3, name), \
             updated_at = $4 WHERE id = $1",
        )
        .bind(&existing)
        .bind(postkasseadresse)
        .bind(name)
        .bind(ms(now))
        .execute(db.pool())
        .await?;
        return Ok(existing);
    }
    sqlx::query(
        "INSERT INTO postkasse_citizens (id, tenant, postkasseadresse, fnr, name, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(tenant)
    .bind(postkasseadresse)
    .bind(fnr)
    .bind(name)
    .bind(ms(now))
    .execute(db.pool())
    .await?;
    // A concurrent upsert may have won; the row for this fnr is the answer either way.
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM postkasse_citizens WHERE tenant = $1 AND fnr = $2")
            .bind(tenant)
            .bind(fnr)
            .fetch_optional(db.pool())
            .await?;
    id.ok_or_else(|| {
        store::StoreError::Database(sqlx::Error::Protocol(
            "postkasseadresse belongs to another citizen".into(),
        ))
    })
}

pub async fn citizen_by_address(
    db: &Db,
    tenant: &str,
    postkasseadresse: &str,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM postkasse_citizens WHERE tenant = $1 AND postkasseadresse = $2",
    )
    .bind(tenant)
    .bind(postkasseadresse)
    .fetch_optional(db.pool())
    .await?)
}

pub async fn citizen_by_fnr(db: &Db, tenant: &str, fnr: &str) -> StoreResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM postkasse_citizens WHERE tenant = $1 AND fnr = $2")
            .bind(tenant)
            .bind(fnr)
            .fetch_optional(db.pool())
            .await?,
    )
}

// ---------------------------------------------------------------------------------------------
// Processing outcome

pub struct NewLetter {
    pub id: String,
    pub citizen_id: String,
    pub conversation_id: String,
    pub sender_orgnr: String,
    pub sender_name: Option<String>,
    pub avsenderidentifikator: Option<String>,
    pub ikkesensitivtittel: String,
    pub tittel: Option<String>,
    pub sikkerhetsnivaa: i64,
    pub spraak: String,
    pub aapningskvittering: bool,
    pub lenke: Option<String>,
    pub visible_from: OffsetDateTime,
    pub documents: Vec<NewDocument>,
}

pub struct NewDocument {
    pub href: String,
    pub mime: String,
    pub title: Option<String>,
    pub lang: Option<String>,
    pub role: &'static str,
    pub sha256: String,
    pub size: i64,
    pub extension: Option<String>,
}

impl NewDocument {
    /// The document's blob.
    pub fn blob(&self) -> BlobRef {
        BlobRef::from_row(self.sha256.clone(), self.size)
    }
}

pub struct NewReceipt {
    pub id: String,
    /// The receipt's message type key ([`receipt_kind`]); with `UNIQUE (tenant, message_id,
    /// kind)` it makes each receipt once-only per letter.
    pub kind: &'static str,
    pub jws: String,
}

/// The `kind` a receipt is stored under: its message type key, and for a
/// `varslingfeiletkvittering` also the channel — the sender learns of a failed channel once,
/// however many of its notifications (repetition days) fail.
pub fn receipt_kind(kind: &dpi::receipt::ReceiptKind) -> &'static str {
    use dpi::{message::Varslingskanal, receipt::ReceiptKind};
    match kind {
        ReceiptKind::VarslingFeilet {
            kanal: Varslingskanal::Epost,
            ..
        } => "varslingfeiletkvittering:epost",
        ReceiptKind::VarslingFeilet {
            kanal: Varslingskanal::Sms,
            ..
        } => "varslingfeiletkvittering:sms",
        k => k.message_type().key(),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct ReceiptJob {
    pub receipt_id: String,
}

/// The whole result of processing a letter an earlier version received and left `received`
/// for its worker, in one transaction: the inbound row leaves `received` (only once: `false`
/// when another worker got there first, nothing written) keeping only the digest of its
/// business message `forretningsmelding` (a row without one keeps the message until
/// [`digest_old_inbound`] has made one) and its encrypted payload is deleted, the letter and
/// its documents are stored when accepted, and the receipt and its delivery job are queued.
pub async fn finish_inbound(
    db: &Db,
    jobs: &Jobs,
    tenant: &str,
    message_id: &str,
    forretningsmelding: &str,
    outcome: &Outcome<'_>,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let Outcome { letter, reason, .. } = *outcome;
    let mut tx = db.begin_write().await?;
    let moved = sqlx::query(
        "UPDATE postkasse_inbound SET state = $3, reason = $4, processed_at = $5, \
         forretningsmelding = CASE WHEN forretningsmelding_sha256 IS NULL \
         THEN forretningsmelding ELSE '' END \
         WHERE tenant = $1 AND message_id = $2 AND state = $6",
    )
    .bind(tenant)
    .bind(message_id)
    .bind(if letter.is_some() { STORED } else { REJECTED })
    .bind(reason)
    .bind(ms(now))
    .bind(RECEIVED)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !moved {
        tx.rollback().await?;
        return Ok(false);
    }
    // The documents are stored (or the letter refused): the ciphertext has served its turn.
    sqlx::query("DELETE FROM postkasse_payloads WHERE tenant = $1 AND message_id = $2")
        .bind(tenant)
        .bind(message_id)
        .execute(&mut *tx)
        .await?;
    record_outcome_in(
        &mut tx,
        jobs,
        tenant,
        message_id,
        forretningsmelding,
        outcome,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The letter with its documents (held against a collector until the commit) and the
/// receipt with its delivery job, on the transaction that settles the inbound row.
async fn record_outcome_in(
    tx: &mut sqlx::AnyConnection,
    jobs: &Jobs,
    tenant: &str,
    message_id: &str,
    forretningsmelding: &str,
    outcome: &Outcome<'_>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    if let Some(l) = outcome.letter {
        let blobs: Vec<BlobRef> = l.documents.iter().map(NewDocument::blob).collect();
        blob_release::claim_in(&mut *tx, &BLOB_TABLES, &blobs).await?;
        sqlx::query(
            "INSERT INTO postkasse_letters (id, tenant, citizen_id, message_id, conversation_id, \
             sender_orgnr, sender_name, avsenderidentifikator, ikkesensitivtittel, tittel, \
             sikkerhetsnivaa, spraak, aapningskvittering, lenke, forretningsmelding, folder, \
             visible_from, received_at, attachments) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'inbox', \
             $16, $17, $18)",
        )
        .bind(&l.id)
        .bind(tenant)
        .bind(&l.citizen_id)
        .bind(message_id)
        .bind(&l.conversation_id)
        .bind(&l.sender_orgnr)
        .bind(l.sender_name.as_deref())
        .bind(l.avsenderidentifikator.as_deref())
        .bind(&l.ikkesensitivtittel)
        .bind(l.tittel.as_deref())
        .bind(l.sikkerhetsnivaa)
        .bind(&l.spraak)
        .bind(i64::from(l.aapningskvittering))
        .bind(l.lenke.as_deref())
        .bind(forretningsmelding)
        .bind(ms(l.visible_from))
        .bind(ms(now))
        .bind(attachment_count(&l.documents))
        .execute(&mut *tx)
        .await?;
        for (n, d) in l.documents.iter().enumerate() {
            sqlx::query(
                "INSERT INTO postkasse_documents (letter_id, n, href, mime, title, lang, role, \
                 sha256, size, extension) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&l.id)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .bind(&d.href)
            .bind(&d.mime)
            .bind(d.title.as_deref())
            .bind(d.lang.as_deref())
            .bind(d.role)
            .bind(&d.sha256)
            .bind(d.size)
            .bind(d.extension.as_deref())
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Some(receipt) = outcome.receipt {
        queue_receipt_in(&mut *tx, jobs, tenant, message_id, receipt, now).await?;
    }
    Ok(())
}

/// Inserts a receipt (once per letter and kind) and its delivery job on an open transaction.
/// `false` when this kind of receipt exists already for the letter.
async fn queue_receipt_in(
    conn: &mut sqlx::AnyConnection,
    jobs: &Jobs,
    tenant: &str,
    message_id: &str,
    receipt: &NewReceipt,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let inserted = sqlx::query(
        "INSERT INTO postkasse_receipts (id, tenant, message_id, kind, jws, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&receipt.id)
    .bind(tenant)
    .bind(message_id)
    .bind(receipt.kind)
    .bind(&receipt.jws)
    .bind(ms(now))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        let job = NewJob::new(
            RECEIPT_QUEUE,
            &ReceiptJob {
                receipt_id: receipt.id.clone(),
            },
        )?
        .dedup_key(receipt.id.clone());
        jobs.enqueue_in(conn, job).await?;
    }
    Ok(inserted)
}

/// Queues a receipt (once per letter and kind) with its delivery job; `false` when this kind
/// of receipt exists already for the letter (nothing written).
pub async fn queue_receipt(
    db: &Db,
    jobs: &Jobs,
    tenant: &str,
    message_id: &str,
    receipt: &NewReceipt,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    let queued = queue_receipt_in(&mut tx, jobs, tenant, message_id, receipt, now).await?;
    tx.commit().await?;
    Ok(queued)
}

/// Whether the letter has a receipt of `kind` already.
pub async fn has_receipt(db: &Db, tenant: &str, message_id: &str, kind: &str) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM postkasse_receipts WHERE tenant = $1 AND message_id = $2 \
         AND kind = $3",
    )
    .bind(tenant)
    .bind(message_id)
    .bind(kind)
    .fetch_one(db.pool())
    .await?;
    Ok(n > 0)
}

// ---------------------------------------------------------------------------------------------
// Receipts

pub struct ReceiptRow {
    pub tenant: String,
    pub jws: String,
    pub sent_at: Option<i64>,
}

pub async fn get_receipt(db: &Db, id: &str) -> StoreResult<Option<ReceiptRow>> {
    let row = sqlx::query("SELECT tenant, jws, sent_at FROM postkasse_receipts WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.map(|r| -> StoreResult<ReceiptRow> {
        Ok(ReceiptRow {
            tenant: r.try_get("tenant")?,
            jws: r.try_get("jws")?,
            sent_at: r.try_get("sent_at")?,
        })
    })
    .transpose()
}

/// Marks a receipt sent (or given up on, with the `error`). A receipt the access point took is
/// not needed again (its row stays: one receipt of each kind per letter), so its signed
/// message goes; one given up on keeps it for an operator.
pub async fn receipt_sent(
    db: &Db,
    id: &str,
    error: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE postkasse_receipts SET sent_at = $2, last_error = $3, \
         jws = CASE WHEN $3 IS NULL THEN '' ELSE jws END WHERE id = $1",
    )
    .bind(id)
    .bind(ms(now))
    .bind(error)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn receipt_error(db: &Db, id: &str, error: &str) -> StoreResult<()> {
    sqlx::query("UPDATE postkasse_receipts SET last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Receipts of one letter (by its message id), for tests and operators: (kind, jws, sent);
/// the jws is empty once the access point has taken the receipt.
pub async fn receipts_of(
    db: &Db,
    tenant: &str,
    message_id: &str,
) -> StoreResult<Vec<(String, String, bool)>> {
    let rows = sqlx::query(
        "SELECT kind, jws, sent_at FROM postkasse_receipts WHERE tenant = $1 AND message_id = $2 \
         ORDER BY created_at",
    )
    .bind(tenant)
    .bind(message_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("kind")?,
                r.try_get("jws")?,
                r.try_get::<Option<i64>, _>("sent_at")?.is_some(),
            ))
        })
        .collect()
}

pub async fn letter_count(db: &Db, tenant: &str) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM postkasse_letters WHERE tenant = $1")
            .bind(tenant)
            .fetch_one(db.pool())
            .await?,
    )
}

// ---------------------------------------------------------------------------------------------
// Letters, always within one citizen

/// One letter as the letter view needs it: its inbox row and the rest.
pub struct LetterRow {
    pub list: ListRow,
    pub message_id: String,
    pub conversation_id: String,
    pub avsenderidentifikator: Option<String>,
    pub spraak: String,
    pub lenke: Option<String>,
    pub received_at: i64,
    /// When it went to the bin, while it is there.
    pub binned_at: Option<i64>,
}

/// What a row of the inbox shows, and no more: the `Any` driver converts every selected
/// column of every row (the conversion was 17% of an inbox page's CPU in perf).
pub struct ListRow {
    pub id: String,
    pub sender_orgnr: String,
    pub sender_name: Option<String>,
    pub ikkesensitivtittel: String,
    pub tittel: Option<String>,
    pub sikkerhetsnivaa: i64,
    pub aapningskvittering: bool,
    pub folder: String,
    pub visible_from: i64,
    pub opened_at: Option<i64>,
    pub receipt_accepted_at: Option<i64>,
    pub attachments: i64,
}

const LIST_COLUMNS: &str = "id, sender_orgnr, sender_name, ikkesensitivtittel, tittel, \
    sikkerhetsnivaa, aapningskvittering, folder, visible_from, opened_at, receipt_accepted_at, \
    attachments";

/// Decodes a row of the letter reads through sqlx's own driver ([`Db::native_reads`] on
/// PostgreSQL; `list_row_sqlite` is the same for SQLite): every column is TEXT or BIGINT.
///
/// By position in [`LIST_COLUMNS`] (a test holds the two in step): looking each column up by
/// name was a quarter of decoding an inbox page's rows.
fn list_row<R: Row>(r: &R) -> StoreResult<ListRow>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(ListRow {
        id: r.try_get(0)?,
        sender_orgnr: r.try_get(1)?,
        sender_name: r.try_get(2)?,
        ikkesensitivtittel: r.try_get(3)?,
        tittel: r.try_get(4)?,
        sikkerhetsnivaa: r.try_get(5)?,
        aapningskvittering: r.try_get::<i64, _>(6)? != 0,
        folder: r.try_get(7)?,
        visible_from: r.try_get(8)?,
        opened_at: r.try_get(9)?,
        receipt_accepted_at: r.try_get(10)?,
        attachments: r.try_get(11)?,
    })
}

const LETTER_COLUMNS: &str = "id, sender_orgnr, sender_name, ikkesensitivtittel, tittel, \
    sikkerhetsnivaa, aapningskvittering, folder, visible_from, opened_at, receipt_accepted_at, \
    attachments, message_id, conversation_id, avsenderidentifikator, spraak, lenke, received_at, \
    binned_at";

/// The number stored in `postkasse_letters.attachments`: the letter's `vedlegg` documents.
fn attachment_count(documents: &[NewDocument]) -> i64 {
    let n = documents.iter().filter(|d| d.role == "vedlegg").count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn letter_row<R: Row>(r: &R) -> StoreResult<LetterRow>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(LetterRow {
        list: list_row(r)?,
        message_id: r.try_get("message_id")?,
        conversation_id: r.try_get("conversation_id")?,
        avsenderidentifikator: r.try_get("avsenderidentifikator")?,
        spraak: r.try_get("spraak")?,
        lenke: r.try_get("lenke")?,
        received_at: r.try_get("received_at")?,
        binned_at: r.try_get("binned_at")?,
    })
}

/// A bind value of a dynamically assembled (constant-fragment) query.
pub enum Val {
    S(String),
    I(i64),
}

pub struct ListFilter {
    pub folder: &'static str,
    pub sender_orgnr: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub unread_only: bool,
    /// Lower-case `LIKE` pattern, already escaped.
    pub search: Option<String>,
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// One page of a citizen's visible letters, newest first (keyset on `(visible_from, id)`).
pub async fn list_letters(
    db: &Db,
    citizen_id: &str,
    f: &ListFilter,
    now: OffsetDateTime,
) -> StoreResult<Vec<ListRow>> {
    // Only constant fragments are concatenated; every value is a bind parameter.
    let mut sql = format!(
        "SELECT {LIST_COLUMNS} FROM postkasse_letters \
         WHERE citizen_id = $1 AND folder = $2 AND visible_from <= $3"
    );
    // After a cursor, the cursor's time is the upper bound too (its rows are older still): in
    // the bound's place it is what SQLite seeks the index to. With `now` there, SQLite walked
    // every newer letter of the citizen to reach the cursor (the row comparison below is
    // only a filter to it): the query took 103 µs at page 51 of 10,000 letters against 33 µs
    // for the first page, and grew with the depth.
    let newest = match &f.after {
        Some((t, _)) => ms(now).min(*t),
        None => ms(now),
    };
    let mut vals = vec![
        Val::S(citizen_id.to_owned()),
        Val::S(f.folder.to_owned()),
        Val::I(newest),
    ];
    let next = |sql: &mut String, frag: &str, v: Val, vals: &mut Vec<Val>| {
        vals.push(v);
        sql.push_str(&frag.replace('?', &format!("${}", vals.len())));
    };
    if let Some(s) = &f.sender_orgnr {
        next(
            &mut sql,
            " AND sender_orgnr = ?",
            Val::S(s.clone()),
            &mut vals,
        );
    }
    if let Some(t) = f.from_ms {
        next(&mut sql, " AND visible_from >= ?", Val::I(t), &mut vals);
    }
    if let Some(t) = f.to_ms {
        next(&mut sql, " AND visible_from < ?", Val::I(t), &mut vals);
    }
    if f.unread_only {
        sql.push_str(" AND opened_at IS NULL");
    }
    if let Some(p) = &f.search {
        vals.push(Val::S(p.clone()));
        let n = vals.len();
        sql.push_str(&format!(
            " AND (LOWER(ikkesensitivtittel) LIKE ${n} ESCAPE '\\' \
             OR LOWER(COALESCE(sender_name, '')) LIKE ${n} ESCAPE '\\' \
             OR sender_orgnr LIKE ${n} ESCAPE '\\')"
        ));
    }
    if let Some((t, id)) = &f.after {
        vals.push(Val::I(*t));
        let a = vals.len();
        vals.push(Val::S(id.clone()));
        let b = vals.len();
        // A row comparison, not `a < x OR (a = x AND id < y)`: PostgreSQL makes only the
        // row form an index condition; the OR form walked every newer letter of the
        // citizen as a filter (38 ms at page 51 of 10,000 letters, against 0.06 ms).
        sql.push_str(&format!(" AND (visible_from, id) < (${a}, ${b})"));
    }
    vals.push(Val::I(f.limit));
    sql.push_str(&format!(
        " ORDER BY visible_from DESC, id DESC LIMIT ${}",
        vals.len()
    ));
    // The inbox page's one query: through the native driver (see `Db::native_reads`).
    match db.native_reads() {
        NativeReads::Postgres(pool) => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in vals {
                q = match v {
                    Val::S(s) => q.bind(s),
                    Val::I(i) => q.bind(i),
                };
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter().map(list_row).collect()
        }
        NativeReads::Sqlite(reads) => {
            let read = |c: &rusqlite::Connection| {
                let mut st = c.prepare_cached(&sql)?;
                bind_all(&mut st, &vals)?;
                let mut rows = st.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(list_row_sqlite(r)?);
                }
                Ok(out)
            };
            // A search walks the citizen's letters; a page is an index seek.
            if f.search.is_some() {
                reads.read_blocking(read)
            } else {
                reads.read(read)
            }
        }
    }
}

/// Binds `vals` to `$1, $2, …` (by name: a number may repeat in the statement).
fn bind_all(st: &mut rusqlite::CachedStatement<'_>, vals: &[Val]) -> rusqlite::Result<()> {
    for (n, v) in vals.iter().enumerate() {
        let Some(i) = st.parameter_index(&format!("${}", n + 1))? else {
            continue;
        };
        match v {
            Val::S(s) => st.raw_bind_parameter(i, s)?,
            Val::I(x) => st.raw_bind_parameter(i, x)?,
        }
    }
    Ok(())
}

/// [`list_row`] for a row read by `rusqlite` (same positions).
fn list_row_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListRow> {
    Ok(ListRow {
        id: r.get(0)?,
        sender_orgnr: r.get(1)?,
        sender_name: r.get(2)?,
        ikkesensitivtittel: r.get(3)?,
        tittel: r.get(4)?,
        sikkerhetsnivaa: r.get(5)?,
        aapningskvittering: r.get::<_, i64>(6)? != 0,
        folder: r.get(7)?,
        visible_from: r.get(8)?,
        opened_at: r.get(9)?,
        receipt_accepted_at: r.get(10)?,
        attachments: r.get(11)?,
    })
}

/// One visible letter of the citizen.
pub async fn get_letter(
    db: &Db,
    citizen_id: &str,
    letter_id: &str,
    now: OffsetDateTime,
) -> StoreResult<Option<LetterRow>> {
    let sql = format!(
        "SELECT {LETTER_COLUMNS} FROM postkasse_letters \
         WHERE id = $1 AND citizen_id = $2 AND visible_from <= $3"
    );
    match db.native_reads() {
        NativeReads::Postgres(pool) => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(letter_id)
                .bind(citizen_id)
                .bind(ms(now))
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(letter_row).transpose()
        }
        NativeReads::Sqlite(reads) => reads.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let mut rows = st.query((letter_id, citizen_id, ms(now)))?;
            let Some(r) = rows.next()? else {
                return Ok(None);
            };
            // By position in LETTER_COLUMNS, which starts with LIST_COLUMNS (a test says so).
            Ok(Some(LetterRow {
                list: list_row_sqlite(r)?,
                message_id: r.get(12)?,
                conversation_id: r.get(13)?,
                avsenderidentifikator: r.get(14)?,
                spraak: r.get(15)?,
                lenke: r.get(16)?,
                received_at: r.get(17)?,
                binned_at: r.get(18)?,
            }))
        }),
    }
}

/// A stored letter as the notification scanner needs it.
pub struct StoredLetterRow {
    pub id: String,
    pub tenant: String,
    pub fnr: String,
    pub visible_from: i64,
    pub received_at: i64,
    pub forretningsmelding: String,
}

/// Letters of every citizen stored after the position `(received_at, id)`, oldest first, at
/// most `limit`: a keyset on the index `postkasse_letters_received`, so letters stored in the
/// same millisecond are never skipped at a page boundary. `after_id = ""` starts at
/// `received_at` itself.
pub async fn letters_stored_after(
    db: &Db,
    received_at: i64,
    after_id: &str,
    limit: i64,
) -> StoreResult<Vec<StoredLetterRow>> {
    let rows = sqlx::query(
        "SELECT l.id, l.tenant, c.fnr, l.visible_from, l.received_at, l.forretningsmelding \
         FROM postkasse_letters l JOIN postkasse_citizens c ON c.id = l.citizen_id \
         WHERE l.received_at >= $1 AND (l.received_at > $1 OR l.id > $2) \
         ORDER BY l.received_at, l.id LIMIT $3",
    )
    .bind(received_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredLetterRow {
                id: r.try_get("id")?,
                tenant: r.try_get("tenant")?,
                fnr: r.try_get("fnr")?,
                visible_from: r.try_get("visible_from")?,
                received_at: r.try_get("received_at")?,
                forretningsmelding: r.try_get("forretningsmelding")?,
            })
        })
        .collect()
}

pub struct DocumentRow {
    pub n: i64,
    pub href: String,
    pub mime: String,
    pub title: Option<String>,
    pub lang: Option<String>,
    pub role: String,
    pub sha256: String,
    pub size: i64,
    pub extension: Option<String>,
}

fn document_row(r: &AnyRow) -> StoreResult<DocumentRow> {
    Ok(DocumentRow {
        n: r.try_get("n")?,
        href: r.try_get("href")?,
        mime: r.try_get("mime")?,
        title: r.try_get("title")?,
        lang: r.try_get("lang")?,
        role: r.try_get("role")?,
        sha256: r.try_get("sha256")?,
        size: r.try_get("size")?,
        extension: r.try_get("extension")?,
    })
}

/// The documents of a letter; callers have checked the letter belongs to the citizen, and the
/// join repeats that check.
pub async fn documents(
    db: &Db,
    citizen_id: &str,
    letter_id: &str,
) -> StoreResult<Vec<DocumentRow>> {
    let rows = sqlx::query(
        "SELECT d.n, d.href, d.mime, d.title, d.lang, d.role, d.sha256, d.size, d.extension \
         FROM postkasse_documents d JOIN postkasse_letters l ON l.id = d.letter_id \
         WHERE d.letter_id = $1 AND l.citizen_id = $2 ORDER BY d.n",
    )
    .bind(letter_id)
    .bind(citizen_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(document_row).collect()
}

/// Sets `opened_at` (keeping the first time) or clears it (`None`).
pub async fn set_opened(
    db: &Db,
    citizen_id: &str,
    letter_id: &str,
    opened: Option<OffsetDateTime>,
) -> StoreResult<bool> {
    let n = match opened {
        Some(t) => sqlx::query(
            "UPDATE postkasse_letters SET opened_at = COALESCE(opened_at, $3) \
             WHERE id = $1 AND citizen_id = $2",
        )
        .bind(letter_id)
        .bind(citizen_id)
        .bind(ms(t))
        .execute(db.pool())
        .await?
        .rows_affected(),
        None => sqlx::query(
            "UPDATE postkasse_letters SET opened_at = NULL WHERE id = $1 AND citizen_id = $2",
        )
        .bind(letter_id)
        .bind(citizen_id)
        .execute(db.pool())
        .await?
        .rows_affected(),
    };
    Ok(n == 1)
}

/// Moves the letter; a letter going to the bin keeps the time it first went there until it
/// leaves it (the bin is emptied by that time), other folders have none.
pub async fn set_folder(
    db: &Db,
    citizen_id: &str,
    letter_id: &str,
    folder: &str,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let binned_at = (folder == "bin").then(|| ms(now));
    let n = sqlx::query(
        "UPDATE postkasse_letters SET folder = $3, \
         binned_at = CASE WHEN folder = 'bin' AND $3 = 'bin' THEN binned_at ELSE $4 END \
         WHERE id = $1 AND citizen_id = $2",
    )
    .bind(letter_id)
    .bind(citizen_id)
    .bind(folder)
    .bind(binned_at)
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The signed business message of a citizen's letter (to answer it with a receipt).
pub async fn letter_forretningsmelding(
    db: &Db,
    citizen_id: &str,
    letter_id: &str,
) -> StoreResult<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT tenant, forretningsmelding FROM postkasse_letters WHERE id = $1 AND citizen_id = $2",
    )
    .bind(letter_id)
    .bind(citizen_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| -> StoreResult<(String, String)> {
        Ok((r.try_get("tenant")?, r.try_get("forretningsmelding")?))
    })
    .transpose()
}

/// Records the citizen's acceptance of the opening receipt, opens the letter and queues the
/// `aapningskvittering`, in one transaction. `false` when it was accepted before.
#[allow(clippy::too_many_arguments)]
pub async fn accept_opening_receipt(
    db: &Db,
    jobs: &Jobs,
    citizen_id: &str,
    letter_id: &str,
    tenant: &str,
    message_id: &str,
    receipt: &NewReceipt,
    now: OffsetDateTime,
) -> StoreResult<bool> {
    let mut tx = db.begin_write().await?;
    let n = sqlx::query(
        "UPDATE postkasse_letters SET receipt_accepted_at = $3, \
         opened_at = COALESCE(opened_at, $3) \
         WHERE id = $1 AND citizen_id = $2 AND receipt_accepted_at IS NULL",
    )
    .bind(letter_id)
    .bind(citizen_id)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    queue_receipt_in(&mut tx, jobs, tenant, message_id, receipt, now).await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    /// `list_row` and `list_row_sqlite` read by position, and the SQLite read of a letter
    /// reads `LETTER_COLUMNS`' tail by position: a column added, dropped or moved must be
    /// moved in those too (and here).
    #[test]
    fn list_columns_are_in_the_order_list_row_reads_them() {
        let columns: Vec<&str> = super::LIST_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(
            columns,
            [
                "id",
                "sender_orgnr",
                "sender_name",
                "ikkesensitivtittel",
                "tittel",
                "sikkerhetsnivaa",
                "aapningskvittering",
                "folder",
                "visible_from",
                "opened_at",
                "receipt_accepted_at",
                "attachments",
            ]
        );
        assert!(super::LETTER_COLUMNS.starts_with(super::LIST_COLUMNS));
        let tail: Vec<&str> = super::LETTER_COLUMNS.split(',').map(str::trim).collect();
        assert_eq!(
            tail.get(12..),
            Some(
                &[
                    "message_id",
                    "conversation_id",
                    "avsenderidentifikator",
                    "spraak",
                    "lenke",
                    "received_at",
                    "binned_at",
                ][..]
            )
        );
    }

    /// The inbox page reads only what `postkasse_letters_box` holds (migration
    /// 202612010100): a column added to `LIST_COLUMNS` must go into the index too, or every
    /// row of every page costs a table lookup again. SQLite's plan says so deterministically;
    /// PostgreSQL's depends on its visibility map.
    #[tokio::test]
    async fn the_inbox_page_is_read_from_the_index_alone() {
        let t = store::testing::fresh_db().await;
        if t.db().backend() != store::Backend::Sqlite {
            return;
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN SELECT {LIST_COLUMNS} FROM postkasse_letters \
             WHERE citizen_id = 'c' AND folder = 'inbox' AND visible_from <= 1 \
             ORDER BY visible_from DESC, id DESC LIMIT 21"
        )))
        .fetch_all(t.db().pool())
        .await
        .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.try_get("detail").unwrap()).collect();
        assert_eq!(
            plan,
            [
                "SEARCH postkasse_letters USING COVERING INDEX postkasse_letters_box \
              (citizen_id=? AND folder=? AND visible_from<?)"
            ]
        );
    }

    use super::*;

    /// Keyset pages of two over letters that share their times (three in one millisecond,
    /// two in another, one in the future): every visible letter once, newest first, ties by
    /// id descending, and the one not yet visible never.
    #[tokio::test]
    async fn keyset_pages_cover_letters_of_the_same_millisecond_once() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        sqlx::query(
            "INSERT INTO postkasse_citizens (id, tenant, postkasseadresse, fnr, name, \
             created_at, updated_at) VALUES ('c', 't', 'a', 'f', NULL, 0, 0)",
        )
        .execute(db.pool())
        .await
        .unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let at = ms(now);
        let letters = [
            ("l1", at - 10),
            ("l2", at - 10),
            ("l3", at - 10),
            ("l4", at - 20),
            ("l5", at - 20),
            ("l6", at + 1000),
        ];
        for (id, visible) in letters {
            sqlx::query(
                "INSERT INTO postkasse_letters (id, tenant, citizen_id, message_id, \
                 conversation_id, sender_orgnr, ikkesensitivtittel, sikkerhetsnivaa, spraak, \
                 aapningskvittering, forretningsmelding, folder, visible_from, received_at) \
                 VALUES ($1, 't', 'c', $1, 'k', '991825827', 'x', 3, 'no', 0, '-', 'inbox', \
                 $2, $2)",
            )
            .bind(id)
            .bind(visible)
            .execute(db.pool())
            .await
            .unwrap();
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let filter = ListFilter {
                folder: "inbox",
                sender_orgnr: None,
                from_ms: None,
                to_ms: None,
                unread_only: false,
                search: None,
                after: after.clone(),
                limit: 2,
            };
            let page = list_letters(db, "c", &filter, now).await.unwrap();
            let Some(last) = page.last() else { break };
            after = Some((last.visible_from, last.id.clone()));
            seen.extend(page.into_iter().map(|r| r.id));
        }
        assert_eq!(seen, ["l3", "l2", "l1", "l5", "l4"]);
    }

    async fn kept(db: &Db, id: &str) -> (String, Option<String>) {
        sqlx::query_as(
            "SELECT forretningsmelding, forretningsmelding_sha256 FROM postkasse_inbound \
             WHERE tenant = 't' AND message_id = $1",
        )
        .bind(id)
        .fetch_one(db.pool())
        .await
        .unwrap()
    }

    /// A letter as a version before in-request processing received it: the inbound row in
    /// `received` (with its digest when `digested`), its ciphertext and its processing job.
    async fn received_by_an_earlier_version(
        db: &Db,
        jobs: &Jobs,
        m: &NewInbound<'_>,
        digested: bool,
        dokumentpakke: &[u8],
    ) {
        let mut tx = db.begin_write().await.unwrap();
        sqlx::query(
            "INSERT INTO postkasse_inbound (tenant, message_id, forretningsmelding, \
             dokumentpakke_sha256, dokumentpakke_size, state, received_at, \
             forretningsmelding_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(m.tenant)
        .bind(m.message_id)
        .bind(m.forretningsmelding)
        .bind(m.sha256)
        .bind(m.size)
        .bind(RECEIVED)
        .bind(ms(OffsetDateTime::now_utc()))
        .bind(digested.then(|| dpi::jws::digest(m.forretningsmelding)))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO postkasse_payloads (tenant, message_id, data) VALUES ($1, $2, $3)",
        )
        .bind(m.tenant)
        .bind(m.message_id)
        .bind(dokumentpakke)
        .execute(&mut *tx)
        .await
        .unwrap();
        let job = NewJob::new(
            crate::process::PROCESS_QUEUE,
            &ProcessJob {
                tenant: m.tenant.to_owned(),
                message_id: m.message_id.to_owned(),
            },
        )
        .unwrap();
        jobs.enqueue_in(&mut tx, job).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Letters received before digests were kept: one processed by that version, one still
    /// waiting, and one processed after the upgrade but before the task ran (which keeps its
    /// message, having no digest). The task digests them in batches, empties the processed
    /// ones and leaves the waiting one its message for processing; a letter processed now
    /// keeps only the digest, and so does a letter an earlier version received with one.
    #[tokio::test]
    async fn inbound_letters_from_before_digests_are_digested() {
        let t = store::testing::fresh_db().await;
        let db = t.db();
        let jobs = Jobs::new(db.clone());
        let now = OffsetDateTime::now_utc();
        let refused = Outcome {
            letter: None,
            receipt: None,
            reason: Some("no"),
        };
        for id in [
            "old-stored",
            "old-waiting",
            "old-rejected-now",
            "digested",
            "new",
        ] {
            let jws = format!("jws-{id}");
            let m = NewInbound {
                tenant: "t",
                message_id: id,
                forretningsmelding: &jws,
                sha256: "00",
                size: 3,
            };
            if id == "new" {
                assert!(store_processed(db, &jobs, &m, &refused, now).await.unwrap());
                // Once only.
                assert!(!store_processed(db, &jobs, &m, &refused, now).await.unwrap());
            } else {
                received_by_an_earlier_version(db, &jobs, &m, id == "digested", b"cms").await;
            }
        }
        assert_eq!(
            kept(db, "new").await,
            (String::new(), Some(dpi::jws::digest("jws-new")))
        );
        assert_eq!(
            kept(db, "digested").await,
            (
                "jws-digested".into(),
                Some(dpi::jws::digest("jws-digested"))
            )
        );
        sqlx::query("UPDATE postkasse_inbound SET state = $1 WHERE message_id = 'old-stored'")
            .bind(STORED)
            .execute(db.pool())
            .await
            .unwrap();
        for id in ["old-rejected-now", "digested"] {
            let jws = format!("jws-{id}");
            assert!(
                finish_inbound(db, &jobs, "t", id, &jws, &refused, now)
                    .await
                    .unwrap()
            );
            assert!(
                !finish_inbound(db, &jobs, "t", id, &jws, &refused, now)
                    .await
                    .unwrap(),
                "once only"
            );
        }
        assert_eq!(
            kept(db, "old-rejected-now").await,
            ("jws-old-rejected-now".into(), None)
        );
        assert_eq!(
            kept(db, "digested").await,
            (String::new(), Some(dpi::jws::digest("jws-digested")))
        );
        let payloads: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM postkasse_payloads")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(payloads, 2, "the ciphertexts of the two still waiting");

        assert_eq!(digest_old_inbound(db, 2).await.unwrap(), 2);
        assert_eq!(digest_old_inbound(db, 2).await.unwrap(), 1);
        assert_eq!(digest_old_inbound(db, 2).await.unwrap(), 0);
        for id in ["old-stored", "old-rejected-now"] {
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
        let row = get_inbound(db, "t", "old-stored").await.unwrap().unwrap();
        assert!(dpi::jws::is_same_message(
            &row.forretningsmelding,
            row.forretningsmelding_sha256.as_deref(),
            "jws-old-stored"
        ));
        assert!(!dpi::jws::is_same_message(
            &row.forretningsmelding,
            row.forretningsmelding_sha256.as_deref(),
            "jws-other"
        ));
    }
}
