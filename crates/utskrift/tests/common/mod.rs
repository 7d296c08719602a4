//! A small DPI world on loopback for the print provider's tests: the Maskinporten stand-in, a
//! real access point (`formidler`) and the print provider, mounted under their role names on
//! one real HTTP listener, sharing one fresh database; plus a sender (the demo kommune) that
//! seals `utskrift` letters and reads its receipts through the access point's API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use clients::maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig};
use clients::verify::{MaskinportenVerifier, MaskinportenVerifierConfig};
use domain::{ActorId, ConversationId, MessageId};
use dpi::container::{Avsender as MAvsender, Document, DocumentRole, Dokumentpakke, Manifest};
use dpi::letter::{LetterSpec, seal_letter};
use dpi::message::{
    AdresseInformasjon, Avsender, Body, Dokumentpakkefingeravtrykk, Header, MessageType, Process,
    Retur, Returposthaandtering, Sbd, Timestamp, Utskrift, Utskriftstype,
};
use openssl::x509::X509;
use store::testing::TestDb;
use time::OffsetDateTime;

/// Knobs for the tests that take parts of the world down.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Do not start the print provider's workers (see [`World::restart_utskrift`]).
    pub no_utskrift_workers: bool,
    /// Where the print provider sends receipts instead of the shared listener.
    pub formidler_url: Option<String>,
    /// Database backend; default from `SAMSPILL_TEST_BACKEND`.
    pub backend: Option<store::Backend>,
    /// Validation workers of the print provider (default: the role's default).
    pub intake_workers: Option<usize>,
}

