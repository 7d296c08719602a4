//! HTTP handlers: Digdir's sender API (`/messages/…`) and the provider receipt hop.

use axum::{
    Json,
    body::Bytes,
    extract::{
        Multipart, Path, Query, State,
        multipart::MultipartRejection,
        rejection::{BytesRejection, PathRejection, QueryRejection},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use domain::{ActorId, MessageId};
use dpi::{
    message::{Body, MessageType, Sbd, Virksomhetmottaker},
    token::SCOPE_SEND,
};
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use web::{Problem, auth::Org};

use crate::{AppState, SCOPE_FORMIDLING, deliver, repo};

/// `kanal`: `[a-zA-Z0-9_-]{1,28}`, case-insensitive (stored lower-case).
fn parse_kanal(k: Option<&str>) -> Result<Option<String>, Problem> {
    let Some(k) = k else { return Ok(None) };
    let ok = (1..=28).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(Some(k.to_ascii_lowercase()))
    } else {
        Err(Problem::bad_request(
            "invalid_kanal",
            "kanal must be 1–28 characters of a-z, A-Z, 0-9, _ and -",
        ))
    }
}

fn query_or_problem<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::from_rejection(e.status(), "invalid_query", e.body_text()))
}

/// A path id as a message id (`invalid_id` for anything else, also a path axum cannot decode).
fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    let Path(id) =
        id.map_err(|e| Problem::from_rejection(e.status(), "invalid_id", e.body_text()))?;
    Ok(parse_id(&id)?.to_string())
}

#[derive(Debug, Deserialize)]
pub struct OutQuery {
    kanal: Option<String>,
}

fn letter_fields(
    sbd: &Sbd,
) -> Option<(
    &dpi::message::Avsender,
    &str,
    &dpi::message::Dokumentpakkefingeravtrykk,
)> {
    match &sbd.body {
        Body::Digital(m) => Some((
            &m.avsender,
            &m.maskinportentoken,
            &m.dokumentpakkefingeravtrykk,
        )),
        Body::Utskrift(m) => Some((
            &m.avsender,
            &m.maskinportentoken,
            &m.dokumentpakkefingeravtrykk,
        )),
        Body::Flyttet(m) => Some((
            &m.avsender,
            &m.maskinportentoken,
            &m.dokumentpakkefingeravtrykk,
        )),
        _ => None,
    }
}

