//! Sending one letter: KRR lookup, route (digital mailbox or print), seal, `POST
//! /messages/out`. One job per letter (dedup key = the letter id), retried with backoff while
//! KRR, Maskinporten or the access point are unreachable.
//!
//! The sealed letter is not kept: each attempt seals the letter again under its one message
//! id. When the access point answers `409 duplicate_message_id`, an earlier attempt got
//! through (its answer lost in a crash or a timeout) and the letter counts as sent: the
//! message id is random and only ever used for this letter. Only the route and the business
//! message are recorded before posting, since receipts are checked against the provider.
//! Keeping the sealed bytes for a retry wrote, and later deleted, a ~100 KB row per letter
//! for the rare letter that needs a second attempt. A letter an earlier version sealed and
//! kept is sent with the bytes it kept while its embedded token is valid.

use std::time::Duration;

use clients::krr::{Person, Route as KrrRoute};
use domain::{ConversationId, MessageId};
use dpi::{letter::LetterSpec, message::Timestamp, token::SCOPE_SEND};
use serde::{Deserialize, Serialize};
use store::{BlobRef, Job, NewJob};
use time::OffsetDateTime;

use crate::{
    AppState, Consumer,
    krr_batch::LookupError,
    letter::{self, Route, RouteKind, StoredLetter},
    repo::{self, EventInfo},
    status::{Event, Status},
};

pub const SEND_QUEUE: &str = "avsender.send";

/// How often the documents of sent letters are looked at for deletion.
const COLLECT_EVERY: Duration = Duration::from_secs(1);
/// How often the whole blob store is searched for documents no letter refers to (left by a
/// request that failed between storing its documents and committing its letter).
const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How old such a blob must be: a request stores its documents moments before it commits.
const UNREFERENCED_AFTER: time::Duration = time::Duration::hours(1);

/// A stored token must stay valid this long after sending starts.
const TOKEN_MARGIN_MS: i64 = 15_000;

#[derive(Debug, Serialize, Deserialize)]
struct SendJob {
    letter_id: String,
}

pub fn job(letter_id: &str) -> store::StoreResult<NewJob> {
    Ok(NewJob::new(
        SEND_QUEUE,
        &SendJob {
            letter_id: letter_id.to_owned(),
        },
    )?
    .dedup_key(letter_id))
}

