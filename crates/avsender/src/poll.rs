//! Receipts: poll `GET /messages/in` (with this sender's `kanal`), verify each receipt (JWS,
//! certificate chain, issuer = the provider the letter went to, or the access point for its
//! own `feil`), apply it to the letter's state machine, then `POST /messages/in/{id}/read`.
//!
//! The access point lists receipts per avsender (the token's `consumer`), so each
//! organization letters are sent for is polled with its own token — once it has letters here.
//!
//! A receipt is marked read only after its outcome is stored, so a crash in between means
//! the receipt is fetched again and recognised by its id. A receipt that fails verification
//! is stored as `rejected` with the reason, logged, marked read and never applied.

use std::time::Duration;

use domain::ActorId;
use dpi::{message::Body, token::SCOPE_SEND};
use futures::StreamExt;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::{
    AppState, Consumer,
    repo::{self, NewReceipt, ReceiptOutcome},
    status::Event,
};

#[derive(Debug, Deserialize)]
struct Incoming {
    forretningsmelding: String,
    #[serde(default)]
    downloadurl: Option<String>,
}

pub fn spawn(
    state: AppState,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let idle = Duration::from_millis(state.0.cfg.poll_interval_ms.max(10));
        loop {
            if *shutdown.borrow() {
                break;
            }
            let pause = match poll_all(&state).await {
                (n, false) if n > 0 => None,
                (_, false) => Some(idle),
                (_, true) => Some(idle.max(Duration::from_millis(500))),
            };
            if let Some(p) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(p) => {}
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
        }
    })
}

/// One poll for every organization with letters: the number of receipts handled, and
/// whether any poll failed (each failure is logged; the others go on).
async fn poll_all(state: &AppState) -> (usize, bool) {
    let mut handled = 0;
    let mut failed = false;
    for c in &state.0.consumers {
        if !c.has_letters.load(std::sync::atomic::Ordering::Relaxed) {
            match repo::has_letters(&state.0.deps.db, c.column().as_deref()).await {
                Ok(true) => c
                    .has_letters
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, avsender = %c.orgnr, "polling receipts failed");
                    failed = true;
                    continue;
                }
            }
        }
        match poll_once(state, c).await {
            Ok(n) => handled += n,
            Err(e) => {
                tracing::warn!(error = %e, avsender = %c.orgnr, "polling receipts failed");
                failed = true;
            }
        }
    }
    (handled, failed)
}

/// One poll for `consumer`: fetch a page of its receipts and handle each; the number handled.
pub(crate) async fn poll_once(state: &AppState, consumer: &Consumer) -> anyhow::Result<usize> {
    let token = consumer.tokens.token(SCOPE_SEND).await?;
    let mut url = format!(
        "{}?page_size={}",
        state.formidler("/messages/in"),
        state.0.cfg.poll_page_size.clamp(1, 1000)
    );
    if let Some(k) = &state.0.cfg.kanal {
        url.push_str(&format!("&kanal={k}"));
    }
    let res = state.0.http.get(&url).bearer_auth(&token).send().await?;
    let status = res.status();
    if status.as_u16() == 204 {
        return Ok(0);
    }
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        anyhow::bail!(
            "GET {url} answered {status}: {}",
            body.chars().take(300).collect::<String>()
        );
    }
    let items: Vec<Incoming> = res.json().await?;
    let n = items.len();
    // Receipts of one letter are handled in the order listed (its state machine expects
    // levering before aapning); different letters' receipts are handled side by side, since
    // each costs a signature check and two round trips.
    let mut letters: Vec<Vec<Incoming>> = Vec::new();
    let mut by_conversation: std::collections::HashMap<String, usize> = Default::default();
    for item in items {
        match unverified_conversation_id(item.forretningsmelding.trim()) {
            Some(c) => match by_conversation.get(&c) {
                Some(&i) => {
                    if let Some(group) = letters.get_mut(i) {
                        group.push(item);
                    }
                }
                None => {
                    by_conversation.insert(c, letters.len());
                    letters.push(vec![item]);
                }
            },
            None => letters.push(vec![item]),
        }
    }
    let token = &token;
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(letters)
        .map(|group| async move {
            for item in group {
                receive(state, consumer, token, item).await?;
            }
            Ok(())
        })
        .buffer_unordered(RECEIPTS_IN_PARALLEL)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(n)
}

/// Letters whose receipts are handled at the same time within one poll.
const RECEIPTS_IN_PARALLEL: usize = 8;

/// Handles one listed receipt and marks it read.
async fn receive(
    state: &AppState,
    consumer: &Consumer,
    token: &str,
    item: Incoming,
) -> anyhow::Result<()> {
    let jws = item.forretningsmelding.trim().to_owned();
    let id = item
        .downloadurl
        .as_deref()
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| unverified_message_id(&jws));
    let Some(id) = id else {
        tracing::warn!("an incoming message without id or download URL was skipped");
        return Ok(());
    };
    handle(state, consumer, &id, &jws).await?;
    let read = state.formidler(&format!("/messages/in/{id}/read"));
    let r = state.0.http.post(&read).bearer_auth(token).send().await?;
    if !(r.status().is_success() || r.status().as_u16() == 404) {
        anyhow::bail!("POST {read} answered {}", r.status());
    }
    Ok(())
}

fn unverified_conversation_id(jws: &str) -> Option<String> {
    let (_, payload) = dpi::jws::decode_unverified(jws).ok()?;
    let sbd = dpi::message::Sbd::parse(&payload).ok()?;
    sbd.conversation_id().map(|c| c.to_string())
}

fn unverified_message_id(jws: &str) -> Option<String> {
    let (_, payload) = dpi::jws::decode_unverified(jws).ok()?;
    let sbd = dpi::message::Sbd::parse(&payload).ok()?;
    Some(sbd.message_id().to_string())
}

