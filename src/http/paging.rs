//! What every paged list shares: `limit=`, `q=`, and turning a page read one row long into
//! its items and the next page's cursor. Lists page by keyset cursors, never by offset, so
//! infinite scroll has no repeats or gaps.

use crate::error::ApiError;

/// Items a page holds unless the client asks: a screenful.
pub const PAGE_DEFAULT: i64 = 20;
/// The most a list page may ask for: enough to fill a screen, small enough to stay fast.
pub const PAGE_MAX: i64 = 50;
/// Longest search text accepted.
const MAX_QUERY_CHARS: usize = 100;

/// A `limit=` value, 1 to `max`.
pub fn limit(v: &str, max: i64) -> Result<i64, ApiError> {
    v.parse::<i64>()
        .ok()
        .filter(|l| (1..=max).contains(l))
        .ok_or_else(|| ApiError::validation("limit", format!("limit is 1–{max}")))
}

/// A `q=` search text, trimmed.
pub fn search(v: &str) -> Result<String, ApiError> {
    if v.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::validation(
            "q",
            format!("the search text is limited to {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(v.trim().to_string())
}

/// Callers read `limit + 1` rows: the extra row only says that a next page exists. Trims it
/// and returns the cursor of the next page (from the page's last item), if there is one.
pub fn finish<T>(items: &mut Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Option<String> {
    if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(cursor)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_pages() {
        assert_eq!(limit("50", 50).unwrap(), 50);
        for bad in ["0", "51", "-1", "x", ""] {
            assert_eq!(
                limit(bad, 50).unwrap_err().code(),
                "validation_failed",
                "{bad}"
            );
        }
        assert_eq!(search("  노트 ").unwrap(), "노트");
        assert!(search(&"a".repeat(101)).is_err());
        let mut page = vec![1, 2, 3];
        assert_eq!(finish(&mut page, 2, |i| i.to_string()), Some("2".into()));
        assert_eq!(page, [1, 2]);
        let mut last = vec![1, 2];
        assert_eq!(finish(&mut last, 2, |i| i.to_string()), None);
        assert_eq!(last, [1, 2]);
    }
}
