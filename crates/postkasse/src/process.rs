//! Processing of a received letter: corner-4 validation, decryption, storage for the
//! citizen, and the signed receipt (`leveringskvittering` or `feil` KLIENT) — committed
//! together, so a letter is stored exactly once and answered exactly once, whatever crashes.
//! The intake runs it inside the delivering request ([`decide`], then
//! [`crate::repo::store_processed`]); the worker here takes the letters an earlier version
//! received and stored for processing later.

use std::time::Duration;

use domain::MessageId;
use dpi::{
    container::{DocumentRole, Dokumentpakke, Limits},
    letter::{OpenedLetter, open_letter_as},
    message::{Body, Feiltype, Sbd, Timestamp},
    receipt::{ReceiptKind, build_receipt, sign_sbd},
};
use openssl::{nid::Nid, x509::X509Ref};
use store::{BlobRef, Job};
use time::OffsetDateTime;

use crate::{AppState, Tenant, repo};

pub const PROCESS_QUEUE: &str = "postkasse.process";

/// Reason given to the sender when the postkasseadresse is not one of the tenant's citizens.
pub const NOT_A_USER: &str = "Recipient is not a user";

/// How long a processing job stays claimed without a heartbeat. The worker renews it every
/// third of that while the job runs, so it bounds how long a letter whose worker was killed
/// waits before another worker takes it over (it was 120 s; the crash test waited it out).
const PROCESS_LEASE: Duration = Duration::from_secs(30);

/// How often bins are looked through for letters that have lain there long enough.
const EMPTY_BINS_EVERY: Duration = Duration::from_secs(600);

/// [`crate::Mailbox::empty_bins`]; failures are logged and tried again at the next round.
async fn empty_bins(state: &AppState, now: OffsetDateTime) {
    let mailbox = state.mailbox();
    match mailbox.empty_bins(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            letters = n,
            retention_days = mailbox.bin_retention_days(),
            "letters deleted from bins"
        ),
        Err(e) => tracing::warn!(error = %e, "emptying bins failed"),
    }
}

