//! Content types from the bytes, never from the client: the type a file is stored and served
//! with is what its first bytes say it is. The client's declared type is only checked
//! against them, so a PDF labelled `image/png` is refused instead of stored mislabelled.

/// How many leading bytes the sniffer looks at: every signature below fits, and 8 KiB of
/// valid UTF-8 without NULs is what common sniffers take as text.
pub const SNIFF_BYTES: usize = 8 * 1024;

pub const OCTET_STREAM: &str = "application/octet-stream";
pub const TEXT: &str = "text/plain; charset=utf-8";

/// (offset, magic, type). Checked in order; the first match wins.
const SIGNATURES: &[(usize, &[u8], &str)] = &[
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (4, b"ftyp", "video/mp4"),
];

/// The content type of a file whose first bytes are `head`. `truncated` says whether the
/// file goes on past `head` (a cut multi-byte character at the end is then not an error).
pub fn sniff(head: &[u8], truncated: bool) -> &'static str {
    for (at, magic, mime) in SIGNATURES {
        if head.len() >= at + magic.len() && &head[*at..at + magic.len()] == *magic {
            return mime;
        }
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" {
        match &head[8..12] {
            b"WEBP" => return "image/webp",
            b"WAVE" => return "audio/wav",
            _ => {}
        }
    }
    if is_text(head, truncated) {
        return TEXT;
    }
    OCTET_STREAM
}

fn is_text(head: &[u8], truncated: bool) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Only an incomplete character cut off by the sniff window is forgiven.
        Err(e) => truncated && e.error_len().is_none(),
    };
    valid
        && !head
            .iter()
            .any(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)))
}

/// The declared type without parameters, lower-cased, with common aliases folded.
fn normalize(declared: &str) -> String {
    let t = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match t.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "application/x-zip-compressed" | "application/x-zip" => "application/zip".into(),
        "application/x-gzip" => "application/gzip".into(),
        "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "audio/wav".into(),
        "audio/mp3" => "audio/mpeg".into(),
        "video/quicktime" | "audio/mp4" | "video/x-m4v" | "audio/x-m4a" => "video/mp4".into(),
        "audio/webm" | "video/x-matroska" => "video/webm".into(),
        "application/ogg" | "video/ogg" => "audio/ogg".into(),
        _ => t,
    }
}

/// Formats that are zip archives inside (office documents, e-books, jars).
fn is_zip_based(t: &str) -> bool {
    t.starts_with("application/vnd.openxmlformats-officedocument.")
        || t.starts_with("application/vnd.oasis.opendocument.")
        || matches!(
            t,
            "application/epub+zip"
                | "application/java-archive"
                | "application/vnd.android.package-archive"
        )
}

/// Textual types that are not `text/*`.
fn is_textual(t: &str) -> bool {
    t.starts_with("text/")
        || t.ends_with("+json")
        || t.ends_with("+xml")
        || matches!(
            t,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/x-sh"
                | "application/x-python"
                | "application/sql"
                | "application/x-tex"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
        )
}

/// Whether the client's declared type agrees with the sniffed one. Unknown or generic
/// declarations (no signature to check them against) are accepted.
pub fn compatible(declared: Option<&str>, sniffed: &str) -> bool {
    let Some(d) = declared.map(normalize).filter(|d| !d.is_empty()) else {
        return true;
    };
    if d == OCTET_STREAM || d == sniffed {
        return true;
    }
    if is_textual(&d) {
        return sniffed == TEXT;
    }
    if is_zip_based(&d) {
        return sniffed == "application/zip";
    }
    // A type we have a signature for must carry it.
    let known = SIGNATURES.iter().any(|(_, _, m)| *m == d)
        || matches!(d.as_str(), "image/webp" | "audio/wav");
    !known
}

/// The type to store: the sniffed one, except that a zip-based document keeps its declared
/// (more specific, and verified to be a zip) type.
pub fn stored_type(declared: Option<&str>, sniffed: &'static str) -> String {
    match declared.map(normalize) {
        Some(d) if sniffed == "application/zip" && is_zip_based(&d) => d,
        _ => sniffed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_text() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0", false), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n", false), "application/pdf");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ", false), "image/webp");
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42", false), "video/mp4");
        assert_eq!(sniff("fn main() {}\n// 한국어".as_bytes(), false), TEXT);
        assert_eq!(sniff(b"<script>alert(1)</script>", false), TEXT);
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01\0", false), OCTET_STREAM);
        assert_eq!(sniff(b"abc\0def", false), OCTET_STREAM);
    }

    #[test]
    fn a_character_cut_by_the_window_is_still_text() {
        let s = "가나다".as_bytes();
        let cut = &s[..s.len() - 1];
        assert_eq!(sniff(cut, true), TEXT);
        // At the real end of the file a cut character is not text.
        assert_eq!(sniff(cut, false), OCTET_STREAM);
    }

    #[test]
    fn declared_types_must_agree() {
        assert!(compatible(None, "application/pdf"));
        assert!(compatible(Some("application/octet-stream"), "image/png"));
        assert!(compatible(Some("image/PNG; q=1"), "image/png"));
        assert!(compatible(Some("image/jpg"), "image/jpeg"));
        assert!(!compatible(Some("image/png"), "application/pdf"));
        assert!(!compatible(Some("application/pdf"), TEXT));
        assert!(compatible(Some("text/markdown"), TEXT));
        assert!(!compatible(Some("text/plain"), "image/png"));
        assert!(compatible(
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            "application/zip"
        ));
        assert!(!compatible(Some("application/epub+zip"), TEXT));
        // No signature to check an unknown type against.
        assert!(compatible(Some("image/heic"), OCTET_STREAM));
    }

    #[test]
    fn zip_documents_keep_their_declared_type() {
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        assert_eq!(stored_type(Some(docx), "application/zip"), docx);
        assert_eq!(stored_type(Some("image/png"), "image/png"), "image/png");
        assert_eq!(stored_type(Some("text/html"), TEXT), TEXT);
    }
}