pub fn spawn(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    {
        // Jobs are written with their letter in one transaction; this sweep only matters
        // for a job that went dead: unsent letters get a job again (no-op for the others).
        let state = state.clone();
        handles.push(tokio::spawn(async move {
            match repo::unsent_ids(&state.0.deps.db).await {
                Ok(ids) => {
                    for id in ids {
                        let r = match job(&id) {
                            Ok(j) => state.0.jobs.enqueue_job(j).await.map(|_| ()),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = r {
                            tracing::warn!(error = %e, "re-enqueueing an unsent letter failed");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "listing unsent letters failed"),
            }
        }));
    }
    {
        // The documents of sent letters: deleted once no unsent letter refers to them.
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        handles.push(tokio::spawn(async move {
            let db = &state.0.deps.db;
            let blobs = &state.0.deps.blobs;
            match repo::record_blobs_of_unsent(db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(letters = n, "recorded the documents of unsent letters"),
                Err(e) => {
                    // Without them a shared document could go while an older letter needs it.
                    tracing::error!(error = %e, "recording the documents of unsent letters failed; documents are kept");
                    return;
                }
            }
            let mut next_sweep = std::time::Instant::now();
            loop {
                if std::time::Instant::now() >= next_sweep {
                    next_sweep = std::time::Instant::now() + SWEEP_EVERY;
                    release_unreferenced(db, blobs).await;
                }
                match repo::collect_released_blobs(db, blobs, OffsetDateTime::now_utc(), 100).await {
                    Ok(n) if n > 0 => tracing::debug!(deleted = n, "documents of sent letters deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "deleting documents of sent letters failed"),
                }
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(COLLECT_EVERY) => {}
                }
            }
        }));
    }
    let (jobs, count) = (state.0.jobs.clone(), state.0.cfg.send_workers);
    let lease = Duration::from_secs(state.0.cfg.http_timeout_secs.max(1) * 3);
    handles.extend(store::spawn_workers(
        &jobs,
        SEND_QUEUE,
        "avsender-send",
        count,
        lease,
        move |job| send_one(state.clone(), job),
        &shutdown,
    ));
    handles
}

/// Releases the blobs nothing refers to that are older than [`UNREFERENCED_AFTER`], for the
/// collector.
async fn release_unreferenced(db: &store::Db, blobs: &store::BlobStore) {
    let now = OffsetDateTime::now_utc();
    let found = match blobs.list_written_before(now - UNREFERENCED_AFTER).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "listing the document store failed");
            return;
        }
    };
    match repo::release_unreferenced(db, &found, now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(documents = n, "documents no letter refers to released"),
        Err(e) => tracing::warn!(error = %e, "releasing unreferenced documents failed"),
    }
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Transient: try again later.
    #[error("{0}")]
    Retry(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// A refusal that ends the letter as `failed`.
struct Refusal {
    code: &'static str,
    detail: String,
}

fn refuse(code: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal {
        code,
        detail: detail.into(),
    }
}

enum Step<T> {
    Go(T),
    Refused(Refusal),
}

async fn send_one(state: AppState, job: Job) -> Result<(), SendError> {
    let p: SendJob = job.payload_as()?;
    let db = &state.0.deps.db;
    let Some(l) = repo::get_letter(db, &p.letter_id).await? else {
        return Ok(());
    };
    if l.status != Status::Created {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    let deadline_ms = i64::try_from(state.0.cfg.send_deadline_secs)
        .unwrap_or(i64::MAX / 2_000)
        .saturating_mul(1000);
    if store::to_ms(now) > l.created_at.saturating_add(deadline_ms) {
        return fail(
            &state,
            &l.letter_id,
            refuse(
                "send_deadline_passed",
                "the letter could not be sent before the send deadline",
            ),
        )
        .await;
    }
    let stored: StoredLetter = serde_json::from_str(&l.request_json)
        .map_err(|e| SendError::Retry(format!("stored letter unreadable: {e}")))?;
    let Some(consumer) = state.consumer(l.avsender_orgnr.as_deref()) else {
        return fail(
            &state,
            &l.letter_id,
            refuse(
                "avsender_not_delegated",
                format!(
                    "this service no longer sends for {} ([avsender] on_behalf_of)",
                    l.avsender_orgnr.as_deref().unwrap_or_default()
                ),
            ),
        )
        .await;
    };

    // Only a letter an earlier version sealed and kept has bytes to send again.
    let reusable = match (&l.forretningsmelding, l.token_expires_at) {
        (Some(jws), Some(exp)) if exp > store::to_ms(now).saturating_add(TOKEN_MARGIN_MS) => {
            sealed_payload(&state, &l).await.map(|cms| Sealed {
                token: embedded_token(jws),
                jws: jws.clone(),
                cms,
            })
        }
        _ => None,
    };
    let sealed = match reusable {
        Some(x) => x,
        None => match seal(&state, consumer, &l, &stored).await? {
            Step::Go(x) => x,
            Step::Refused(r) => return fail(&state, &l.letter_id, r).await,
        },
    };
    let t = std::time::Instant::now();
    let posted = post(&state, sealed).await;
    step("post", t);
    match posted? {
        Step::Go(detail) => {
            let t = std::time::Instant::now();
            repo::apply(
                db,
                &l.letter_id,
                Event::Sent,
                &EventInfo {
                    detail: Some(&detail),
                    receipt_id: None,
                    error_code: None,
                },
                OffsetDateTime::now_utc(),
            )
            .await?;
            step("mark_sent", t);
            metrics::counter!("avsender_letters_sent_total").increment(1);
            // Sealed by a version that kept the sealed letter in the blob store.
            if let Some(blob) = l.sealed_blob()
                && let Err(e) = state.0.deps.blobs.delete(&blob).await
            {
                tracing::warn!(error = %e, letter_id = %l.letter_id, "deleting a sent dokumentpakke failed");
            }
            Ok(())
        }
        Step::Refused(r) if r.code == "token_refused" => {
            repo::clear_sealed(db, &l.letter_id).await?;
            Err(SendError::Retry(r.detail))
        }
        Step::Refused(r) => fail(&state, &l.letter_id, r).await,
    }
}

/// The sealed dokumentpakke an earlier version kept for a letter, if it can be sent again as
/// it is.
async fn sealed_payload(state: &AppState, l: &repo::LetterRow) -> Option<Vec<u8>> {
    let stored = match repo::sealed_payload(&state.0.deps.db, &l.letter_id).await {
        Ok(None) => match l.sealed_blob() {
            Some(blob) => state
                .0
                .deps
                .blobs
                .get(&blob)
                .await
                .map(|b| Some(b.to_vec())),
            None => Ok(None),
        },
        r => r,
    };
    stored.unwrap_or_else(|e| {
        tracing::warn!(error = %e, letter_id = %l.letter_id, "sealed dokumentpakke unreadable, sealing again");
        None
    })
}

/// Time spent in one step of sending (KRR, sealing, recording, posting, marking sent).
fn step(name: &'static str, since: std::time::Instant) {
    metrics::histogram!("avsender_send_step_seconds", "step" => name)
        .record(since.elapsed().as_secs_f64());
}

async fn fail(state: &AppState, letter_id: &str, r: Refusal) -> Result<(), SendError> {
    tracing::warn!(letter_id, code = r.code, detail = %r.detail, "letter failed");
    metrics::counter!("avsender_letters_failed_total", "code" => r.code).increment(1);
    repo::apply(
        &state.0.deps.db,
        letter_id,
        Event::Feil,
        &EventInfo {
            detail: Some(&r.detail),
            receipt_id: None,
            error_code: Some(r.code),
        },
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(())
}

/// Chooses the route from KRR, asked on behalf of the letter's avsender.
async fn route(
    state: &AppState,
    consumer: &Consumer,
    l: &StoredLetter,
) -> Result<Step<Route>, SendError> {
    let person = match consumer.krr.lookup(&l.personidentifikator).await {
        Ok(p) => p,
        Err(LookupError::Refused { status, error }) => {
            return Ok(Step::Refused(refuse(
                "krr_refused",
                format!("KRR refused the lookup ({status} {error})"),
            )));
        }
        Err(LookupError::Unavailable(e)) => return Err(SendError::Retry(format!("KRR: {e}"))),
    };
    let person: &Person = &person;
    if person.route() == KrrRoute::DigitalMailbox
        && let (Some(dp), Some(cert)) = (&person.digital_post, &person.sertifikat)
    {
        let receiver = match domain::ActorId::parse(&dp.postkasseleverandoeradresse) {
            Ok(a) => a,
            Err(e) => {
                return Ok(Step::Refused(refuse(
                    "krr_invalid_provider",
                    format!(
                        "KRR names the mailbox provider {:?}: {e}",
                        dp.postkasseleverandoeradresse
                    ),
                )));
            }
        };
        let cert = match state.krr_certificate(cert) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Step::Refused(refuse(
                    "krr_invalid_certificate",
                    format!("the mailbox certificate from KRR: {e}"),
                )));
            }
        };
        let kontakt = person.kontaktinformasjon.clone().unwrap_or_default();
        return Ok(Step::Go(Route {
            receiver,
            recipient_cert: Some(cert),
            kind: RouteKind::Digital {
                postkasseadresse: dp.postkasseadresse.clone(),
                epost: kontakt.epostadresse,
                mobil: kontakt.mobiltelefonnummer,
            },
        }));
    }
    // Reserved, no (active) mailbox, not registered: paper, if the letter has an address.
    if l.utskrift.is_none() {
        let why = if person.reservasjon == clients::krr::Reservasjon::Ja {
            "the citizen is reserved against digital post"
        } else {
            "the citizen has no active digital mailbox"
        };
        return Ok(Step::Refused(refuse(
            "no_print_address",
            format!("{why} and the letter has no print address"),
        )));
    }
    let print = print_certificate(state, consumer).await?;
    let receiver = match domain::ActorId::parse(&print.postkasseleverandoer_adresse) {
        Ok(a) => a,
        Err(e) => {
            return Ok(Step::Refused(refuse(
                "krr_invalid_provider",
                format!(
                    "KRR names the print provider {:?}: {e}",
                    print.postkasseleverandoer_adresse
                ),
            )));
        }
    };
    let cert = match state.krr_certificate(&print.x509_sertifikat) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Step::Refused(refuse(
                "krr_invalid_certificate",
                format!("the print certificate from KRR: {e}"),
            )));
        }
    };
    Ok(Step::Go(Route {
        receiver,
        recipient_cert: Some(cert),
        kind: RouteKind::Print,
    }))
}

