//! The citizen's mailbox: the service layer under the JSON end-user API and the citizen web
//! app. Every function takes the citizen's identity ([`CitizenRef`]: tenant + fødselsnummer)
//! and resolves it to the citizen's own row first; every query then filters on that row, so
//! no letter id, document number or cursor can reach another citizen's letters.
//!
//! Letters before their `virkningstidspunkt` do not exist as far as the citizen can tell.
//! A `sikkerhetsnivaa` 4 letter seen with a substantial login ([`Loa::Substantial`]) is
//! `locked`: only its non-sensitive title and sender show; its documents, sensitive title and
//! link stay hidden until the citizen logs in at level high. A letter whose sender asked for
//! an opening receipt (`aapningskvittering`) shows no more than that until the citizen has
//! accepted the receipt (DPI §4.1: accepted before the letter is opened).

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use domain::{Fodselsnummer, LetterId, Organisasjonsnummer};
use dpi::container::{Extension, Lenke};
use dpi::message::{Varsler, Varslingskanal};
use dpi::receipt::ReceiptKind;
use serde::{Deserialize, Serialize};
use store::{BlobRef, BlobStore, Db, Jobs};
use time::OffsetDateTime;

use crate::{Tenant, repo};

/// The level of assurance of the citizen's login (ID-porten `acr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loa {
    Substantial,
    High,
}

impl Loa {
    /// `idporten-loa-high` (or the legacy `Level4`) is high; anything else substantial.
    pub fn from_acr(acr: Option<&str>) -> Loa {
        match acr {
            Some("idporten-loa-high") | Some("Level4") => Loa::High,
            _ => Loa::Substantial,
        }
    }
}

/// Who is asking: a citizen of one tenant (mailbox provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CitizenRef {
    pub tenant: Organisasjonsnummer,
    pub fnr: Fodselsnummer,
}

/// The citizen's folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Folder {
    #[default]
    Inbox,
    Archive,
    Bin,
}

impl Folder {
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Archive => "archive",
            Folder::Bin => "bin",
        }
    }

    pub fn parse(s: &str) -> Option<Folder> {
        match s {
            "inbox" => Some(Folder::Inbox),
            "archive" => Some(Folder::Archive),
            "bin" => Some(Folder::Bin),
            _ => None,
        }
    }
}

