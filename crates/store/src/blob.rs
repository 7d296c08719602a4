//! Content-addressed blob store over `object_store` (local folder, S3-compatible, memory).
//!
//! A blob is stored under `sha256/<hex of its SHA-256>`, so a [`BlobRef`] is both its name and
//! its integrity check: `put` of the same bytes is a no-op, and `get` re-hashes what it read
//! and refuses bytes that do not match the reference.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::{BlobBackendKind, BlobConfig};
use crate::error::{StoreError, StoreResult};

/// Names a stored blob by content: lowercase hex SHA-256 and length in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobRef {
    /// Lowercase hex SHA-256 of the content (64 characters).
    pub sha256: String,
    /// Content length in bytes.
    pub size: u64,
}

impl BlobRef {
    /// The reference `bytes` would be stored under.
    pub fn of(bytes: &[u8]) -> BlobRef {
        BlobRef {
            sha256: hex::encode(Sha256::digest(bytes)),
            size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
        }
    }

    /// The reference as a database row keeps it: hash and BIGINT size (a negative size,
    /// which no row written through [`BlobRef::row_size`] holds, reads as 0).
    pub fn from_row(sha256: String, size: i64) -> BlobRef {
        BlobRef {
            sha256,
            size: u64::try_from(size).unwrap_or_default(),
        }
    }

    /// The size for a BIGINT column (saturating; no blob comes near it).
    pub fn row_size(&self) -> i64 {
        i64::try_from(self.size).unwrap_or(i64::MAX)
    }

    /// The storage key, `sha256/<hex>`.
    pub fn key(&self) -> String {
        format!("sha256/{}", self.sha256)
    }

    /// Checks that `sha256` is 64 lowercase hex digits, so it is safe as a path component.
    pub fn validate(&self) -> StoreResult<()> {
        let ok = self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(())
        } else {
            Err(StoreError::BlobRefMalformed(format!(
                "sha256 must be 64 lowercase hex digits, got {:?}",
                self.sha256
            )))
        }
    }

    fn path(&self) -> StoreResult<ObjectPath> {
        self.validate()?;
        Ok(ObjectPath::from(self.key()))
    }
}

/// The blob store handle; cheap to clone.
///
/// Services sharing one store each take their own namespace with [`BlobStore::scoped`]:
/// content addressing deduplicates within a namespace only, so one service deleting its copy
/// never removes bytes another service still refers to.
#[derive(Debug, Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    backend: BlobBackendKind,
    /// For the local backend: the folder that holds this namespace's `sha256/` folder.
    local_root: Option<PathBuf>,
    /// Namespace path below the backend's root (`a/b`), empty for the root.
    namespace: String,
}

