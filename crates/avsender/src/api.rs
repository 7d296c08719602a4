//! The case-system API: `POST /api/v1/letters`, `GET /api/v1/letters/{id}`.

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequest, Multipart, Path, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use domain::{ConversationId, MessageId};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use web::{Problem, letter_parts::multipart_problem};

use crate::{
    AppState,
    letter::{self, LetterRequest},
    repo::{self, Inserted},
    send,
    status::Status,
};

/// The case system behind the request, by its API key; 401 `invalid_api_key` otherwise.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<String, Problem> {
    let presented = headers
        .get(state.0.cfg.api_key_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if presented.is_empty() {
        return Err(Problem::unauthorized(
            "missing_api_key",
            format!(
                "send the API key in the {} header",
                state.0.cfg.api_key_header
            ),
        ));
    }
    for (name, secret) in &state.0.keys {
        if secret.len() == presented.len()
            && openssl::memcmp::eq(secret.as_bytes(), presented.as_bytes())
        {
            return Ok(name.clone());
        }
    }
    Err(Problem::unauthorized("invalid_api_key", "unknown API key"))
}

/// The letter's `avsender` resolved against the configuration: `None` for this organization
/// (absent, or its own orgnr), `Some(orgnr)` for an organization of `on_behalf_of`, 422
/// `avsender_not_delegated` for any other.
fn avsender_of(state: &AppState, named: Option<&str>) -> Result<Option<String>, Problem> {
    let Some(named) = named.map(str::trim) else {
        return Ok(None);
    };
    // A bare orgnr, or its ISO 6523 form (`0192:<orgnr>`).
    let orgnr = domain::Organisasjonsnummer::parse(named)
        .or_else(|_| domain::ActorId::parse(named).map(|a| a.orgnr()))
        .map_err(|e| {
            Problem::bad_request("invalid_avsender", format!("avsender: {e}"))
                .with_extension("field", "avsender")
        })?;
    if orgnr == state.0.deps.signer.orgnr.orgnr() {
        return Ok(None);
    }
    match state
        .0
        .consumers
        .iter()
        .find(|c| c.delegated && c.orgnr == orgnr)
    {
        Some(c) => Ok(c.column()),
        None => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "avsender_not_delegated",
            "This service does not send for that organization",
        )
        .with_detail(format!(
            "avsender {orgnr} is not among the organizations this service sends for \
             ([avsender] on_behalf_of)"
        ))
        .with_extension("field", "avsender")),
    }
}

fn invalid(e: letter::Invalid) -> Problem {
    Problem::bad_request(e.code, e.to_string()).with_extension("field", &e.field)
}

fn b64_content(i: usize, d: &letter::DocumentRequest) -> Result<Bytes, Problem> {
    let Some(b64) = &d.content_base64 else {
        return Err(Problem::bad_request(
            "missing_content",
            format!("documents[{i}]: content_base64 is required in a JSON request"),
        ));
    };
    // Line-wrapped base64 (MIME style) is accepted; the common unwrapped case is decoded in
    // place, without a filtered copy (a per-character copy cost more than the decoding).
    let b64 = b64.as_bytes();
    let cleaned: std::borrow::Cow<[u8]> = if b64.iter().any(u8::is_ascii_whitespace) {
        b64.iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect::<Vec<u8>>()
            .into()
    } else {
        b64.into()
    };
    base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .map(Bytes::from)
        .map_err(|e| {
            Problem::bad_request(
                "invalid_base64",
                format!("documents[{i}].content_base64: {e}"),
            )
        })
}

fn parse_json(bytes: &[u8]) -> Result<LetterRequest, Problem> {
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request("invalid_json", format!("the letter: {e}")))
}

async fn read_json(state: &AppState, req: Request) -> Result<(LetterRequest, Vec<Bytes>), Problem> {
    let body = Bytes::from_request(req, state)
        .await
        .map_err(|e| Problem::from_rejection(e.status(), "invalid_body", e.body_text()))?;
    let letter = parse_json(&body)?;
    let contents = letter
        .documents
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if d.part.is_some() {
                return Err(Problem::bad_request(
                    "unexpected_part",
                    format!("documents[{i}].part is for multipart requests"),
                ));
            }
            b64_content(i, d)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((letter, contents))
}

