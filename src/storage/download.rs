//! The download path's HTTP parts: byte ranges (RFC 9110 §14) and the attachment filename
//! (RFC 6266 with an RFC 5987 `filename*`).

/// What to send for a `Range` header against an object of `size` bytes (`size > 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: the whole object, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// One `bytes=` range. A header we cannot read is ignored (the whole object is sent), as the
/// RFC allows; several ranges are also answered with the whole object rather than a
/// multipart body, which no browser or download tool needs from us.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            None => RangeAnswer::Full,
        },
        (first, "") => match num(first) {
            Some(s) if s >= size => RangeAnswer::Unsatisfiable,
            Some(s) => RangeAnswer::Partial {
                start: s,
                end: size - 1,
            },
            None => RangeAnswer::Full,
        },
        (first, last) => match (num(first), num(last)) {
            (Some(s), Some(e)) if s > e => RangeAnswer::Full,
            (Some(s), Some(_)) if s >= size => RangeAnswer::Unsatisfiable,
            (Some(s), Some(e)) => RangeAnswer::Partial {
                start: s,
                end: e.min(size - 1),
            },
            _ => RangeAnswer::Full,
        },
    }
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>`: every
/// browser since 2011 takes `filename*`; the fallback keeps old tools from saving garbage.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        // RFC 5987 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn ranges() {
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(r("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=90-"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-1000"), Partial { start: 0, end: 99 });
        assert_eq!(r("bytes=50-1000"), Partial { start: 50, end: 99 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=100-200"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=9-1"), Full);
        assert_eq!(r("bytes=0-1,5-6"), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(r("bytes=a-b"), Full);
        assert_eq!(r("bytes=+1-2"), Full);
    }

    #[test]
    fn filenames_survive_in_both_forms() {
        assert_eq!(
            content_disposition("노트 \"1\".pdf"),
            "attachment; filename=\"__ _1_.pdf\"; filename*=UTF-8''%EB%85%B8%ED%8A%B8%20%221%22.pdf"
        );
        assert_eq!(
            content_disposition("a;b.txt"),
            "attachment; filename=\"a;b.txt\"; filename*=UTF-8''a%3Bb.txt"
        );
    }
}
