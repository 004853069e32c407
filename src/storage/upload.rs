//! The upload path before storage: filename rules, and spooling the request body to a temp
//! file while counting, hashing and sniffing it, so nothing is held whole in memory and a
//! file is checked completely before any object or row exists.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::slots::{MinRate, RatePolicy};
use super::sniff::SNIFF_BYTES;
use crate::error::ApiError;

/// Longest filename kept, in bytes: what common file systems allow.
const FILENAME_MAX_BYTES: usize = 255;

/// The original filename, kept only as metadata (never as a path or key). Names that try to
/// be paths are refused; characters that only confuse (Windows-reserved punctuation) become
/// `_`, and invisible direction overrides, which can disguise an extension, are dropped.
pub fn filename(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::InvalidFilename(why.to_string());
    let name = raw.trim();
    if name.is_empty() {
        return Err(bad("a file needs a name"));
    }
    if name.contains(['/', '\\']) {
        return Err(bad("a filename may not contain / or \\"));
    }
    if name == "." || name == ".." {
        return Err(bad("a filename may not be . or .."));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("a filename may not contain control characters"));
    }
    let clean: String = name
        .chars()
        .filter(|c| !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .map(|c| if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    if clean.is_empty() {
        return Err(bad("a file needs a name"));
    }
    if clean.len() > FILENAME_MAX_BYTES {
        return Err(bad("a filename is limited to 255 bytes"));
    }
    Ok(clean)
}

/// A temp file that is removed when dropped, unless it was moved away first.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A request body written to disk and described.
pub struct Spooled {
    pub file: TempPath,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// The first bytes, for sniffing.
    pub head: Vec<u8>,
}

/// Writes `body` to a new temp file in `dir`, failing with `PayloadTooLarge` as soon as it
/// passes `max` bytes and with `UploadTooSlow` as soon as a window of `rate` ends with too
/// few bytes (the partial file is removed either way).
pub async fn spool<S, E>(
    mut body: S,
    dir: &Path,
    max: u64,
    rate: &RatePolicy,
) -> Result<Spooled, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let file = TempPath(dir.join(format!("upload-{}", super::new_key())));
    let mut out = tokio::fs::File::create(file.path())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut size: u64 = 0;
    // Tokio's clock (pausable in tests), in the std form the pure check takes.
    let now = || tokio::time::Instant::now().into_std();
    let mut floor = MinRate::new(now());
    loop {
        let deadline = tokio::time::Instant::from_std(floor.deadline(rate));
        let next = tokio::time::timeout_at(deadline, body.next()).await;
        if !floor.check(rate, size, now()) {
            return Err(ApiError::UploadTooSlow);
        }
        let chunk = match next {
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|e| ApiError::UploadAborted(e.to_string()))?,
        };
        size += chunk.len() as u64;
        if size > max {
            return Err(ApiError::PayloadTooLarge);
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    // The object store may keep this very file (a rename): it must be on disk first.
    out.sync_all()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Spooled {
        file,
        size,
        sha256: hex::encode(hasher.finalize()),
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAXED: RatePolicy = RatePolicy {
        bytes_per_second: 1,
        window: std::time::Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_aborted_at_the_end_of_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let rate = RatePolicy {
            bytes_per_second: 100,
            window: std::time::Duration::from_secs(10),
        };
        // One byte, then nothing for ever.
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))])
            .chain(futures_util::stream::pending());
        let started = tokio::time::Instant::now();
        let err = spool(Box::pin(body), dir.path(), 1 << 20, &rate)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), "upload_too_slow");
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_secs(10) && took < std::time::Duration::from_secs(11),
            "{took:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the partial file is gone"
        );
    }

    fn code(r: Result<String, ApiError>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn paths_are_refused_and_names_cleaned() {
        for bad in [
            "../../etc/passwd",
            "a/b.txt",
            "..\\win.ini",
            "..",
            ".",
            "  ",
            "a\u{0}b",
            "a\nb",
        ] {
            assert_eq!(code(filename(bad)), "invalid_filename", "{bad:?}");
        }
        assert_eq!(filename(" 노트 1장.pdf ").unwrap(), "노트 1장.pdf");
        assert_eq!(filename("what?.txt").unwrap(), "what_.txt");
        // A right-to-left override that would show "exe.txt" as "txt.exe" is dropped.
        assert_eq!(filename("report\u{202e}txt.exe").unwrap(), "reporttxt.exe");
        assert_eq!(code(filename(&"가".repeat(86))), "invalid_filename");
        assert_eq!(code(filename(&"가".repeat(85))), "ok");
    }

    #[actix_rt::test]
    async fn spools_hashes_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = || {
            futures_util::stream::iter(
                [b"hello ".as_slice(), b"world".as_slice()]
                    .into_iter()
                    .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
            )
        };
        let s = spool(chunks(), dir.path(), 11, &RELAXED).await.unwrap();
        assert_eq!(s.size, 11);
        assert_eq!(
            s.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(s.head, b"hello world");
        assert_eq!(std::fs::read(s.file.path()).unwrap(), b"hello world");
        let kept = s.file.path().to_path_buf();
        drop(s);
        assert!(!kept.exists(), "the temp file goes with its owner");
        let err = spool(chunks(), dir.path(), 10, &RELAXED)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), "payload_too_large");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
    }
}