/// Generic over the state only so that tests can call it without a whole service.
async fn read_multipart<S: Send + Sync>(
    state: &S,
    req: Request,
) -> Result<(LetterRequest, Vec<Bytes>), Problem> {
    let mut mp = Multipart::from_request(req, state)
        .await
        .map_err(|e| Problem::from_rejection(e.status(), "invalid_multipart", e.body_text()))?;
    let mut letter = None;
    let mut files: Vec<(String, Bytes)> = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(multipart_problem)? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(multipart_problem)?;
        if name == "letter" {
            if letter.is_some() {
                return Err(Problem::bad_request(
                    "unexpected_part",
                    "the letter part appears twice",
                ));
            }
            letter = Some(parse_json(&bytes)?);
        } else if files.iter().any(|(n, _)| n == &name) {
            return Err(Problem::bad_request(
                "unexpected_part",
                format!("the part {name:?} appears twice"),
            ));
        } else {
            files.push((name, bytes));
        }
    }
    let Some(letter) = letter else {
        return Err(Problem::bad_request(
            "missing_part",
            "a multipart request needs a letter part (JSON)",
        ));
    };
    // Two documents may name one part (the same content under two file names, as two
    // documents may carry the same base64 in JSON); every part must be named by one.
    let mut used = std::collections::HashSet::new();
    let mut contents = Vec::with_capacity(letter.documents.len());
    for (i, d) in letter.documents.iter().enumerate() {
        match (&d.part, &d.content_base64) {
            (Some(p), None) => {
                let Some((_, b)) = files.iter().find(|(n, _)| n == p) else {
                    return Err(Problem::bad_request(
                        "missing_part",
                        format!("documents[{i}]: no part named {p:?}"),
                    ));
                };
                used.insert(p.as_str());
                contents.push(b.clone());
            }
            (None, Some(_)) => contents.push(b64_content(i, d)?),
            _ => {
                return Err(Problem::bad_request(
                    "missing_content",
                    format!("documents[{i}]: exactly one of part and content_base64"),
                ));
            }
        }
    }
    if let Some((unused, _)) = files.iter().find(|(n, _)| !used.contains(n.as_str())) {
        return Err(Problem::bad_request(
            "unexpected_part",
            format!("the part {unused:?} is not referenced by any document"),
        ));
    }
    Ok((letter, contents))
}