/// `POST /messages/out`: validate (§3.4), store durably, queue for delivery, then 201.
pub async fn post_message(
    State(state): State<AppState>,
    Org(principal): Org,
    q: Result<Query<OutQuery>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_SEND)?;
    let q = query_or_problem(q)?;
    let kanal = parse_kanal(q.kanal.as_deref())?;
    let multipart = multipart
        .map_err(|e| Problem::from_rejection(e.status(), "invalid_multipart", e.body_text()))?;
    let (jws, cms) = web::letter_parts::read_letter_parts(
        multipart,
        dpi::message::MAX_SBD_BYTES * 2,
        state.0.cfg.max_dokumentpakke_bytes,
    )
    .await?;

    let verified = dpi::jws::verify(&jws).map_err(|e| {
        Problem::bad_request("invalid_forretningsmelding", e.to_string())
            .with_extension("reason", e.code())
    })?;
    let sbd = Sbd::parse(&verified.payload).map_err(|e| {
        Problem::bad_request("invalid_forretningsmelding", e.to_string())
            .with_extension("reason", e.code)
    })?;
    if let Some(first) = sbd.dpi_issues().first() {
        return Err(
            Problem::bad_request("invalid_forretningsmelding", first.to_string())
                .with_extension("reason", first.code),
        );
    }
    let Some((avsender, embedded_token, fingerprint)) = letter_fields(&sbd) else {
        return Err(Problem::bad_request(
            "unsupported_message_type",
            format!("{} cannot be sent here", sbd.message_type().key()),
        ));
    };
    let avsender_id = avsender.virksomhetsidentifikator.actor_id().map_err(|e| {
        Problem::bad_request("invalid_forretningsmelding", format!("avsender: {e}"))
    })?;
    if avsender_id != principal.consumer {
        return Err(Problem::forbidden(
            "consumer_mismatch",
            format!(
                "the token acts for {} but the letter's avsender is {avsender_id}",
                principal.consumer
            ),
        ));
    }
    if embedded_token.trim() != principal.token {
        return Err(Problem::bad_request(
            "token_mismatch",
            "the maskinportentoken in the business message is not the bearer token",
        ));
    }
    if fingerprint.digest_value != dpi::message::Dokumentpakkefingeravtrykk::of(&cms).digest_value {
        return Err(Problem::bad_request(
            "fingerprint_mismatch",
            "dokumentpakkefingeravtrykk does not match the SHA-256 of the dokumentpakke",
        ));
    }
    let now = OffsetDateTime::now_utc();
    if !state.0.deps.anchors.is_empty() {
        state
            .0
            .deps
            .anchors
            .verify(&verified.chain, now)
            .map_err(|e| {
                Problem::bad_request("untrusted_certificate", e.to_string())
                    .with_extension("reason", e.code())
            })?;
    }
    let receiver = ActorId::parse(&sbd.header.receiver.value)
        .map_err(|e| Problem::bad_request("invalid_receiver", format!("SBD receiver: {e}")))?;
    if state.route_for(&receiver.orgnr()).is_none() {
        return Err(Problem::bad_request(
            "unknown_receiver",
            format!("no route to the provider {receiver}"),
        ));
    }
    let conversation_id = sbd.conversation_id().ok_or_else(|| {
        Problem::bad_request("invalid_forretningsmelding", "no ConversationId scope")
    })?;
    // Receipts are addressed back to it: it tells this letter from others in its conversation.
    let sbd_sender = ActorId::parse(&sbd.header.sender.value)
        .ok()
        .map(|a| a.orgnr().to_string());

    let blob = store::BlobRef::of(&cms);
    let message_id = sbd.message_id().to_string();
    let new = repo::NewMessage {
        message_id: message_id.clone(),
        conversation_id: conversation_id.to_string(),
        message_type: sbd.message_type().key().to_owned(),
        sender_orgnr: avsender_id.orgnr().to_string(),
        supplier_orgnr: principal.supplier.map(|s| s.orgnr().to_string()),
        avsenderidentifikator: avsender.avsenderidentifikator.clone(),
        receiver_orgnr: receiver.orgnr().to_string(),
        sbd_sender_orgnr: sbd_sender,
        kanal,
        forretningsmelding: jws.clone(),
        dokumentpakke_sha256: blob.sha256.clone(),
        dokumentpakke_size: blob.row_size(),
        dokumentpakke: cms.clone(),
        deliver_by: deliver_by(now, state.0.cfg.delivery_deadline_secs),
    };
    let job = deliver::job(&message_id).map_err(Problem::internal)?;
    let inserted = repo::insert_message(&state.0.deps.db, &state.0.jobs, &new, job, now)
        .await
        .map_err(Problem::internal)?;
    if !inserted {
        // The same letter sent again (a retry after a lost response) is accepted again; a
        // different letter under a used id is refused.
        let existing = repo::get_message(&state.0.deps.db, &message_id)
            .await
            .map_err(Problem::internal)?;
        if existing.is_none_or(|m| !m.is_same_message(&jws)) {
            return Err(Problem::duplicate_message_id(&message_id));
        }
        // A row written by a version that queued the job separately may lack it; the dedup
        // key makes this a no-op otherwise.
        deliver::enqueue(&state, &message_id)
            .await
            .map_err(Problem::internal)?;
    }
    metrics::counter!("formidler_messages_accepted_total").increment(u64::from(inserted));
    tracing::info!(message_id, receiver = %receiver, "letter accepted");
    Ok(StatusCode::CREATED.into_response())
}

