//! The citizen's own documents: files the citizen uploads to keep next to their letters.
//! The type is decided from the bytes (PDF, PNG, JPEG, UTF-8 text), never from the name or
//! the browser's claim; size and count are limited. Files live in a folder per citizen
//! (named by a hash of tenant and fødselsnummer), one data file and one metadata file each.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is larger than {0} bytes")]
    TooLarge(usize),
    #[error("only PDF, PNG, JPEG and plain text can be uploaded")]
    BadType,
    #[error("the citizen has reached the limit of {0} documents")]
    Quota(usize),
    #[error("no such document")]
    NotFound,
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

impl UploadError {
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::Empty => "upload_empty",
            UploadError::TooLarge(_) => "upload_too_large",
            UploadError::BadType => "upload_bad_type",
            UploadError::Quota(_) => "upload_quota",
            UploadError::NotFound => "not_found",
            UploadError::Io(_) => "storage",
        }
    }
}

/// An uploaded document's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub uploaded_at: OffsetDateTime,
}

/// The MIME type of `bytes` when it is one we accept.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if std::str::from_utf8(bytes).is_ok()
        && !bytes
            .iter()
            .any(|b| *b == 0 || (*b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t')))
    {
        Some("text/plain")
    } else {
        None
    }
}

/// A display name from what the browser sent: no path, no control characters, ≤ 120 chars.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let n: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    let n = n.trim().to_owned();
    if n.is_empty() { "dokument".into() } else { n }
}

#[derive(Debug, Clone)]
pub struct Uploads {
    dir: PathBuf,
    max_bytes: usize,
    max_count: usize,
}

fn valid_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

impl Uploads {
    pub fn new(dir: PathBuf, max_bytes: usize, max_count: usize) -> Self {
        Self {
            dir,
            max_bytes,
            max_count,
        }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The citizen's folder; `owner` is "tenant:fnr".
    fn folder(&self, owner: &str) -> PathBuf {
        self.dir.join(hex::encode(Sha256::digest(owner.as_bytes())))
    }

    pub async fn list(&self, owner: &str) -> Result<Vec<Upload>, UploadError> {
        let dir = self.folder(owner);
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        while let Some(e) = rd.next_entry().await? {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                let text = tokio::fs::read(&p).await?;
                if let Ok(u) = serde_json::from_slice::<Upload>(&text) {
                    out.push(u);
                }
            }
        }
        out.sort_by_key(|u| std::cmp::Reverse(u.uploaded_at));
        Ok(out)
    }

    pub async fn add(&self, owner: &str, name: &str, bytes: &[u8]) -> Result<Upload, UploadError> {
        if bytes.is_empty() {
            return Err(UploadError::Empty);
        }
        if bytes.len() > self.max_bytes {
            return Err(UploadError::TooLarge(self.max_bytes));
        }
        let mime = sniff(bytes).ok_or(UploadError::BadType)?;
        let listed = self.list(owner).await?.len();
        if listed >= self.max_count {
            return Err(UploadError::Quota(self.max_count));
        }
        let dir = self.folder(owner);
        tokio::fs::create_dir_all(&dir).await?;
        // Uploads at the same time (several tabs, a script) each saw the same count: each
        // must also win one of the free places, an exclusively created slot file, so that
        // together they stay within the limit (also across processes sharing the folder).
        let mut slot = None;
        for i in listed..self.max_count {
            let path = dir.join(format!("slot-{i}"));
            match tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .await
            {
                Ok(_) => {
                    slot = Some(path);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let Some(slot) = slot else {
            return Err(UploadError::Quota(self.max_count));
        };
        let stored = Self::write(&dir, name, mime, bytes).await;
        if stored.is_err() {
            // The place is free again; a leftover slot file would only lower the limit.
            let _ = tokio::fs::remove_file(&slot).await;
        }
        stored
    }

    async fn write(
        dir: &std::path::Path,
        name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<Upload, UploadError> {
        let u = Upload {
            id: uuid::Uuid::new_v4().to_string(),
            name: clean_name(name),
            mime: mime.into(),
            size: bytes.len() as u64,
            uploaded_at: OffsetDateTime::now_utc(),
        };
        tokio::fs::write(dir.join(format!("{}.bin", u.id)), bytes).await?;
        let meta = serde_json::to_vec(&u).map_err(std::io::Error::other)?;
        // The metadata file last: a listed document always has its bytes.
        tokio::fs::write(dir.join(format!("{}.json", u.id)), meta).await?;
        Ok(u)
    }

    pub async fn get(&self, owner: &str, id: &str) -> Result<(Upload, Vec<u8>), UploadError> {
        if !valid_id(id) {
            return Err(UploadError::NotFound);
        }
        let dir = self.folder(owner);
        let meta = match tokio::fs::read(dir.join(format!("{id}.json"))).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UploadError::NotFound);
            }
            Err(e) => return Err(e.into()),
        };
        let u: Upload = serde_json::from_slice(&meta).map_err(|_| UploadError::NotFound)?;
        let bytes = tokio::fs::read(dir.join(format!("{id}.bin"))).await?;
        Ok((u, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"%PDF-1.7 ..."), Some("application/pdf"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff("Hei på deg\n".as_bytes()), Some("text/plain"));
        assert_eq!(sniff(b"MZ\x90\x00\x03"), None, "executables are refused");
        assert_eq!(sniff(b"PK\x03\x04"), None);
    }

    #[test]
    fn names_lose_paths_and_controls() {
        assert_eq!(clean_name("C:\\Users\\x\\skatt.pdf"), "skatt.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\u{0}b\nc"), "abc");
        assert_eq!(clean_name("  "), "dokument");
    }

    #[tokio::test]
    async fn uploads_at_the_same_time_stay_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let u = Uploads::new(dir.path().to_path_buf(), 10, 3);
        u.add("a", "first.txt", b"1").await.unwrap();
        // Six at once, each of which sees one stored document: only two more fit.
        let tries = (0..6).map(|i| {
            let u = u.clone();
            tokio::spawn(async move { u.add("a", &format!("{i}.txt"), b"x").await })
        });
        let mut stored = 0;
        let mut refused = 0;
        for t in tries {
            match t.await.unwrap() {
                Ok(_) => stored += 1,
                Err(UploadError::Quota(3)) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!((stored, refused), (2, 4));
        assert_eq!(u.list("a").await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn limits_and_isolation() {
        let dir = tempfile::tempdir().unwrap();
        let u = Uploads::new(dir.path().to_path_buf(), 10, 2);
        assert!(matches!(
            u.add("a", "x", b"").await,
            Err(UploadError::Empty)
        ));
        assert!(matches!(
            u.add("a", "x", b"%PDF-too-large").await,
            Err(UploadError::TooLarge(10))
        ));
        assert!(matches!(
            u.add("a", "x", b"MZ\x90\x00").await,
            Err(UploadError::BadType)
        ));
        let one = u.add("a", "en.txt", b"hei").await.unwrap();
        u.add("a", "to.txt", b"hallo").await.unwrap();
        assert!(matches!(
            u.add("a", "tre.txt", b"x").await,
            Err(UploadError::Quota(2))
        ));
        assert_eq!(u.get("a", &one.id).await.unwrap().1, b"hei");
        // Another citizen cannot read it by id.
        assert!(matches!(
            u.get("b", &one.id).await,
            Err(UploadError::NotFound)
        ));
        assert!(matches!(
            u.get("a", "../x").await,
            Err(UploadError::NotFound)
        ));
        assert!(u.list("b").await.unwrap().is_empty());
    }
}