/// Verifies and applies one receipt.
async fn handle(state: &AppState, consumer: &Consumer, id: &str, jws: &str) -> anyhow::Result<()> {
    let db = &state.0.deps.db;
    let now = OffsetDateTime::now_utc();
    let opened = dpi::receipt::open_receipt(jws, &state.0.deps.anchors, now);
    // The letter it claims to answer, even when it does not verify (for the record).
    let unverified = opened.sbd.clone().or_else(|| {
        dpi::jws::decode_unverified(jws)
            .ok()
            .and_then(|(_, p)| dpi::message::Sbd::parse(&p).ok())
    });
    let letter = match unverified.as_ref().and_then(|s| s.conversation_id()) {
        Some(c) => repo::letter_by_conversation(db, &c.to_string()).await?,
        None => None,
    };
    let t = unverified.as_ref().map(|s| s.message_type().key());
    let issuer = unverified.as_ref().map(|s| s.header.sender.value.clone());
    let letter_id = letter.as_ref().map(|l| l.letter_id.clone());
    let record = NewReceipt {
        receipt_id: id,
        letter_id: letter_id.as_deref(),
        message_type: t,
        issuer_orgnr: issuer.as_deref(),
        tidspunkt: None,
        forretningsmelding: jws,
    };
    let reject = |reason: String| async move {
        tracing::warn!(receipt_id = id, reason, "receipt rejected");
        metrics::counter!("avsender_receipts_rejected_total").increment(1);
        repo::record_rejected(db, &record, &reason, now).await
    };
    let sbd = match (opened.valid, opened.sbd) {
        (true, Some(s)) => s,
        _ => {
            let reason = opened
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.detail))
                .collect::<Vec<_>>()
                .join("; ");
            reject(format!("not verified: {reason}")).await?;
            return Ok(());
        }
    };
    let Some(letter) = letter else {
        reject("no letter of ours has this conversation id".into()).await?;
        return Ok(());
    };
    if letter.avsender_orgnr != consumer.column() {
        reject(format!(
            "listed for the avsender {} but the letter was sent for {}",
            consumer.orgnr,
            letter
                .avsender_orgnr
                .as_deref()
                .unwrap_or("this organization")
        ))
        .await?;
        return Ok(());
    }
    let Some(event) = Event::of_receipt(sbd.message_type()) else {
        reject("not a receipt".into()).await?;
        return Ok(());
    };
    let issuer = ActorId::parse(&sbd.header.sender.value).ok();
    let from_provider = issuer.as_ref().map(|a| a.orgnr().to_string()) == letter.provider_orgnr;
    let from_access_point =
        event == Event::Feil && issuer.as_ref().map(|a| a.orgnr()) == state.0.deps.formidler_orgnr;
    if !(from_provider || from_access_point) {
        reject(format!(
            "issued by {} but the letter went to {}",
            sbd.header.sender.value,
            letter
                .provider_orgnr
                .as_deref()
                .unwrap_or("no provider yet")
        ))
        .await?;
        return Ok(());
    }
    let receiver = ActorId::parse(&sbd.header.receiver.value).ok();
    if receiver.as_ref() != Some(&state.0.deps.signer.orgnr) {
        reject(format!(
            "addressed to {}, not to this sender",
            sbd.header.receiver.value
        ))
        .await?;
        return Ok(());
    }
    let (detail, error_code, tidspunkt) = match &sbd.body {
        Body::Feil(f) => (
            Some(format!(
                "{}: {}",
                match f.feiltype {
                    dpi::message::Feiltype::Klient => "KLIENT",
                    dpi::message::Feiltype::Server => "SERVER",
                },
                f.detaljer.as_deref().unwrap_or("no details")
            )),
            Some(match f.feiltype {
                dpi::message::Feiltype::Klient => "feil_klient",
                dpi::message::Feiltype::Server => "feil_server",
            }),
            f.tidspunkt.to_string(),
        ),
        Body::Varslingfeiletkvittering(v) => (
            Some(format!(
                "{:?}: {}",
                v.varslingskanal,
                v.beskrivelse.as_deref().unwrap_or("notification failed")
            )),
            None,
            v.tidspunkt.to_string(),
        ),
        Body::Leveringskvittering(k)
        | Body::Aapningskvittering(k)
        | Body::Mottakskvittering(k)
        | Body::Returpostkvittering(k) => (None, None, k.tidspunkt.to_string()),
        _ => (None, None, String::new()),
    };
    let issuer_orgnr = issuer.as_ref().map(|a| a.orgnr().to_string());
    let record = NewReceipt {
        receipt_id: id,
        letter_id: Some(&letter.letter_id),
        message_type: Some(sbd.message_type().key()),
        issuer_orgnr: issuer_orgnr.as_deref(),
        tidspunkt: Some(&tidspunkt),
        forretningsmelding: jws,
    };
    let outcome = repo::apply_receipt(
        db,
        &record,
        &letter.letter_id,
        event,
        detail.as_deref(),
        error_code,
        now,
    )
    .await?;
    match &outcome {
        ReceiptOutcome::Applied(path) => {
            metrics::counter!("avsender_receipts_applied_total", "type" => sbd.message_type().key())
                .increment(1);
            tracing::info!(letter_id = %letter.letter_id, receipt_id = id, status = ?path.last(), "receipt applied");
        }
        ReceiptOutcome::OutOfOrder(why) => {
            tracing::warn!(letter_id = %letter.letter_id, receipt_id = id, why, "receipt not applicable");
        }
        ReceiptOutcome::Duplicate | ReceiptOutcome::Rejected(_) => {}
    }
    Ok(())
}
