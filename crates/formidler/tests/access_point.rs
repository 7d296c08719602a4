//! The access point over real HTTP on loopback, with the real Maskinporten stand-in and token
//! clients, real certificates from the test PKI, sealed letters, and a recording provider
//! endpoint that can be taken down and brought back.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Multipart, Path, State},
    http::StatusCode,
    routing::post,
};
use clients::maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig};
use domain::{ActorId, ConversationId, MessageId};
use dpi::{
    container::{self, Document, DocumentRole, Dokumentpakke, Manifest},
    letter::{LetterSpec, seal_letter},
    message::{
        Avsender, Body, Digital, Dokumentpakkefingeravtrykk, Header, MessageType, Personmottaker,
        Process, Sbd, Sikkerhetsnivaa, Timestamp,
    },
    receipt::{ReceiptKind, build_receipt, sign_sbd},
};
use time::OffsetDateTime;
use web::auth::{SCOPE_FORMIDLING, TokenSource};

/// What the recording provider got: (forretningsmelding, dokumentpakke) per delivery.
type Deliveries = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The endpoints of both mailbox providers (`/provider/digipost`, `/provider/eboks`): `up`
/// takes both down, `down` one of them by name.
#[derive(Clone, Default)]
struct Provider {
    up: Arc<AtomicBool>,
    down: Arc<Mutex<HashSet<String>>>,
    received: Deliveries,
}

impl Provider {
    fn set_down(&self, name: &str, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }
}

async fn provider_inbound(
    State(p): State<Provider>,
    Path(name): Path<String>,
    mut mp: Multipart,
) -> StatusCode {
    if !p.up.load(Ordering::SeqCst) || p.down.lock().unwrap().contains(&name) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let (mut jws, mut cms) = (String::new(), Vec::new());
    while let Ok(Some(f)) = mp.next_field().await {
        match f.name() {
            Some("forretningsmelding") => jws = f.text().await.unwrap_or_default(),
            Some("dokumentpakke") => cms = f.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            _ => {}
        }
    }
    p.received.lock().unwrap().push((jws, cms));
    StatusCode::ACCEPTED
}

struct Chain {
    base: String,
    http: reqwest::Client,
    pki: pki::TestPki,
    provider: Provider,
    blobs: store::BlobStore,
    kommune: Party,
    /// Sends for the kommune (delegation in the stand-in's default fixtures).
    databehandler: Party,
    /// Another avsender with its own Maskinporten client (not in the default fixtures).
    annen: Party,
    digipost: Party,
    eboks: Party,
    /// Maskinporten's issuer (with trailing slash).
    issuer: String,
    _dir: tempfile::TempDir,
    db: store::testing::TestDb,
    shutdown: tokio::sync::watch::Sender<bool>,
}

struct Party {
    issued: pki::Issued,
    tokens: MaskinportenClient,
    client_id: String,
}

impl Party {
    fn actor(&self) -> ActorId {
        self.issued.orgnr().unwrap().actor_id()
    }
}

const ANNEN_CLIENT: &str = "samspill-annen-kommune";

async fn start(deadline_secs: u64) -> Chain {
    start_with(formidler::Config {
        delivery_deadline_secs: deadline_secs,
        ..formidler::Config::default()
    })
    .await
}