/// `POST /api/v1/letters`: 201 for a new letter, 200 for the same letter again, 409 for
/// another letter under a used id.
pub async fn post_letter(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, Problem> {
    let caller = authorize(&state, &headers)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (req, contents) = if ct.starts_with("multipart/form-data") {
        read_multipart(&state, req).await?
    } else if ct.starts_with("application/json") {
        read_json(&state, req).await?
    } else {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected application/json or multipart/form-data",
        ));
    };
    let mut stored = letter::validate(
        &req,
        &contents,
        &state.0.deps.fnr_policy,
        state.0.cfg.avsenderidentifikator.as_deref(),
    )
    .map_err(invalid)?;
    stored.avsender = avsender_of(&state, req.avsender.as_deref())?;
    let mut blobs = Vec::with_capacity(contents.len());
    for c in &contents {
        blobs.push(
            state
                .0
                .deps
                .blobs
                .put(c.clone())
                .await
                .map_err(Problem::internal)?,
        );
    }
    let now = OffsetDateTime::now_utc();
    let new = repo::NewLetter {
        letter_id: stored.id.clone(),
        request_sha256: stored.fingerprint(),
        request_json: serde_json::to_string(&stored).map_err(Problem::internal)?,
        message_id: MessageId::new().to_string(),
        conversation_id: ConversationId::new().to_string(),
        api_key_name: caller.clone(),
        avsender_orgnr: stored.avsender.clone(),
    };
    let job = send::job(&stored.id).map_err(Problem::internal)?;
    let outcome = repo::insert_letter(&state.0.deps.db, &state.0.jobs, job, &new, &blobs, now)
        .await
        .map_err(Problem::internal)?;
    if matches!(outcome, Inserted::New | Inserted::Same) {
        // A collector may have taken content shared with a sent letter just before this
        // letter's references committed (repo::collect_released_blobs): store it again.
        for (c, b) in contents.into_iter().zip(&blobs) {
            if !state
                .0
                .deps
                .blobs
                .exists(b)
                .await
                .map_err(Problem::internal)?
            {
                state.0.deps.blobs.put(c).await.map_err(Problem::internal)?;
            }
        }
    }
    let status = match outcome {
        Inserted::New => {
            metrics::counter!("avsender_letters_accepted_total").increment(1);
            tracing::info!(letter_id = %stored.id, caller, avsender = stored.avsender.as_deref(), "letter accepted");
            if let Some(c) = state.consumer(stored.avsender.as_deref()) {
                c.has_letters
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            StatusCode::CREATED
        }
        Inserted::Same => StatusCode::OK,
        Inserted::Conflict => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "letter_id_conflict",
                "Letter id already used",
            )
            .with_detail(format!(
                "the letter {} was submitted before with other content",
                stored.id
            )));
        }
        Inserted::OtherKey => {
            // Said plainly, so the case system draws a new id; the other letter stays hidden.
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "letter_id_in_use",
                "Letter id in use by another case system",
            )
            .with_detail(format!(
                "another API key submitted a letter with the id {}; use a new id",
                stored.id
            )));
        }
    };
    let view = if status == StatusCode::CREATED {
        // Built from what `insert_letter` just committed, not read back: three statements
        // fewer for every letter. A worker may have moved the letter on since; the answer
        // is the letter as accepted, and `GET` tells where it is now.
        let (letter, history) = accepted(&new, now);
        render(&state, letter, history, Vec::new())
    } else {
        view(&state, &stored.id, &caller)
            .await?
            .ok_or_else(|| Problem::internal("a stored letter vanished"))?
    };
    let mut res = (status, Json(view)).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!("api/v1/letters/{}", stored.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /api/v1/letters/{id}`: status, history and receipts.
pub async fn get_letter(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let caller = authorize(&state, &headers)?;
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| Problem::bad_request("invalid_letter_id", "the id must be a UUID"))?
        .hyphenated()
        .to_string();
    match view(&state, &id, &caller).await? {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(Problem::not_found().with_detail("no letter with this id")),
    }
}

fn rfc3339(ms: i64) -> Value {
    store::from_ms(ms)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map(Value::String)
        .unwrap_or(Value::Null)
}

/// The letter's view for the API key `caller`; `None` when there is no such letter or it
/// belongs to another key (the same answer, so ids of other case systems do not leak).
async fn view(state: &AppState, id: &str, caller: &str) -> Result<Option<Value>, Problem> {
    let db = &state.0.deps.db;
    let Some(l) = repo::get_letter(db, id).await.map_err(Problem::internal)? else {
        return Ok(None);
    };
    if !repo::visible_to(l.api_key_name.as_deref(), caller) {
        return Ok(None);
    }
    let history = repo::history(db, id).await.map_err(Problem::internal)?;
    let receipts = repo::receipts(db, id).await.map_err(Problem::internal)?;
    Ok(Some(render(state, l, history, receipts)))
}

/// A letter just inserted as `new` at `now` and its one history entry, as `repo::get_letter`
/// and `repo::history` would read them back.
fn accepted(
    new: &repo::NewLetter,
    now: OffsetDateTime,
) -> (repo::LetterRow, Vec<repo::HistoryRow>) {
    let at = store::to_ms(now);
    let letter = repo::LetterRow {
        letter_id: new.letter_id.clone(),
        // Not part of the view.
        request_json: String::new(),
        status: Status::Created,
        error_code: None,
        error_detail: None,
        channel: None,
        provider_orgnr: None,
        message_id: new.message_id.clone(),
        conversation_id: new.conversation_id.clone(),
        forretningsmelding: None,
        dokumentpakke_sha256: None,
        dokumentpakke_size: None,
        token_expires_at: None,
        created_at: at,
        updated_at: at,
        api_key_name: Some(new.api_key_name.clone()),
        avsender_orgnr: new.avsender_orgnr.clone(),
    };
    let history = vec![repo::HistoryRow {
        status: Status::Created.as_str().to_owned(),
        detail: None,
        receipt_id: None,
        at,
    }];
    (letter, history)
}

/// The API's view of a letter with its history and receipts.
fn render(
    state: &AppState,
    l: repo::LetterRow,
    history: Vec<repo::HistoryRow>,
    receipts: Vec<repo::ReceiptRow>,
) -> Value {
    let avsender = l
        .avsender_orgnr
        .clone()
        .unwrap_or_else(|| state.0.deps.signer.orgnr.orgnr().to_string());
    let history: Vec<Value> = history
        .into_iter()
        .map(|h| {
            let mut v = json!({"status": h.status, "at": rfc3339(h.at)});
            if let (Some(d), Some(o)) = (h.detail, v.as_object_mut()) {
                o.insert("detail".into(), d.into());
            }
            if let (Some(r), Some(o)) = (h.receipt_id, v.as_object_mut()) {
                o.insert("receipt_id".into(), r.into());
            }
            v
        })
        .collect();
    let receipts: Vec<Value> = receipts
        .into_iter()
        .map(|r| {
            json!({
                "id": r.receipt_id,
                "type": r.message_type,
                "issuer": r.issuer_orgnr,
                "tidspunkt": r.tidspunkt,
                "received_at": rfc3339(r.received_at),
                "verified": r.outcome != "rejected",
                "outcome": r.outcome,
                "reason": r.reason,
                "forretningsmelding": r.forretningsmelding,
            })
        })
        .collect();
    json!({
        "id": l.letter_id,
        "avsender": avsender,
        "status": l.status,
        "channel": l.channel,
        "provider": l.provider_orgnr,
        "message_id": l.message_id,
        "conversation_id": l.conversation_id,
        "error": l.error_code.map(|c| json!({"code": c, "detail": l.error_detail})),
        "created_at": rfc3339(l.created_at),
        "updated_at": rfc3339(l.updated_at),
        "history": history,
        "receipts": receipts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(b64: &str) -> letter::DocumentRequest {
        serde_json::from_value(serde_json::json!({
            "filename": "brev.pdf",
            "mime": "application/pdf",
            "content_base64": b64,
        }))
        .unwrap()
    }

    #[test]
    fn base64_content_may_be_line_wrapped_but_not_broken() {
        let plain = "JVBERi0xLjcKaGVpIHDDpSBkZWc=";
        let want = b"%PDF-1.7\nhei p\xc3\xa5 deg".to_vec();
        assert_eq!(b64_content(0, &doc(plain)).unwrap().to_vec(), want);
        let wrapped = "JVBERi0xLjcK\r\naGVpIHDD\n  pSBkZWc=\n";
        assert_eq!(b64_content(0, &doc(wrapped)).unwrap().to_vec(), want);
        let problem = b64_content(2, &doc("JVBERi0x*LjcK")).unwrap_err();
        assert_eq!(problem.code, "invalid_base64");
    }

    const BOUNDARY: &str = "samspill-test-boundary";

    fn part_head(name: &str) -> Vec<u8> {
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
            .into_bytes()
    }

    fn part(name: &str, body: &[u8]) -> Vec<u8> {
        let mut v = part_head(name);
        v.extend_from_slice(body);
        v.extend_from_slice(b"\r\n");
        v
    }

    /// A letter whose documents name `parts`; `read_multipart` does not validate it further.
    fn letter_part(parts: &[&str]) -> Vec<u8> {
        let documents: Vec<Value> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"filename": format!("dok{i}.pdf"), "mime": "application/pdf", "part": p}))
            .collect();
        let letter = json!({
            "id": "6f1d4a47-08a4-4c6e-9a0c-1f0b0b7b2a11",
            "personidentifikator": "29827200059",
            "ikkesensitivtittel": "Vedtak",
            "documents": documents,
        });
        part("letter", &serde_json::to_vec(&letter).unwrap())
    }

    /// A multipart request whose body arrives in these frames, each after the first only
    /// once the reader has found the stream empty (as on a network: the multipart parser
    /// takes all that is there, so a frame ready at once would be read with the one before).
    fn multipart(frames: Vec<Vec<u8>>) -> Request {
        use futures::StreamExt as _;
        let frames = futures::stream::iter(frames)
            .enumerate()
            .then(|(i, f)| async move {
                if i > 0 {
                    tokio::task::yield_now().await;
                }
                Ok::<_, std::io::Error>(Bytes::from(f))
            });
        Request::builder()
            .method("POST")
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(axum::body::Body::from_stream(frames))
            .unwrap()
    }

    #[tokio::test]
    async fn a_file_part_crossing_the_body_limit_is_413() {
        // Without a DefaultBodyLimit layer axum's default limit (2 MiB) applies. The letter
        // and the file part's head come first, so the limit is hit while a part is read
        // (not between parts, which was answered right already).
        let mut head = letter_part(&["f1"]);
        head.extend(part_head("f1"));
        head.extend_from_slice(b"%PDF-1.7\n");
        let rest = vec![b'x'; 3 * 1024 * 1024];
        let tail = format!("\r\n--{BOUNDARY}--\r\n").into_bytes();
        let problem = read_multipart(&(), multipart(vec![head, rest, tail]))
            .await
            .unwrap_err();
        assert_eq!(
            (problem.status, problem.code.as_ref()),
            (413, "payload_too_large")
        );
    }

    #[tokio::test]
    async fn every_file_part_must_be_named_by_a_document() {
        let body = |documents: &[&str], files: &[&str]| {
            let mut b = letter_part(documents);
            for f in files {
                b.extend(part(f, b"%PDF-1.7\n"));
            }
            b.extend(format!("--{BOUNDARY}--\r\n").into_bytes());
            b
        };
        // Two references, but to one part: f2 would be dropped.
        let problem = read_multipart(&(), multipart(vec![body(&["f1", "f1"], &["f1", "f2"])]))
            .await
            .unwrap_err();
        assert_eq!(
            (problem.status, problem.code.as_ref()),
            (400, "unexpected_part")
        );
        assert!(problem.detail.unwrap().contains("\"f2\""));
        // One part under two documents, every part named: taken.
        let (letter, contents) = read_multipart(&(), multipart(vec![body(&["f1", "f1"], &["f1"])]))
            .await
            .unwrap();
        assert_eq!(letter.documents.len(), 2);
        assert_eq!(contents, vec![Bytes::from_static(b"%PDF-1.7\n"); 2]);
    }
}
