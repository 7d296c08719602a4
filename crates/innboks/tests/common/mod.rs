//! Test harness: Maskinporten, ID-porten, a real access point (formidler), the mailbox provider
//! and the citizen web app on one loopback listener (`/maskinporten`, `/idporten`,
//! `/formidler`, `/postkasse` = provider + app). Letters arrive the real way: sealed by the
//! demo kommune, sent through the access point, validated and stored by the provider.
#![allow(dead_code)]

use std::{collections::HashMap, time::Duration};

use clients::{
    jwks::JwksCache,
    maskinporten::{GrantKey, MaskinportenClient, MaskinportenConfig},
    verify::{JwtVerifier, MaskinportenVerifier},
};
use domain::{ConversationId, MessageId, Organisasjonsnummer};
use dpi::{
    container::{
        Avsender as MAvsender, Document, DocumentData, DocumentRole, Dokumentpakke, Extension,
        Manifest, Mottaker,
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

pub const CLIENT: &str = "samspill-postkasse";
pub const SECRET: &str = "samspill-postkasse-secret-change-me";

pub struct Chain {
    pub dir: tempfile::TempDir,
    pub origin: String,
    pub pki: pki::TestPki,
    pub anchors: TrustAnchors,
    pub postkasse: postkasse::AppState,
    pub innboks: innboks::AppState,
    pub innboks_cfg: innboks::Config,
    pub postkasse_db: TestDb,
    /// The mailbox's documents.
    pub postkasse_blobs: store::BlobStore,
    pub formidler_db: TestDb,
    pub kommune: MaskinportenClient,
    pub kommune_cert: pki::Issued,
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

fn idporten_fixtures(origin: &str, pids: &krr::DefaultPids) -> idporten::Fixtures {
    idporten::Fixtures {
        clients: vec![idporten::ClientRegistration {
            client_id: CLIENT.into(),
            name: Some("Digital postkasse".into()),
            client_secret: Some(SECRET.into()),
            jwks: None,
            token_endpoint_auth_method: None,
            redirect_uris: vec![format!("{origin}/postkasse/auth/callback")],
            post_logout_redirect_uris: vec![format!("{origin}/postkasse/")],
            frontchannel_logout_uri: Some(format!("{origin}/postkasse/auth/frontchannel-logout")),
            scopes: vec!["openid".into(), "profile".into()],
            refresh_tokens: false,
            sector: None,
        }],
        persons: vec![
            idporten::TestPerson {
                pid: pids.digipost.clone(),
                name: "Kari Nordmann".into(),
            },
            idporten::TestPerson {
                pid: pids.classic.clone(),
                name: "Nils Klassisk".into(),
            },
            idporten::TestPerson {
                pid: pids.eboks.clone(),
                name: "Ola Nordmann".into(),
            },
            idporten::TestPerson {
                pid: pids.no_mailbox.clone(),
                name: "Per Unge".into(),
            },
        ],
    }
}

/// The repository's `assets/node_modules` (installed by `scripts/setup-assets`).
pub fn assets_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/node_modules")
}

pub async fn start() -> Chain {
    start_with("127.0.0.1:0", |_| {}).await
}

/// Starts every part on `addr`; `tweak` adjusts the app's configuration.
/// The mailbox app on the provider's service layer, with the session store `cfg` names, as
/// the binary builds it (the database by default).
fn innboks_app(
    cfg: &innboks::Config,
    env: &web::RoleEnv,
    postkasse: &postkasse::AppState,
    db: &TestDb,
) -> innboks::AppState {
    innboks::AppState::new(
        cfg.clone(),
        env,
        innboks::Deps {
            postkasse: postkasse.clone(),
            sessions: innboks::session_store(cfg, env, db.db().clone()).unwrap(),
            sms: None,
        },
    )
    .unwrap()
}

pub async fn start_with(addr: &str, tweak: impl FnOnce(&mut innboks::Config)) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://{addr}");
    let pki = pki::TestPki::load_or_init(dir.path().join("pki")).unwrap();
    let anchors = TrustAnchors::new(vec![pki.ca_cert().clone()]);
    let pids = krr::default_pids();
    let http = reqwest::Client::new();

    let mp_env = role_env(dir.path(), &origin, "maskinporten");
    let mp = maskinporten::router(&maskinporten::Config::default(), &mp_env)
        .await
        .unwrap();
    let mp_issuer = format!("{origin}/maskinporten/");

    let idp_env = role_env(dir.path(), &origin, "idporten");
    std::fs::write(
        idp_env.data_dir.join("fx.toml"),
        toml::to_string(&idporten_fixtures(&origin, &pids)).unwrap(),
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

    let postkasse_db = store::testing::fresh_db().await;
    let p_env = role_env(dir.path(), &origin, "postkasse");
    let p_cfg = postkasse::Config {
        max_retry_delay_secs: 1,
        // The app must show hostile HTML harmlessly however it got stored (a provider that
        // accepts it, letters from before the intake's check), so these tests store it; the
        // intake's refusal is tested in postkasse's intake_rules.
        refuse_invalid_html: false,
        ..Default::default()
    };
    let postkasse_blobs = store::BlobStore::memory();
    let p_state = postkasse::build(
        &p_cfg,
        &p_env,
        postkasse_db.db().clone(),
        postkasse_blobs.clone(),
    )
    .await
    .unwrap();

    let mut i_cfg = innboks::Config {
        assets_dir: assets_dir(),
        ..Default::default()
    };
    tweak(&mut i_cfg);
    let i_state = innboks_app(&i_cfg, &p_env, &p_state, &postkasse_db);

    // The binary's application shell (request ids, metrics, timeouts, `/healthz`) around
    // the roles, as `samspill serve` mounts them.
    let app = web::app(
        vec![
            ("maskinporten".into(), mp),
            ("idporten".into(), idp),
            ("formidler".into(), formidler::router(f_state.clone())),
            (
                "postkasse".into(),
                postkasse::router(p_state.clone()).merge(innboks::router(i_state.clone())),
            ),
        ],
        web::AppOptions {
            default_body_limit: 40 * 1024 * 1024,
            ..Default::default()
        },
    )
    .route(
        "/lenke-maal",
        axum::routing::get(|| async {
            axum::response::Html(
                "<!DOCTYPE html><html lang=\"nb\"><head><title>Tjenesten</title></head>\
                     <body><main><h1>Avsenderens tjeneste</h1></main></body></html>",
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let mut handles = formidler::spawn_workers(f_state, rx.clone());
    handles.extend(postkasse::spawn_workers(p_state.clone(), rx));

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
        innboks: i_state,
        innboks_cfg: i_cfg,
        postkasse_db,
        postkasse_blobs,
        formidler_db,
        kommune,
        kommune_cert,
        shutdown,
        handles,
        http,
        pids,
    }
}

/// A document of a test letter.
pub struct Doc {
    pub href: &'static str,
    pub mime: &'static str,
    pub title: String,
    pub bytes: Vec<u8>,
    pub ext: Option<(&'static str, Extension)>,
}

impl Doc {
    pub fn new(href: &'static str, mime: &'static str, title: &str, bytes: &[u8]) -> Doc {
        Doc {
            href,
            mime,
            title: title.into(),
            bytes: bytes.to_vec(),
            ext: None,
        }
    }

    pub fn with(mut self, href: &'static str, ext: Extension) -> Doc {
        self.ext = Some((href, ext));
        self
    }
}

/// A test letter; the first document is the hoveddokument.
pub struct Letter {
    pub tenant: Organisasjonsnummer,
    pub postkasseadresse: String,
    pub title: String,
    pub level: Sikkerhetsnivaa,
    pub aapningskvittering: bool,
    pub virkningstidspunkt: Option<OffsetDateTime>,
    pub varsler: Option<dpi::message::Varsler>,
    pub docs: Vec<Doc>,
}

pub const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

impl Letter {
    pub fn to(chain: &Chain, pid: &str, title: &str) -> Letter {
        let tenant = if *pid == chain.pids.eboks {
            pki::demo::eboks()
        } else {
            pki::demo::digipost()
        };
        Letter {
            tenant,
            postkasseadresse: address_of(pid),
            title: title.into(),
            level: Sikkerhetsnivaa::Nivaa3,
            aapningskvittering: false,
            virkningstidspunkt: None,
            varsler: None,
            docs: vec![Doc::new("brev.pdf", "application/pdf", title, PDF)],
        }
    }

    pub fn docs(mut self, docs: Vec<Doc>) -> Letter {
        self.docs = docs;
        self
    }

    pub fn level4(mut self) -> Letter {
        self.level = Sikkerhetsnivaa::Nivaa4;
        self
    }

    pub fn receipt(mut self) -> Letter {
        self.aapningskvittering = true;
        self
    }

    fn spec(&self) -> LetterSpec {
        let kommune = pki::demo::kommune().actor_id();
        let now = OffsetDateTime::now_utc();
        let header = Header::new(
            MessageType::Digital,
            &kommune,
            &self.tenant.actor_id(),
            MessageId::new(),
            ConversationId::new(),
            Process::Digital,
            Timestamp(now),
            None,
        );
        let body = Body::Digital(Digital {
            avsender: Avsender::new(&kommune),
            mottaker: Personmottaker {
                postkasseadresse: self.postkasseadresse.clone(),
            },
            dokumentpakkefingeravtrykk: Dokumentpakkefingeravtrykk {
                digest_method: dpi::message::SHA256_URI.into(),
                digest_value: String::new(),
            },
            maskinportentoken: String::new(),
            sikkerhetsnivaa: self.level,
            virkningsdato: None,
            virkningstidspunkt: self.virkningstidspunkt.map(Timestamp),
            aapningskvittering: Some(self.aapningskvittering),
            ikkesensitivtittel: self.title.clone(),
            spraak: "no".into(),
            varsler: self.varsler.clone(),
        });
        let documents = self
            .docs
            .iter()
            .enumerate()
            .map(|(i, d)| Document {
                href: d.href.into(),
                mime: d.mime.into(),
                title: Some(d.title.clone()),
                lang: Some("no".into()),
                role: if i == 0 {
                    DocumentRole::Hoveddokument
                } else {
                    DocumentRole::Vedlegg
                },
                bytes: d.bytes.clone(),
                data: d.ext.as_ref().map(|(href, e)| DocumentData {
                    href: (*href).into(),
                    extension: e.clone(),
                }),
            })
            .collect();
        LetterSpec {
            sbd: Sbd { header, body },
            package: Dokumentpakke {
                manifest: Manifest {
                    mottaker: Some(Mottaker {
                        personidentifikator: None,
                        postkasseadresse: self.postkasseadresse.clone(),
                    }),
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
}

impl Chain {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    fn tenant_cert(&self, orgnr: &Organisasjonsnummer) -> X509 {
        self.postkasse
            .tenants()
            .iter()
            .find(|t| &t.orgnr == orgnr)
            .unwrap()
            .cert
            .clone()
    }

    pub async fn send_token(&self) -> String {
        self.kommune
            .token_for("digitalpostinnbygger:send", None)
            .await
            .unwrap()
            .access_token
    }

    async fn post_out(&self, letter: &SealedLetter) -> u16 {
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
    pub async fn send(&self, l: &Letter) -> Sbd {
        let token = self.send_token().await;
        let (sealed, sbd) = seal_letter(
            &l.spec(),
            &[self.kommune_cert.cert().clone()],
            self.kommune_cert.key(),
            &self.tenant_cert(&l.tenant),
            &token,
        )
        .unwrap();
        assert_eq!(self.post_out(&sealed).await, 201);
        sbd
    }

    /// Sends and waits until the provider has stored the letter (its leveringskvittering
    /// reached the sender); returns the SBD.
    pub async fn deliver(&self, l: &Letter) -> Sbd {
        let sbd = self.send(l).await;
        let r = self.wait_receipt(&sbd, "leveringskvittering").await;
        assert!(r, "letter delivered");
        sbd
    }

    /// Polls the sender's inbox at the access point for a receipt of `kind` about `letter`;
    /// verifies each receipt and marks it read.
    pub async fn wait_receipt(&self, letter: &Sbd, kind: &str) -> bool {
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
                        let json = String::from_utf8_lossy(&sbd.to_json()).into_owned();
                        if json.contains(kind) {
                            return true;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }

    /// Another instance of the mailbox app on the same database and configuration (or the
    /// same app after a restart: nothing of the first one's memory), on its own port; returns
    /// its origin. Browsers send it their cookies: cookies do not tell ports apart.
    pub async fn second_innboks(&self) -> String {
        let env = role_env(self.dir.path(), &self.origin, "postkasse");
        let state = innboks_app(&self.innboks_cfg, &env, &self.postkasse, &self.postkasse_db);
        let app = web::app(
            vec![("postkasse".into(), innboks::router(state))],
            web::AppOptions::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        origin
    }

    /// A browser (cookie jar, following redirects) logged in as `pid` at `acr`.
    pub async fn browser(&self, pid: &str, acr: &str) -> Browser {
        let b = Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::limited(10))
                .build()
                .unwrap(),
            origin: self.origin.clone(),
        };
        let page = b.get("/postkasse/innboks").await;
        assert_eq!(page.status, 200, "{} {}", page.url, page.body);
        assert!(
            page.body.contains("name=\"rid\""),
            "the app sends the browser to ID-porten's login form"
        );
        let r = b.login_form(&page.body, pid, acr).await;
        assert_eq!(r.status, 200, "{} {}", r.url, r.body);
        assert!(r.url.ends_with("/postkasse/innboks"), "{}", r.url);
        b
    }
}

pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

pub struct Browser {
    pub client: reqwest::Client,
    pub origin: String,
}

impl Browser {
    pub fn abs(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.origin)
        }
    }

    async fn page(r: reqwest::Response) -> Page {
        Page {
            status: r.status().as_u16(),
            url: r.url().to_string(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let r = self
            .client
            .get(self.abs(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        Self::page(r).await
    }

    pub async fn get_bytes(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let r = self.client.get(self.abs(path)).send().await.unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        (s, h, r.bytes().await.unwrap().to_vec())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .client
            .post(self.abs(path))
            .header("accept", "text/html")
            .form(form)
            .send()
            .await
            .unwrap();
        Self::page(r).await
    }

    /// Fills in ID-porten's login form on `page`.
    pub async fn login_form(&self, page: &str, pid: &str, acr: &str) -> Page {
        let action = attr(page, "method=\"post\" action=\"").unwrap();
        let rid = attr(page, "name=\"rid\" value=\"").unwrap();
        self.post(
            &action,
            &[
                ("rid", &rid),
                ("pid", pid),
                ("acr", acr),
                ("action", "login"),
            ],
        )
        .await
    }
}

/// Undoes the HTML escaping of attribute values and text (askama writes numeric entities).
pub fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The attribute value following `marker` in `page`, unescaped.
pub fn attr(page: &str, marker: &str) -> Option<String> {
    let i = page.find(marker)? + marker.len();
    let end = page[i..].find('"')? + i;
    Some(unescape(&page[i..end]))
}

/// The `href` of the first link whose opening tag contains `marker`.
pub fn href_with(page: &str, marker: &str) -> Option<String> {
    let i = page.find(marker)?;
    let tag_start = page[..i].rfind('<')?;
    let tag_end = page[i..].find('>')? + i;
    attr(&page[tag_start..tag_end], "href=\"")
}

/// Every value of `name="csrf"` hidden fields (the first).
pub fn csrf(page: &str) -> String {
    attr(page, "name=\"csrf\" value=\"").expect("form token on the page")
}

/// The letter ids linked from an inbox page, in order.
pub fn letter_ids(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(i) = rest.find("/innboks/brev/") {
        let tail = &rest[i + "/innboks/brev/".len()..];
        let id: String = tail
            .chars()
            .take_while(|c| *c != '"' && *c != '/' && *c != '?')
            .collect();
        if !out.contains(&id) && id.len() == 36 {
            out.push(id);
        }
        rest = tail;
    }
    out
}

/// The postkasseadresse the KRR stand-in's default fixture gives a person.
pub fn address_of(pid: &str) -> String {
    let fx = krr::fixtures::default_fixtures(
        &pki::TestPki::load_or_init(std::env::temp_dir().join("samspill-innboks-test-pki"))
            .unwrap(),
    )
    .unwrap();
    fx.persons
        .into_iter()
        .find(|p| p.pid == pid)
        .and_then(|p| p.postkasseadresse)
        .unwrap()
}

pub fn query_map(u: &str) -> HashMap<String, String> {
    url::Url::parse(u)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn t(s: &str) -> dpi::container::Tekst {
    dpi::container::Tekst::new(s, "no")
}

/// A letter with all three smart views: a lenke whose deadline has passed, an arrangement
/// with a Code 39 barcode, and a bevis valid only until 2020.
pub fn smart_letter(chain: &Chain, pid: &str) -> Letter {
    use dpi::container::{
        Arrangement, Bevis, BevisAttributt, Bevisholder, Gyldighetsperiode, Lenke,
        Maanedstidspunkt, Moteplass, Strekkode, StrekkodeType, Tidsrom,
    };
    let lenke = Extension::Lenke(Lenke {
        url: format!("{}/lenke-maal", chain.origin),
        beskrivelse: Some(t("Svar på tilbudet om barnehageplass")),
        knapp_tekst: Some(t("Svar her")),
        frist: Some("2020-12-15T12:00:00+01:00".into()),
    });
    let arrangement = Extension::Arrangement(Arrangement {
        tittel: t("Time hos tannlegen"),
        tidsrom_tittel: None,
        tidsrom: vec![Tidsrom {
            fra: Some("2030-03-03T10:00:00+01:00".into()),
            til: Some("2030-03-03T10:30:00+01:00".into()),
        }],
        oppmote_informasjon: Some(t("Møt opp ti minutter før.")),
        moteplass: Moteplass {
            tittel: t("Oppmøtested"),
            navn: "Tannklinikken".into(),
            gateadresse: Some("Storgata 1".into()),
            postnummer: Some("0155".into()),
            sted: Some("Oslo".into()),
            land: None,
        },
        strekkode: Some(Strekkode {
            tittel: Some(t("Vis ved oppmøte")),
            verdi: "ABC-12345".into(),
            kind: StrekkodeType::Code39,
            tekst: None,
            vis_verdi: Some(true),
        }),
        info: vec![],
        lenker: vec![],
    });
    let bevis = Extension::Bevis(Bevis {
        utsteder_visningsnavn: Some(t("Oslo kommune")),
        bakgrunnsfarge: Some("#003087".into()),
        utstedt_tidspunkt: Some("2026-01-01T00:00:00+01:00".into()),
        gyldighetsperiode: Some(Gyldighetsperiode::AarligRepeterendePeriode {
            start_aar: None,
            slutt_aar: Some(2020),
            fra: Maanedstidspunkt {
                maaned: 1,
                dag: Some(1),
                time: None,
                minutt: None,
                tidssone: None,
            },
            til: Maanedstidspunkt {
                maaned: 12,
                dag: Some(31),
                time: Some(23),
                minutt: None,
                tidssone: None,
            },
        }),
        bevisholder: Bevisholder {
            fornavn: "Kari".into(),
            etternavn: "Nordmann".into(),
            foedselsnummer: None,
            adresse: None,
        },
        tittel: t("Parkeringstillatelse"),
        bevis_id_navn: Some(t("Tillatelse nr.")),
        bevis_id_verdi: Some("P-778".into()),
        attributt: vec![BevisAttributt {
            navn: t("Sone"),
            verdi: t("Sentrum"),
        }],
        info: vec![],
    });
    Letter::to(chain, pid, "Tilbud, time og tillatelse").docs(vec![
        Doc::new(
            "brev.pdf",
            "application/pdf",
            "Tilbud om barnehageplass",
            PDF,
        )
        .with("lenke.xml", lenke),
        Doc::new("time.pdf", "application/pdf", "Timebekreftelse", PDF)
            .with("arrangement.xml", arrangement),
        Doc::new("bevis.pdf", "application/pdf", "Parkeringsbevis", PDF).with("bevis.xml", bevis),
    ])
}