/// The chain with `base` as the access point's configuration (its providers, retry pause and
/// workers are the test's). With `maskinporten_audience` set to anything, the audience is this
/// access point's own URL.
async fn start_with(base_cfg: formidler::Config) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let db = store::testing::fresh_db().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = |p: &str| url::Url::parse(&format!("{base}/{p}")).unwrap();
    let env = |role: &str| web::RoleEnv {
        data_dir: {
            let d = dir.path().join(role);
            std::fs::create_dir_all(&d).unwrap();
            d
        },
        public_url: url(role),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    };
    let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
    // The default fixtures and a second avsender with the send scope.
    let fixtures = env("maskinporten")
        .data_dir
        .join("maskinporten-fixtures.toml");
    maskinporten::fixtures::load_or_create(&fixtures, &pki).unwrap();
    let mut text = std::fs::read_to_string(&fixtures).unwrap();
    text.push_str(&format!(
        "\n[[clients]]\nclient_id = \"{ANNEN_CLIENT}\"\norgnr = \"{}\"\n\
         scopes = [\"{}\"]\n",
        annen_orgnr(),
        dpi::token::SCOPE_SEND
    ));
    std::fs::write(&fixtures, text).unwrap();
    let maskinporten = maskinporten::router(&maskinporten::Config::default(), &env("maskinporten"))
        .await
        .unwrap();
    let issuer = format!("{base}/maskinporten/");
    let http = reqwest::Client::new();
    let party = |orgnr: domain::Organisasjonsnummer, name: &str, client: &str| {
        let issued = pki.issue_enterprise(&orgnr, name).unwrap();
        let tokens = MaskinportenClient::new(
            MaskinportenConfig {
                issuer: issuer.clone(),
                token_endpoint: None,
                client_id: client.into(),
                refresh_margin_secs: 20,
                grant_lifetime_secs: 60,
            },
            GrantKey::from_issued(&issued),
            http.clone(),
        );
        Party {
            issued,
            tokens,
            client_id: client.to_owned(),
        }
    };
    use maskinporten::fixtures::defaults as d;
    let kommune = party(
        pki::demo::kommune(),
        pki::demo::KOMMUNE_NAME,
        d::KOMMUNE_CLIENT,
    );
    let databehandler = party(
        pki::demo::databehandler(),
        pki::demo::DATABEHANDLER_NAME,
        d::DATABEHANDLER_CLIENT,
    );
    let digipost = party(
        pki::demo::digipost(),
        pki::demo::DIGIPOST_NAME,
        d::DIGIPOST_CLIENT,
    );
    let eboks = party(pki::demo::eboks(), pki::demo::EBOKS_NAME, d::EBOKS_CLIENT);
    let annen = party(annen_orgnr(), "Annen kommune", ANNEN_CLIENT);
    let me = party(
        pki::demo::formidler(),
        pki::demo::FORMIDLER_NAME,
        d::FORMIDLER_CLIENT,
    );

    let mut anchors = dpi::trust::TrustAnchors::none();
    anchors
        .add_pem_or_der(pki.ca_cert_pem().as_bytes())
        .unwrap();
    let cfg = formidler::Config {
        providers: vec![
            formidler::ProviderRoute {
                orgnr: pki::demo::digipost(),
                endpoint: url("provider/digipost"),
            },
            formidler::ProviderRoute {
                orgnr: pki::demo::eboks(),
                endpoint: url("provider/eboks"),
            },
        ],
        max_retry_delay_secs: 1,
        delivery_workers: 2,
        maskinporten_audience: base_cfg
            .maskinporten_audience
            .as_ref()
            .map(|_| url("formidler").to_string()),
        ..base_cfg
    };
    // As the composition root wires it (samspill's identity::verifier).
    let verifier = clients::verify::MaskinportenVerifier::new(
        &clients::verify::MaskinportenVerifierConfig {
            issuer: issuer.clone(),
            jwks_uri: None,
            audience: cfg.maskinporten_audience.clone(),
        },
        http.clone(),
    );
    let blobs = store::BlobStore::memory();
    let deps = formidler::Deps {
        db: db.db().clone(),
        blobs: blobs.clone(),
        verifier: verifier.into_dyn(),
        tokens: Arc::new(me.tokens.clone()),
        signer: formidler::Signer {
            orgnr: me.actor(),
            cert: me.issued.cert().clone(),
            key: me.issued.key().clone(),
        },
        anchors,
        public_url: url("formidler"),
    };
    let state = formidler::AppState::new(cfg, deps).unwrap();
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    formidler::spawn_workers(state.clone(), rx);
    let provider = Provider {
        up: Arc::new(AtomicBool::new(true)),
        ..Provider::default()
    };
    let provider_router = Router::new()
        .route("/{name}/dpi/inbound", post(provider_inbound))
        .with_state(provider.clone());
    let app = web::app(
        vec![
            ("maskinporten".into(), maskinporten),
            ("formidler".into(), formidler::router(state)),
            ("provider".into(), provider_router),
        ],
        web::AppOptions::default(),
    );
    tokio::spawn(async move {
        web::serve(listener, app, std::future::pending())
            .await
            .unwrap();
    });
    Chain {
        base,
        http,
        pki,
        provider,
        blobs,
        kommune,
        databehandler,
        annen,
        digipost,
        eboks,
        issuer,
        _dir: dir,
        db,
        shutdown,
    }
}

fn annen_orgnr() -> domain::Organisasjonsnummer {
    pki::demo::orgnr_near(94_700_000)
}

/// A small digital letter from `avsender` for `provider`'s citizen.
fn letter(avsender: &ActorId, provider: &Party, message_id: MessageId) -> LetterSpec {
    letter_in(ConversationId::new(), avsender, provider, message_id)
}

/// [`letter`] in the conversation `conversation`.
fn letter_in(
    conversation: ConversationId,
    avsender: &ActorId,
    provider: &Party,
    message_id: MessageId,
) -> LetterSpec {
    let now = OffsetDateTime::now_utc();
    let created = Timestamp(now.replace_nanosecond(0).unwrap());
    let header = Header::new(
        MessageType::Digital,
        avsender,
        &provider.actor(),
        message_id,
        conversation,
        Process::Digital,
        created,
        None,
    );
    let body = Body::Digital(Digital {
        avsender: Avsender::new(avsender),
        mottaker: Personmottaker {
            postkasseadresse: "ola.nordmann#1A2B".into(),
        },
        dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk::of(b""),
        maskinportentoken: String::new(),
        sikkerhetsnivaa: Sikkerhetsnivaa::Nivaa3,
        virkningsdato: None,
        virkningstidspunkt: None,
        aapningskvittering: None,
        ikkesensitivtittel: "Vedtak om barnehageplass".into(),
        spraak: "NO".into(),
        varsler: None,
    });
    LetterSpec {
        sbd: Sbd { header, body },
        package: Dokumentpakke {
            manifest: Manifest {
                mottaker: Some(container::Mottaker {
                    personidentifikator: None,
                    postkasseadresse: "ola.nordmann#1A2B".into(),
                }),
                avsender: container::Avsender {
                    organisasjon: avsender.to_string(),
                    avsenderidentifikator: None,
                    faktura_referanse: None,
                },
                lenke: None,
            },
            documents: vec![Document {
                href: "vedtak.txt".into(),
                mime: "text/plain".into(),
                title: Some("Vedtak".into()),
                lang: Some("NO".into()),
                role: DocumentRole::Hoveddokument,
                bytes: b"Du har fatt plass i Solsikken barnehage.".to_vec(),
                data: None,
            }],
        },
        signing_time: now,
    }
}

