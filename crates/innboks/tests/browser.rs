//! Runs the browser journey and the axe-core checks (`tests/browser/journey.mjs`) in headless
//! Chromium against the whole chain, then checks that the sender received the opening receipt
//! the citizen accepted in the browser. Needs `node`, Debian's `chromium` and
//! `scripts/setup-assets`; prints SKIPPED when one is missing. `JOURNEY_SCREENSHOTS=<folder>`
//! saves the inbox as the phone-sized browser shows it, to look at.

mod common;

use std::{path::PathBuf, time::Duration};

use common::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn missing_tool() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt install chromium)"));
    }
    for pkg in ["playwright-core", "axe-core"] {
        if !assets_dir().join(pkg).exists() {
            return Some(format!(
                "assets/node_modules/{pkg} missing (scripts/setup-assets)"
            ));
        }
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("node not found".into());
    }
    None
}

const HTML_LETTER: &str = "<!DOCTYPE html><html lang=\"no\"><head><title>Vedtak</title>\
<script>alert(1)</script></head><body><h1>Vedtak om bostøtte</h1>\
<p onclick=\"alert(2)\">Du har fått <strong>innvilget</strong> bostøtte fra 1. januar.</p>\
<table><caption>Utbetalinger</caption><tr><th scope=\"col\">Måned</th><th scope=\"col\">Beløp</th></tr>\
<tr><td>Januar</td><td>2 300 kr</td></tr></table></body></html>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_journey_and_accessibility() {
    if let Some(why) = missing_tool() {
        println!("SKIPPED: {why}");
        return;
    }
    let chain = start().await;
    let kari = chain.pids.digipost.clone();
    chain
        .deliver(&Letter::to(&chain, &kari, "Skattemelding 2026").docs(vec![
            Doc::new("brev.pdf", "application/pdf", "Skattemeldingen", PDF),
            Doc::new(
                "forklaring.txt",
                "text/plain",
                "Forklaring",
                "Slik leser du skattemeldingen.\n".as_bytes(),
            ),
        ]))
        .await;
    chain.deliver(&smart_letter(&chain, &kari)).await;
    chain
        .deliver(
            &Letter::to(&chain, &kari, "Vedtak om bostøtte").docs(vec![Doc::new(
                "vedtak.html",
                "text/html",
                "Vedtaket",
                HTML_LETTER.as_bytes(),
            )]),
        )
        .await;
    let receipt_letter = chain
        .deliver(&Letter::to(&chain, &kari, "Innkalling til møte").receipt())
        .await;
    chain
        .deliver(&Letter::to(&chain, &kari, "Nytt receipt-brev").receipt())
        .await;
    chain
        .deliver(
            &Letter::to(&chain, &kari, "Melding fra helsetjenesten")
                .level4()
                .docs(vec![Doc::new(
                    "brev.pdf",
                    "application/pdf",
                    "Prøvesvar: sensitiv diagnose",
                    PDF,
                )]),
        )
        .await;

    let script = repo_root().join("tests/browser/journey.mjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .env("INNBOKS_URL", chain.url("/postkasse"))
        .env("CITIZEN_PID", &kari)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the browser journey finishes within 10 minutes")
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser journey failed");
    assert!(stdout.contains("ALL OK"));
    // The acceptance in the browser reached the sender as a signed aapningskvittering.
    assert!(
        chain
            .wait_receipt(&receipt_letter, "aapningskvittering")
            .await,
        "the sender sees the letter opened"
    );
    chain.stop().await;
}
