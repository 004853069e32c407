//! Input rules for accounts. Each check names the field it refuses.

use crate::error::ApiError;

pub const LOGIN_ID_LEN: std::ops::RangeInclusive<usize> = 3..=32;
pub const DISPLAY_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=40;
pub const PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 10..=256;

/// Lower-cases and checks a login id: 3–32 of `[a-z0-9_]`. Unique ignoring case because the
/// stored form is the lower-cased one.
pub fn login_id(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim().to_ascii_lowercase();
    if !LOGIN_ID_LEN.contains(&id.len()) {
        return Err(ApiError::validation(
            "login_id",
            "login id must be 3–32 characters",
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::validation(
            "login_id",
            "login id may contain only a–z, 0–9 and _",
        ));
    }
    Ok(id)
}

/// Trims and checks a display name: 1–40 characters (any script), no control characters.
pub fn display_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let n = name.chars().count();
    if !DISPLAY_NAME_CHARS.contains(&n) {
        return Err(ApiError::validation(
            "display_name",
            "display name must be 1–40 characters",
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(ApiError::validation(
            "display_name",
            "display name has control characters",
        ));
    }
    Ok(name.to_string())
}

/// 10–256 bytes; anything else is the user's choice.
pub fn password(raw: &str) -> Result<(), ApiError> {
    if !PASSWORD_BYTES.contains(&raw.len()) {
        return Err(ApiError::validation(
            "password",
            "password must be 10–256 bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: ApiError) -> &'static str {
        match e {
            ApiError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn login_ids() {
        assert_eq!(login_id("Alice_01").unwrap(), "alice_01");
        assert_eq!(login_id("abc").unwrap(), "abc");
        assert_eq!(field(login_id("ab").unwrap_err()), "login_id");
        assert!(login_id(&"a".repeat(33)).is_err());
        assert!(login_id(&"a".repeat(32)).is_ok());
        assert!(login_id("al ice").is_err());
        assert!(login_id("ali-ce").is_err());
        assert!(login_id("철수철수").is_err());
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("  김철수 ").unwrap(), "김철수");
        assert!(display_name(&"가".repeat(40)).is_ok());
        assert!(display_name(&"가".repeat(41)).is_err());
        assert_eq!(field(display_name("   ").unwrap_err()), "display_name");
        assert!(display_name("a\u{0007}b").is_err());
    }

    #[test]
    fn passwords() {
        assert!(password("123456789").is_err());
        assert!(password("1234567890").is_ok());
        assert!(password(&"x".repeat(256)).is_ok());
        assert_eq!(field(password(&"x".repeat(257)).unwrap_err()), "password");
        // Bytes, not characters: 4 Korean syllables are 12 bytes.
        assert!(password("비밀번호").is_ok());
    }
}