/// How long KRR's print certificate is reused before it is fetched again.
const PRINT_CERT_TTL: Duration = Duration::from_secs(600);

async fn print_certificate(
    state: &AppState,
    consumer: &Consumer,
) -> Result<clients::krr::PrintSertifikat, SendError> {
    let mut cached = state.0.print_cert.lock().await;
    if let Some((at, c)) = cached.as_ref()
        && at.elapsed() < PRINT_CERT_TTL
    {
        return Ok(c.clone());
    }
    let c = consumer
        .krr_client
        .print_certificate()
        .await
        .map_err(|e| SendError::Retry(format!("KRR print certificate: {e}")))?;
    *cached = Some((std::time::Instant::now(), c.clone()));
    Ok(c)
}

/// Routes and seals the letter and records its route; returns its two wire parts.
async fn seal(
    state: &AppState,
    consumer: &Consumer,
    l: &repo::LetterRow,
    stored: &StoredLetter,
) -> Result<Step<Sealed>, SendError> {
    let t = std::time::Instant::now();
    let routed = route(state, consumer, stored).await;
    step("krr", t);
    let route = match routed? {
        Step::Go(r) => r,
        Step::Refused(r) => return Ok(Step::Refused(r)),
    };
    let mut contents = Vec::with_capacity(stored.documents.len());
    for d in &stored.documents {
        let blob = BlobRef {
            sha256: d.sha256.clone(),
            size: d.size,
        };
        let bytes = state
            .0
            .deps
            .blobs
            .get(&blob)
            .await
            .map_err(|e| SendError::Retry(format!("document {}: {e}", d.filename)))?;
        contents.push(bytes.to_vec());
    }
    // consumer = the avsender; supplier = this organization when sending on its behalf.
    let token = consumer
        .tokens
        .token(SCOPE_SEND)
        .await
        .map_err(|e| SendError::Retry(format!("Maskinporten: {e:#}")))?;
    let token_exp_ms = dpi::token::parse_unverified(&token)
        .ok()
        .and_then(|c| c.exp)
        .map(|e| e.saturating_mul(1000))
        .unwrap_or_else(|| store::to_ms(OffsetDateTime::now_utc()) + 60_000);
    let message_id = MessageId::parse(&l.message_id)
        .map_err(|e| SendError::Retry(format!("stored message id: {e}")))?;
    let conversation_id = ConversationId::parse(&l.conversation_id)
        .map_err(|e| SendError::Retry(format!("stored conversation id: {e}")))?;
    let signer = state.0.deps.signer.clone();
    let now = OffsetDateTime::now_utc();
    // Whole milliseconds, as Digdir's examples.
    let created = now
        .replace_nanosecond(u32::from(now.millisecond()) * 1_000_000)
        .unwrap_or(now);
    let avsender = consumer.orgnr.actor_id();
    let sbd = match letter::build_sbd(
        stored,
        &avsender,
        &signer.orgnr,
        &route,
        message_id,
        conversation_id,
        Timestamp(created),
    ) {
        Ok(s) => s,
        Err(e) => return Ok(Step::Refused(refuse(e.code, e.detail))),
    };
    let package = letter::build_package(stored, &avsender, &route, contents);
    let Some(recipient) = route.recipient_cert.clone() else {
        return Ok(Step::Refused(refuse(
            "krr_invalid_certificate",
            "no recipient certificate",
        )));
    };
    let spec = LetterSpec {
        sbd,
        package,
        signing_time: created,
    };
    let tok = token.clone();
    let t = std::time::Instant::now();
    // Two RSA signatures and an RSA encryption: keep them off the async threads.
    let sealed = tokio::task::spawn_blocking(move || {
        dpi::letter::seal_letter(&spec, &signer.chain, &signer.key, &recipient, &tok)
    })
    .await
    .map_err(|e| SendError::Retry(format!("sealing task: {e}")))?;
    step("seal", t);
    let t = std::time::Instant::now();
    let (sealed, _) = match sealed {
        Ok(s) => s,
        Err(e) => {
            return Ok(Step::Refused(refuse(
                "seal_failed",
                format!("{} ({})", e, e.code()),
            )));
        }
    };
    let provider = route.receiver.orgnr().to_string();
    repo::record_sealed(
        &state.0.deps.db,
        &l.letter_id,
        &repo::Sealed {
            channel: route.kind.channel(),
            provider_orgnr: &provider,
            forretningsmelding: &sealed.jwt,
            dokumentpakke_size: sealed.cms.len(),
            token_expires_at: token_exp_ms,
        },
        OffsetDateTime::now_utc(),
    )
    .await?;
    step("record", t);
    Ok(Step::Go(Sealed {
        jws: sealed.jwt,
        cms: sealed.cms,
        token: Some(token),
    }))
}