/// `now` plus the delivery deadline; a deadline beyond the calendar never passes.
fn deliver_by(now: OffsetDateTime, deadline_secs: u64) -> OffsetDateTime {
    now.checked_add(time::Duration::seconds(
        i64::try_from(deadline_secs).unwrap_or(i64::MAX),
    ))
    .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

fn parse_id(id: &str) -> Result<MessageId, Problem> {
    MessageId::parse(id).map_err(|_| Problem::bad_request("invalid_id", "the id must be a UUID"))
}

/// `GET /messages/out/{id}/statuses`: only for the organization that sent it.
pub async fn statuses(
    State(state): State<AppState>,
    Org(principal): Org,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_SEND)?;
    let id = path_id(id)?;
    let db = &state.0.deps.db;
    let msg = repo::get_message(db, &id)
        .await
        .map_err(Problem::internal)?;
    match msg {
        Some(m) if m.sender_orgnr == principal.consumer.orgnr().to_string() => {}
        _ => return Err(Problem::not_found().with_detail("no such message for this sender")),
    }
    let rows = repo::statuses(db, &id).await.map_err(Problem::internal)?;
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let ts = store::from_ms(r.at)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default();
            let mut v = serde_json::json!({ "status": r.status, "timestamp": ts });
            if let (Some(b), Some(obj)) = (r.beskrivelse, v.as_object_mut()) {
                obj.insert("beskrivelse".into(), b.into());
            }
            v
        })
        .collect();
    Ok(Json(out).into_response())
}

#[derive(Debug, Deserialize)]
pub struct InQuery {
    avsenderidentifikator: Option<String>,
    kanal: Option<String>,
    page_size: Option<String>,
    page: Option<String>,
}

fn parse_page(v: Option<&str>, default: i64, max: i64, name: &str) -> Result<i64, Problem> {
    match v {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) => Ok(n),
            _ => Err(Problem::bad_request(
                "invalid_paging",
                format!("{name} must be a whole number from 0 to {max}"),
            )),
        },
    }
}

/// Receipts go back to the party that sent the letter (§3.4: C2 keeps avsender and
/// databehandler to route them): the token's `consumer` (the avsender) and its `supplier` (the
/// databehandler, `""` when the avsender sent itself). Neither the avsender's own token nor
/// another databehandler's sees — or consumes — a databehandler's receipts.
fn receipt_party(p: &web::auth::OrgPrincipal) -> (String, String) {
    (
        p.consumer.orgnr().to_string(),
        p.supplier
            .as_ref()
            .map(|s| s.orgnr().to_string())
            .unwrap_or_default(),
    )
}

/// `GET /messages/in`: the sender's unread receipts (204 when there are none).
pub async fn incoming(
    State(state): State<AppState>,
    Org(principal): Org,
    q: Result<Query<InQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_SEND)?;
    let q = query_or_problem(q)?;
    let kanal = parse_kanal(q.kanal.as_deref())?;
    let page_size = parse_page(q.page_size.as_deref(), 100, 1000, "page_size")?.max(1);
    let page = parse_page(q.page.as_deref(), 0, 1_000_000, "page")?;
    let (recipient, supplier) = receipt_party(&principal);
    let rows = repo::list_incoming(
        &state.0.deps.db,
        &recipient,
        &supplier,
        q.avsenderidentifikator.as_deref(),
        kanal.as_deref(),
        page_size,
        page.saturating_mul(page_size),
    )
    .await
    .map_err(Problem::internal)?;
    if rows.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let base = state.0.public_url.trim_end_matches('/').to_owned();
    let out: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "forretningsmelding": r.forretningsmelding,
                "downloadurl": format!("{base}/messages/in/{}", r.id),
            })
        })
        .collect();
    Ok(Json(out).into_response())
}

