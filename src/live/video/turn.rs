//! TURN credentials in the TURN REST scheme (coturn's `use-auth-secret`): the server and
//! the TURN server share a secret; a credential is `username = "{expiry}:{user_id}"` and
//! `password = base64(HMAC-SHA1(secret, username))`, so coturn checks it without asking us,
//! and it stops working by itself at `expiry` (Unix seconds).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

use crate::ids::UserId;

/// One entry of `RTCConfiguration.iceServers`, as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A time-limited TURN credential for `user`, valid until `now_unix + ttl_secs`.
pub fn rest_credential(
    secret: &str,
    user: UserId,
    now_unix: u64,
    ttl_secs: u64,
) -> (String, String) {
    let username = format!("{}:{}", now_unix + ttl_secs, user);
    (username.clone(), rest_password(secret, &username))
}

/// The password coturn expects for `username` under `secret`.
pub fn rest_password(secret: &str, username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The TURN part of a node's settings.
#[derive(Debug, Clone, Default)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URLs handed to clients; empty means no TURN.
    pub urls: Vec<String>,
    pub secret: Option<String>,
    pub ttl_secs: u64,
}

impl TurnConfig {
    /// The ICE servers for `user` now: one TURN entry with a fresh credential, or none.
    pub fn ice_servers(&self, user: UserId, now_unix: u64) -> Vec<IceServer> {
        match &self.secret {
            Some(secret) if !self.urls.is_empty() => {
                let (username, credential) = rest_credential(secret, user, now_unix, self.ttl_secs);
                vec![IceServer {
                    urls: self.urls.clone(),
                    username: Some(username),
                    credential: Some(credential),
                }]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_base64_hmac_sha1_of_the_username() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        let p = rest_password("Jefe", "what do ya want for nothing?");
        let raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        assert_eq!(hex::encode(raw), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn credential_names_expiry_and_user() {
        let (u, p) = rest_credential("s3cret", UserId(42), 1_000, 600);
        assert_eq!(u, "1600:42");
        assert_eq!(p, rest_password("s3cret", "1600:42"));
        assert_ne!(p, rest_password("other", "1600:42"));
    }

    #[test]
    fn no_turn_without_secret_or_urls() {
        let mut c = TurnConfig {
            urls: vec!["turn:127.0.0.1:3478".into()],
            secret: None,
            ttl_secs: 60,
        };
        assert!(c.ice_servers(UserId(1), 0).is_empty());
        c.secret = Some("x".into());
        let s = c.ice_servers(UserId(1), 0);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].username.as_deref(), Some("60:1"));
    }
}