/// A letter ready to post: the business message, the dokumentpakke, and the token embedded in
/// the business message, which is also the bearer token (§3.3).
struct Sealed {
    jws: String,
    cms: Vec<u8>,
    /// `None` when a kept business message carries none.
    token: Option<String>,
}

/// The bearer token is the token embedded in the business message (§3.3).
fn embedded_token(jws: &str) -> Option<String> {
    let (_, payload) = dpi::jws::decode_unverified(jws).ok()?;
    let sbd = dpi::message::Sbd::parse(&payload).ok()?;
    sbd.body.maskinportentoken().map(str::to_owned)
}

/// `POST /messages/out`; `Go(detail)` when the access point has the letter.
async fn post(state: &AppState, sealed: Sealed) -> Result<Step<String>, SendError> {
    let Sealed { jws, cms, token } = sealed;
    let Some(token) = token else {
        return Ok(Step::Refused(refuse(
            "token_refused",
            "the stored business message carries no token",
        )));
    };
    let form = reqwest::multipart::Form::new()
        .part(
            "forretningsmelding",
            reqwest::multipart::Part::text(jws)
                .file_name("sbd.jwt")
                .mime_str("application/jwt")
                .map_err(|e| SendError::Retry(e.to_string()))?,
        )
        .part(
            "dokumentpakke",
            reqwest::multipart::Part::bytes(cms)
                .file_name("asic.cms")
                .mime_str("application/cms")
                .map_err(|e| SendError::Retry(e.to_string()))?,
        );
    let mut url = state.formidler("/messages/out");
    if let Some(k) = &state.0.cfg.kanal {
        url = format!("{url}?kanal={k}");
    }
    let res = state
        .0
        .http
        .post(&url)
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .map_err(|e| SendError::Retry(format!("POST {url}: {e}")))?;
    let status = res.status();
    if status.is_success() {
        return Ok(Step::Go(format!("accepted by the access point ({status})")));
    }
    let body = res.text().await.unwrap_or_default();
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let code = problem
        .get("code")
        .and_then(|c| c.as_str())
        .unwrap_or_default()
        .to_owned();
    let detail = format!(
        "{url} answered {status} {code}: {}",
        problem
            .get("detail")
            .and_then(|d| d.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| body.chars().take(300).collect())
    );
    match status.as_u16() {
        409 if code == "duplicate_message_id" => Ok(Step::Go(
            "the access point had the letter from an earlier attempt".into(),
        )),
        401 => Ok(Step::Refused(refuse("token_refused", detail))),
        408 | 429 => Err(SendError::Retry(detail)),
        400..=499 => Ok(Step::Refused(refuse("formidler_refused", detail))),
        _ => Err(SendError::Retry(detail)),
    }
}
