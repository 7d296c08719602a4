//! What the print provider promises across failures: a letter answered with 202 is printed
//! after a crash (even one in the middle of its validation), and receipts reach the sender
//! after the access point was down. Runs on the backend named by `SAMSPILL_TEST_BACKEND`.

mod common;

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
