//! Test harness: Maskinporten, ID-porten, a real access point (formidler) and the mailbox
//! provider on one loopback listener (`/maskinporten`, `/idporten`, `/formidler`,
//! `/postkasse/<slug>`), sharing one test PKI in a temp folder. The sender is played by the
//! test itself with the demo kommune's certificate and its real Maskinporten token.
#![allow(dead_code)]

use std::{collections::HashMap, time::Duration};

use clients::{
    jwks::JwksCache,
    maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig},
    verify::{JwtVerifier, MaskinportenVerifier},
};
use domain::{ActorId, ConversationId, MessageId, Organisasjonsnummer};
use dpi::{
    container::{
        self, Avsender as MAvsender, Document, DocumentData, DocumentRole, Dokumentpakke,
        Extension, Lenke, Manifest, Mottaker, Tekst,
    },
    letter::{LetterSpec, SealedLetter, seal_letter},
    message::{
        Avsender, Body, Digital, Dokumentpakkefingeravtrykk, Header, MessageType, Personmottaker,
        Process, Sbd, Sikkerhetsnivaa, Timestamp,
    },
    trust::TrustAnchors,
};
use openssl::x509::X509;
use store::testing::TestDb;
use time::OffsetDateTime;

pub const IDP_CLIENT: &str = "postkasse-test";
pub const IDP_SECRET: &str = "secret-postkasse-test";

pub struct Chain {
    pub dir: tempfile::TempDir,
    pub origin: String,
    pub pki: pki::TestPki,
    pub anchors: TrustAnchors,
    pub postkasse: postkasse::AppState,
    pub postkasse_db: TestDb,
    /// The provider's blob store (documents; payloads of an earlier version).
    pub postkasse_blobs: store::BlobStore,
    pub formidler_db: TestDb,
    pub kommune: MaskinportenClient,
    pub kommune_cert: pki::Issued,
    /// The access point's own client (for talking to the provider directly).
    pub formidler_tokens: MaskinportenClient,
    /// The Digipost tenant's own client (a provider, not an access point).
    pub digipost_tokens: MaskinportenClient,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub handles: Vec<tokio::task::JoinHandle<()>>,
    pub http: reqwest::Client,
    pub pids: krr::DefaultPids,
}

fn role_env(dir: &std::path::Path, origin: &str, role: &str) -> web::RoleEnv {
    let data_dir = dir.join(role);
    std::fs::create_dir_all(&data_dir).unwrap();
    web::RoleEnv {
        data_dir,
        public_url: url::Url::parse(&format!("{origin}/{role}")).unwrap(),
        fnr_policy: domain::FnrPolicy::PERMISSIVE,
    }
}

/// The ID-porten fixture as TOML (so new optional fields of the stand-in need no change here).
fn idporten_fixtures(origin: &str, pids: &krr::DefaultPids) -> String {
    format!(
        r#"
[[clients]]
client_id = "{IDP_CLIENT}"
name = "Postkasse test"
client_secret = "{IDP_SECRET}"
redirect_uris = ["{origin}/cb"]
scopes = ["openid", "profile"]

[[persons]]
pid = "{kari}"
name = "Kari Nordmann"

[[persons]]
pid = "{sigrid}"
name = "Sigrid Eldre"

[[persons]]
pid = "{ola}"
name = "Ola Nordmann"
"#,
        kari = pids.digipost,
        sigrid = pids.stale,
        ola = pids.eboks,
    )
}