/// Errors of the mailbox service, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the citizen has no mailbox at this provider")]
    NotAUser,
    #[error("no such letter or document")]
    NotFound,
    #[error("the letter needs a login at security level high (idporten-loa-high)")]
    Locked,
    #[error("the sender asked for an opening receipt; accept it before opening the letter")]
    OpeningReceiptRequired,
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::NotAUser => "not_a_user",
            ServiceError::NotFound => "not_found",
            ServiceError::Locked => "insufficient_security_level",
            ServiceError::OpeningReceiptRequired => "opening_receipt_required",
            ServiceError::InvalidQuery(_) => "invalid_query",
            ServiceError::Store(e) => e.code(),
            ServiceError::Internal(_) => "internal_error",
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Filters and paging of [`Mailbox::list_letters`].
#[derive(Debug, Clone, Default)]
pub struct LetterQuery {
    pub folder: Folder,
    /// Only letters from this sender.
    pub sender: Option<Organisasjonsnummer>,
    /// Only letters visible from this time on…
    pub from: Option<OffsetDateTime>,
    /// …and before this time.
    pub to: Option<OffsetDateTime>,
    pub unread_only: bool,
    /// Case-insensitive substring of the non-sensitive title or the sender (name or orgnr).
    pub search: Option<String>,
    /// Page size, 1–100 (default 20).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A letter in a list.
#[derive(Debug, Clone, Serialize)]
pub struct LetterSummary {
    pub id: LetterId,
    pub sender_orgnr: String,
    pub sender_name: Option<String>,
    /// The non-sensitive title; always shown.
    pub ikkesensitivtittel: String,
    /// The hoveddokument's (possibly sensitive) title; absent while `locked` or
    /// `requires_opening_receipt`.
    pub tittel: Option<String>,
    pub sikkerhetsnivaa: u8,
    /// Needs a login at level high to be opened.
    pub locked: bool,
    /// When the letter became visible (delivery, or its virkningstidspunkt).
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub unread: bool,
    pub folder: Folder,
    /// The sender asked for an opening receipt that the citizen has not accepted yet.
    pub requires_opening_receipt: bool,
    /// Number of vedlegg (documents besides the hoveddokument).
    pub attachments: u32,
}

/// One page of letters, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct LetterPage {
    pub letters: Vec<LetterSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A document of a letter (bytes via [`Mailbox::document`]).
#[derive(Debug, Clone, Serialize)]
pub struct DocumentInfo {
    /// Position in the letter, from 0 (the hoveddokument).
    pub n: u32,
    pub href: String,
    pub mime: String,
    pub title: Option<String>,
    pub lang: Option<String>,
    /// `hoveddokument` or `vedlegg`.
    pub role: String,
    pub size: i64,
    /// Parsed extension (lenke, bevis, arrangement; unknown ones by MIME type only).
    pub extension: Option<Extension>,
}

/// A letter with its documents and extensions.
#[derive(Debug, Clone, Serialize)]
pub struct LetterDetail {
    #[serde(flatten)]
    pub summary: LetterSummary,
    pub message_id: String,
    pub conversation_id: String,
    pub avsenderidentifikator: Option<String>,
    pub spraak: String,
    /// "Lenke utenfor brev"; absent while `locked` or `requires_opening_receipt`.
    pub lenke: Option<Lenke>,
    /// Absent (empty) while `locked` or `requires_opening_receipt`.
    pub documents: Vec<DocumentInfo>,
    /// When the provider stored the letter (may be before `received_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub delivered_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub opened_at: Option<OffsetDateTime>,
    pub opening_receipt_requested: bool,
    pub opening_receipt_accepted: bool,
    /// When the letter, lying in the bin, will be deleted for good; absent outside the bin
    /// and where the bin is not emptied.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deleted_at: Option<OffsetDateTime>,
}

/// A stored letter as the notifier of its `varsler` sees it ([`Mailbox::letters_stored_since`]).
#[derive(Debug, Clone)]
pub struct StoredLetter {
    pub id: LetterId,
    /// Whose letter it is.
    pub citizen: CitizenRef,
    /// When the provider stored it; with `id`, the position in the stream of stored letters.
    pub stored_at: OffsetDateTime,
    /// When it becomes visible to the citizen (`virkningstidspunkt`, or `stored_at`).
    pub visible_from: OffsetDateTime,
    /// The sender's notification requests (e-mail / SMS), if any.
    pub varsler: Option<Varsler>,
}

/// Longest `beskrivelse` of a `varslingfeiletkvittering` (DPI: 1000 characters).
const MAX_BESKRIVELSE: usize = 1000;

/// A document's bytes with what a response needs.
#[derive(Debug, Clone)]
pub struct DocumentBytes {
    pub mime: String,
    pub filename: String,
    pub bytes: Bytes,
}

/// Creates the citizen `(tenant, postkasseadresse)` for `fnr`, or updates the address (and
/// name) of the tenant's existing citizen with that fødselsnummer. Returns the citizen's id.
pub async fn upsert_citizen(
    db: &Db,
    tenant: &Organisasjonsnummer,
    postkasseadresse: &str,
    fnr: &Fodselsnummer,
    name: Option<&str>,
) -> Result<String, store::StoreError> {
    repo::upsert_citizen(
        db,
        &tenant.to_string(),
        postkasseadresse.trim(),
        &fnr.as_string(),
        name,
        OffsetDateTime::now_utc(),
    )
    .await
}

/// The mailbox service; cheap to clone.
#[derive(Clone)]
pub struct Mailbox {
    db: Db,
    blobs: BlobStore,
    jobs: Jobs,
    tenants: Arc<[Tenant]>,
    citizen_ids: Arc<CitizenIds>,
    /// Days a letter lies in the bin before it is deleted for good; 0 = never.
    bin_retention_days: u32,
}

/// `(tenant, fnr)` → citizen row id. A citizen's id never changes and citizens are never
/// deleted, so a found id stays right; only hits are kept. Saves a database round trip (and
/// the pool's ping on release) on every request of the citizen's apps.
#[derive(Default)]
struct CitizenIds(std::sync::Mutex<HashMap<(String, String), String>>);

impl CitizenIds {
    /// Enough for every active citizen of a large provider; past it the map starts over.
    const MAX: usize = 200_000;

