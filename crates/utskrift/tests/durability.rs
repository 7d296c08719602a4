//! What the print provider promises across failures: a letter answered with 202 is printed
//! after a crash (even one in the middle of its validation), and receipts reach the sender
//! after the access point was down, each letter's receipts in their order. Runs on the backend
//! named by `SAMSPILL_TEST_BACKEND`.

mod common;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};
use std::time::Duration;

use common::{Options, World, norsk, pdf_doc, print_letter};
use dpi::container::DocumentRole;
use dpi::message::{MessageType, Returposthaandtering};
use store::sqlx;

fn letter() -> dpi::letter::LetterSpec {
    print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_taken_before_a_crash_is_spooled_after_the_restart() {
    let w = World::start_with(Options {
        no_utskrift_workers: true,
        ..Options::default()
    })
    .await;
    let (jwt, cms, sbd) = w.seal(&letter()).await;
    assert_eq!(w.send(&jwt, &cms).await, 201);
    // The access point delivered it: stored and acknowledged, not yet validated.
    let received = w.wait_status(sbd.message_id(), utskrift::RECEIVED).await;
    assert!(received.receipts.is_empty());
    // A worker claims it and dies without finishing (no heartbeat, short lease).
    let jobs = store::Jobs::new(w.db.db().clone());
    let claimed = jobs
        .claim(
            utskrift::INTAKE_QUEUE,
            "crashed-worker",
            Duration::from_millis(300),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap()
        .expect("the intake job is queued");
    assert_eq!(claimed.payload["message_id"], sbd.message_id().to_string());

    // The restarted process takes the job over once the lease has run out.
    w.restart_utskrift();
    let spooled = w.wait_status(sbd.message_id(), utskrift::SPOOLED).await;
    assert!(std::path::Path::new(&spooled.spool_path.unwrap()).exists());
    w.wait_receipt(
        sbd.conversation_id().unwrap(),
        MessageType::Mottakskvittering,
    )
    .await;
    let job = jobs.get(claimed.id).await.unwrap().unwrap();
    assert_eq!(job.state, store::JobState::Done);
    assert!(job.attempts >= 2, "taken over: {job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_reach_the_sender_after_the_access_point_comes_back() {
    // The print provider hands receipts to an access point address that is down at first.
    let parked = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = parked.local_addr().unwrap();
    drop(parked);
    let w = World::start_with(Options {
        formidler_url: Some(format!("http://{down}")),
        ..Options::default()
    })
    .await;
    let (jwt, cms, sbd) = w.seal(&letter()).await;
    assert_eq!(w.send(&jwt, &cms).await, 201);
    w.wait_status(sbd.message_id(), utskrift::SPOOLED).await;
    // Wait until a delivery attempt of the mottakskvittering has failed.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let failed: Option<String> = sqlx::query_scalar(
            "SELECT last_error FROM jobs WHERE queue = $1 AND last_error IS NOT NULL",
        )
        .bind(utskrift::RECEIPT_QUEUE)
        .fetch_optional(w.db.db().pool())
        .await
        .unwrap();
        if let Some(e) = failed {
            assert!(e.contains("dpi/receipts"), "{e}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(w.receipts().await.is_empty());

    // The access point comes back on its address.
    let listener = tokio::net::TcpListener::bind(down).await.unwrap();
    let app = formidler::router(w.formidler.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    w.wait_receipt(
        sbd.conversation_id().unwrap(),
        MessageType::Mottakskvittering,
    )
    .await;
    let status = utskrift::letter_status(w.db.db(), &sbd.message_id().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.receipts,
        vec![("mottakskvittering".to_owned(), "sent".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_that_keeps_killing_its_worker_is_refused_not_retried_forever() {
    let w = World::start_with(Options {
        no_utskrift_workers: true,
        ..Options::default()
    })
    .await;
    let (jwt, cms, sbd) = w.seal(&letter()).await;
    assert_eq!(w.send(&jwt, &cms).await, 201);
    w.wait_status(sbd.message_id(), utskrift::RECEIVED).await;
    // Three earlier examinations that never finished (the process died each time).
    sqlx::query("UPDATE utskrift_letters SET examinations = 3 WHERE message_id = $1")
        .bind(sbd.message_id().to_string())
        .execute(w.db.db().pool())
        .await
        .unwrap();
    w.restart_utskrift();
    let feil = w
        .wait_receipt(sbd.conversation_id().unwrap(), MessageType::Feil)
        .await;
    let dpi::message::Body::Feil(f) = &feil.body else {
        panic!("not a feil")
    };
    assert!(
        f.detaljer.clone().unwrap_or_default().contains("stopped"),
        "{:?}",
        f.detaljer
    );
    let status = w.wait_status(sbd.message_id(), utskrift::REJECTED).await;
    assert!(status.spool_path.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_batches_at_once_print_each_letter_once() {
    let w = World::start().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (jwt, cms, sbd) = w.seal(&letter()).await;
        assert_eq!(w.send(&jwt, &cms).await, 201);
        ids.push(sbd.message_id());
    }
    for id in &ids {
        w.wait_status(*id, utskrift::SPOOLED).await;
    }
    let now = time::OffsetDateTime::now_utc();
    let (a, b) = tokio::join!(
        utskrift::run_batch_now(w.db.db(), now),
        utskrift::run_batch_now(w.db.db(), now)
    );
    assert_eq!(a.unwrap().letters + b.unwrap().letters, ids.len());
    for id in &ids {
        let s = w.wait_status(*id, utskrift::PRINTED).await;
        let levering = s
            .receipts
            .iter()
            .filter(|(k, _)| k == "leveringskvittering")
            .count();
        assert_eq!(levering, 1, "{s:?}");
    }
}

/// An access point in front of the real one that refuses every `leveringskvittering` while
/// `refuse_levering` is set and records, in order, the kinds it passed on and got taken.
#[derive(Clone)]
struct Gate {
    upstream: String,
    http: reqwest::Client,
    refuse_levering: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    taken: Arc<Mutex<Vec<String>>>,
}

async fn gate(
    axum::extract::State(g): axum::extract::State<Gate>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> axum::http::StatusCode {
    let kind = std::str::from_utf8(&body)
        .ok()
        .and_then(|jws| dpi::jws::decode_unverified(jws).ok())
        .and_then(|(_, p)| dpi::message::Sbd::parse(&p).ok())
        .map(|s| s.message_type())
        .expect("a receipt JWS");
    if kind == MessageType::Leveringskvittering && g.refuse_levering.load(Ordering::SeqCst) {
        g.refused.fetch_add(1, Ordering::SeqCst);
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut req = g.http.post(&g.upstream).body(body);
    for h in [
        axum::http::header::AUTHORIZATION,
        axum::http::header::CONTENT_TYPE,
    ] {
        if let Some(v) = headers.get(&h) {
            req = req.header(h.as_str(), v.as_bytes());
        }
    }
    let status = req.send().await.expect("the access point answers").status();
    if status.is_success() {
        g.taken.lock().unwrap().push(kind.key().to_owned());
    }
    axum::http::StatusCode::from_u16(status.as_u16()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returpostkvittering_waits_for_the_leveringskvittering_of_its_letter() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let w = World::start_with(Options {
        formidler_url: Some(format!("http://{at}")),
        ..Options::default()
    })
    .await;
    let g = Gate {
        upstream: format!("{}/formidler/dpi/receipts", w.base),
        http: reqwest::Client::new(),
        refuse_levering: Arc::new(AtomicBool::new(true)),
        refused: Arc::default(),
        taken: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/dpi/receipts", axum::routing::post(gate))
        .with_state(g.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });

    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::MakuleringMedMelding,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    );
    let (jwt, cms, sbd) = w.seal(&spec).await;
    let id = sbd.message_id().to_string();
    assert_eq!(w.send(&jwt, &cms).await, 201);
    w.wait_receipt(
        sbd.conversation_id().unwrap(),
        MessageType::Mottakskvittering,
    )
    .await;
    // Printed: the access point turns the leveringskvittering away (for now).
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        utskrift::run_batch_now(w.db.db(), now)
            .await
            .unwrap()
            .letters,
        1
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while g.refused.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "no levering refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The letter comes back while its leveringskvittering is still owed.
    assert_eq!(
        utskrift::register_return(w.db.db(), &id, time::OffsetDateTime::now_utc())
            .await
            .unwrap(),
        utskrift::ReturnOutcome::Notified
    );
    // The returpost's job has been tried (and held back), or, wrongly, was taken already.
    loop {
        let held: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE queue = $1 AND last_error LIKE $2")
                .bind(utskrift::RECEIPT_QUEUE)
                .bind("%waiting for the leveringskvittering%")
                .fetch_one(w.db.db().pool())
                .await
                .unwrap();
        let taken = g.taken.lock().unwrap().clone();
        if held > 0 || taken.iter().any(|k| k == "returpostkvittering") {
            assert_eq!(taken, ["mottakskvittering"], "sent before its levering");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "returpost never tried"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The access point takes the leveringskvittering again: both follow, in order.
    g.refuse_levering.store(false, Ordering::SeqCst);
    loop {
        let s = utskrift::letter_status(w.db.db(), &id)
            .await
            .unwrap()
            .unwrap();
        if s.receipts.iter().all(|(_, st)| st == "sent") {
            assert_eq!(s.receipts.len(), 3, "{:?}", s.receipts);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", s.receipts);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *g.taken.lock().unwrap(),
        [
            "mottakskvittering",
            "leveringskvittering",
            "returpostkvittering"
        ]
    );
}