/// Starts every part; `tweak` adjusts the postkasse configuration.
pub async fn start_with(
    tweak: impl FnOnce(&mut postkasse::Config),
    postkasse_workers: bool,
) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://{addr}");
    let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
    let anchors = TrustAnchors::new(vec![pki.ca_cert().clone()]);
    let pids = krr::default_pids();
    let http = reqwest::Client::new();

    // Maskinporten stand-in.
    let mp_env = role_env(dir.path(), &origin, "maskinporten");
    let mp = maskinporten::router(&maskinporten::Config::default(), &mp_env)
        .await
        .unwrap();
    let mp_issuer = format!("{origin}/maskinporten/");

    // ID-porten stand-in with our client and the citizens.
    let idp_env = role_env(dir.path(), &origin, "idporten");
    std::fs::write(
        idp_env.data_dir.join("fx.toml"),
        idporten_fixtures(&origin, &pids),
    )
    .unwrap();
    let idp = idporten::router(
        &idporten::Config {
            fixtures: "fx.toml".into(),
            ..Default::default()
        },
        &idp_env,
    )
    .await
    .unwrap();

    // The access point.
    let formidler_db = store::testing::fresh_db().await;
    let f_env = role_env(dir.path(), &origin, "formidler");
    let f_cert = pki
        .issue_enterprise(&pki::demo::formidler(), pki::demo::FORMIDLER_NAME)
        .unwrap();
    let f_tokens = MaskinportenClient::new(
        MaskinportenConfig {
            issuer: mp_issuer.clone(),
            token_endpoint: None,
            client_id: "samspill-formidler".into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        GrantKey::from_issued(&f_cert),
        http.clone(),
    );
    let formidler_tokens = f_tokens.clone();
    let mut mp_jwks = JwksCache::new(format!("{mp_issuer}jwk"), http.clone());
    mp_jwks.min_refetch_interval = Duration::ZERO;
    let f_state = formidler::AppState::new(
        formidler::Config {
            providers: vec![
                formidler::ProviderRoute {
                    orgnr: pki::demo::digipost(),
                    endpoint: url::Url::parse(&format!("{origin}/postkasse/digipost")).unwrap(),
                },
                formidler::ProviderRoute {
                    orgnr: pki::demo::eboks(),
                    endpoint: url::Url::parse(&format!("{origin}/postkasse/eboks")).unwrap(),
                },
            ],
            max_retry_delay_secs: 1,
            ..Default::default()
        },
        formidler::Deps {
            db: formidler_db.db().clone(),
            blobs: store::BlobStore::memory(),
            verifier: MaskinportenVerifier::from_jwt_verifier(JwtVerifier::new(
                mp_issuer.clone(),
                mp_jwks,
                None,
            ))
            .into_dyn(),
            tokens: std::sync::Arc::new(f_tokens),
            signer: formidler::Signer {
                orgnr: pki::demo::formidler().actor_id(),
                cert: f_cert.cert().clone(),
                key: f_cert.key().clone(),
            },
            anchors: anchors.clone(),
            public_url: f_env.public_url.clone(),
        },
    )
    .unwrap();

    // The mailbox provider, built from configuration defaults (sibling roles, test PKI, KRR
    // default fixtures for the citizens).
    let postkasse_db = store::testing::fresh_db().await;
    let p_env = role_env(dir.path(), &origin, "postkasse");
    let mut p_cfg = postkasse::Config {
        max_retry_delay_secs: 1,
        ..Default::default()
    };
    tweak(&mut p_cfg);
    let postkasse_blobs = store::BlobStore::memory();
    let p_state = postkasse::build(
        &p_cfg,
        &p_env,
        postkasse_db.db().clone(),
        postkasse_blobs.clone(),
    )
    .await
    .unwrap();

    let app = axum::Router::new()
        .nest("/maskinporten", mp)
        .nest("/idporten", idp)
        .nest("/formidler", formidler::router(f_state.clone()))
        .nest("/postkasse", postkasse::router(p_state.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let mut handles = formidler::spawn_workers(f_state, rx.clone());
    if postkasse_workers {
        handles.extend(postkasse::spawn_workers(p_state.clone(), rx.clone()));
    }
    let digipost_cert = pki
        .issue_enterprise(&pki::demo::digipost(), pki::demo::DIGIPOST_NAME)
        .unwrap();
    let digipost_tokens = MaskinportenClient::new(
        MaskinportenConfig {
            issuer: mp_issuer.clone(),
            token_endpoint: None,
            client_id: "samspill-digipost".into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        GrantKey::from_issued(&digipost_cert),
        http.clone(),
    );

    let kommune_cert = pki
        .issue_enterprise(&pki::demo::kommune(), pki::demo::KOMMUNE_NAME)
        .unwrap();
    let kommune = MaskinportenClient::new(
        MaskinportenConfig {
            issuer: mp_issuer,
            token_endpoint: None,
            client_id: "samspill-kommune".into(),
            refresh_margin_secs: 20,
            grant_lifetime_secs: 60,
        },
        GrantKey::from_issued(&kommune_cert),
        http.clone(),
    );
    Chain {
        dir,
        origin,
        pki,
        anchors,
        postkasse: p_state,
        postkasse_db,
        postkasse_blobs,
        formidler_db,
        kommune,
        kommune_cert,
        formidler_tokens,
        digipost_tokens,
        shutdown,
        handles,
        http,
        pids,
    }
}

pub async fn start() -> Chain {
    start_with(|_| {}, true).await
}

/// What a test letter looks like.
pub struct LetterOpts {
    pub tenant: Organisasjonsnummer,
    pub postkasseadresse: String,
    pub title: String,
    pub sikkerhetsnivaa: Sikkerhetsnivaa,
    pub aapningskvittering: bool,
    pub virkningstidspunkt: Option<OffsetDateTime>,
    pub lenke: bool,
    pub varsler: Option<dpi::message::Varsler>,
}

impl LetterOpts {
    pub fn to(tenant: Organisasjonsnummer, postkasseadresse: &str, title: &str) -> Self {
        Self {
            tenant,
            postkasseadresse: postkasseadresse.into(),
            title: title.into(),
            sikkerhetsnivaa: Sikkerhetsnivaa::Nivaa3,
            aapningskvittering: false,
            virkningstidspunkt: None,
            lenke: true,
            varsler: None,
        }
    }
}

pub const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

pub fn spec(o: &LetterOpts) -> LetterSpec {
    let kommune = pki::demo::kommune().actor_id();
    let now = OffsetDateTime::now_utc();
    let header = Header::new(
        MessageType::Digital,
        &kommune,
        &o.tenant.actor_id(),
        MessageId::new(),
        ConversationId::new(),
        Process::Digital,
        Timestamp(now),
        None,
    );
    let body = Body::Digital(Digital {
        avsender: Avsender::new(&kommune),
        mottaker: Personmottaker {
            postkasseadresse: o.postkasseadresse.clone(),
        },
        dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk {
            digest_method: dpi::message::SHA256_URI.into(),
            digest_value: String::new(),
        },
        maskinportentoken: String::new(),
        sikkerhetsnivaa: o.sikkerhetsnivaa,
        virkningsdato: None,
        virkningstidspunkt: o.virkningstidspunkt.map(Timestamp),
        aapningskvittering: Some(o.aapningskvittering),
        ikkesensitivtittel: o.title.clone(),
        spraak: "no".into(),
        varsler: o.varsler.clone(),
    });
    let data = o.lenke.then(|| DocumentData {
        href: "lenke.xml".into(),
        extension: Extension::Lenke(Lenke {
            url: "https://minside.samspill.invalid/barnehage/svar".into(),
            beskrivelse: Some(Tekst::new("Svar på tilbudet om barnehageplass", "no")),
            knapp_tekst: Some(Tekst::new("Svar her", "no")),
            frist: Some("2026-12-15T12:00:00+01:00".into()),
        }),
    });
    LetterSpec {
        sbd: Sbd { header, body },
        package: Dokumentpakke {
            manifest: Manifest {
                mottaker: Some(Mottaker {
                    personidentifikator: None,
                    postkasseadresse: o.postkasseadresse.clone(),
                }),
                avsender: MAvsender {
                    organisasjon: kommune.to_string(),
                    avsenderidentifikator: None,
                    faktura_referanse: None,
                },
                lenke: None,
            },
            documents: vec![
                Document {
                    href: "vedtak.pdf".into(),
                    mime: "application/pdf".into(),
                    title: Some(format!("{} (sensitiv)", o.title)),
                    lang: Some("no".into()),
                    role: DocumentRole::Hoveddokument,
                    bytes: PDF.to_vec(),
                    data,
                },
                Document {
                    href: "vedlegg.txt".into(),
                    mime: "text/plain".into(),
                    title: Some("Vedlegg".into()),
                    lang: Some("no".into()),
                    role: DocumentRole::Vedlegg,
                    bytes: b"Informasjon om barnehagen.\n".to_vec(),
                    data: None,
                },
            ],
        },
        signing_time: now,
    }
}

impl Chain {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    pub fn tenant_cert(&self, orgnr: &Organisasjonsnummer) -> X509 {
        self.postkasse
            .tenants()
            .iter()
            .find(|t| &t.orgnr == orgnr)
            .unwrap()
            .cert
            .clone()
    }

    /// The postkasseadresse the KRR stand-in's default fixture gives a person.
    pub fn address_of(&self, pid: &str) -> String {
        krr::fixtures::default_fixtures(&self.pki)
            .unwrap()
            .persons
            .into_iter()
            .find(|p| p.pid == pid)
            .and_then(|p| p.postkasseadresse)
            .unwrap()
    }

    pub fn kari_address(&self) -> String {
        self.address_of(&self.pids.digipost)
    }

    pub fn sigrid_address(&self) -> String {
        self.address_of(&self.pids.stale)
    }

    pub fn ola_address(&self) -> String {
        self.address_of(&self.pids.eboks)
    }

    /// Posts a letter straight to a tenant's intake with `token`; returns the response.
    pub async fn post_inbound(
        &self,
        slug: &str,
        token: Option<&str>,
        letter: &SealedLetter,
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .part(
                "forretningsmelding",
                reqwest::multipart::Part::text(letter.jwt.clone())
                    .mime_str("application/jwt")
                    .unwrap(),
            )
            .part(
                "dokumentpakke",
                reqwest::multipart::Part::bytes(letter.cms.clone())
                    .mime_str("application/cms")
                    .unwrap(),
            );
        let mut r = self
            .http
            .post(self.url(&format!("/postkasse/{slug}/dpi/inbound")))
            .multipart(form);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn formidler_token(&self) -> String {
        self.formidler_tokens
            .token_for(postkasse::SCOPE_FORMIDLING, None)
            .await
            .unwrap()
            .access_token
    }

    pub async fn send_token(&self) -> String {
        self.kommune
            .token_for("digitalpostinnbygger:send", None)
            .await
            .unwrap()
            .access_token
    }

    /// Seals `spec` for the tenant's certificate with the kommune's certificate and token.
    pub async fn seal(&self, spec: &LetterSpec, recipient: &X509) -> (SealedLetter, Sbd) {
        let token = self.send_token().await;
        seal_letter(
            spec,
            &[self.kommune_cert.cert().clone()],
            self.kommune_cert.key(),
            recipient,
            &token,
        )
        .unwrap()
    }

    /// `POST /formidler/messages/out`; returns the HTTP status.
    pub async fn post_out(&self, letter: &SealedLetter) -> u16 {
        let token = self.send_token().await;
        let form = reqwest::multipart::Form::new()
            .part(
                "forretningsmelding",
                reqwest::multipart::Part::text(letter.jwt.clone())
                    .file_name("sbd.jwt")
                    .mime_str("application/jwt")
                    .unwrap(),
            )
            .part(
                "dokumentpakke",
                reqwest::multipart::Part::bytes(letter.cms.clone())
                    .file_name("asic.cms")
                    .mime_str("application/cms")
                    .unwrap(),
            );
        let r = self
            .http
            .post(self.url("/formidler/messages/out"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status != 201 {
            eprintln!(
                "messages/out answered {status}: {}",
                r.text().await.unwrap()
            );
        }
        status
    }

    /// Seals and sends a letter through the access point; returns the SBD as sent.
    pub async fn send(&self, o: &LetterOpts) -> Sbd {
        let (sealed, sbd) = self.seal(&spec(o), &self.tenant_cert(&o.tenant)).await;
        assert_eq!(self.post_out(&sealed).await, 201);
        sbd
    }

    /// Polls the sender's `GET /messages/in` until a receipt of `conversation` arrives;
    /// verifies it (signature, schema, trust) and marks it read.
    pub async fn wait_receipt(&self, letter: &Sbd) -> Sbd {
        let conversation = letter.conversation_id().unwrap();
        for _ in 0..300 {
            let token = self.send_token().await;
            let r = self
                .http
                .get(self.url("/formidler/messages/in"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                let items: Vec<serde_json::Value> = r.json().await.unwrap();
                for item in items {
                    let jws = item["forretningsmelding"].as_str().unwrap();
                    let opened =
                        dpi::receipt::open_receipt(jws, &self.anchors, OffsetDateTime::now_utc());
                    assert!(opened.valid, "receipt verifies: {:?}", opened.errors);
                    let sbd = opened.sbd.unwrap();
                    if sbd.conversation_id() == Some(conversation) {
                        let id = sbd.message_id();
                        let read = self
                            .http
                            .post(self.url(&format!("/formidler/messages/in/{id}/read")))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(read.status(), 200);
                        return sbd;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no receipt for conversation {conversation} within 30 s");
    }

    /// The resource indicator of a tenant's end-user API: the `aud` its tokens need (the
    /// default `api_audience`).
    pub fn api_resource(&self, slug: &str) -> String {
        self.url(&format!("/postkasse/{slug}/api/v1"))
    }

    /// An ID-porten access token for `pid` at `acr` for Digipost's end-user API, through the
    /// real login flow.
    pub async fn citizen_token(&self, pid: &str, acr: &str) -> String {
        let api = self.api_resource("digipost");
        self.citizen_tokens(pid, acr, &[api.as_str()]).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The token response (access and ID token) of a login by `pid` at `acr` whose client
    /// asks for access to `resources` (RFC 8707; none: an access token for no API).
    pub async fn citizen_tokens(
        &self,
        pid: &str,
        acr: &str,
        resources: &[&str],
    ) -> serde_json::Value {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let verifier = "v".repeat(43) + &hex_rand();
        let challenge = {
            use base64::Engine;
            use sha2::Digest;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()))
        };
        let redirect = self.url("/cb");
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", IDP_CLIENT),
            ("redirect_uri", redirect.as_str()),
            ("scope", "openid profile"),
            ("state", "st"),
            ("nonce", "no"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("acr_values", acr),
        ];
        query.extend(resources.iter().map(|r| ("resource", *r)));
        let r = browser
            .get(self.url("/idporten/authorize"))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login form");
        let page = r.text().await.unwrap();
        let attr = |marker: &str| {
            let i = page.find(marker).unwrap() + marker.len();
            let end = page[i..].find('"').unwrap() + i;
            page[i..end].replace("&amp;", "&")
        };
        let (action, rid) = (
            attr("method=\"post\" action=\""),
            attr("name=\"rid\" value=\""),
        );
        let r = browser
            .post(action)
            .form(&[
                ("rid", rid.as_str()),
                ("pid", pid),
                ("acr", acr),
                ("action", "login"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "login accepted");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        let q: HashMap<String, String> = url::Url::parse(&loc)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        let r = reqwest::Client::new()
            .post(self.url("/idporten/token"))
            .basic_auth(IDP_CLIENT, Some(IDP_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", q["code"].as_str()),
                ("redirect_uri", redirect.as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token exchange");
        r.json().await.unwrap()
    }

    /// `GET` on the postkasse API of `slug` as the holder of `token`.
    pub async fn api_get(&self, slug: &str, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/postkasse/{slug}/api/v1{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_post(
        &self,
        slug: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .post(self.url(&format!("/postkasse/{slug}/api/v1{path}")))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }
}

fn hex_rand() -> String {
    let mut b = [0u8; 8];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn tenant_actor(orgnr: Organisasjonsnummer) -> ActorId {
    orgnr.actor_id()
}

/// Rewrites one entry of a signed ASiC-E zip (keeping its signature), as an attacker on the
/// way would: the XAdES digest no longer matches.
pub fn tamper_zip(zip_bytes: &[u8], entry: &str, new: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut reader = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..reader.len() {
        let mut f = reader.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file(name.as_str(), opts).unwrap();
        if name == entry {
            w.write_all(new).unwrap();
        } else {
            w.write_all(&data).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

/// Seals a letter whose document was altered after the sender signed the dokumentpakke;
/// the business message itself is validly signed over the altered CMS, so the access point
/// takes it and only corner 4 can tell.
pub async fn seal_tampered(chain: &Chain, o: &LetterOpts) -> (SealedLetter, Sbd) {
    let spec = spec(o);
    let kommune = &chain.kommune_cert;
    let zip = container::write_asice(
        &spec.package,
        &[kommune.cert().clone()],
        kommune.key(),
        spec.signing_time,
    )
    .unwrap();
    let zip = tamper_zip(&zip, "vedtak.pdf", b"%PDF-1.4 forfalsket innhold %%EOF");
    let cms = container::cms::encrypt(&zip, &chain.tenant_cert(&o.tenant)).unwrap();
    let token = chain.send_token().await;
    let mut sbd = spec.sbd.clone();
    if let Body::Digital(d) = &mut sbd.body {
        d.dokumentpakkefingeravtrykk = Dokumentpakkefingeravtrykk::of(&cms);
        d.maskinportentoken = token;
    }
    let jwt = dpi::jws::sign(&sbd.to_json(), &[kommune.cert()], kommune.key()).unwrap();
    (SealedLetter { jwt, cms }, sbd)
}