pub fn spawn(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    // Letters received before digests were kept: digested once, and emptied when processed.
    let digests = {
        let state = state.clone();
        tokio::spawn(async move {
            let db = &state.0.deps.db;
            store::run_batches_once("digesting earlier business messages", || {
                repo::digest_old_inbound(db, 500)
            })
            .await;
        })
    };
    // Letters that have lain in the bin the configured days are deleted for good, and the
    // documents of deleted letters once no letter refers to them.
    let collector = {
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut next_emptying = std::time::Instant::now();
            loop {
                let db = &state.0.deps.db;
                let now = OffsetDateTime::now_utc();
                if std::time::Instant::now() >= next_emptying {
                    next_emptying = std::time::Instant::now() + EMPTY_BINS_EVERY;
                    empty_bins(&state, now).await;
                }
                match repo::collect_released_blobs(db, &state.0.deps.blobs, now, 100).await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(deleted = n, "documents of deleted letters deleted")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "deleting documents of deleted letters failed")
                    }
                }
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        })
    };
    // Letters an earlier version received and left for its workers: one worker takes them.
    let jobs = state.0.jobs.clone();
    let mut handles = store::spawn_workers(
        &jobs,
        PROCESS_QUEUE,
        "postkasse-process",
        1,
        PROCESS_LEASE,
        move |job| process_one(state.clone(), job),
        &shutdown,
    );
    handles.extend([digests, collector]);
    handles
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProcessError {
    #[error("{0}")]
    Retry(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// What processing decided.
enum Verdict {
    Accept(Box<repo::NewLetter>),
    Reject(String),
}

/// A letter an earlier version received and stored for this worker: processed as the intake
/// processes letters now, then its stored ciphertext is deleted.
async fn process_one(state: AppState, job: Job) -> Result<(), ProcessError> {
    let payload: repo::ProcessJob = job.payload_as()?;
    let Some(tenant) = state
        .0
        .deps
        .tenants
        .iter()
        .find(|t| t.orgnr.to_string() == payload.tenant)
        .cloned()
    else {
        tracing::error!(
            tenant = payload.tenant,
            "letter for a tenant no longer configured"
        );
        return Err(ProcessError::Retry(format!(
            "tenant {} is not configured",
            payload.tenant
        )));
    };
    let db = &state.0.deps.db;
    let Some(row) = repo::get_inbound(db, &payload.tenant, &payload.message_id).await? else {
        return Ok(());
    };
    if row.state != repo::RECEIVED {
        return Ok(());
    }
    let legacy_blob = BlobRef::from_row(row.sha256.clone(), row.size);
    let payload_in_blobs = row.dokumentpakke.is_none();
    let cms = match row.dokumentpakke {
        Some(data) => bytes::Bytes::from(data),
        None => state.0.deps.blobs.get(&legacy_blob).await?,
    };
    let now = OffsetDateTime::now_utc();
    let Some(decided) = decide(&state, &tenant, &row.forretningsmelding, cms, now).await? else {
        // The intake only stored parseable messages; nothing to answer to otherwise.
        tracing::error!(
            message_id = payload.message_id,
            "stored letter no longer parses"
        );
        return Ok(());
    };
    let done = repo::finish_inbound(
        db,
        &state.0.jobs,
        &payload.tenant,
        &payload.message_id,
        &row.forretningsmelding,
        &decided.outcome(),
        OffsetDateTime::now_utc(),
    )
    .await?;
    if !done {
        return Ok(());
    }
    recorded(&state, &tenant, &payload.message_id, &decided).await?;
    if payload_in_blobs {
        // Received before payloads moved into the database; the next attempt would not find
        // the row in `received`, so a failed delete only leaves a file behind.
        if let Err(e) = state.0.deps.blobs.delete(&legacy_blob).await {
            tracing::warn!(message_id = payload.message_id, error = %e, "deleting a processed dokumentpakke failed");
        }
    }
    Ok(())
}

/// What corner-4 processing decided for one letter, ready to be recorded.
pub(crate) struct Decided {
    letter: Option<repo::NewLetter>,
    receipt: Option<repo::NewReceipt>,
    /// Why the letter is refused; `None` when it is stored.
    reason: Option<String>,
    /// Kept for after the commit (see [`recorded`]).
    opened: OpenedLetter,
}

impl Decided {
    pub(crate) fn outcome(&self) -> repo::Outcome<'_> {
        repo::Outcome {
            letter: self.letter.as_ref(),
            receipt: self.receipt.as_ref(),
            reason: self.reason.as_deref(),
        }
    }
}

/// Corner-4 processing of one received letter (§3.6): signatures, decryption, the checks of
/// [`judge`], the documents of an accepted letter put in the blob store (content-addressed:
/// a retry writes the same keys), and the signed receipt answering it — `leveringskvittering`,
/// or `feil` KLIENT with the reason. Writes nothing to the database. `Ok(None)` when the
/// business message does not even parse, so that no receipt can answer it; `Err` when a
/// retry may decide otherwise (a service this depends on is unavailable).
pub(crate) async fn decide(
    state: &AppState,
    tenant: &Tenant,
    jws: &str,
    cms: bytes::Bytes,
    now: OffsetDateTime,
) -> Result<Option<Decided>, ProcessError> {
    let key = tenant.key.clone();
    let cert = tenant.cert.clone();
    let anchors = state.0.deps.anchors.clone();
    let owned_jws = jws.to_owned();
    let check_html = state.0.cfg.refuse_invalid_html;
    let (opened, html) = tokio::task::spawn_blocking(move || {
        // The CMS must name this tenant's certificate, not only decrypt with its key (§5.4).
        let opened = open_letter_as(
            &owned_jws,
            &cms,
            &key,
            &cert,
            &anchors,
            now,
            &Limits::default(),
        );
        // Parsing HTML documents is CPU work like decryption: here, off the async threads.
        let html = opened
            .package
            .as_ref()
            .filter(|_| opened.valid && check_html)
            .and_then(html_violation);
        (opened, html)
    })
    .await
    .map_err(|e| ProcessError::Retry(format!("open_letter: {e}")))?;

    let Some(sbd) = opened.sbd.clone().or_else(|| {
        dpi::jws::decode_unverified(jws)
            .ok()
            .and_then(|(_, p)| Sbd::parse(&p).ok())
    }) else {
        return Ok(None);
    };

    let verdict = judge(state, tenant, &opened, html.as_deref(), &sbd, now).await?;
    let verdict = match verdict {
        Verdict::Accept(letter) => match store_documents(state, &opened, *letter).await? {
            Ok(letter) => Verdict::Accept(Box::new(letter)),
            Err(reason) => Verdict::Reject(reason),
        },
        r => r,
    };
    let (kind, reason) = match &verdict {
        Verdict::Accept(_) => (ReceiptKind::Levering, None),
        Verdict::Reject(reason) => {
            let detaljer: String = reason.chars().take(1000).collect();
            (
                ReceiptKind::Feil {
                    feiltype: Feiltype::Klient,
                    detaljer: Some(detaljer),
                },
                Some(reason.clone()),
            )
        }
    };
    let receipt = match sign_receipt(tenant, &sbd, kind, now).await {
        Ok(r) => Some(r),
        // A message no receipt can answer (itself a receipt, no usable conversation or
        // sender): refused without one.
        Err(ReceiptFailure::Build(e)) => {
            tracing::warn!(message_id = %sbd.message_id(), error = %e, "no receipt possible");
            None
        }
        Err(ReceiptFailure::Other(e)) => return Err(e),
    };
    let letter = match verdict {
        Verdict::Accept(l) => Some(*l),
        Verdict::Reject(_) => None,
    };
    Ok(Some(Decided {
        letter,
        receipt,
        reason,
        opened,
    }))
}

/// After the commit that recorded `decided`: puts back documents a collector took in the
/// meantime, and counts and logs the outcome.
pub(crate) async fn recorded(
    state: &AppState,
    tenant: &Tenant,
    message_id: &str,
    decided: &Decided,
) -> Result<(), ProcessError> {
    if let (Some(l), Some(package)) = (&decided.letter, &decided.opened.package) {
        // A collector may have deleted the same content (a letter deleted from a bin) after
        // this letter stored it and before its transaction held it: store it again.
        for (d, doc) in l.documents.iter().zip(&package.documents) {
            if !state.0.deps.blobs.exists(&d.blob()).await? {
                state.0.deps.blobs.put(doc.bytes.clone()).await?;
            }
        }
    }
    match &decided.reason {
        None => {
            metrics::counter!("postkasse_letters_stored_total").increment(1);
            tracing::info!(message_id, tenant = %tenant.slug, "letter stored");
        }
        Some(r) => {
            metrics::counter!("postkasse_letters_rejected_total").increment(1);
            tracing::warn!(message_id, tenant = %tenant.slug, reason = %r, "letter rejected");
        }
    }
    Ok(())
}

pub(crate) enum ReceiptFailure {
    /// The letter cannot be answered with this receipt (permanent).
    Build(dpi::receipt::ReceiptError),
    Other(ProcessError),
}

impl From<ReceiptFailure> for crate::service::ServiceError {
    fn from(e: ReceiptFailure) -> Self {
        match e {
            ReceiptFailure::Build(b) => crate::service::ServiceError::Internal(b.to_string()),
            ReceiptFailure::Other(o) => o.into(),
        }
    }
}

/// Signs a receipt answering `letter` as `tenant` (an RSA operation: off the async threads).
pub(crate) async fn sign_receipt(
    tenant: &Tenant,
    letter: &Sbd,
    kind: ReceiptKind,
    now: OffsetDateTime,
) -> Result<repo::NewReceipt, ReceiptFailure> {
    let kind_key = repo::receipt_kind(&kind);
    let receipt = build_receipt(
        letter,
        kind,
        &tenant.actor(),
        Timestamp(now),
        MessageId::new(),
    )
    .map_err(ReceiptFailure::Build)?;
    let other = |m: String| ReceiptFailure::Other(ProcessError::Retry(m));
    let id = receipt.message_id().to_string();
    let cert = tenant.cert.clone();
    let key = tenant.key.clone();
    let jws = tokio::task::spawn_blocking(move || sign_sbd(&receipt, &cert, &key))
        .await
        .map_err(|e| other(format!("signing: {e}")))?
        .map_err(|e| other(format!("signing the receipt: {e}")))?;
    Ok(repo::NewReceipt {
        id,
        kind: kind_key,
        jws,
    })
}

impl From<ProcessError> for crate::service::ServiceError {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Store(s) => crate::service::ServiceError::Store(s),
            ProcessError::Retry(m) => crate::service::ServiceError::Internal(m),
        }
    }
}