impl Chain {
    fn url(&self, p: &str) -> String {
        format!("{}/formidler{p}", self.base)
    }

    async fn send_token(&self, who: &Party) -> String {
        who.tokens
            .token(dpi::token::SCOPE_SEND)
            .await
            .expect("a send token")
    }

    /// Seals `spec` as the kommune with `embedded` as the letter's token.
    fn seal(&self, spec: &LetterSpec, embedded: &str, to: &Party) -> (String, Vec<u8>) {
        let chain = vec![self.kommune.issued.cert().clone()];
        let (sealed, _) = seal_letter(
            spec,
            &chain,
            self.kommune.issued.key(),
            to.issued.cert(),
            embedded,
        )
        .unwrap();
        (sealed.jwt, sealed.cms)
    }

    /// Seals `spec` as `signer` (its certificate signs; its actor is the SBD sender) with
    /// `embedded` as the letter's token; also returns the letter as sent.
    fn seal_by(
        &self,
        signer: &Party,
        spec: &LetterSpec,
        embedded: &str,
        to: &Party,
    ) -> (String, Vec<u8>, Sbd) {
        let mut spec = spec.clone();
        spec.sbd.header.sender = dpi::message::Identifier::org(&signer.actor());
        let (sealed, sent) = seal_letter(
            &spec,
            &[signer.issued.cert().clone()],
            signer.issued.key(),
            to.issued.cert(),
            embedded,
        )
        .unwrap();
        (sealed.jwt, sealed.cms, sent)
    }

    /// `provider`'s signed leveringskvittering of the letter `sent`.
    fn receipt(&self, provider: &Party, sent: &Sbd) -> String {
        let sbd = build_receipt(
            sent,
            ReceiptKind::Levering,
            &provider.actor(),
            Timestamp::now(),
            MessageId::new(),
        )
        .unwrap();
        sign_sbd(&sbd, provider.issued.cert(), provider.issued.key()).unwrap()
    }

