//! Argon2id password hashing. Hashing costs ~19 MiB and tens of milliseconds of CPU, so it
//! always runs on tokio's blocking pool, never on an async executor thread.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB: 19 MiB, the OWASP minimum for Argon2id.
const M_COST_KIB: u32 = 19 * 1024;
/// Iterations: 2, the OWASP pairing with 19 MiB.
const T_COST: u32 = 2;
/// Lanes: 1, so one login never takes more than one core.
const P_COST: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("valid argon2 params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        hasher()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
}

/// True when `password` matches `phc`. A malformed stored hash counts as a mismatch.
pub async fn verify(password: String, phc: String) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || {
        hasher()
            .verify_password(password.as_bytes(), phc.as_str())
            .is_ok()
    })
    .await?)
}

/// A real hash of a random password, verified against when the login id is unknown so that
/// an unknown id and a wrong password cost the same time.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random = super::token::random_token();
        hasher()
            .hash_password(random.as_bytes())
            .expect("argon2 hash")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hashes_with_the_required_parameters_and_verifies() {
        let phc = super::hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            super::verify("correct horse battery".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(
            !super::verify("wrong horse battery".into(), phc)
                .await
                .unwrap()
        );
        assert!(!super::verify("x".into(), "not a phc".into()).await.unwrap());
    }
}
