//! A client of the case-system API, used by `samspill send` and the tests; case systems in
//! Rust may use it too. It also reads the TOML form of a letter (`docs/letter-json.md`).

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use crate::letter::{DocumentRequest, LetterRequest, UtskriftRequest, VarslerRequest};

/// Errors of the API client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The service answered with a problem document.
    #[error("{status} {code}: {detail}")]
    Problem {
        status: u16,
        code: String,
        detail: String,
    },
    #[error("{0}")]
    Letter(String),
}

impl ClientError {
    pub fn code(&self) -> &str {
        match self {
            ClientError::Http(_) => "unreachable",
            ClientError::Problem { code, .. } => code,
            ClientError::Letter(_) => "invalid_letter_file",
        }
    }
}

/// Talks to one avsender role at `base` (e.g. `http://127.0.0.1:8080/avsender`).
#[derive(Debug, Clone)]
pub struct AvsenderClient {
    base: String,
    api_key: String,
    header: String,
    http: reqwest::Client,
}

/// The answer to a submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// `true` for a new letter (201), `false` when the same letter was known (200).
    pub created: bool,
    pub letter: serde_json::Value,
}

impl AvsenderClient {
    pub fn new(base: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            header: crate::DEFAULT_API_KEY_HEADER.into(),
            http: reqwest::Client::new(),
        }
    }

    /// Another API-key header than `x-api-key`.
    pub fn with_header(mut self, header: impl Into<String>) -> Self {
        self.header = header.into();
        self
    }

    async fn answer(res: reqwest::Response) -> Result<(u16, serde_json::Value), ClientError> {
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let s = |k: &str| {
            body.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        Err(ClientError::Problem {
            status,
            code: s("code"),
            detail: s("detail"),
        })
    }

    /// `POST /api/v1/letters` with a JSON letter (documents as base64).
    pub async fn submit(&self, letter: &LetterRequest) -> Result<Submitted, ClientError> {
        let res = self
            .http
            .post(format!("{}/api/v1/letters", self.base))
            .header(self.header.as_str(), &self.api_key)
            .json(letter)
            .send()
            .await?;
        let (status, letter) = Self::answer(res).await?;
        Ok(Submitted {
            created: status == 201,
            letter,
        })
    }

    /// `POST /api/v1/letters` as multipart: the letter JSON in part `letter`, each
    /// document's bytes in the part its `part` names.
    pub async fn submit_multipart(
        &self,
        letter: &LetterRequest,
        files: Vec<(String, String, Vec<u8>)>,
    ) -> Result<Submitted, ClientError> {
        let json = serde_json::to_string(letter).map_err(|e| ClientError::Letter(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new().part(
            "letter",
            reqwest::multipart::Part::text(json)
                .mime_str("application/json")
                .map_err(ClientError::Http)?,
        );
        for (part, filename, bytes) in files {
            form = form.part(
                part,
                reqwest::multipart::Part::bytes(bytes).file_name(filename),
            );
        }
        let res = self
            .http
            .post(format!("{}/api/v1/letters", self.base))
            .header(self.header.as_str(), &self.api_key)
            .multipart(form)
            .send()
            .await?;
        let (status, letter) = Self::answer(res).await?;
        Ok(Submitted {
            created: status == 201,
            letter,
        })
    }

    /// `GET /api/v1/letters/{id}`.
    pub async fn status(&self, id: &str) -> Result<serde_json::Value, ClientError> {
        let res = self
            .http
            .get(format!("{}/api/v1/letters/{id}", self.base))
            .header(self.header.as_str(), &self.api_key)
            .send()
            .await?;
        Ok(Self::answer(res).await?.1)
    }
}

/// The TOML form of a letter: the JSON letter's keys, with `file = "path"` (relative to the
/// TOML file) in place of `content_base64`; `id` may be left out (a new UUID is drawn).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LetterToml {
    id: Option<String>,
    personidentifikator: String,
    ikkesensitivtittel: String,
    sikkerhetsnivaa: Option<u8>,
    spraak: Option<String>,
    avsender: Option<String>,
    avsenderidentifikator: Option<String>,
    fakturareferanse: Option<String>,
    virkningsdato: Option<String>,
    aapningskvittering: Option<bool>,
    varsler: Option<VarslerRequest>,
    #[serde(default)]
    documents: Vec<DocumentToml>,
    utskrift: Option<UtskriftRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentToml {
    file: std::path::PathBuf,
    /// Name in the dokumentpakke; default: the file's name.
    filename: Option<String>,
    mime: String,
    title: Option<String>,
    lang: Option<String>,
    lenke: Option<dpi::container::Lenke>,
    bevis: Option<dpi::container::Bevis>,
    arrangement: Option<dpi::container::Arrangement>,
}

/// Reads a letter TOML file and the documents it names into a JSON letter.
pub fn letter_from_toml(path: &Path) -> Result<LetterRequest, ClientError> {
    let err = |m: String| ClientError::Letter(m);
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let t: LetterToml =
        toml_from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut documents = Vec::with_capacity(t.documents.len());
    for d in t.documents {
        let file = base.join(&d.file);
        let bytes = std::fs::read(&file).map_err(|e| err(format!("{}: {e}", file.display())))?;
        let filename = match d.filename {
            Some(f) => f,
            None => d
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| err(format!("{}: no file name", d.file.display())))?,
        };
        documents.push(DocumentRequest {
            filename,
            mime: d.mime,
            title: d.title,
            lang: d.lang.unwrap_or_else(|| "no".into()),
            content_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            part: None,
            lenke: d.lenke,
            bevis: d.bevis,
            arrangement: d.arrangement,
        });
    }
    Ok(LetterRequest {
        id: t.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        personidentifikator: t.personidentifikator,
        ikkesensitivtittel: t.ikkesensitivtittel,
        sikkerhetsnivaa: t.sikkerhetsnivaa.unwrap_or(4),
        spraak: t.spraak.unwrap_or_else(|| "no".into()),
        avsender: t.avsender,
        avsenderidentifikator: t.avsenderidentifikator,
        fakturareferanse: t.fakturareferanse,
        virkningsdato: t.virkningsdato,
        aapningskvittering: t.aapningskvittering,
        varsler: t.varsler,
        documents,
        utskrift: t.utskrift,
    })
}

fn toml_from_str<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    toml::from_str(s).map_err(|e| e.to_string().replace('\n', " "))
}
