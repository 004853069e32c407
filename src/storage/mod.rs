//! Object storage for file bytes: one [`ObjectStore`] trait, a local directory (the default,
//! under the data dir) and S3 (any S3-compatible service). The same conformance suite
//! (`tests/it/files.rs`, `conformance`) runs on both.
//!
//! Keys are random and never derived from a filename. An upload is spooled to a temp file
//! first (hashed, sniffed and size-checked on the way), then stored, and only then is its
//! metadata row committed: a row never points at a missing object. A process killed in
//! between leaves at worst an object without a row, which [`sweep_orphans`] removes.

pub mod download;
pub mod local;
pub mod s3;
pub mod slots;
pub mod sniff;
pub mod upload;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::Settings;
use crate::store::{Millis, Store};

/// An object's bytes (or the requested part of them), read as they arrive.
pub type ObjectBody = Pin<Box<dyn tokio::io::AsyncRead + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no such object")]
    NotFound,
    #[error("storage i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The object service failed or could not be reached.
    #[error("object service: {0}")]
    Remote(String),
}

/// One stored object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: Millis,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// `local` or `s3`, for logs and `/readyz`.
    fn kind(&self) -> &'static str;
    /// Stores the complete file at `path` under `key`. When this returns `Ok` the object is
    /// durable and whole; on error nothing is visible under `key`. The file at `path` may be
    /// moved away; the caller removes it if it is still there.
    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        content_type: &str,
    ) -> Result<(), StorageError>;
    /// Bytes `start..=end` of the object.
    async fn get(&self, key: &str, start: u64, end: u64) -> Result<ObjectBody, StorageError>;
    /// Removes the object; removing a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Up to `limit` objects with keys after `after` (from the first without it), in key
    /// order: the sweep pages through a bucket of any size in bounded memory.
    async fn list_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Every object, page by page (tests and small stores).
    async fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        let mut all: Vec<ObjectInfo> = Vec::new();
        loop {
            let page = self
                .list_after(all.last().map(|o| o.key.as_str()), SWEEP_BATCH)
                .await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }
}

/// A fresh random object key: 128 bits as hex, unguessable and free of any user input.
pub fn new_key() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS randomness");
    hex::encode(b)
}

/// Keys this server made: 32 lower-case hex digits. Anything else is refused before it can
/// reach a path or a URL.
pub fn valid_key(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Opens the object store the settings name.
pub async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(match &settings.s3_bucket {
        Some(bucket) => Arc::new(s3::S3Store::connect(settings, bucket).await?),
        None => Arc::new(local::LocalStore::open(settings.data_dir.join("objects"))?),
    })
}

/// Objects younger than this are never swept: another request may be between storing the
/// object and committing its row.
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// Objects listed and checked against the store per round: one page, one query.
const SWEEP_BATCH: usize = 500;
/// How often a running server sweeps again (it also sweeps at startup): objects orphaned by
/// a failed delete should not wait for the next restart, and a sweep reads the whole bucket.
pub const SWEEP_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Deletes objects that no file row names (left by a process killed between storing an
/// object and committing its row, or by a failed delete). Returns how many were removed.
pub async fn sweep_orphans(
    store: &dyn Store,
    objects: &dyn ObjectStore,
    now: Millis,
) -> anyhow::Result<usize> {
    let cutoff = now - ORPHAN_GRACE.as_millis() as Millis;
    let mut removed = 0;
    let mut after: Option<String> = None;
    loop {
        let page = objects.list_after(after.as_deref(), SWEEP_BATCH).await?;
        let Some(last) = page.last() else {
            return Ok(removed);
        };
        after = Some(last.key.clone());
        let keys: Vec<String> = page
            .into_iter()
            .filter(|o| o.modified < cutoff)
            .map(|o| o.key)
            .collect();
        let known = store.known_object_keys(&keys).await?;
        for k in keys.iter().filter(|k| !known.contains(*k)) {
            objects.delete(k).await?;
            removed += 1;
        }
    }
}