    fn get(&self, key: &(String, String)) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: (String, String), id: String) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::MAX {
            m.clear();
        }
        m.insert(key, id);
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").finish_non_exhaustive()
    }
}

fn time_of(ms: i64) -> OffsetDateTime {
    store::from_ms(ms).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn is_locked(sikkerhetsnivaa: i64, loa: Loa) -> bool {
    sikkerhetsnivaa >= 4 && loa < Loa::High
}

/// The sender asked for an opening receipt the citizen has not accepted yet.
fn receipt_pending(aapningskvittering: bool, receipt_accepted_at: Option<i64>) -> bool {
    aapningskvittering && receipt_accepted_at.is_none()
}

fn summary(row: repo::ListRow, loa: Loa) -> LetterSummary {
    let locked = is_locked(row.sikkerhetsnivaa, loa);
    let pending = receipt_pending(row.aapningskvittering, row.receipt_accepted_at);
    LetterSummary {
        id: LetterId::parse(&row.id).unwrap_or_default(),
        sender_orgnr: row.sender_orgnr,
        sender_name: row.sender_name,
        ikkesensitivtittel: row.ikkesensitivtittel,
        tittel: if locked || pending { None } else { row.tittel },
        sikkerhetsnivaa: u8::try_from(row.sikkerhetsnivaa).unwrap_or(4),
        locked,
        received_at: time_of(row.visible_from),
        unread: row.opened_at.is_none(),
        folder: Folder::parse(&row.folder).unwrap_or_default(),
        requires_opening_receipt: pending,
        attachments: u32::try_from(row.attachments).unwrap_or_default(),
    }
}

fn like_pattern(s: &str) -> String {
    let mut out = String::from("%");
    for c in s.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn parse_cursor(c: &str) -> ServiceResult<(i64, String)> {
    let bad = || ServiceError::InvalidQuery("cursor is not one this service issued".into());
    let (t, id) = c.split_once('.').ok_or_else(bad)?;
    let t = t.parse::<i64>().map_err(|_| bad())?;
    let id = LetterId::parse(id).map_err(|_| bad())?;
    Ok((t, id.to_string()))
}

impl Mailbox {
    pub fn new(db: Db, blobs: BlobStore, jobs: Jobs, tenants: Vec<Tenant>) -> Self {
        Self {
            db,
            blobs,
            jobs,
            tenants: tenants.into(),
            citizen_ids: Arc::default(),
            bin_retention_days: 0,
        }
    }

    /// Letters that have lain in a bin `days` are deleted for good by [`Mailbox::empty_bins`];
    /// 0 keeps them until the citizen deletes them (the default).
    pub fn with_bin_retention(mut self, days: u32) -> Self {
        self.bin_retention_days = days;
        self
    }

    /// See [`Mailbox::with_bin_retention`].
    pub fn bin_retention_days(&self) -> u32 {
        self.bin_retention_days
    }

    async fn citizen_id(&self, who: &CitizenRef) -> ServiceResult<String> {
        let key = (who.tenant.to_string(), who.fnr.as_string());
        if let Some(id) = self.citizen_ids.get(&key) {
            return Ok(id);
        }
        let id = repo::citizen_by_fnr(&self.db, &key.0, &key.1)
            .await?
            .ok_or(ServiceError::NotAUser)?;
        self.citizen_ids.put(key, id.clone());
        Ok(id)
    }

    async fn letter(
        &self,
        citizen_id: &str,
        id: LetterId,
        now: OffsetDateTime,
    ) -> ServiceResult<repo::LetterRow> {
        repo::get_letter(&self.db, citizen_id, &id.to_string(), now)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// The citizen's letters in a folder, newest first, filtered and paged.
    pub async fn list_letters(
        &self,
        who: &CitizenRef,
        loa: Loa,
        q: &LetterQuery,
    ) -> ServiceResult<LetterPage> {
        let citizen = self.citizen_id(who).await?;
        let limit = i64::from(q.limit.unwrap_or(20).clamp(1, 100));
        let search = match q.search.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) if s.chars().count() > 100 => {
                return Err(ServiceError::InvalidQuery(
                    "search is at most 100 characters".into(),
                ));
            }
            Some(s) => Some(like_pattern(s)),
        };
        let filter = repo::ListFilter {
            folder: q.folder.as_str(),
            sender_orgnr: q.sender.map(|o| o.to_string()),
            from_ms: q.from.map(store::to_ms),
            to_ms: q.to.map(store::to_ms),
            unread_only: q.unread_only,
            search,
            after: q.cursor.as_deref().map(parse_cursor).transpose()?,
            limit: limit + 1,
        };
        let mut rows =
            repo::list_letters(&self.db, &citizen, &filter, OffsetDateTime::now_utc()).await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more {
            rows.last().map(|r| format!("{}.{}", r.visible_from, r.id))
        } else {
            None
        };
        Ok(LetterPage {
            letters: rows.into_iter().map(|r| summary(r, loa)).collect(),
            next_cursor,
        })
    }

    /// One letter with its documents and parsed extensions; of a letter the citizen may not
    /// open yet (locked, or an opening receipt to accept first), only what the list shows.
    pub async fn get_letter(
        &self,
        who: &CitizenRef,
        loa: Loa,
        id: LetterId,
    ) -> ServiceResult<LetterDetail> {
        let citizen = self.citizen_id(who).await?;
        let row = self.letter(&citizen, id, OffsetDateTime::now_utc()).await?;
        let closed = Self::may_open(&row, loa).is_err();
        let documents = if closed {
            Vec::new()
        } else {
            repo::documents(&self.db, &citizen, &row.list.id)
                .await?
                .into_iter()
                .map(|d| DocumentInfo {
                    n: u32::try_from(d.n).unwrap_or_default(),
                    href: d.href,
                    mime: d.mime,
                    title: d.title,
                    lang: d.lang,
                    role: d.role,
                    size: d.size,
                    extension: d
                        .extension
                        .as_deref()
                        .and_then(|x| serde_json::from_str(x).ok()),
                })
                .collect()
        };
        let lenke = if closed {
            None
        } else {
            row.lenke
                .as_deref()
                .and_then(|l| serde_json::from_str(l).ok())
        };
        Ok(LetterDetail {
            opened_at: row.list.opened_at.map(time_of),
            opening_receipt_requested: row.list.aapningskvittering,
            opening_receipt_accepted: row.list.receipt_accepted_at.is_some(),
            summary: summary(row.list, loa),
            message_id: row.message_id,
            conversation_id: row.conversation_id,
            avsenderidentifikator: row.avsenderidentifikator,
            spraak: row.spraak,
            lenke,
            documents,
            delivered_at: time_of(row.received_at),
            deleted_at: self.deleted_at(row.binned_at),
        })
    }

    /// Checks that the citizen may open the letter now.
    fn may_open(row: &repo::LetterRow, loa: Loa) -> ServiceResult<()> {
        if is_locked(row.list.sikkerhetsnivaa, loa) {
            return Err(ServiceError::Locked);
        }
        if receipt_pending(row.list.aapningskvittering, row.list.receipt_accepted_at) {
            return Err(ServiceError::OpeningReceiptRequired);
        }
        Ok(())
    }

    /// Document `n` of a letter; reading it opens the letter.
    pub async fn document(
        &self,
        who: &CitizenRef,
        loa: Loa,
        id: LetterId,
        n: u32,
    ) -> ServiceResult<DocumentBytes> {
        let citizen = self.citizen_id(who).await?;
        let now = OffsetDateTime::now_utc();
        let row = self.letter(&citizen, id, now).await?;
        Self::may_open(&row, loa)?;
        let doc = repo::documents(&self.db, &citizen, &row.list.id)
            .await?
            .into_iter()
            .find(|d| d.n == i64::from(n))
            .ok_or(ServiceError::NotFound)?;
        let bytes = self
            .blobs
            .get(&BlobRef::from_row(doc.sha256, doc.size))
            .await?;
        repo::set_opened(&self.db, &citizen, &row.list.id, Some(now)).await?;
        Ok(DocumentBytes {
            mime: doc.mime,
            filename: doc.href,
            bytes,
        })
    }

    /// Marks the letter opened (the first time is kept).
    pub async fn mark_opened(&self, who: &CitizenRef, loa: Loa, id: LetterId) -> ServiceResult<()> {
        let citizen = self.citizen_id(who).await?;
        let now = OffsetDateTime::now_utc();
        let row = self.letter(&citizen, id, now).await?;
        Self::may_open(&row, loa)?;
        repo::set_opened(&self.db, &citizen, &row.list.id, Some(now)).await?;
        Ok(())
    }

    /// Marks the letter unread again.
    pub async fn mark_unread(&self, who: &CitizenRef, id: LetterId) -> ServiceResult<()> {
        let citizen = self.citizen_id(who).await?;
        let row = self.letter(&citizen, id, OffsetDateTime::now_utc()).await?;
        repo::set_opened(&self.db, &citizen, &row.list.id, None).await?;
        Ok(())
    }

    /// The title (`ikkesensitivtittel`) of one of the citizen's letters in the bin, to confirm
    /// its deletion by; `InvalidQuery` for a letter not in the bin. Opens nothing.
    pub async fn title_in_bin(&self, who: &CitizenRef, id: LetterId) -> ServiceResult<String> {
        let citizen = self.citizen_id(who).await?;
        let row = self.letter(&citizen, id, OffsetDateTime::now_utc()).await?;
        if row.list.folder != Folder::Bin.as_str() {
            return Err(ServiceError::InvalidQuery(
                "only a letter in the bin can be deleted for good".into(),
            ));
        }
        Ok(row.list.ikkesensitivtittel)
    }

    /// Deletes one of the citizen's letters in the bin for good, with its documents (their
    /// bytes go once no other letter at the provider has the same content); `NotFound` when
    /// the citizen has no such letter in the bin (check with [`Mailbox::title_in_bin`] first
    /// to tell the two apart).
    pub async fn delete_for_good(&self, who: &CitizenRef, id: LetterId) -> ServiceResult<()> {
        let citizen = self.citizen_id(who).await?;
        let now = OffsetDateTime::now_utc();
        if !repo::delete_from_bin(&self.db, &citizen, &id.to_string(), now).await? {
            return Err(ServiceError::NotFound);
        }
        Ok(())
    }

    /// When a letter that went to the bin at `binned_at` is deleted for good.
    fn deleted_at(&self, binned_at: Option<i64>) -> Option<OffsetDateTime> {
        let days = self.bin_retention_days;
        binned_at
            .filter(|_| days > 0)
            .and_then(|t| time_of(t).checked_add(time::Duration::days(i64::from(days))))
    }

    /// Deletes for good, in every citizen's bin, the letters that went there more than the
    /// retention's days before `now` (none when it is 0), as [`Mailbox::delete_for_good`]
    /// does; how many. Run periodically by the processing role.
    pub async fn empty_bins(&self, now: OffsetDateTime) -> ServiceResult<usize> {
        let retention_days = self.bin_retention_days;
        if retention_days == 0 {
            return Ok(0);
        }
        // A retention reaching before year -9999 has nothing due.
        let Some(before) = now.checked_sub(time::Duration::days(i64::from(retention_days))) else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            match repo::empty_bins(&self.db, before, now, 100).await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Moves the letter to a folder (archive, bin, or back to the inbox to restore it).
    pub async fn move_to(
        &self,
        who: &CitizenRef,
        id: LetterId,
        folder: Folder,
    ) -> ServiceResult<()> {
        let citizen = self.citizen_id(who).await?;
        let now = OffsetDateTime::now_utc();
        let row = self.letter(&citizen, id, now).await?;
        repo::set_folder(&self.db, &citizen, &row.list.id, folder.as_str(), now).await?;
        Ok(())
    }

    /// The citizen accepts that the sender learns the letter was opened: records it, opens
    /// the letter and queues a signed `aapningskvittering` — only when the letter asked for
    /// one (`true` when one was queued now; `false` when not asked for or accepted before).
    pub async fn accept_opening_receipt(
        &self,
        who: &CitizenRef,
        loa: Loa,
        id: LetterId,
    ) -> ServiceResult<bool> {
        let citizen = self.citizen_id(who).await?;
        let now = OffsetDateTime::now_utc();
        let row = self.letter(&citizen, id, now).await?;
        if is_locked(row.list.sikkerhetsnivaa, loa) {
            return Err(ServiceError::Locked);
        }
        if !row.list.aapningskvittering {
            repo::set_opened(&self.db, &citizen, &row.list.id, Some(now)).await?;
            return Ok(false);
        }
        if row.list.receipt_accepted_at.is_some() {
            return Ok(false);
        }
        let (tenant_orgnr, jws) = repo::letter_forretningsmelding(&self.db, &citizen, &row.list.id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let tenant = self.tenant(&tenant_orgnr)?;
        let sbd = stored_sbd(&jws)
            .ok_or_else(|| ServiceError::Internal("stored letter does not parse".into()))?;
        let receipt = crate::process::sign_receipt(tenant, &sbd, ReceiptKind::Aapning, now).await?;
        let queued = repo::accept_opening_receipt(
            &self.db,
            &self.jobs,
            &citizen,
            &row.list.id,
            &tenant_orgnr,
            &row.message_id,
            &receipt,
            now,
        )
        .await?;
        Ok(queued)
    }
}

/// The letter's parsed business message (stored verified when the letter came in).
fn stored_sbd(jws: &str) -> Option<dpi::message::Sbd> {
    dpi::jws::decode_unverified(jws)
        .ok()
        .and_then(|(_, p)| dpi::message::Sbd::parse(&p).ok())
}

fn stored_letter(r: repo::StoredLetterRow) -> Option<StoredLetter> {
    let citizen = CitizenRef {
        tenant: Organisasjonsnummer::parse(&r.tenant).ok()?,
        // Checked against the role's policy when the citizen was created.
        fnr: Fodselsnummer::parse(&r.fnr, &domain::FnrPolicy::PERMISSIVE).ok()?,
    };
    let varsler = stored_sbd(&r.forretningsmelding).and_then(|sbd| match sbd.body {
        dpi::message::Body::Digital(d) => d.varsler,
        _ => None,
    });
    Some(StoredLetter {
        id: LetterId::parse(&r.id).ok()?,
        citizen,
        stored_at: time_of(r.received_at),
        visible_from: time_of(r.visible_from),
        varsler,
    })
}

impl Mailbox {
    /// Letters of all citizens and tenants stored after the position `(since, after)`, oldest
    /// first, at most `limit` (1–1000): with `after = None` those stored at `since` or later;
    /// with `after = Some(id)` those stored later than `since`, or at `since` with a larger id.
    /// Pass the last letter's `stored_at` and `id` to read on. For the notifier of `varsler`,
    /// not for citizens: it is not scoped to one.
    pub async fn letters_stored_since(
        &self,
        since: OffsetDateTime,
        after: Option<LetterId>,
        limit: u32,
    ) -> ServiceResult<Vec<StoredLetter>> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let rows = repo::letters_stored_after(
            &self.db,
            store::to_ms(since),
            &after,
            i64::from(limit.clamp(1, 1000)),
        )
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let id = r.id.clone();
                let l = stored_letter(r);
                if l.is_none() {
                    tracing::warn!(letter = id, "stored letter with unreadable owner or id");
                }
                l
            })
            .collect())
    }

    /// A notification of the letter on channel `kanal` failed for good (refused, or retries
    /// used up): queues a signed `varslingfeiletkvittering` with `beskrivelse` (cut to 1000
    /// characters) to the sender. Once per letter and channel: `true` when one was queued now,
    /// `false` when the sender was told about this channel before. A channel the letter's
    /// `varsler` did not ask for is [`ServiceError::InvalidQuery`].
    pub async fn notification_failed(
        &self,
        who: &CitizenRef,
        id: LetterId,
        kanal: Varslingskanal,
        beskrivelse: &str,
    ) -> ServiceResult<bool> {
        let citizen = self.citizen_id(who).await?;
        let now = OffsetDateTime::now_utc();
        let row = self.letter(&citizen, id, now).await?;
        let beskrivelse: String = beskrivelse.trim().chars().take(MAX_BESKRIVELSE).collect();
        let kind = ReceiptKind::VarslingFeilet {
            kanal,
            beskrivelse: Some(beskrivelse).filter(|b| !b.is_empty()),
        };
        let (tenant_orgnr, jws) = repo::letter_forretningsmelding(&self.db, &citizen, &row.list.id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let sbd = stored_sbd(&jws)
            .ok_or_else(|| ServiceError::Internal("stored letter does not parse".into()))?;
        let asked = match &sbd.body {
            dpi::message::Body::Digital(d) => d.varsler.as_ref().is_some_and(|v| match kanal {
                Varslingskanal::Epost => v.epostvarsel.is_some(),
                Varslingskanal::Sms => v.smsvarsel.is_some(),
            }),
            _ => false,
        };
        if !asked {
            return Err(ServiceError::InvalidQuery(format!(
                "the letter asked for no notification by {}",
                match kanal {
                    Varslingskanal::Epost => "epost",
                    Varslingskanal::Sms => "sms",
                }
            )));
        }
        // Checked first so a repeated failure costs no signature; the unique key decides.
        if repo::has_receipt(
            &self.db,
            &tenant_orgnr,
            &row.message_id,
            repo::receipt_kind(&kind),
        )
        .await?
        {
            return Ok(false);
        }
        let tenant = self.tenant(&tenant_orgnr)?;
        let receipt = crate::process::sign_receipt(tenant, &sbd, kind, now).await?;
        Ok(repo::queue_receipt(
            &self.db,
            &self.jobs,
            &tenant_orgnr,
            &row.message_id,
            &receipt,
            now,
        )
        .await?)
    }

    fn tenant(&self, orgnr: &str) -> ServiceResult<&Tenant> {
        self.tenants
            .iter()
            .find(|t| t.orgnr.to_string() == orgnr)
            .ok_or_else(|| ServiceError::Internal("tenant not configured".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern(" Skatt "), "%skatt%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn cursors_must_be_ours() {
        let id = LetterId::new();
        assert_eq!(
            parse_cursor(&format!("123.{id}")).unwrap(),
            (123, id.to_string())
        );
        for bad in ["", "123", "x.y", "123.not-a-uuid", "1.2.3"] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn acr_maps_to_loa() {
        assert_eq!(Loa::from_acr(Some("idporten-loa-high")), Loa::High);
        assert_eq!(
            Loa::from_acr(Some("idporten-loa-substantial")),
            Loa::Substantial
        );
        assert_eq!(Loa::from_acr(None), Loa::Substantial);
    }
}