/// The first `text/html` document breaking the DPI HTML rules (§5.2), as a refusal reason
/// `<code>: <href>: <detail>`.
fn html_violation(package: &Dokumentpakke) -> Option<String> {
    package
        .documents
        .iter()
        .filter(|d| d.mime.eq_ignore_ascii_case("text/html"))
        .find_map(|d| {
            dpi::html_rules::check(&d.bytes)
                .err()
                .map(|v| format!("{}: {}: {v}", v.code, d.href))
        })
}

/// The corner-4 decision beyond `open_letter`: letter type, receiver, the HTML rules (`html`:
/// the first violation, see [`html_violation`]), the embedded token verified with
/// Maskinporten's keys, the effective time, and the recipient.
async fn judge(
    state: &AppState,
    tenant: &Tenant,
    opened: &OpenedLetter,
    html: Option<&str>,
    sbd: &Sbd,
    now: OffsetDateTime,
) -> Result<Verdict, ProcessError> {
    if !opened.valid {
        let reason = opened
            .errors
            .iter()
            .map(|i| format!("{}: {}", i.code, i.detail))
            .collect::<Vec<_>>()
            .join("; ");
        return Ok(Verdict::Reject(reason));
    }
    let Body::Digital(d) = &sbd.body else {
        return Ok(Verdict::Reject(format!(
            "unsupported_message_type: a mailbox provider takes digital letters, not {}",
            sbd.message_type()
        )));
    };
    match domain::ActorId::parse(&sbd.header.receiver.value) {
        Ok(r) if r.orgnr() == tenant.orgnr => {}
        _ => {
            return Ok(Verdict::Reject(format!(
                "wrong_receiver: the SBD receiver {} is not {}",
                sbd.header.receiver.value,
                tenant.actor()
            )));
        }
    }
    let avsender = match d.avsender.virksomhetsidentifikator.actor_id() {
        Ok(a) => a,
        Err(e) => return Ok(Verdict::Reject(format!("invalid_avsender: {e}"))),
    };
    // Invalid HTML is the sender's to fix (§7.1), whatever the token turns out to be.
    if let Some(reason) = html {
        return Ok(Verdict::Reject(reason.to_owned()));
    }
    // The embedded token: signature and issuer against Maskinporten's keys. Its lifetime
    // against the message's creation time was checked by open_letter; a letter that waited
    // at the access point longer than the token lives is still good.
    match state.0.deps.verifier.verify(&d.maskinportentoken).await {
        Ok(p) => {
            if p.consumer != avsender {
                return Ok(Verdict::Reject(format!(
                    "avsender_not_consumer: the verified token acts for {}, the avsender is {avsender}",
                    p.consumer
                )));
            }
        }
        // Signature and issuer are checked before these: the token is Maskinporten's. Its
        // lifetime was judged against the message (open_letter), and its audience is the
        // access point's API, not ours; the consumer was compared by open_letter.
        Err(p) if p.code == "token_expired" || p.code == "wrong_audience" => {}
        Err(p) if p.status >= 500 => {
            return Err(ProcessError::Retry(format!(
                "verifying the maskinportentoken: {p}"
            )));
        }
        Err(p) => {
            return Ok(Verdict::Reject(format!(
                "maskinportentoken_invalid: {}",
                p.detail.as_deref().unwrap_or(&p.code)
            )));
        }
    }
    let virkning = match (&d.virkningstidspunkt, &d.virkningsdato) {
        (Some(t), _) => Some(t.0),
        (None, Some(dato)) => Some(dato.0.midnight().assume_utc()),
        (None, None) => None,
    };
    if let Some(v) = virkning
        && v > now + time::Duration::days(state.0.cfg.max_virkning_ahead_days)
    {
        return Ok(Verdict::Reject(format!(
            "virkningstidspunkt_too_far_ahead: more than {} days ahead",
            state.0.cfg.max_virkning_ahead_days
        )));
    }
    let Some(citizen_id) = repo::citizen_by_address(
        &state.0.deps.db,
        &tenant.orgnr.to_string(),
        &d.mottaker.postkasseadresse,
    )
    .await?
    else {
        return Ok(Verdict::Reject(NOT_A_USER.to_owned()));
    };
    let package = opened.package.as_ref();
    let letter = repo::NewLetter {
        id: domain::LetterId::new().to_string(),
        citizen_id,
        conversation_id: sbd
            .conversation_id()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        sender_orgnr: avsender.orgnr().to_string(),
        sender_name: opened
            .jws_signer
            .as_ref()
            .filter(|c| dpi::trust::org_number(c) == Some(avsender.orgnr()))
            .and_then(|c| organization_name(c)),
        avsenderidentifikator: d.avsender.avsenderidentifikator.clone(),
        ikkesensitivtittel: d.ikkesensitivtittel.clone(),
        tittel: package
            .and_then(|p| p.hoveddokument())
            .and_then(|h| h.title.clone()),
        sikkerhetsnivaa: i64::from(d.sikkerhetsnivaa.as_u8()),
        spraak: d.spraak.clone(),
        aapningskvittering: d.aapningskvittering.unwrap_or(false),
        lenke: package
            .and_then(|p| p.lenke())
            .and_then(|l| serde_json::to_string(l).ok()),
        visible_from: virkning.map_or(now, |v| v.max(now)),
        documents: Vec::new(),
    };
    Ok(Verdict::Accept(Box::new(letter)))
}

/// Puts each document in the blob store (content-addressed: a retry writes the same keys).
async fn store_documents(
    state: &AppState,
    opened: &OpenedLetter,
    mut letter: repo::NewLetter,
) -> Result<Result<repo::NewLetter, String>, ProcessError> {
    let Some(package) = &opened.package else {
        return Ok(Err("dokumentpakke_unreadable: no documents".into()));
    };
    for d in &package.documents {
        let blob = state.0.deps.blobs.put(d.bytes.clone()).await?;
        letter.documents.push(repo::NewDocument {
            href: d.href.clone(),
            mime: d.mime.clone(),
            title: d.title.clone(),
            lang: d.lang.clone(),
            role: match d.role {
                DocumentRole::Hoveddokument => "hoveddokument",
                DocumentRole::Vedlegg => "vedlegg",
            },
            size: blob.row_size(),
            sha256: blob.sha256,
            extension: d
                .data
                .as_ref()
                .and_then(|x| serde_json::to_string(&x.extension).ok()),
        });
    }
    Ok(Ok(letter))
}

/// `O` of a certificate's subject.
fn organization_name(cert: &X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(Nid::ORGANIZATIONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}