impl BlobStore {
    /// Opens the configured backend (creating the local root folder if missing).
    pub fn from_config(config: &BlobConfig) -> StoreResult<BlobStore> {
        config.validate()?;
        match config.backend {
            BlobBackendKind::Memory => Ok(BlobStore::memory()),
            BlobBackendKind::Local => BlobStore::local(&config.path),
            BlobBackendKind::S3 => {
                let s3 = &config.s3;
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret.expose_secret());
                }
                Ok(BlobStore {
                    inner: Arc::new(builder.build()?),
                    backend: BlobBackendKind::S3,
                    local_root: None,
                    namespace: String::new(),
                })
            }
        }
    }

    /// Blobs as files under `root`. A write returns once the file and its folder are on disk
    /// (fsync): callers commit a row naming the blob right after, and a row that outlives a
    /// power cut must never name a file that did not (object_store does not sync by default).
    pub fn local(root: impl Into<PathBuf>) -> StoreResult<BlobStore> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        let root = std::fs::canonicalize(&root)?;
        Ok(BlobStore {
            inner: Arc::new(LocalFileSystem::new_with_prefix(&root)?.with_fsync(true)),
            backend: BlobBackendKind::Local,
            local_root: Some(root),
            namespace: String::new(),
        })
    }

    /// Blobs in process memory.
    pub fn memory() -> BlobStore {
        BlobStore {
            inner: Arc::new(InMemory::new()),
            backend: BlobBackendKind::Memory,
            local_root: None,
            namespace: String::new(),
        }
    }

    /// A view of this store under the namespace `name` (lowercase letters, digits, `-`, `_`):
    /// its blobs live under `<name>/sha256/<hex>` and are invisible to other namespaces.
    /// Scoping a scoped store nests (`a/b`).
    pub fn scoped(&self, name: &str) -> StoreResult<BlobStore> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(StoreError::config(
                "blobs.namespace",
                format!("`{name}` must be 1-64 of [a-z0-9_-]"),
            ));
        }
        Ok(BlobStore {
            inner: Arc::new(PrefixStore::new(Arc::clone(&self.inner), name)),
            backend: self.backend,
            local_root: self.local_root.as_ref().map(|root| root.join(name)),
            namespace: if self.namespace.is_empty() {
                name.to_owned()
            } else {
                format!("{}/{name}", self.namespace)
            },
        })
    }

    /// The namespace path of this view (`""` for the unscoped store).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Which backend this is.
    pub fn backend(&self) -> BlobBackendKind {
        self.backend
    }

    /// For the local backend: the file that holds `blob` (tests, operators).
    pub fn local_path(&self, blob: &BlobRef) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        blob.validate().ok()?;
        Some(root.join("sha256").join(&blob.sha256))
    }

    /// The underlying object store of this namespace (listing, tooling, tests that tamper
    /// with content); paths are relative to the namespace.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Stores `bytes` and returns their reference. Storing content that is already there
    /// (same hash and size) writes nothing.
    pub async fn put(&self, bytes: impl Into<Bytes>) -> StoreResult<BlobRef> {
        let bytes: Bytes = bytes.into();
        let blob = BlobRef::of(&bytes);
        let path = blob.path()?;
        match self.inner.head(&path).await {
            Ok(meta) if meta.size == blob.size => return Ok(blob),
            // A different size under a content address means damage: overwrite with good bytes.
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.inner.put(&path, PutPayload::from(bytes)).await?;
        Ok(blob)
    }

    /// Reads a blob and checks that it still hashes to its reference.
    pub async fn get(&self, blob: &BlobRef) -> StoreResult<Bytes> {
        let path = blob.path()?;
        let bytes = match self.inner.get(&path).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::BlobNotFound(blob.key()));
            }
            Err(e) => return Err(e.into()),
        };
        let actual = BlobRef::of(&bytes);
        if actual != *blob {
            tracing::error!(key = %blob.key(), actual = %actual.sha256, "blob content does not match its address");
            return Err(StoreError::BlobCorrupt {
                key: blob.key(),
                actual: actual.sha256,
                actual_size: actual.size,
            });
        }
        Ok(bytes)
    }

    /// Whether a blob with this reference is stored (by key and size; content is checked by `get`).
    pub async fn exists(&self, blob: &BlobRef) -> StoreResult<bool> {
        match self.inner.head(&blob.path()?).await {
            Ok(meta) => Ok(meta.size == blob.size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The blobs last written before `before` (oldest content first is not promised), for a
    /// collector looking for blobs nothing refers to. Keys that are not content addresses
    /// (such as a write in progress) are skipped.
    pub async fn list_written_before(&self, before: OffsetDateTime) -> StoreResult<Vec<BlobRef>> {
        let cutoff = crate::to_ms(before);
        let mut listing = self.inner.list(Some(&ObjectPath::from("sha256")));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified.timestamp_millis() >= cutoff {
                continue;
            }
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let blob = BlobRef {
                sha256: name.to_owned(),
                size: meta.size,
            };
            if blob.validate().is_ok() {
                found.push(blob);
            }
        }
        Ok(found)
    }

    /// Removes a blob; removing a missing blob is not an error.
    pub async fn delete(&self, blob: &BlobRef) -> StoreResult<()> {
        match self.inner.delete(&blob.path()?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Readiness check: one metadata request that must answer "found" or "not found".
    pub async fn ping(&self) -> StoreResult<()> {
        match self
            .inner
            .head(&ObjectPath::from("sha256/readiness-probe"))
            .await
        {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ref_of_known_content() {
        let r = BlobRef::of(b"abc");
        assert_eq!(
            r.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(r.size, 3);
        assert_eq!(r.key(), format!("sha256/{}", r.sha256));
    }

    #[test]
    fn malformed_refs_are_refused_before_touching_storage() {
        for bad in ["../../etc/passwd", "ABC", &"A".repeat(64), &"0".repeat(63)] {
            let r = BlobRef {
                sha256: bad.to_owned(),
                size: 1,
            };
            assert_eq!(r.validate().unwrap_err().code(), "blob_ref_malformed");
        }
    }
}

#[cfg(test)]
mod scoped_tests {
    use super::*;

    #[tokio::test]
    async fn namespaces_do_not_share_deletes() {
        let dir = tempfile::tempdir().unwrap();
        for root in [BlobStore::memory(), BlobStore::local(dir.path()).unwrap()] {
            let a = root.scoped("formidler").unwrap();
            let b = root.scoped("postkasse").unwrap();
            let blob = a.put(Bytes::from_static(b"the same letter")).await.unwrap();
            assert_eq!(
                b.put(Bytes::from_static(b"the same letter")).await.unwrap(),
                blob
            );
            a.delete(&blob).await.unwrap();
            assert!(!a.exists(&blob).await.unwrap());
            assert!(b.exists(&blob).await.unwrap(), "{:?}", root.backend());
            assert_eq!(&b.get(&blob).await.unwrap()[..], b"the same letter");
        }
        assert!(dir.path().join("postkasse/sha256").is_dir());
        assert!(BlobStore::memory().scoped("../x").is_err());
        assert!(BlobStore::memory().scoped("").is_err());
    }

    /// The listing names each stored blob of the namespace with its size, only those written
    /// before the cut-off, and skips what is not a content address.
    #[tokio::test]
    async fn blobs_written_before_a_time_are_listed_by_namespace() {
        let dir = tempfile::tempdir().unwrap();
        for root in [BlobStore::memory(), BlobStore::local(dir.path()).unwrap()] {
            let a = root.scoped("avsender").unwrap();
            let b = root.scoped("postkasse").unwrap();
            let mut stored = vec![
                a.put(Bytes::from_static(b"one")).await.unwrap(),
                a.put(Bytes::from_static(b"two two")).await.unwrap(),
            ];
            b.put(Bytes::from_static(b"another namespace"))
                .await
                .unwrap();
            a.object_store()
                .put(
                    &ObjectPath::from("sha256/not-a-hash"),
                    PutPayload::from_static(b"x"),
                )
                .await
                .unwrap();
            let later = OffsetDateTime::now_utc() + time::Duration::seconds(5);
            let mut listed = a.list_written_before(later).await.unwrap();
            listed.sort();
            stored.sort();
            assert_eq!(listed, stored, "{:?}", root.backend());
            let earlier = OffsetDateTime::now_utc() - time::Duration::hours(1);
            assert!(a.list_written_before(earlier).await.unwrap().is_empty());
        }
    }
}
