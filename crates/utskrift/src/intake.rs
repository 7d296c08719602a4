//! Validation and spooling of received letters (queue `utskrift.intake`): corner-4 checks,
//! the embedded Maskinporten token, PDF-only documents, then one print file per letter in the
//! spool and a `mottakskvittering`, or a `feil` (KLIENT) with the reasons.

use std::time::Duration;

use dpi::{
    container::{DocumentRole, Limits},
    letter::open_letter_as,
    message::{Body, MessageType, Posttype, Returposthaandtering, Utskriftstype},
};
use store::{BlobRef, Job};
use time::OffsetDateTime;

use crate::{
    AppState, Identity,
    pdf::{self, AddressPage, Part},
    receipts, repo,
};

/// Longest `detaljer` of a `feil` (XSD ≤ 1000).
const MAX_DETALJER: usize = 1000;

pub fn spawn(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (jobs, count) = (state.0.jobs.clone(), state.0.cfg.intake_workers);
    store::spawn_workers(
        &jobs,
        repo::INTAKE_QUEUE,
        "utskrift-intake",
        count,
        Duration::from_secs(120),
        move |job| process(state.clone(), job),
        &shutdown,
    )
}

#[derive(Debug, thiserror::Error)]
enum IntakeError {
    #[error("{0}")]
    Retry(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Examinations of one letter before it is refused as a poison pill.
const MAX_EXAMINATIONS: i64 = 3;

/// The outcome of the CPU-bound part (decrypting, verifying, composing the PDF).
enum Examined {
    Reject(String),
    Accept {
        pdf: pdf::Composed,
        returposthaandtering: Returposthaandtering,
    },
}

impl Examined {
    fn into_result(self) -> Result<(pdf::Composed, Returposthaandtering), String> {
        match self {
            Examined::Reject(r) => Err(r),
            Examined::Accept {
                pdf,
                returposthaandtering,
            } => Ok((pdf, returposthaandtering)),
        }
    }
}

/// The embedded token is checked before the expensive work, from the unverified business
/// message (the signature over it is checked by `open_letter` after). A message without a
/// token is left to `open_letter`, which reports it.
async fn check_token_first(state: &AppState, jws: &str) -> Result<(), TokenCheck> {
    let token = dpi::jws::decode_unverified(jws)
        .ok()
        .and_then(|(_, p)| dpi::message::Sbd::parse(&p).ok())
        .and_then(|s| s.body.maskinportentoken().map(str::to_owned));
    match token {
        Some(t) => verify_embedded(&state.0.deps.maskinporten, &t).await,
        None => Ok(()),
    }
}

fn key_of(r: Returposthaandtering) -> &'static str {
    match r {
        Returposthaandtering::DirekteRetur => "DIREKTE_RETUR",
        Returposthaandtering::MakuleringMedMelding => "MAKULERING_MED_MELDING",
    }
}

fn examine(
    jws: &str,
    cms: &[u8],
    identity: &Identity,
    anchors: &dpi::trust::TrustAnchors,
    rules: pdf::Rules,
    now: OffsetDateTime,
) -> Examined {
    let opened = open_letter_as(
        jws,
        cms,
        &identity.key,
        &identity.cert,
        anchors,
        now,
        &Limits::default(),
    );
    let Some(sbd) = opened.sbd.as_ref() else {
        return Examined::Reject(issues(&opened.errors));
    };
    if sbd.message_type() != MessageType::Utskrift {
        return Examined::Reject(format!(
            "this is a print provider: it takes utskrift, not {}",
            sbd.message_type().key()
        ));
    }
    if domain::ActorId::parse(&sbd.header.receiver.value)
        .ok()
        .as_ref()
        != Some(&identity.orgnr)
    {
        return Examined::Reject(format!(
            "the letter is addressed to {}, not to this print provider ({})",
            sbd.header.receiver.value, identity.orgnr
        ));
    }
    if !opened.valid {
        return Examined::Reject(issues(&opened.errors));
    }
    let (Body::Utskrift(u), Some(package)) = (&sbd.body, opened.package.as_ref()) else {
        return Examined::Reject("the letter has no readable dokumentpakke".into());
    };
    let mut docs: Vec<&dpi::container::Document> = Vec::new();
    docs.extend(package.hoveddokument());
    docs.extend(
        package
            .documents
            .iter()
            .filter(|d| d.role == DocumentRole::Vedlegg),
    );
    let parts: Vec<Part<'_>> = docs
        .iter()
        .map(|d| Part {
            href: &d.href,
            mime: &d.mime,
            bytes: &d.bytes,
        })
        .collect();
    let page = AddressPage {
        recipient: AddressPage::lines(&u.mottaker),
        return_address: AddressPage::lines(&u.retur.mottaker),
        posttype: match u.posttype {
            Some(Posttype::A) => "A".into(),
            // B-post is the default when the sender does not ask for A.
            Some(Posttype::B) | None => "B".into(),
        },
        utskriftstype: match u.utskriftstype {
            Utskriftstype::SortHvit => "SORT_HVIT".into(),
            Utskriftstype::Farge => "FARGE".into(),
        },
        returposthaandtering: key_of(u.retur.returposthaandtering).into(),
        reference: sbd.message_id().to_string(),
    };
    match pdf::compose(&page, &parts, &rules) {
        Ok(pdf) => Examined::Accept {
            pdf,
            returposthaandtering: u.retur.returposthaandtering,
        },
        Err(e) => Examined::Reject(format!("{}: {e}", e.code())),
    }
}

fn issues(errors: &[dpi::Issue]) -> String {
    if errors.is_empty() {
        return "the letter could not be read".into();
    }
    errors
        .iter()
        .map(|i| format!("{}: {}", i.code, i.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why an embedded token did not verify.
enum TokenCheck {
    /// Not Maskinporten's: a bad signature or issuer, or a key missing from a key set
    /// fetched after the check began (the JWKS cache fetches again for an unknown key, so a
    /// freshly rotated key is found, and no retry is needed to see it).
    Invalid(String),
    /// Maskinporten's keys could not be fetched: try again later.
    Unavailable(String),
}

/// The embedded `maskinportentoken` was issued by Maskinporten: signature against the
/// issuer's published keys and the issuer itself. Its lifetime is judged against the
/// message's creation time by `open_letter` (a letter may wait in queues longer than a
/// token lives).
async fn verify_embedded(
    v: &clients::verify::MaskinportenVerifier,
    token: &str,
) -> Result<(), TokenCheck> {
    let bad = |m: String| TokenCheck::Invalid(format!("maskinportentoken: {m}"));
    let d = pki::jose::decode(token.trim()).map_err(|e| bad(e.to_string()))?;
    d.alg().map_err(|e| bad(e.to_string()))?;
    let kid = d.kid().ok_or_else(|| bad("no kid in the header".into()))?;
    let key = match v.jwt_verifier().jwks().key(kid).await {
        Ok(k) => k,
        Err(e @ clients::jwks::JwksError::UnknownKid(_)) => {
            return Err(TokenCheck::Invalid(format!("maskinportentoken: {e}")));
        }
        Err(e) => return Err(TokenCheck::Unavailable(e.to_string())),
    };
    if !d.verify(&key).unwrap_or(false) {
        return Err(bad("the signature does not verify".into()));
    }
    let issuer = v.jwt_verifier().issuer();
    if d.claims.get("iss").and_then(serde_json::Value::as_str) != Some(issuer) {
        return Err(bad(format!("not issued by {issuer}")));
    }
    Ok(())
}

/// The planned batch of a letter spooled at `now`: today's batch if it has not run yet,
/// otherwise tomorrow's.
pub(crate) fn planned_batch(now: OffsetDateTime, (h, m): (u8, u8)) -> OffsetDateTime {
    let today = now
        .replace_time(time::Time::from_hms(h, m, 0).unwrap_or(time::Time::MIDNIGHT))
        .to_offset(time::UtcOffset::UTC);
    if now < today {
        today
    } else {
        today + time::Duration::days(1)
    }
}

async fn process(state: AppState, job: Job) -> Result<(), IntakeError> {
    let p: repo::IntakeJob = job.payload_as()?;
    let deps = &state.0.deps;
    let db = &deps.db;
    let Some(letter) = repo::get_letter(db, &p.message_id).await? else {
        return Ok(());
    };
    if letter.status != repo::RECEIVED {
        return Ok(());
    }
    let (Some(sha), Some(size)) = (
        letter.dokumentpakke_sha256.clone(),
        letter.dokumentpakke_size,
    ) else {
        return Ok(());
    };
    let blob = BlobRef::from_row(sha, size);
    let stored = deps.blobs.get(&blob).await?;
    let Some(cms) = stored
        .strip_prefix(crate::INBOX_BLOB_PREFIX)
        .map(<[u8]>::to_vec)
    else {
        return Err(IntakeError::Retry(
            "stored payload lacks the inbox prefix".into(),
        ));
    };
    let now = OffsetDateTime::now_utc();
    let outcome = match check_token_first(&state, &letter.forretningsmelding).await {
        Err(TokenCheck::Unavailable(e)) => return Err(IntakeError::Retry(e)),
        Err(TokenCheck::Invalid(reason)) => Err(reason),
        Ok(()) => {
            // A letter whose examination keeps killing the process (say, a PDF that overflows
            // the parser's stack) would otherwise be taken over and retried forever.
            let n = repo::count_examination(db, &letter.message_id).await?;
            if n > MAX_EXAMINATIONS {
                Err(format!(
                    "the letter stopped the print service's validation {} times and is refused",
                    n - 1
                ))
            } else {
                let (jws, identity, anchors, rules) = (
                    letter.forretningsmelding.clone(),
                    deps.identity.clone(),
                    deps.anchors.clone(),
                    pdf::Rules {
                        max_pages: state.0.cfg.max_pages,
                        a4_tolerance_mm: state.0.cfg.a4_tolerance_mm,
                    },
                );
                tokio::task::spawn_blocking(move || {
                    examine(&jws, &cms, &identity, &anchors, rules, now)
                })
                .await
                .unwrap_or_else(|_| Examined::Reject("the letter could not be processed".into()))
                .into_result()
            }
        }
    };
    match outcome {
        Err(reason) => {
            let detaljer: String = reason.chars().take(MAX_DETALJER).collect();
            let id = domain::MessageId::new().to_string();
            let receipt = repo::NewReceipt {
                id: &id,
                kind: receipts::FEIL,
                detaljer: Some(&detaljer),
                tidspunkt: now,
            };
            if repo::mark_rejected(
                db,
                &state.0.jobs,
                &letter.message_id,
                &reason,
                Some(&receipt),
                now,
            )
            .await?
            {
                metrics::counter!("utskrift_letters_rejected_total").increment(1);
                tracing::warn!(message_id = %letter.message_id, reason, "letter refused");
            }
        }
        Ok((composed, retur)) => {
            let due = planned_batch(now, state.0.batch_hm);
            let batch_date = due.date().to_string();
            let dir = deps.spool_dir.join(&batch_date);
            let path = dir.join(format!("{}.pdf", letter.message_id));
            write_durably(&dir, &path, composed.pdf)
                .await
                .map_err(|e| IntakeError::Retry(format!("spool {}: {e}", path.display())))?;
            let id = domain::MessageId::new().to_string();
            let receipt = repo::NewReceipt {
                id: &id,
                kind: receipts::MOTTAK,
                detaljer: None,
                tidspunkt: now,
            };
            let path_str = path.to_string_lossy().into_owned();
            if repo::mark_spooled(
                db,
                &state.0.jobs,
                &letter.message_id,
                &repo::Spooled {
                    spool_path: &path_str,
                    pages: i64::try_from(composed.pages).unwrap_or(i64::MAX),
                    batch_date: &batch_date,
                    batch_due_at: due,
                    returposthaandtering: key_of(retur),
                },
                &receipt,
                now,
            )
            .await?
            {
                metrics::counter!("utskrift_letters_spooled_total").increment(1);
                tracing::info!(message_id = %letter.message_id, path = %path_str, pages = composed.pages, "letter spooled");
            }
        }
    }
    // The payload is no longer needed once the letter is spooled or refused.
    match repo::blob_still_needed(db, &blob.sha256).await {
        Ok(false) => {
            if let Err(e) = deps.blobs.delete(&blob).await {
                tracing::warn!(error = %e, "deleting a processed payload failed");
            }
        }
        Ok(true) => {}
        Err(e) => tracing::warn!(error = %e, "checking payload references failed"),
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file, synced and renamed, so the spool never
/// holds a half-written print file (a retry after a crash simply writes it again).
async fn write_durably(
    dir: &std::path::Path,
    path: &std::path::Path,
    bytes: Vec<u8>,
) -> std::io::Result<()> {
    let dir = dir.to_owned();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        std::fs::create_dir_all(&dir)?;
        let tmp = path.with_extension(format!("pdf.{}.tmp", uuid::Uuid::new_v4()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_go_into_todays_batch_until_it_has_run() {
        let hm = (14, 0);
        let morning = time::macros::datetime!(2026-11-29 09:30 UTC);
        assert_eq!(
            planned_batch(morning, hm),
            time::macros::datetime!(2026-11-29 14:00 UTC)
        );
        let late = time::macros::datetime!(2026-11-29 14:00 UTC);
        assert_eq!(
            planned_batch(late, hm),
            time::macros::datetime!(2026-11-30 14:00 UTC)
        );
    }
}