    /// `provider` hands in `receipt` (hop 4).
    async fn hand_in(&self, provider: &Party, receipt: &str) -> reqwest::Response {
        self.http
            .post(self.url("/dpi/receipts"))
            .bearer_auth(provider.tokens.token(SCOPE_FORMIDLING).await.unwrap())
            .header("content-type", "application/jwt")
            .body(receipt.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// The receipts `GET /messages/in` lists for `bearer`.
    async fn incoming(&self, bearer: &str) -> Vec<String> {
        let r = self
            .http
            .get(self.url("/messages/in"))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        if r.status() == 204 {
            return Vec::new();
        }
        assert_eq!(r.status(), 200);
        let list: Vec<serde_json::Value> = r.json().await.unwrap();
        list.iter()
            .map(|v| v["forretningsmelding"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A Maskinporten token of `who` for `scope` asked for the API `resource` (its `aud`).
    async fn token_for_resource(&self, who: &Party, scope: &str, resource: &str) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "aud": self.issuer,
            "iss": who.client_id,
            "scope": scope,
            "iat": now,
            "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string(),
            "resource": [resource],
        });
        let mut header = serde_json::Map::new();
        header.insert("x5c".into(), serde_json::json!(who.issued.x5c()));
        let grant =
            pki::jose::sign(header, &claims, pki::jose::Alg::RS256, who.issued.key()).unwrap();
        let r = self
            .http
            .post(format!("{}token", self.issuer))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", grant.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_owned()
    }

    async fn post(&self, bearer: Option<&str>, jws: &str, cms: &[u8]) -> reqwest::Response {
        self.post_in("Saksbehandling_1", bearer, jws, cms).await
    }

    /// `POST /messages/out?kanal=<kanal>`.
    async fn post_in(
        &self,
        kanal: &str,
        bearer: Option<&str>,
        jws: &str,
        cms: &[u8],
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .part(
                "forretningsmelding",
                reqwest::multipart::Part::text(jws.to_owned())
                    .mime_str("application/jwt")
                    .unwrap(),
            )
            .part(
                "dokumentpakke",
                reqwest::multipart::Part::bytes(cms.to_vec())
                    .mime_str("application/cms")
                    .unwrap(),
            );
        let mut req = self
            .http
            .post(self.url(&format!("/messages/out?kanal={kanal}")))
            .multipart(form);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    async fn statuses(&self, token: &str, id: MessageId) -> Vec<String> {
        let r = self
            .http
            .get(self.url(&format!("/messages/out/{id}/statuses")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Vec<serde_json::Value> = r.json().await.unwrap();
        v.iter()
            .map(|s| s["status"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Takes the provider down, then the kommune sends a letter to `to` and the access point
    /// accepts it (201). Returns the kommune's token, the message id and the CMS.
    async fn accepted_while_provider_down(&self, to: &Party) -> (String, MessageId, Vec<u8>) {
        self.provider.up.store(false, Ordering::SeqCst);
        let token = self.send_token(&self.kommune).await;
        let id = MessageId::new();
        let (jws, cms) = self.seal(&letter(&self.kommune.actor(), to, id), &token, to);
        assert_eq!(self.post(Some(&token), &jws, &cms).await.status(), 201);
        (token, id, cms)
    }

    /// Dokumentpakker the access point still holds.
    async fn payloads_kept(&self) -> i64 {
        store::sqlx::query_scalar("SELECT COUNT(*) FROM formidler_payloads")
            .fetch_one(self.db.db().pool())
            .await
            .unwrap()
    }

    /// The business message the access point keeps of a letter, and its digest.
    async fn message_kept(&self, id: MessageId) -> (String, Option<String>) {
        store::sqlx::query_as(
            "SELECT forretningsmelding, forretningsmelding_sha256 FROM formidler_messages \
             WHERE message_id = $1",
        )
        .bind(id.to_string())
        .fetch_one(self.db.db().pool())
        .await
        .unwrap()
    }

    async fn wait_status(&self, token: &str, id: MessageId, want: &str) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.statuses(token, id).await;
            if s.last().map(String::as_str) == Some(want) {
                return s;
            }
            assert!(Instant::now() < until, "status {want} not reached: {s:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn problem(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{status}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_letter_is_accepted_delivered_once_and_its_payload_forgotten() {
    let c = start(3600).await;
    let token = c.send_token(&c.kommune).await;
    let id = MessageId::new();
    let spec = letter(&c.kommune.actor(), &c.digipost, id);
    let (jws, cms) = c.seal(&spec, &token, &c.digipost);

    let r = c.post(Some(&token), &jws, &cms).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let s = c.wait_status(&token, id, "SENDT").await;
    assert_eq!(s, ["OPPRETTET", "SENDT"]);
    {
        let got = c.provider.received.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].0, jws,
            "the provider gets the business message unchanged"
        );
        assert_eq!(got[0].1, cms, "and the dokumentpakke byte for byte");
    }
    // Delivered payloads are not kept, and none ever went to the blob store.
    assert_eq!(c.payloads_kept().await, 0);
    assert!(!c.blobs.exists(&store::BlobRef::of(&cms)).await.unwrap());
    // Nor is the business message (the citizen's identity, the title, a token): its digest is.
    assert_eq!(
        c.message_kept(id).await,
        (String::new(), Some(dpi::jws::digest(&jws)))
    );
    // A resend of the very same letter (a retry after a lost 201) is accepted again, by that
    // digest, and not delivered twice.
    let r = c.post(Some(&token), &jws, &cms).await;
    assert_eq!(r.status(), 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.provider.received.lock().unwrap().len(), 1);

    // Another letter under the same id is refused.
    let other = letter(&c.kommune.actor(), &c.digipost, id);
    let (jws2, cms2) = c.seal(&other, &token, &c.digipost);
    assert_eq!(
        problem(c.post(Some(&token), &jws2, &cms2).await).await,
        (409, "duplicate_message_id".into())
    );

    // Statuses are the sender's alone.
    let stranger = c.eboks.tokens.token(SCOPE_FORMIDLING).await.unwrap();
    let r = c
        .http
        .get(c.url(&format!("/messages/out/{id}/statuses")))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 403 | 404), "{}", r.status());
    let _ = c.shutdown.send(true);
}

#[tokio::test]
async fn the_access_point_refuses_what_section_3_4_forbids() {
    let c = start(3600).await;
    let token = c.send_token(&c.kommune).await;
    let spec = letter(&c.kommune.actor(), &c.digipost, MessageId::new());
    let (jws, cms) = c.seal(&spec, &token, &c.digipost);

    // No token, a forged token.
    assert_eq!(
        problem(c.post(None, &jws, &cms).await).await,
        (401, "missing_token".into())
    );
    let (status, _) = problem(c.post(Some("eyJhbGciOiJub25lIn0.e30."), &jws, &cms).await).await;
    assert_eq!(status, 401);

    // A token without the send scope (the provider's).
    let provider_token = c.digipost.tokens.token(SCOPE_FORMIDLING).await.unwrap();
    assert_eq!(
        problem(c.post(Some(&provider_token), &jws, &cms).await).await,
        (403, "insufficient_scope".into())
    );

    // The embedded token is not the bearer token.
    c.kommune.tokens.invalidate();
    let second = c.send_token(&c.kommune).await;
    assert_ne!(second, token);
    assert_eq!(
        problem(c.post(Some(&second), &jws, &cms).await).await,
        (400, "token_mismatch".into())
    );

    // The dokumentpakke is not the one the fingerprint names.
    let mut tampered = cms.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        problem(c.post(Some(&token), &jws, &tampered).await).await,
        (400, "fingerprint_mismatch".into())
    );

    // The letter's avsender is not the token's consumer.
    let foreign = letter(&c.eboks.actor(), &c.digipost, MessageId::new());
    let (fjws, fcms) = c.seal(&foreign, &token, &c.digipost);
    assert_eq!(
        problem(c.post(Some(&token), &fjws, &fcms).await).await,
        (403, "consumer_mismatch".into())
    );

    // A receiver without a route.
    let mut spec2 = letter(&c.kommune.actor(), &c.digipost, MessageId::new());
    spec2.sbd.header.receiver = dpi::message::Identifier::org(&pki::demo::print().actor_id());
    let (njws, ncms) = c.seal(&spec2, &token, &c.digipost);
    assert_eq!(
        problem(c.post(Some(&token), &njws, &ncms).await).await,
        (400, "unknown_receiver".into())
    );

    // Garbage instead of a JWS, a missing part, a bad kanal.
    assert_eq!(
        problem(c.post(Some(&token), "not a jws", &cms).await).await,
        (400, "invalid_forretningsmelding".into())
    );
    let form = reqwest::multipart::Form::new().text("forretningsmelding", jws.clone());
    let r = c
        .http
        .post(c.url("/messages/out"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (400, "missing_part".into()));
    let r = c
        .http
        .post(c.url("/messages/out?kanal=%C3%A6%C3%B8%C3%A5"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().text("x", "y"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (400, "invalid_kanal".into()));

    // Nothing of this reached the provider.
    assert!(c.provider.received.lock().unwrap().is_empty());
    let _ = c.shutdown.send(true);
}

#[tokio::test]
async fn a_provider_that_is_down_gets_the_letter_when_it_comes_back() {
    let c = start(3600).await;
    let (token, id, _) = c.accepted_while_provider_down(&c.eboks).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(c.statuses(&token, id).await, ["OPPRETTET"]);
    assert!(c.provider.received.lock().unwrap().is_empty());

    c.provider.up.store(true, Ordering::SeqCst);
    c.wait_status(&token, id, "SENDT").await;
    assert_eq!(c.provider.received.lock().unwrap().len(), 1);
    let _ = c.shutdown.send(true);
}

/// A letter accepted by a version that kept payloads in the blob store is still delivered
/// after the upgrade, and its blob is deleted afterwards.
#[tokio::test]
async fn a_payload_left_in_the_blob_store_by_an_earlier_version_is_delivered_then_deleted() {
    let c = start(3600).await;
    let (token, id, cms) = c.accepted_while_provider_down(&c.digipost).await;
    // Where the earlier version kept it.
    let blob = c.blobs.put(cms.clone()).await.unwrap();
    store::sqlx::query("DELETE FROM formidler_payloads")
        .execute(c.db.db().pool())
        .await
        .unwrap();
    c.provider.up.store(true, Ordering::SeqCst);
    c.wait_status(&token, id, "SENDT").await;
    assert_eq!(c.provider.received.lock().unwrap()[0].1, cms);
    // The blob goes right after the transaction that marked the message sent.
    assert!(
        store::testing::blob_gone_within(&c.blobs, &blob, Duration::from_secs(2)).await,
        "deleted once delivered"
    );
    let _ = c.shutdown.send(true);
}

/// A crash can lose the provider's delivery answer; its receipt still proves the delivery.
#[tokio::test]
async fn a_receipt_from_the_receiving_provider_confirms_a_pending_delivery() {
    let c = start(3600).await;
    c.provider.up.store(false, Ordering::SeqCst);
    let token = c.send_token(&c.kommune).await;
    let id = MessageId::new();
    let spec = letter(&c.kommune.actor(), &c.digipost, id);
    let (jws, cms) = c.seal(&spec, &token, &c.digipost);
    assert_eq!(c.post(Some(&token), &jws, &cms).await.status(), 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.statuses(&token, id).await, ["OPPRETTET"]);
    assert_eq!(
        c.payloads_kept().await,
        1,
        "kept while the provider is down"
    );

    let (_, sent) = seal_letter(
        &spec,
        &[c.kommune.issued.cert().clone()],
        c.kommune.issued.key(),
        c.digipost.issued.cert(),
        &token,
    )
    .unwrap();
    let receipt = build_receipt(
        &sent,
        ReceiptKind::Levering,
        &c.digipost.actor(),
        Timestamp::now(),
        MessageId::new(),
    )
    .unwrap();
    let receipt = sign_sbd(&receipt, c.digipost.issued.cert(), c.digipost.issued.key()).unwrap();
    let r = c
        .http
        .post(c.url("/dpi/receipts"))
        .bearer_auth(c.digipost.tokens.token(SCOPE_FORMIDLING).await.unwrap())
        .header("content-type", "application/jwt")
        .body(receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(c.statuses(&token, id).await, ["OPPRETTET", "SENDT"]);
    assert_eq!(
        c.payloads_kept().await,
        0,
        "the payload is forgotten once the provider has the letter"
    );
    // The provider coming back does not get the letter a second time.
    c.provider.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(c.provider.received.lock().unwrap().is_empty());
    let _ = c.shutdown.send(true);
}

#[tokio::test]
async fn an_undeliverable_letter_becomes_a_signed_feil_for_its_sender() {
    let c = start(1).await;
    let (token, id, _) = c.accepted_while_provider_down(&c.digipost).await;
    let s = c.wait_status(&token, id, "FEILET").await;
    assert_eq!(s, ["OPPRETTET", "FEILET"]);

    let r = c
        .http
        .get(c.url("/messages/in"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Vec<serde_json::Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 1);
    let feil = list[0]["forretningsmelding"].as_str().unwrap();
    let mut anchors = dpi::trust::TrustAnchors::none();
    anchors
        .add_pem_or_der(c.pki.ca_cert_pem().as_bytes())
        .unwrap();
    let opened = dpi::receipt::open_receipt(feil, &anchors, OffsetDateTime::now_utc());
    assert!(opened.valid, "{:?}", opened.errors);
    let sbd = opened.sbd.unwrap();
    match &sbd.body {
        Body::Feil(f) => {
            assert_eq!(f.feiltype, dpi::message::Feiltype::Server);
            assert!(
                f.detaljer
                    .as_deref()
                    .unwrap_or_default()
                    .contains("deadline")
            );
        }
        other => panic!("expected feil, got {other:?}"),
    }
    let _ = c.shutdown.send(true);
}

#[tokio::test]
async fn receipts_reach_their_sender_once_and_only_from_the_receiving_provider() {
    let c = start(3600).await;
    let token = c.send_token(&c.kommune).await;
    let id = MessageId::new();
    let spec = letter(&c.kommune.actor(), &c.digipost, id);
    let (jws, cms) = c.seal(&spec, &token, &c.digipost);
    assert_eq!(c.post(Some(&token), &jws, &cms).await.status(), 201);
    c.wait_status(&token, id, "SENDT").await;
    let (_, sent) = seal_letter(
        &spec,
        &[c.kommune.issued.cert().clone()],
        c.kommune.issued.key(),
        c.digipost.issued.cert(),
        &token,
    )
    .unwrap();

    let receipt_from = |p: &Party| {
        let sbd = build_receipt(
            &sent,
            ReceiptKind::Levering,
            &p.actor(),
            Timestamp::now(),
            MessageId::new(),
        )
        .unwrap();
        sign_sbd(&sbd, p.issued.cert(), p.issued.key()).unwrap()
    };
    let hand_in = |who: &'static str, bearer: String, jws: String| {
        let http = c.http.clone();
        let url = c.url("/dpi/receipts");
        async move {
            let r = http
                .post(url)
                .bearer_auth(bearer)
                .header("content-type", "application/jwt")
                .body(jws)
                .send()
                .await
                .unwrap();
            (who, r.status().as_u16())
        }
    };
    let digipost_token = c.digipost.tokens.token(SCOPE_FORMIDLING).await.unwrap();
    let eboks_token = c.eboks.tokens.token(SCOPE_FORMIDLING).await.unwrap();

    // Another provider may not hand in receipts for digipost's letter, nor under its name.
    assert_eq!(
        hand_in("eboks", eboks_token.clone(), receipt_from(&c.eboks)).await,
        ("eboks", 403)
    );
    assert_eq!(
        hand_in("eboks", eboks_token.clone(), receipt_from(&c.digipost)).await,
        ("eboks", 403)
    );
    // Not JSON nor anything else than a JWT.
    let r = c
        .http
        .post(c.url("/dpi/receipts"))
        .bearer_auth(&digipost_token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let receipt = receipt_from(&c.digipost);
    assert_eq!(
        hand_in("digipost", digipost_token.clone(), receipt.clone()).await,
        ("digipost", 202)
    );
    assert_eq!(
        hand_in("digipost", digipost_token.clone(), receipt.clone()).await,
        ("digipost", 200),
        "the same receipt twice is stored once"
    );

    // The sender sees it once, filtered by its kanal, downloads it and marks it read.
    let r = c
        .http
        .get(c.url("/messages/in?kanal=saksbehandling_1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let list: Vec<serde_json::Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["forretningsmelding"], receipt);
    let download = list[0]["downloadurl"].as_str().unwrap().to_owned();
    let r = c
        .http
        .get(&download)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), receipt);
    let other_kanal = c
        .http
        .get(c.url("/messages/in?kanal=annen"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other_kanal.status(), 204);
    // The provider cannot read the sender's incoming messages.
    let r = c
        .http
        .get(&download)
        .bearer_auth(&digipost_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let read = format!("{download}/read");
    assert_eq!(
        c.http
            .post(&read)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c
        .http
        .get(c.url("/messages/in"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let _ = c.shutdown.send(true);
}

/// §3.4: the access point keeps the avsender and the databehandler of a letter to route its
/// receipts. A receipt of a letter a databehandler sent for the kommune goes to that
/// databehandler's delegated token, and neither the kommune's own token (its own sender
/// system) sees, downloads nor consumes it.
#[tokio::test]
async fn a_databehandlers_receipts_go_to_it_and_not_to_the_avsenders_own_system() {
    let c = start(3600).await;
    let kommune = c.kommune.actor();
    let delegated = c.databehandler.tokens.on_behalf_of(pki::demo::kommune());
    let token = delegated.token(dpi::token::SCOPE_SEND).await.unwrap();
    let id = MessageId::new();
    let mut spec = letter(&kommune, &c.digipost, id);
    spec.sbd.header.sender.value = c.databehandler.actor().to_string();
    let chain = [c.databehandler.issued.cert().clone()];
    let (sealed, sent) = seal_letter(
        &spec,
        &chain,
        c.databehandler.issued.key(),
        c.digipost.issued.cert(),
        &token,
    )
    .unwrap();
    assert_eq!(
        c.post(Some(&token), &sealed.jwt, &sealed.cms)
            .await
            .status(),
        201
    );
    c.wait_status(&token, id, "SENDT").await;

    let receipt = sign_sbd(
        &build_receipt(
            &sent,
            ReceiptKind::Levering,
            &c.digipost.actor(),
            Timestamp::now(),
            MessageId::new(),
        )
        .unwrap(),
        c.digipost.issued.cert(),
        c.digipost.issued.key(),
    )
    .unwrap();
    let digipost_token = c.digipost.tokens.token(SCOPE_FORMIDLING).await.unwrap();
    let r = c
        .http
        .post(c.url("/dpi/receipts"))
        .bearer_auth(&digipost_token)
        .header("content-type", "application/jwt")
        .body(receipt.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let own = c.send_token(&c.kommune).await;
    let list = |bearer: String| {
        let http = c.http.clone();
        let url = c.url("/messages/in");
        async move {
            let r = http.get(url).bearer_auth(bearer).send().await.unwrap();
            if r.status() == 204 {
                return Vec::new();
            }
            r.json::<Vec<serde_json::Value>>().await.unwrap()
        }
    };
    assert!(list(own.clone()).await.is_empty());
    let mine = list(token.clone()).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["forretningsmelding"], receipt);
    let download = mine[0]["downloadurl"].as_str().unwrap().to_owned();
    for (url, method) in [
        (download.clone(), "GET"),
        (format!("{download}/read"), "POST"),
    ] {
        let req = if method == "GET" {
            c.http.get(&url)
        } else {
            c.http.post(&url)
        };
        let r = req.bearer_auth(&own).send().await.unwrap();
        assert_eq!(
            r.status(),
            404,
            "{method} {url} with the kommune's own token"
        );
    }
    // Still there for the databehandler, which reads it.
    assert_eq!(list(token.clone()).await.len(), 1);
    let r = c
        .http
        .post(format!("{download}/read"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(list(token).await.is_empty());
    let _ = c.shutdown.send(true);
}

/// Two letters of one conversation to two providers, both down: the receipt of one provider
/// confirms only its own letter; the other letter is delivered once its provider is back, and
/// its receipt (from the provider of the conversation's second letter) reaches the sender.
#[tokio::test]
async fn a_receipt_confirms_only_the_letter_to_its_provider_in_a_shared_conversation() {
    let c = start(3600).await;
    c.provider.set_down("digipost", true);
    c.provider.set_down("eboks", true);
    let token = c.send_token(&c.kommune).await;
    let kommune = c.kommune.actor();
    let conversation = ConversationId::new();
    let (a, b) = (MessageId::new(), MessageId::new());
    let (jws_a, cms_a, sent_a) = c.seal_by(
        &c.kommune,
        &letter_in(conversation, &kommune, &c.digipost, a),
        &token,
        &c.digipost,
    );
    let (jws_b, cms_b, sent_b) = c.seal_by(
        &c.kommune,
        &letter_in(conversation, &kommune, &c.eboks, b),
        &token,
        &c.eboks,
    );
    assert_eq!(c.post(Some(&token), &jws_a, &cms_a).await.status(), 201);
    assert_eq!(c.post(Some(&token), &jws_b, &cms_b).await.status(), 201);

    // Digipost's delivery answer was lost; its receipt arrives while eboks is still down.
    let receipt_a = c.receipt(&c.digipost, &sent_a);
    assert_eq!(c.hand_in(&c.digipost, &receipt_a).await.status(), 202);
    assert_eq!(c.statuses(&token, a).await, ["OPPRETTET", "SENDT"]);
    assert_eq!(c.statuses(&token, b).await, ["OPPRETTET"]);
    assert_eq!(c.payloads_kept().await, 1, "eboks's letter is still kept");

    c.provider.set_down("digipost", false);
    c.provider.set_down("eboks", false);
    c.wait_status(&token, b, "SENDT").await;
    {
        let got = c.provider.received.lock().unwrap();
        assert_eq!(got.len(), 1, "only eboks's letter is delivered");
        assert_eq!(got[0], (jws_b, cms_b));
    }
    let receipt_b = c.receipt(&c.eboks, &sent_b);
    assert_eq!(c.hand_in(&c.eboks, &receipt_b).await.status(), 202);
    assert_eq!(c.incoming(&token).await, [receipt_a, receipt_b]);
    let _ = c.shutdown.send(true);
}

/// Three senders reuse one conversation id for letters to one provider — the kommune's own
/// system, its databehandler and another organization: each gets the receipt of its own
/// letter and no other.
#[tokio::test]
async fn senders_sharing_a_conversation_id_each_get_only_their_own_receipts() {
    let c = start(3600).await;
    let conversation = ConversationId::new();
    let kommune = c.kommune.actor();
    let own = c.send_token(&c.kommune).await;
    let delegated = c
        .databehandler
        .tokens
        .on_behalf_of(pki::demo::kommune())
        .token(dpi::token::SCOPE_SEND)
        .await
        .unwrap();
    let annen = c.send_token(&c.annen).await;
    let mut sent = Vec::new();
    for (signer, avsender, token) in [
        (&c.kommune, kommune, &own),
        (&c.databehandler, kommune, &delegated),
        (&c.annen, c.annen.actor(), &annen),
    ] {
        let id = MessageId::new();
        let spec = letter_in(conversation, &avsender, &c.digipost, id);
        let (jws, cms, letter) = c.seal_by(signer, &spec, token, &c.digipost);
        let r = c.post(Some(token), &jws, &cms).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        c.wait_status(token, id, "SENDT").await;
        sent.push(letter);
    }
    let mut receipts = Vec::new();
    for letter in &sent {
        let receipt = c.receipt(&c.digipost, letter);
        assert_eq!(c.hand_in(&c.digipost, &receipt).await.status(), 202);
        receipts.push(receipt);
    }
    assert_eq!(c.incoming(&own).await, [receipts[0].clone()]);
    assert_eq!(c.incoming(&delegated).await, [receipts[1].clone()]);
    assert_eq!(c.incoming(&annen).await, [receipts[2].clone()]);
    let _ = c.shutdown.send(true);
}

/// One sender with two letters of one conversation to one provider: their receipts cannot be
/// told apart. On one kanal the receipt goes there; on two it is refused rather than put on
/// either.
#[tokio::test]
async fn a_receipt_matching_letters_with_different_routes_is_refused() {
    let c = start(3600).await;
    let token = c.send_token(&c.kommune).await;
    let kommune = c.kommune.actor();
    let mut last = None;
    for (conversation, kanaler) in [
        (ConversationId::new(), ["kanal_a", "kanal_b"]),
        (ConversationId::new(), ["kanal_c", "kanal_c"]),
    ] {
        for kanal in kanaler {
            let id = MessageId::new();
            let spec = letter_in(conversation, &kommune, &c.digipost, id);
            let (jws, cms, sent) = c.seal_by(&c.kommune, &spec, &token, &c.digipost);
            assert_eq!(
                c.post_in(kanal, Some(&token), &jws, &cms).await.status(),
                201
            );
            c.wait_status(&token, id, "SENDT").await;
            last = Some(sent);
        }
        let receipt = c.receipt(&c.digipost, last.as_ref().unwrap());
        let r = c.hand_in(&c.digipost, &receipt).await;
        if kanaler[0] == kanaler[1] {
            assert_eq!(r.status(), 202);
        } else {
            assert_eq!(problem(r).await, (409, "ambiguous_receipt".into()));
        }
    }
    // Only the receipt of the one-kanal pair was stored, on that kanal.
    let r = c
        .http
        .get(c.url("/messages/in?kanal=kanal_c"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let list: Vec<serde_json::Value> = r.json().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(c.incoming(&token).await.len(), 1);
    let _ = c.shutdown.send(true);
}

/// What axum's extractors refuse is a problem+json too, not axum's text/plain.
#[tokio::test]
async fn refused_requests_are_problems() {
    let c = start(3600).await;
    let token = c.send_token(&c.kommune).await;
    let r = c
        .http
        .post(c.url("/messages/out"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (400, "invalid_multipart".into()));
    let r = c
        .http
        .get(c.url("/messages/in?kanal=a&kanal=b"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (400, "invalid_query".into()));
    let r = c
        .http
        .get(c.url("/messages/out/%FF/statuses"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (400, "invalid_id".into()));
    let r = c
        .http
        .delete(c.url("/messages/in"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (405, "method_not_allowed".into()));
    let r = c
        .http
        .post(c.url("/dpi/receipts"))
        .bearer_auth(c.digipost.tokens.token(SCOPE_FORMIDLING).await.unwrap())
        .header("content-type", "application/jwt")
        .body(vec![b'a'; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await, (413, "payload_too_large".into()));
    let _ = c.shutdown.send(true);
}

/// §3.4 `aud` == own endpoint, when configured: a token for another API (or for none) is
/// refused, one for this access point accepted.
#[tokio::test]
async fn with_an_audience_only_tokens_for_this_access_point_are_accepted() {
    let c = start_with(formidler::Config {
        maskinporten_audience: Some("this access point".into()),
        ..formidler::Config::default()
    })
    .await;
    let send = dpi::token::SCOPE_SEND;
    let elsewhere = c
        .token_for_resource(&c.kommune, send, "https://krr.example.no/")
        .await;
    let unspecified = c.send_token(&c.kommune).await;
    for token in [&elsewhere, &unspecified] {
        let id = MessageId::new();
        let (jws, cms) = c.seal(
            &letter(&c.kommune.actor(), &c.digipost, id),
            token,
            &c.digipost,
        );
        assert_eq!(
            problem(c.post(Some(token), &jws, &cms).await).await,
            (401, "wrong_audience".into())
        );
    }
    let mine = c.token_for_resource(&c.kommune, send, &c.url("")).await;
    let id = MessageId::new();
    let (jws, cms) = c.seal(
        &letter(&c.kommune.actor(), &c.digipost, id),
        &mine,
        &c.digipost,
    );
    assert_eq!(c.post(Some(&mine), &jws, &cms).await.status(), 201);
    c.wait_status(&mine, id, "SENDT").await;
    let _ = c.shutdown.send(true);
}

/// A delivery deadline beyond the calendar never passes (it overflowed the deadline's
/// arithmetic, and every letter's POST panicked).
#[tokio::test]
async fn a_deadline_beyond_the_calendar_is_no_deadline() {
    let c = start(u64::MAX).await;
    let token = c.send_token(&c.kommune).await;
    let id = MessageId::new();
    let (jws, cms) = c.seal(
        &letter(&c.kommune.actor(), &c.digipost, id),
        &token,
        &c.digipost,
    );
    assert_eq!(c.post(Some(&token), &jws, &cms).await.status(), 201);
    assert_eq!(
        c.wait_status(&token, id, "SENDT").await,
        ["OPPRETTET", "SENDT"]
    );
    let _ = c.shutdown.send(true);
}