pub struct World {
    pub base: String,
    pub formidler: formidler::AppState,
    pub utskrift_blobs: store::BlobStore,
    u_cfg: utskrift::Config,
    u_env: web::RoleEnv,
    shutdown_rx: tokio::sync::watch::Receiver<bool>,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub pki: pki::TestPki,
    pub utskrift: utskrift::AppState,
    pub sender: MaskinportenClient,
    pub sender_cert: pki::Issued,
    pub formidler_tokens: MaskinportenClient,
    pub print_cert: X509,
    pub anchors: dpi::trust::TrustAnchors,
    pub http: reqwest::Client,
    /// KRR as the sender sees it (reservations, the print certificate).
    pub krr: clients::krr::KrrClient,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn env(dir: &std::path::Path, base: &str, role: &str) -> web::RoleEnv {
    let data_dir = dir.join(role);
    std::fs::create_dir_all(&data_dir).unwrap();
    web::RoleEnv {
        data_dir,
        public_url: url::Url::parse(&format!("{base}/{role}")).unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    }
}

fn client(base: &str, id: &str, key: GrantKey, http: reqwest::Client) -> MaskinportenClient {
    MaskinportenClient::new(
        MaskinportenConfig {
            issuer: format!("{base}/maskinporten/"),
            token_endpoint: None,
            client_id: id.into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        key,
        http,
    )
}

impl World {
    pub async fn start() -> World {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> World {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let db = match opts.backend {
            Some(b) => store::testing::fresh_db_on(b).await,
            None => store::testing::fresh_db().await,
        };
        let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
        let http = reqwest::Client::new();
        let anchors = dpi::trust::TrustAnchors::new(vec![pki.ca_cert().clone()]);

        let mp = maskinporten::router(
            &maskinporten::Config::default(),
            &env(dir.path(), &base, "maskinporten"),
        )
        .await
        .unwrap();
        let verifier = MaskinportenVerifier::new(
            &MaskinportenVerifierConfig {
                issuer: format!("{base}/maskinporten/"),
                jwks_uri: None,
                audience: None,
            },
            http.clone(),
        );

        // The access point, routing the print provider's orgnr to the utskrift role.
        let f_cert = pki
            .issue_enterprise(&pki::demo::formidler(), pki::demo::FORMIDLER_NAME)
            .unwrap();
        let formidler_tokens = client(
            &base,
            maskinporten::defaults::FORMIDLER_CLIENT,
            GrantKey::from_issued(&f_cert),
            http.clone(),
        );
        let f_state = formidler::AppState::new(
            formidler::Config {
                providers: vec![formidler::ProviderRoute {
                    orgnr: pki::demo::print(),
                    endpoint: url::Url::parse(&format!("{base}/utskrift")).unwrap(),
                }],
                max_retry_delay_secs: 1,
                ..formidler::Config::default()
            },
            formidler::Deps {
                db: db.db().clone(),
                blobs: store::BlobStore::memory(),
                verifier: Arc::new(verifier.clone()),
                tokens: Arc::new(formidler_tokens.clone()),
                signer: formidler::Signer {
                    orgnr: ActorId::from(pki::demo::formidler()),
                    cert: f_cert.cert().clone(),
                    key: f_cert.key().clone(),
                },
                anchors: anchors.clone(),
                public_url: url::Url::parse(&format!("{base}/formidler")).unwrap(),
            },
        )
        .unwrap();

        // The print provider, wired as the binary does in development.
        let u_env = env(dir.path(), &base, "utskrift");
        let cfg = utskrift::Config {
            run_batch: false,
            max_retry_delay_secs: 1,
            intake_workers: opts
                .intake_workers
                .unwrap_or(utskrift::Config::default().intake_workers),
            formidler_url: opts
                .formidler_url
                .as_deref()
                .map(|u| url::Url::parse(u).unwrap()),
            ..utskrift::Config::default()
        };
        let utskrift_blobs = store::BlobStore::memory();
        let deps = utskrift::Deps::from_env(&cfg, &u_env, db.db().clone(), utskrift_blobs.clone())
            .unwrap();
        let u_state = utskrift::AppState::new(cfg.clone(), deps).unwrap();

        let krr = krr::router(&krr::Config::default(), &env(dir.path(), &base, "krr"))
            .await
            .unwrap();
        let app = axum::Router::new()
            .nest("/maskinporten", mp)
            .nest("/krr", krr)
            .nest("/formidler", formidler::router(f_state.clone()))
            .nest("/utskrift", utskrift::router(u_state.clone()));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        formidler::spawn_workers(f_state.clone(), rx.clone());
        if !opts.no_utskrift_workers {
            utskrift::spawn_workers(u_state.clone(), rx.clone());
        }

        let sender_cert = pki
            .issue_enterprise(&pki::demo::kommune(), pki::demo::KOMMUNE_NAME)
            .unwrap();
        let sender = client(
            &base,
            maskinporten::defaults::KOMMUNE_CLIENT,
            GrantKey::from_issued(&sender_cert),
            http.clone(),
        );
        let print_cert = pki
            .issue_enterprise(&pki::demo::print(), pki::demo::PRINT_NAME)
            .unwrap()
            .cert()
            .clone();
        let krr = clients::krr::KrrClient::new(
            clients::krr::KrrConfig::new(format!("{base}/krr")),
            Arc::new(sender.clone()),
            http.clone(),
        );
        World {
            formidler: f_state,
            utskrift_blobs,
            u_cfg: cfg,
            u_env,
            shutdown_rx: rx,
            krr,
            base,
            db,
            dir,
            pki,
            utskrift: u_state,
            sender,
            sender_cert,
            formidler_tokens,
            print_cert,
            anchors,
            http,
            shutdown: tx,
        }
    }

    pub async fn send_token(&self) -> String {
        self.sender
            .token_for(maskinporten::SCOPE_DPI_SEND, None)
            .await
            .unwrap()
            .access_token
    }

    /// Seals `spec` as the kommune for the print provider.
    pub async fn seal(&self, spec: &LetterSpec) -> (String, Vec<u8>, Sbd) {
        let token = self.send_token().await;
        self.seal_with_token(spec, &token)
    }

    /// Seals `spec` with `token` embedded as its maskinportentoken.
    pub fn seal_with_token(&self, spec: &LetterSpec, token: &str) -> (String, Vec<u8>, Sbd) {
        let chain = vec![self.sender_cert.cert().clone(), self.pki.ca_cert().clone()];
        let (sealed, sbd) = seal_letter(
            spec,
            &chain,
            self.sender_cert.key(),
            &self.print_cert,
            token,
        )
        .unwrap();
        (sealed.jwt, sealed.cms, sbd)
    }

    fn form(jwt: &str, cms: &[u8]) -> reqwest::multipart::Form {
        reqwest::multipart::Form::new()
            .part(
                "forretningsmelding",
                reqwest::multipart::Part::text(jwt.to_owned())
                    .file_name("sbd.jwt")
                    .mime_str("application/jwt")
                    .unwrap(),
            )
            .part(
                "dokumentpakke",
                reqwest::multipart::Part::bytes(cms.to_vec())
                    .file_name("asic.cms")
                    .mime_str("application/cms")
                    .unwrap(),
            )
    }

    /// `POST /formidler/messages/out` as the sender; returns the status.
    pub async fn send(&self, jwt: &str, cms: &[u8]) -> u16 {
        let token = self.send_token().await;
        self.http
            .post(format!("{}/formidler/messages/out", self.base))
            .bearer_auth(token)
            .multipart(Self::form(jwt, cms))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// `POST /utskrift/dpi/inbound` directly, as the access point (or with `token`).
    pub async fn deliver_directly(&self, jwt: &str, cms: &[u8], token: Option<&str>) -> u16 {
        let mut req = self
            .http
            .post(format!("{}/utskrift/dpi/inbound", self.base))
            .multipart(Self::form(jwt, cms));
        let t = match token {
            Some(t) => t.to_owned(),
            None => {
                self.formidler_tokens
                    .token_for(utskrift::SCOPE_FORMIDLING, None)
                    .await
                    .unwrap()
                    .access_token
            }
        };
        if !t.is_empty() {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// Reads and marks read the sender's incoming receipts; returns verified (type, sbd).
    pub async fn receipts(&self) -> Vec<Sbd> {
        let token = self.send_token().await;
        let res = self
            .http
            .get(format!("{}/formidler/messages/in", self.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 204 {
            return Vec::new();
        }
        assert_eq!(res.status().as_u16(), 200);
        let items: Vec<serde_json::Value> = res.json().await.unwrap();
        let mut out = Vec::new();
        for item in items {
            let jws = item["forretningsmelding"].as_str().unwrap();
            let opened = dpi::receipt::open_receipt(jws, &self.anchors, OffsetDateTime::now_utc());
            assert!(opened.valid, "receipt does not verify: {:?}", opened.errors);
            let sbd = opened.sbd.unwrap();
            let read = self
                .http
                .post(format!(
                    "{}/formidler/messages/in/{}/read",
                    self.base,
                    sbd.message_id()
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(read.status().as_u16(), 200);
            out.push(sbd);
        }
        out
    }

    /// Polls the sender's receipts until one of type `t` for `conversation` arrives.
    pub async fn wait_receipt(&self, conversation: ConversationId, t: MessageType) -> Sbd {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            for sbd in self.receipts().await {
                if sbd.conversation_id() == Some(conversation) && sbd.message_type() == t {
                    return sbd;
                }
                assert!(
                    sbd.conversation_id() != Some(conversation),
                    "unexpected receipt while waiting for {}: {} {:?}",
                    t.key(),
                    sbd.message_type().key(),
                    sbd.body
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {} within 90 s",
                t.key()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the print provider's view of a letter until `status`.
    pub async fn wait_status(&self, message_id: MessageId, status: &str) -> utskrift::LetterStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(s) = utskrift::letter_status(self.db.db(), &message_id.to_string())
                .await
                .unwrap()
                && s.status == status
            {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "letter {message_id} did not reach {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A fresh print provider process on the same database and folders (a restart after a
    /// crash): new state, new workers.
    pub fn restart_utskrift(&self) {
        let deps = utskrift::Deps::from_env(
            &self.u_cfg,
            &self.u_env,
            self.db.db().clone(),
            self.utskrift_blobs.clone(),
        )
        .unwrap();
        let state = utskrift::AppState::new(self.u_cfg.clone(), deps).unwrap();
        utskrift::spawn_workers(state, self.shutdown_rx.clone());
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.utskrift.spool_dir().to_owned()
    }
}

pub fn norsk(navn: &str, linje: &str, postnummer: &str, poststed: &str) -> AdresseInformasjon {
    AdresseInformasjon {
        navn: Some(navn.into()),
        adresselinje1: Some(linje.into()),
        postnummer: Some(postnummer.into()),
        poststed: Some(poststed.into()),
        ..AdresseInformasjon::default()
    }
}

pub fn pdf_doc(href: &str, role: DocumentRole, lines: &[&str]) -> Document {
    Document {
        href: href.into(),
        mime: "application/pdf".into(),
        title: Some(href.into()),
        lang: Some("no".into()),
        role,
        bytes: utskrift::pdf::simple_pdf(lines),
        data: None,
    }
}

/// An `utskrift` letter from the demo kommune to `mottaker`, with return handling `retur`.
pub fn print_letter(
    mottaker: AdresseInformasjon,
    retur: Returposthaandtering,
    documents: Vec<Document>,
) -> LetterSpec {
    let kommune = ActorId::from(pki::demo::kommune());
    let now = OffsetDateTime::now_utc();
    let header = Header::new(
        MessageType::Utskrift,
        &kommune,
        &ActorId::from(pki::demo::print()),
        MessageId::new(),
        ConversationId::new(),
        Process::Utskrift,
        Timestamp(now),
        None,
    );
    let body = Body::Utskrift(Utskrift {
        avsender: Avsender::new(&kommune),
        mottaker,
        dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk {
            digest_method: dpi::message::SHA256_URI.into(),
            digest_value: String::new(),
        },
        maskinportentoken: String::new(),
        utskriftstype: Utskriftstype::SortHvit,
        retur: Retur {
            mottaker: norsk("Samspill kommune", "Postboks 1 Sentrum", "0101", "Oslo"),
            returposthaandtering: retur,
        },
        posttype: Some(dpi::message::Posttype::A),
    });
    LetterSpec {
        sbd: Sbd { header, body },
        package: Dokumentpakke {
            manifest: Manifest {
                mottaker: None,
                avsender: MAvsender {
                    organisasjon: kommune.to_string(),
                    avsenderidentifikator: None,
                    faktura_referanse: None,
                },
                lenke: None,
            },
            documents,
        },
        signing_time: now,
    }
}
