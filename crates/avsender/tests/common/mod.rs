//! The sender's world on one loopback listener: the Maskinporten and KRR stand-ins, the
//! access point (formidler) and the sender service (avsender), each mounted under its role
//! name, on a fresh database per test. The mailbox and print providers are played by the
//! test itself with their real certificates and Maskinporten clients (receipts), and their
//! intake endpoints point at a closed port, so letters wait at the access point where the
//! tests inspect them.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use avsender::{ApiKey, Deps, Signer};
use clients::{
    jwks::JwksCache,
    krr::{KrrClient, KrrConfig},
    maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig},
    verify::{JwtVerifier, MaskinportenVerifier},
};
use domain::{ActorId, Organisasjonsnummer};
use dpi::{
    message::{Sbd, Timestamp},
    receipt::{ReceiptKind, build_receipt, sign_sbd},
    trust::TrustAnchors,
};
use maskinporten::defaults;
use serde_json::Value;
use store::{BlobStore, sqlx, sqlx::Row};

pub const API_KEY: &str = "test-key-0123456789abcdef";

/// One server with its background workers; stopped gracefully or killed.
pub struct Part {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Part {
    async fn serve(
        listener: tokio::net::TcpListener,
        app: axum::Router,
        spawn: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>>,
    ) -> Part {
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let mut tasks = spawn(rx.clone());
        let mut srx = rx;
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = srx.wait_for(|s| *s).await;
                })
                .await
                .unwrap();
        }));
        Part { addr, stop, tasks }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }

    /// As a crash: every task dropped where it stands.
    pub async fn kill(self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// What [`World::with_unanswering_formidler`] was sent.
pub type Posted = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

pub struct World {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub formidler_base: String,
    pub sender_base: String,
    pub pki: pki::TestPki,
    pub db: store::testing::TestDb,
    pub formidler_blobs: BlobStore,
    pub avsender_blobs: BlobStore,
    pub avsender: avsender::client::AvsenderClient,
    pub http: reqwest::Client,
    pub cfg: avsender::Config,
    pub core: Option<Part>,
    pub formidler: Option<Part>,
    pub sender: Option<Part>,
    /// The sender's KRR client (its request counter shows batching).
    pub krr_client: Option<KrrClient>,
    /// The sender runs as the demo databehandler (its certificate and Maskinporten client)
    /// instead of the kommune; `cfg.on_behalf_of` gets delegated token sources.
    pub databehandler: bool,
    nowhere: String,
    /// The access point's, the sender's and the "nowhere" ports, kept while they are down.
    _ports: [store::testing::PortLease; 3],
}

fn mp_client(issuer: &str, client_id: &str, key: GrantKey) -> MaskinportenClient {
    MaskinportenClient::new(
        MaskinportenConfig {
            issuer: issuer.into(),
            token_endpoint: None,
            client_id: client_id.into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        key,
        reqwest::Client::new(),
    )
}

pub async fn start() -> World {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut avsender::Config)) -> World {
    let w = start_down(tweak).await;
    w.with_formidler().await.with_sender().await
}

/// As [`start_with`], with the sender run by the demo databehandler.
pub async fn start_databehandler(tweak: impl FnOnce(&mut avsender::Config)) -> World {
    let mut w = start_down(tweak).await;
    w.databehandler = true;
    w.with_formidler().await.with_sender().await
}

/// Maskinporten and KRR only; the access point and the sender are started by
/// [`World::with_formidler`] and [`World::with_sender`].
pub async fn start_down(tweak: impl FnOnce(&mut avsender::Config)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
    let env = |role: &str| role_env(dir.path(), &base, role);
    let db = store::testing::fresh_db().await;
    let mp = maskinporten::router(&maskinporten::Config::default(), &env("maskinporten"))
        .await
        .unwrap();
    let krr = krr::router(&krr::Config::default(), &env("krr"))
        .await
        .unwrap();
    let app = axum::Router::new()
        .nest("/maskinporten", mp)
        .nest("/krr", krr);
    let core = Part::serve(listener, app, |_| Vec::new()).await;
    let ports = [
        store::testing::reserve_port(),
        store::testing::reserve_port(),
        store::testing::reserve_port(),
    ];
    let (formidler_addr, sender_addr) = (ports[0].addr(), ports[1].addr());
    let mut cfg = avsender::Config {
        api_keys: vec![ApiKey {
            name: "test".into(),
            secret: API_KEY.into(),
        }],
        poll_interval_ms: 50,
        send_workers: 2,
        http_timeout_secs: 10,
        max_retry_delay_secs: 1,
        ..Default::default()
    };
    tweak(&mut cfg);
    World {
        base: base.clone(),
        formidler_base: format!("http://{formidler_addr}"),
        sender_base: format!("http://{sender_addr}"),
        pki,
        db,
        formidler_blobs: BlobStore::memory(),
        avsender_blobs: BlobStore::memory(),
        avsender: avsender::client::AvsenderClient::new(
            format!("http://{sender_addr}/avsender"),
            API_KEY,
        ),
        http: reqwest::Client::new(),
        cfg,
        core: Some(core),
        formidler: None,
        sender: None,
        krr_client: None,
        databehandler: false,
        nowhere: format!("http://{}", ports[2].addr()),
        _ports: ports,
        dir,
    }
}

fn role_env(dir: &std::path::Path, base: &str, role: &str) -> web::RoleEnv {
    let data_dir = dir.join(role);
    std::fs::create_dir_all(&data_dir).unwrap();
    web::RoleEnv {
        data_dir,
        public_url: url::Url::parse(&format!("{base}/{role}")).unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    }
}

async fn bind(base: &str) -> tokio::net::TcpListener {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    // The port is leased to this test; it may still be closing after a stop: retry briefly.
    for _ in 0..100 {
        if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot bind {addr}");
}

impl World {
    fn issuer(&self) -> String {
        format!("{}/maskinporten/", self.base)
    }

    /// Starts (or restarts) the access point on its fixed address, with the providers'
    /// intake pointing at a closed port.
    pub async fn with_formidler(mut self) -> World {
        let issuer = self.issuer();
        let verifier = {
            let mut jwks = JwksCache::new(format!("{issuer}jwk"), reqwest::Client::new());
            jwks.min_refetch_interval = Duration::ZERO;
            MaskinportenVerifier::from_jwt_verifier(JwtVerifier::new(issuer.clone(), jwks, None))
        };
        let cert = self
            .pki
            .issue_enterprise(&pki::demo::formidler(), pki::demo::FORMIDLER_NAME)
            .unwrap();
        let state = formidler::AppState::new(
            formidler::Config {
                providers: [
                    pki::demo::digipost(),
                    pki::demo::eboks(),
                    pki::demo::print(),
                ]
                .into_iter()
                .map(|orgnr| formidler::ProviderRoute {
                    orgnr,
                    endpoint: url::Url::parse(&format!("{}/{orgnr}", self.nowhere)).unwrap(),
                })
                .collect(),
                delivery_workers: 1,
                delivery_timeout_secs: 2,
                ..Default::default()
            },
            formidler::Deps {
                db: self.db.db().clone(),
                blobs: self.formidler_blobs.clone(),
                verifier: Arc::new(verifier),
                tokens: Arc::new(mp_client(
                    &issuer,
                    defaults::FORMIDLER_CLIENT,
                    GrantKey::from_issued(&cert),
                )),
                signer: formidler::Signer {
                    orgnr: pki::demo::formidler().actor_id(),
                    cert: cert.cert().clone(),
                    key: cert.key().clone(),
                },
                anchors: TrustAnchors::new(vec![self.pki.ca_cert().clone()]),
                public_url: url::Url::parse(&self.formidler_base).unwrap(),
            },
        )
        .unwrap();
        let listener = bind(&self.formidler_base).await;
        let app = formidler::router(state.clone());
        self.formidler =
            Some(Part::serve(listener, app, |rx| formidler::spawn_workers(state, rx)).await);
        self
    }

    /// A stand-in for the access point at its address that takes every `POST /messages/out`
    /// and answers `503`, as if the access point failed or its answer was lost: what the
    /// sender posted, `(forretningsmelding, dokumentpakke)` in arrival order, shows in the
    /// returned list. Stop it (`formidler.take()`) before [`World::with_formidler`].
    pub async fn with_unanswering_formidler(mut self) -> (World, Posted) {
        let posted = Posted::default();
        let seen = posted.clone();
        let app = axum::Router::new().route(
            "/messages/out",
            axum::routing::post(move |multipart: axum::extract::Multipart| {
                let seen = seen.clone();
                async move {
                    let (jws, cms) =
                        web::letter_parts::read_letter_parts(multipart, 1 << 20, 1 << 26)
                            .await
                            .unwrap();
                    seen.lock().unwrap().push((jws, cms.to_vec()));
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        );
        let listener = bind(&self.formidler_base).await;
        self.formidler = Some(Part::serve(listener, app, |_| Vec::new()).await);
        (self, posted)
    }

    /// Starts (or restarts) the sender service on its fixed address.
    pub async fn with_sender(mut self) -> World {
        let issuer = self.issuer();
        let (orgnr, name, client_id) = if self.databehandler {
            (
                pki::demo::databehandler(),
                pki::demo::DATABEHANDLER_NAME,
                defaults::DATABEHANDLER_CLIENT,
            )
        } else {
            (
                pki::demo::kommune(),
                pki::demo::KOMMUNE_NAME,
                defaults::KOMMUNE_CLIENT,
            )
        };
        let kommune = self.pki.issue_enterprise(&orgnr, name).unwrap();
        let mp = mp_client(&issuer, client_id, GrantKey::from_issued(&kommune));
        let delegated = self
            .cfg
            .on_behalf_of
            .iter()
            .map(|o| {
                let t: Arc<dyn web::auth::TokenSource> = Arc::new(mp.on_behalf_of(*o));
                (*o, t)
            })
            .collect();
        let tokens = Arc::new(mp);
        let chain = vec![kommune.cert().clone(), self.pki.ca_cert().clone()];
        let krr_client = KrrClient::new(
            KrrConfig::new(format!("{}/krr", self.base)),
            tokens.clone(),
            reqwest::Client::new(),
        );
        self.krr_client = Some(krr_client.clone());
        let state = avsender::AppState::new(
            self.cfg.clone(),
            Deps {
                db: self.db.db().clone(),
                blobs: self.avsender_blobs.clone(),
                tokens: tokens.clone(),
                krr: krr_client.clone(),
                delegated,
                signer: Signer {
                    orgnr: orgnr.actor_id(),
                    chain,
                    key: kommune.key().clone(),
                },
                anchors: TrustAnchors::new(vec![self.pki.ca_cert().clone()]),
                formidler_url: url::Url::parse(&self.formidler_base).unwrap(),
                formidler_orgnr: Some(pki::demo::formidler()),
                data_dir: role_env(self.dir.path(), &self.base, "avsender").data_dir,
                fnr_policy: domain::FnrPolicy::PERMISSIVE,
            },
        )
        .unwrap();
        let base = self.avsender_base();
        let listener = bind(&base).await;
        let app = axum::Router::new().nest("/avsender", avsender::router(state.clone()));
        self.sender =
            Some(Part::serve(listener, app, |rx| avsender::spawn_workers(state, rx)).await);
        self
    }

    pub fn avsender_base(&self) -> String {
        self.sender_base.clone()
    }

    pub async fn stop(mut self) {
        for p in [self.sender.take(), self.formidler.take(), self.core.take()]
            .into_iter()
            .flatten()
        {
            p.stop().await;
        }
    }

    /// Polls the letter until `done` holds (or panics after 30 s with the last view).
    ///
    /// A poll that fails in transport is polled again: after a killed sender is restarted on
    /// the same port, the client's kept-alive connection to the dead one may be closed under
    /// the next request (hyper's `IncompleteMessage`), as any case system would see.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = String::new();
        for _ in 0..600 {
            match self.avsender.status(id).await {
                Ok(v) if done(&v) => return v,
                Ok(v) => last = format!("{v:#}"),
                Err(avsender::client::ClientError::Http(e)) if e.is_request() || e.is_connect() => {
                    last = format!("transport: {e:?}")
                }
                Err(e) => panic!("letter {id}: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("letter {id} did not get there: {last}");
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        self.wait_for(id, |v| v["status"] == status).await
    }

    /// Whether every receipt at the access point is marked read within `within`: the sender
    /// marks one read right after the commit that applied it, so a test that has seen the
    /// status waits for the read mark.
    pub async fn all_receipts_read_within(&self, within: Duration) -> bool {
        store::testing::eventually(within, || async {
            let unread: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM formidler_incoming WHERE read_at IS NULL")
                    .fetch_one(self.db.db().pool())
                    .await
                    .unwrap();
            unread == 0
        })
        .await
    }

    /// The letter as the access point holds it: (receiver orgnr, message type, JWS, CMS).
    pub async fn at_formidler(
        &self,
        message_id: &str,
    ) -> Option<(String, String, String, Vec<u8>)> {
        // The access point keeps the dokumentpakke in its database until delivery.
        let row = sqlx::query(
            "SELECT m.receiver_orgnr, m.message_type, m.forretningsmelding, p.data \
             FROM formidler_messages m JOIN formidler_payloads p ON p.message_id = m.message_id \
             WHERE m.message_id = $1",
        )
        .bind(message_id)
        .fetch_optional(self.db.db().pool())
        .await
        .unwrap()?;
        let cms: Vec<u8> = row.try_get("data").unwrap();
        Some((
            row.try_get("receiver_orgnr").unwrap(),
            row.try_get("message_type").unwrap(),
            row.try_get("forretningsmelding").unwrap(),
            cms,
        ))
    }

    pub async fn formidler_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM formidler_messages")
            .fetch_one(self.db.db().pool())
            .await
            .unwrap()
    }

    pub fn provider(&self, orgnr: Organisasjonsnummer, name: &str) -> pki::Issued {
        self.pki.issue_enterprise(&orgnr, name).unwrap()
    }

    /// A provider hands a signed receipt for `letter_jws` to the access point, as corner 4
    /// does (`POST /dpi/receipts` with its own Maskinporten token).
    pub async fn provider_receipt(
        &self,
        provider: &pki::Issued,
        client_id: &str,
        letter_jws: &str,
        kind: ReceiptKind,
    ) -> reqwest::StatusCode {
        let jws = self.sign_receipt(provider, letter_jws, kind);
        let mp = mp_client(
            &format!("{}/maskinporten/", self.base),
            client_id,
            GrantKey::from_issued(provider),
        );
        let token = mp
            .token_for(web::auth::SCOPE_FORMIDLING, None)
            .await
            .unwrap()
            .access_token;
        self.http
            .post(format!("{}/dpi/receipts", self.formidler_base))
            .bearer_auth(token)
            .header("content-type", "application/jwt")
            .body(jws)
            .send()
            .await
            .unwrap()
            .status()
    }

    pub fn sign_receipt(
        &self,
        provider: &pki::Issued,
        letter_jws: &str,
        kind: ReceiptKind,
    ) -> String {
        let (_, payload) = dpi::jws::decode_unverified(letter_jws).unwrap();
        let letter = Sbd::parse(&payload).unwrap();
        let issuer: ActorId = provider.orgnr().unwrap().actor_id();
        let receipt = build_receipt(
            &letter,
            kind,
            &issuer,
            Timestamp::now(),
            domain::MessageId::new(),
        )
        .unwrap();
        sign_sbd(&receipt, provider.cert(), provider.key()).unwrap()
    }

    /// Puts a message straight into the access point's incoming table, as a compromised or
    /// buggy access point would hand it out.
    pub async fn inject_incoming(&self, id: &str, conversation_id: &str, jws: &str) {
        sqlx::query(
            "INSERT INTO formidler_incoming (id, conversation_id, message_type, recipient_orgnr, \
             avsenderidentifikator, kanal, forretningsmelding, received_at) \
             VALUES ($1, $2, 'leveringskvittering', $3, NULL, NULL, $4, $5)",
        )
        .bind(id)
        .bind(conversation_id)
        .bind(pki::demo::kommune().to_string())
        .bind(jws)
        .bind(store::to_ms(time::OffsetDateTime::now_utc()))
        .execute(self.db.db().pool())
        .await
        .unwrap();
    }
}

/// A letter for `pid` with one PDF and a lenke.
pub fn letter(pid: &str) -> avsender::letter::LetterRequest {
    serde_json::from_value(serde_json::json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "personidentifikator": pid,
        "ikkesensitivtittel": "Tilbud om barnehageplass",
        "sikkerhetsnivaa": 3,
        "varsler": {"epost": {"tekst": "Du har fått brev fra kommunen."}},
        "documents": [{
            "filename": "tilbud.pdf",
            "mime": "application/pdf",
            "title": "Tilbud om barnehageplass",
            "content_base64": "JVBERi0xLjQKJSBzYW1zcGlsbAo=",
            "lenke": {
                "url": "https://minside.kommune.no/barnehage/svar",
                "beskrivelse": {"text": "Svar på tilbudet innen fristen.", "lang": "nb"},
                "knapp_tekst": {"text": "Svar nå", "lang": "nb"}
            }
        }]
    }))
    .unwrap()
}

pub fn print_address() -> avsender::letter::UtskriftRequest {
    serde_json::from_value(serde_json::json!({
        "mottaker": {"navn": "Aud Testesen", "adresselinje1": "Storgata 1", "postnummer": "0155", "poststed": "Oslo"},
        "retur": {"navn": "Samspill kommune", "adresselinje1": "Rådhuset", "postnummer": "0037", "poststed": "Oslo"},
        "returposthaandtering": "MAKULERING_MED_MELDING"
    }))
    .unwrap()
}
