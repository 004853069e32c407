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

    async fn list(&self) -> Result<Vec<ObjectInfo>, StorageError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for shard in std::fs::read_dir(&root)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(shard.path())? {
                    let f = f?;
                    let key = f.file_name().to_string_lossy().into_owned();
                    if !valid_key(&key) {
                        continue; // a `.part` copy in flight, or a stranger's file
                    }
                    let meta = f.metadata()?;
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
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| StorageError::Io(std::io::Error::other(e)))?
    }
}
