//! The print provider in the chain, over real HTTP: sender → access point → print provider →
//! receipts back to the sender through the access point. Runs on the backend named by
//! `SAMSPILL_TEST_BACKEND`.

mod common;

use common::{Options, World, norsk, pdf_doc, print_letter};
use dpi::container::DocumentRole;
use dpi::message::{Body, Feiltype, MessageType, Returposthaandtering};

fn page_text(doc: &lopdf::Document, page: u32) -> String {
    doc.extract_text(&[page]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_citizens_letter_is_spooled_with_address_page_then_printed_and_returned() {
    let mut w = World::start().await;
    // Aud Testesen is reserved against digital post in KRR: her letters go to print, sealed
    // for the certificate KRR's print-certificate lookup publishes.
    let aud = w
        .krr
        .lookup(&[krr::default_pids().reserved])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(aud.route(), clients::krr::Route::Print);
    let print = w.krr.print_certificate().await.unwrap();
    assert_eq!(
        print.postkasseleverandoer_adresse,
        pki::demo::print().to_string()
    );
    w.print_cert = pki::cert_from_b64(&print.x509_sertifikat).unwrap();
    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::MakuleringMedMelding,
        vec![
            pdf_doc(
                "vedtak.pdf",
                DocumentRole::Hoveddokument,
                &["Vedtak side 1", "Vedtak side 2"],
            ),
            pdf_doc(
                "vedlegg.pdf",
                DocumentRole::Vedlegg,
                &["Vedlegg: klagerett"],
            ),
        ],
    );
    let (jwt, cms, sbd) = w.seal(&spec).await;
    let conversation = sbd.conversation_id().unwrap();
    assert_eq!(w.send(&jwt, &cms).await, 201);

    // At once: mottakskvittering, signed by the print provider, to the kommune.
    let mottak = w
        .wait_receipt(conversation, MessageType::Mottakskvittering)
        .await;
    assert_eq!(
        mottak.header.sender.value,
        format!("0192:{}", pki::demo::print())
    );
    assert_eq!(
        mottak.header.receiver.value,
        format!("0192:{}", pki::demo::kommune())
    );

    // The spool holds one PDF: address page, then the letter's three pages in order.
    let status = w.wait_status(sbd.message_id(), utskrift::SPOOLED).await;
    let path = std::path::PathBuf::from(status.spool_path.clone().unwrap());
    assert!(path.starts_with(w.spool_dir().join(status.batch_date.clone().unwrap())));
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        format!("{}.pdf", sbd.message_id())
    );
    let doc = lopdf::Document::load(&path).unwrap();
    assert_eq!(doc.get_pages().len(), 4);
    assert_eq!(status.pages, Some(4));
    let address = page_text(&doc, 1);
    for expected in [
        "Aud Testesen",
        "Storgata 1",
        "0155 OSLO",
        "Samspill kommune",
        "Postboks 1 Sentrum",
        "0101 OSLO",
        "Posttype: A",
        "Utskrift: SORT_HVIT",
        "Returpost: MAKULERING_MED_MELDING",
    ] {
        assert!(
            address.contains(expected),
            "{expected:?} not on the address page: {address}"
        );
    }
    assert!(page_text(&doc, 2).contains("Vedtak side 1"));
    assert!(page_text(&doc, 3).contains("Vedtak side 2"));
    assert!(page_text(&doc, 4).contains("Vedlegg: klagerett"));
    // Nothing is printed before the batch.
    assert!(w.receipts().await.is_empty());

    // The daily batch prints it: leveringskvittering.
    let report = utskrift::run_batch_now(w.db.db(), time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(report.letters, 1);
    w.wait_receipt(conversation, MessageType::Leveringskvittering)
        .await;
    let printed = w.wait_status(sbd.message_id(), utskrift::PRINTED).await;
    assert_eq!(printed.batch_id, report.batch_id);
    // A second batch finds nothing left.
    let again = utskrift::run_batch_now(w.db.db(), time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(again.letters, 0);

    // The letter comes back; it asked for shredding with notice.
    let cli = utskrift::cli::UtskriftArgs {
        command: utskrift::cli::UtskriftCommand::Return {
            message_id: sbd.message_id().to_string(),
        },
    };
    let line = utskrift::cli::run(cli, w.db.db().clone()).await.unwrap();
    assert!(line.contains("returpostkvittering"), "{line}");
    w.wait_receipt(conversation, MessageType::Returpostkvittering)
        .await;
    assert_eq!(
        utskrift::register_return(
            w.db.db(),
            &sbd.message_id().to_string(),
            time::OffsetDateTime::now_utc()
        )
        .await
        .unwrap(),
        utskrift::ReturnOutcome::AlreadyRegistered
    );
    let status = utskrift::letter_status(w.db.db(), &sbd.message_id().to_string())
        .await
        .unwrap()
        .unwrap();
    assert!(status.returned);
    let kinds: Vec<&str> = status.receipts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "mottakskvittering",
            "leveringskvittering",
            "returpostkvittering"
        ]
    );
    assert!(
        status.receipts.iter().all(|(_, s)| s == "sent"),
        "{:?}",
        status.receipts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_return_is_recorded_without_a_receipt() {
    let w = World::start().await;
    let spec = print_letter(
        norsk("Per Unge", "Lillegata 2", "5003", "Bergen"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc(
            "brev.pdf",
            DocumentRole::Hoveddokument,
            &["Hei Per"],
        )],
    );
    let (jwt, cms, sbd) = w.seal(&spec).await;
    assert_eq!(w.send(&jwt, &cms).await, 201);
    w.wait_status(sbd.message_id(), utskrift::SPOOLED).await;
    let id = sbd.message_id().to_string();
    // Not printed yet: a return cannot be registered.
    let err = utskrift::register_return(w.db.db(), &id, time::OffsetDateTime::now_utc())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "letter_not_printed");
    utskrift::run_batch_now(w.db.db(), time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    w.wait_status(sbd.message_id(), utskrift::PRINTED).await;
    assert_eq!(
        utskrift::register_return(w.db.db(), &id, time::OffsetDateTime::now_utc())
            .await
            .unwrap(),
        utskrift::ReturnOutcome::Recorded
    );
    let status = utskrift::letter_status(w.db.db(), &id)
        .await
        .unwrap()
        .unwrap();
    assert!(status.returned);
    let kinds: Vec<&str> = status.receipts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["mottakskvittering", "leveringskvittering"]);
    assert!(
        utskrift::register_return(w.db.db(), "not-a-uuid", time::OffsetDateTime::now_utc())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_is_not_pdf_gets_feil_klient() {
    let w = World::start().await;
    let mut text = pdf_doc("brev.txt", DocumentRole::Hoveddokument, &[]);
    text.mime = "text/plain".into();
    text.bytes = b"Hei, dette er ikke PDF".to_vec();
    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![text],
    );
    let (jwt, cms, sbd) = w.seal(&spec).await;
    assert_eq!(w.send(&jwt, &cms).await, 201);
    let feil = w
        .wait_receipt(sbd.conversation_id().unwrap(), MessageType::Feil)
        .await;
    let Body::Feil(f) = &feil.body else {
        panic!("not a feil: {:?}", feil.body)
    };
    assert_eq!(f.feiltype, Feiltype::Klient);
    let detaljer = f.detaljer.clone().unwrap_or_default();
    assert!(detaljer.contains("document_not_pdf"), "{detaljer}");
    let status = w.wait_status(sbd.message_id(), utskrift::REJECTED).await;
    assert!(status.spool_path.is_none());
    assert!(!w.spool_dir().read_dir().unwrap().any(|e| {
        e.unwrap()
            .path()
            .join(format!("{}.pdf", sbd.message_id()))
            .exists()
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_is_stored_once_and_bad_callers_are_refused() {
    let w = World::start().await;
    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    );
    let (jwt, cms, sbd) = w.seal(&spec).await;
    // Not the access point: no token, a sender's token (wrong scope).
    assert_eq!(w.deliver_directly(&jwt, &cms, Some("")).await, 401);
    let kommune = w.send_token().await;
    assert_eq!(w.deliver_directly(&jwt, &cms, Some(&kommune)).await, 403);
    // The access point delivers, and delivers again (a lost answer).
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 202);
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 200);
    w.wait_status(sbd.message_id(), utskrift::SPOOLED).await;
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 200);
    let n: i64 =
        store::sqlx::query_scalar("SELECT COUNT(*) FROM utskrift_letters WHERE message_id = $1")
            .bind(sbd.message_id().to_string())
            .fetch_one(w.db.db().pool())
            .await
            .unwrap();
    assert_eq!(n, 1);
    let status = utskrift::letter_status(w.db.db(), &sbd.message_id().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.receipts.len(), 1, "{:?}", status.receipts);
    // Garbage instead of a business message: nothing to answer, refused at the door.
    assert_eq!(w.deliver_directly("not.a.jws", &cms, None).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_letter_under_a_used_message_id_is_refused_and_not_spooled() {
    let w = World::start_with(Options {
        no_utskrift_workers: true,
        ..Options::default()
    })
    .await;
    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    );
    let (jwt, cms, sbd) = w.seal(&spec).await;
    // Sealed again: the same message id, another dokumentpakke (a fresh content key), so
    // another business message (its fingerprint).
    let (jwt2, cms2, sbd2) = w.seal(&spec).await;
    assert_eq!(sbd2.message_id(), sbd.message_id());
    assert_ne!(jwt2, jwt);
    assert_ne!(cms2, cms);
    let id = sbd.message_id().to_string();
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 202);
    // Stored, not yet validated (the payload's hash is kept): each part is compared.
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 200);
    assert_eq!(w.deliver_directly(&jwt, &cms2, None).await, 409);
    assert_eq!(w.deliver_directly(&jwt2, &cms, None).await, 409);
    assert_eq!(w.deliver_directly(&jwt2, &cms2, None).await, 409);
    let far = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    assert_eq!(
        w.utskrift_blobs
            .list_written_before(far)
            .await
            .unwrap()
            .len(),
        1,
        "only the first letter's payload is stored"
    );

    // Validated and spooled (the payload's hash is gone): the business message decides.
    w.restart_utskrift();
    let spooled = w.wait_status(sbd.message_id(), utskrift::SPOOLED).await;
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 200);
    assert_eq!(w.deliver_directly(&jwt2, &cms2, None).await, 409);
    let stored: String = store::sqlx::query_scalar(
        "SELECT forretningsmelding FROM utskrift_letters WHERE message_id = $1",
    )
    .bind(&id)
    .fetch_one(w.db.db().pool())
    .await
    .unwrap();
    assert_eq!(stored, jwt);
    let spool_files = std::fs::read_dir(w.spool_dir().join(spooled.batch_date.unwrap()))
        .unwrap()
        .count();
    assert_eq!(spool_files, 1);
    let intake_jobs: i64 = store::sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE queue = $1")
        .bind(utskrift::INTAKE_QUEUE)
        .fetch_one(w.db.db().pool())
        .await
        .unwrap();
    assert_eq!(intake_jobs, 1);
    assert_eq!(spooled.receipts.len(), 1, "{:?}", spooled.receipts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_letter_is_refused_with_feil() {
    let w = World::start().await;
    // A tampered dokumentpakke: the fingerprint no longer matches. Delivered directly, since
    // the access point would refuse it already.
    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    );
    let (jwt, mut cms, sbd) = w.seal(&spec).await;
    let last = cms.len() - 1;
    cms[last] ^= 0x01;
    // The letter must be known to the access point for the feil to reach the sender.
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 202);
    let status = w.wait_status(sbd.message_id(), utskrift::REJECTED).await;
    assert!(
        status
            .detail
            .clone()
            .unwrap_or_default()
            .contains("fingerprint_mismatch"),
        "{status:?}"
    );
    assert_eq!(status.receipts[0].0, "feil");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_token_maskinporten_never_issued_gets_feil_klient() {
    let w = World::start().await;
    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    );
    // Every claim right, but signed by a key Maskinporten does not publish.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let forged = pki::SigningKey::generate()
        .unwrap()
        .sign_jwt(
            &serde_json::json!({
                "iss": format!("{}/maskinporten/", w.base),
                "scope": "digitalpostinnbygger:send",
                "client_id": maskinporten::defaults::KOMMUNE_CLIENT,
                "consumer": {
                    "authority": "iso6523-actorid-upis",
                    "ID": format!("0192:{}", pki::demo::kommune()),
                },
                "iat": now,
                "exp": now + 120,
                "jti": uuid::Uuid::new_v4().to_string(),
            }),
            None,
        )
        .unwrap();
    let (jwt, cms, sbd) = w.seal_with_token(&spec, &forged);
    // The access point would refuse it (embedded token ≠ bearer): deliver directly.
    assert_eq!(w.deliver_directly(&jwt, &cms, None).await, 202);
    let status = w.wait_status(sbd.message_id(), utskrift::REJECTED).await;
    let detail = status.detail.unwrap_or_default();
    assert!(detail.contains("maskinportentoken"), "{detail}");
    assert!(status.spool_path.is_none());
    assert_eq!(status.receipts[0].0, "feil");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digital_letter_routed_to_print_gets_feil_klient() {
    use dpi::message::{Digital, Personmottaker, Sikkerhetsnivaa};
    let w = World::start().await;
    let mut spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    );
    let avsender = spec.sbd.body.avsender().clone();
    spec.sbd.header = dpi::message::Header::new(
        MessageType::Digital,
        &domain::ActorId::from(pki::demo::kommune()),
        &domain::ActorId::from(pki::demo::print()),
        domain::MessageId::new(),
        domain::ConversationId::new(),
        dpi::message::Process::Digital,
        dpi::message::Timestamp(time::OffsetDateTime::now_utc()),
        None,
    );
    spec.sbd.body = Body::Digital(Digital {
        avsender,
        mottaker: Personmottaker {
            postkasseadresse: "aud.testesen#1".into(),
        },
        dokumentpakkefingeravtrykk: dpi::message::Dokumentpakkefingeravtrykk {
            digest_method: dpi::message::SHA256_URI.into(),
            digest_value: String::new(),
        },
        maskinportentoken: String::new(),
        sikkerhetsnivaa: Sikkerhetsnivaa::Nivaa4,
        virkningsdato: None,
        virkningstidspunkt: None,
        aapningskvittering: None,
        ikkesensitivtittel: "Brev".into(),
        spraak: "no".into(),
        varsler: None,
    });
    spec.package.manifest.mottaker = Some(dpi::container::Mottaker {
        personidentifikator: None,
        postkasseadresse: "aud.testesen#1".into(),
    });
    let (jwt, cms, sbd) = w.seal(&spec).await;
    assert_eq!(w.send(&jwt, &cms).await, 201);
    let feil = w
        .wait_receipt(sbd.conversation_id().unwrap(), MessageType::Feil)
        .await;
    let Body::Feil(f) = &feil.body else {
        panic!("not a feil: {:?}", feil.body)
    };
    assert_eq!(f.feiltype, Feiltype::Klient);
    assert!(
        f.detaljer
            .clone()
            .unwrap_or_default()
            .contains("not digital"),
        "{:?}",
        f.detaljer
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_batch_prints_only_what_is_due() {
    let w = World::start().await;
    let spec = print_letter(
        norsk("Aud Testesen", "Storgata 1", "0155", "Oslo"),
        Returposthaandtering::DirekteRetur,
        vec![pdf_doc("brev.pdf", DocumentRole::Hoveddokument, &["Hei"])],
    );
    let (jwt, cms, sbd) = w.seal(&spec).await;
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(w.send(&jwt, &cms).await, 201);
    let status = w.wait_status(sbd.message_id(), utskrift::SPOOLED).await;
    w.wait_receipt(
        sbd.conversation_id().unwrap(),
        MessageType::Mottakskvittering,
    )
    .await;
    // Planned for the next 14:00 UTC batch: today's or tomorrow's.
    let date = status.batch_date.unwrap();
    let tomorrow = (now + time::Duration::days(1)).date().to_string();
    assert!(date == now.date().to_string() || date == tomorrow, "{date}");
    let early = utskrift::run_due_batches(w.db.db(), now).await.unwrap();
    assert_eq!(early.letters, 0);
    let later = utskrift::run_due_batches(w.db.db(), now + time::Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(later.letters, 1);
    w.wait_receipt(
        sbd.conversation_id().unwrap(),
        MessageType::Leveringskvittering,
    )
    .await;
}