/// `GET /messages/in/{id}`: receipts carry no dokumentpakke, so this answers with the signed
/// business message itself.
pub async fn download(
    State(state): State<AppState>,
    Org(principal): Org,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_SEND)?;
    let id = path_id(id)?;
    let (recipient, supplier) = receipt_party(&principal);
    match repo::get_incoming(&state.0.deps.db, &recipient, &supplier, &id)
        .await
        .map_err(Problem::internal)?
    {
        Some(row) => Ok((
            [(header::CONTENT_TYPE, "application/jwt")],
            row.forretningsmelding,
        )
            .into_response()),
        None => Err(Problem::not_found().with_detail("no such incoming message")),
    }
}

/// `POST /messages/in/{id}/read`: removes it from `GET /messages/in`.
pub async fn mark_read(
    State(state): State<AppState>,
    Org(principal): Org,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_SEND)?;
    let id = path_id(id)?;
    let (recipient, supplier) = receipt_party(&principal);
    if repo::mark_read(
        &state.0.deps.db,
        &recipient,
        &supplier,
        &id,
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(Problem::internal)?
    {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(Problem::not_found().with_detail("no such incoming message"))
    }
}

/// `POST /dpi/receipts`: a provider hands back a signed receipt (body: the JWS).
pub async fn receive_receipt(
    State(state): State<AppState>,
    Org(principal): Org,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    principal.require_scope(SCOPE_FORMIDLING)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/jwt") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected application/jwt",
        ));
    }
    let body =
        body.map_err(|e| Problem::from_rejection(e.status(), "invalid_body", e.body_text()))?;
    let jws = std::str::from_utf8(&body)
        .map_err(|_| Problem::bad_request("invalid_receipt", "not UTF-8"))?
        .trim()
        .to_owned();
    let opened = dpi::receipt::open_receipt(&jws, &state.0.deps.anchors, OffsetDateTime::now_utc());
    let sbd = match (opened.valid, opened.sbd) {
        (true, Some(sbd)) => sbd,
        (_, _) => {
            let first = opened.errors.first();
            return Err(Problem::bad_request(
                "invalid_receipt",
                first.map(|i| i.detail.clone()).unwrap_or_default(),
            )
            .with_extension("reason", first.map(|i| i.code.clone())));
        }
    };
    let issuer = ActorId::parse(&sbd.header.sender.value)
        .map_err(|e| Problem::bad_request("invalid_receipt", format!("SBD sender: {e}")))?;
    if issuer != principal.consumer {
        return Err(Problem::forbidden(
            "consumer_mismatch",
            "a provider may only hand in its own receipts",
        ));
    }
    let Some(conversation_id) = sbd.conversation_id() else {
        return Err(Problem::bad_request("invalid_receipt", "no ConversationId"));
    };
    let db = &state.0.deps.db;
    let conversation = conversation_id.to_string();
    let issuer_orgnr = issuer.orgnr().to_string();
    let letters = repo::letters_to(db, &conversation, &issuer_orgnr)
        .await
        .map_err(Problem::internal)?;
    if letters.is_empty() {
        return Err(
            if repo::conversation_known(db, &conversation)
                .await
                .map_err(Problem::internal)?
            {
                Problem::forbidden(
                    "not_the_receiver",
                    "only the provider the letter went to may send its receipts",
                )
            } else {
                unknown_conversation("no letter with this conversation id passed this access point")
            },
        );
    }
    let matched = answered(&sbd, &letters);
    let (route, letter) = match matched.as_slice() {
        [] => {
            return Err(unknown_conversation(
                "no letter of this conversation to this provider has the receipt's receiver \
                 and mottaker as its sender and avsender",
            ));
        }
        [one] => (&one.route, Some(*one)),
        // Several letters whose receipts go to the same party (one sender reusing a
        // conversation id): the receipt reaches the right party whichever letter it answers.
        [first, more @ ..] if more.iter().all(|l| l.route == first.route) => (&first.route, None),
        _ => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "ambiguous_receipt",
                "Receipt matches several letters",
            )
            .with_detail(
                "several letters of this conversation to this provider match the receipt and \
                 their receipts go to different parties",
            ));
        }
    };
    let t: MessageType = sbd.message_type();
    let inserted = repo::insert_incoming(
        db,
        &repo::NewIncoming {
            id: &sbd.message_id().to_string(),
            conversation_id: &conversation,
            message_type: t.key(),
            recipient_orgnr: &route.sender_orgnr,
            supplier_orgnr: route.supplier_orgnr.as_deref(),
            avsenderidentifikator: route.avsenderidentifikator.as_deref(),
            kanal: route.kanal.as_deref(),
            forretningsmelding: &jws,
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .map_err(Problem::internal)?;
    // Only a receipt that names one letter confirms its delivery: confirming another letter
    // would drop a payload the provider never got.
    if let Some(letter) = letter.filter(|l| l.status == repo::OPPRETTET) {
        crate::deliver::confirmed_by_receipt(&state, &letter.message_id)
            .await
            .map_err(Problem::internal)?;
    }
    metrics::counter!("formidler_receipts_total", "type" => t.key()).increment(u64::from(inserted));
    Ok(if inserted {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
    .into_response())
}

fn unknown_conversation(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_conversation",
        "Unknown conversation",
    )
    .with_detail(detail)
}

/// The business-level mottaker of a receipt: the avsender of the letter it answers.
fn receipt_mottaker(body: &Body) -> Option<&Virksomhetmottaker> {
    match body {
        Body::Leveringskvittering(k)
        | Body::Aapningskvittering(k)
        | Body::Mottakskvittering(k)
        | Body::Returpostkvittering(k) => Some(&k.mottaker),
        Body::Varslingfeiletkvittering(k) => Some(&k.mottaker),
        Body::Feil(f) => Some(&f.mottaker),
        Body::Digital(_) | Body::Utskrift(_) | Body::Flyttet(_) => None,
    }
}

/// The letters (all to the receipt's issuer, of its conversation) a receipt can answer. A DPI
/// receipt does not name its letter's message id; it carries what `build_receipt` copies from
/// the letter: its SBD receiver is the letter's SBD sender, its mottaker the letter's avsender
/// and avsenderidentifikator, its process the letter's. Each must agree where both sides have
/// it (a letter accepted before its SBD sender was kept, a receipt without an
/// avsenderidentifikator, leave that field out).
fn answered<'a>(receipt: &Sbd, letters: &'a [repo::ReceiptTarget]) -> Vec<&'a repo::ReceiptTarget> {
    let orgnr = |value: &str| ActorId::parse(value).ok().map(|a| a.orgnr().to_string());
    let Some(addressee) = orgnr(&receipt.header.receiver.value) else {
        return Vec::new();
    };
    let mottaker = receipt_mottaker(&receipt.body);
    let avsender = match mottaker.map(|m| m.virksomhetsidentifikator.actor_id()) {
        Some(Ok(a)) => Some(a.orgnr().to_string()),
        Some(Err(_)) => return Vec::new(),
        None => None,
    };
    let avsenderidentifikator = mottaker.and_then(|m| m.motakeridentifikator.as_deref());
    let process = receipt.process();
    letters
        .iter()
        .filter(|l| {
            l.sbd_sender_orgnr.as_ref().is_none_or(|s| *s == addressee)
                && avsender.as_ref().is_none_or(|a| *a == l.route.sender_orgnr)
                && avsenderidentifikator
                    .is_none_or(|id| l.route.avsenderidentifikator.as_deref() == Some(id))
                && match (process, MessageType::from_key(&l.message_type)) {
                    (Some(p), Some(t)) => t.allowed_in(p),
                    _ => true,
                }
        })
        .collect()
}
