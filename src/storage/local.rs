//! Objects as files under one directory: `<root>/<first two hex digits>/<key>`, so no
//! directory grows past a few thousand entries.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{ObjectBody, ObjectInfo, ObjectStore, StorageError, valid_key};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(LocalStore { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        if !valid_key(key) {
            return Err(StorageError::NotFound);
        }
        Ok(self.root.join(&key[..2]).join(key))
    }
}

/// Makes a rename or a new file durable: its directory entry must reach the disk too.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(std::io::Error::other)?
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        _len: u64,
        _content_type: &str,
    ) -> Result<(), StorageError> {
        let dest = self.path(key)?;
        let dir = dest.parent().expect("sharded path").to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        // The spool file is already synced; a rename on the same file system is atomic, so
        // the object appears whole or not at all. Across file systems, copy then sync.
        if tokio::fs::rename(path, &dest).await.is_err() {
            let tmp = dir.join(format!(".{key}.part"));
            tokio::fs::copy(path, &tmp).await?;
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            tokio::fs::rename(&tmp, &dest).await?;
        }
        sync_dir(&dir).await?;
        Ok(())
    }

    async fn get(&self, key: &str, start: u64, end: u64) -> Result<ObjectBody, StorageError> {
        let mut f = match tokio::fs::File::open(self.path(key)?).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound);
            }
            Err(e) => return Err(e.into()),
        };
        f.seek(SeekFrom::Start(start)).await?;
        Ok(Box::pin(f.take(end + 1 - start)))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = self.root.clone();
        let after = after.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            // Shards are the keys' first two hex digits, so walking them in order walks the
            // keys in order; only one shard's names are held at a time.
            let mut shards: Vec<String> = std::fs::read_dir(&root)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.len() == 2)
                .collect();
            shards.sort();
            let mut out = Vec::new();
            for shard in shards {
                if after.as_deref().is_some_and(|a| shard.as_str() < &a[..2]) {
                    continue;
                }
                let mut keys: Vec<String> = std::fs::read_dir(root.join(&shard))?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // A `.part` copy in flight, or a stranger's file, is not an object.
                    .filter(|k| valid_key(k) && k.starts_with(&shard))
                    .filter(|k| after.as_deref().is_none_or(|a| k.as_str() > a))
                    .collect();
                keys.sort();
                for key in keys {
                    if out.len() == limit {
                        return Ok(out);
                    }
                    let meta = match std::fs::metadata(root.join(&shard).join(&key)) {
                        Ok(m) => m,
                        // Deleted since the directory was read.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e.into()),
                    };
                    let modified = meta
                        .modified()?
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                        modified,
                    });
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))?
    }
}
