//! Dashboard sessions: signing in with a token opens one, kept in this controller's memory and
//! named by a random id in an `HttpOnly`, `SameSite=Strict` cookie, so the token itself never
//! sits in the browser. A session holds the token's hash, not the token: every request looks
//! the token up again, so a revoked or expired token ends its sessions at once. Each session
//! has its own CSRF secret, which the dashboard's forms carry and its writes compare.
//!
//! Sessions live in one controller's memory: a restart signs everyone out, and behind a load
//! balancer a browser must stick to one controller.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "nomarch_session";

/// How long a session lasts after sign-in (the token's own expiry still applies).
pub const LIFETIME: Duration = Duration::hours(12);

/// How many sessions one controller keeps; past it, the oldest is dropped. Only a valid token
/// opens one, so this bounds memory against a token holder signing in in a loop.
const MOST: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The SHA-256 of the token it was opened with (see `store::tokens`).
    pub token_sha256: String,
    /// What the dashboard's forms must send back.
    pub csrf: String,
    pub expires: DateTime<Utc>,
}

impl Session {
    /// Whether `offered` is this session's CSRF secret (compared in constant time).
    pub fn csrf_matches(&self, offered: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(offered.as_bytes()))
    }
}

pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    most: usize,
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions::with_limit(MOST)
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    pub fn with_limit(most: usize) -> Sessions {
        Sessions {
            open: Mutex::default(),
            most,
        }
    }

    /// Opens a session for the token with this hash; returns its id (the cookie's value).
    pub fn open(&self, token_sha256: &str, now: DateTime<Utc>) -> String {
        let id = random_hex();
        let mut open = self.open.lock().unwrap();
        open.retain(|_, s| s.expires > now);
        if open.len() >= self.most {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
            {
                open.remove(&oldest);
            }
        }
        open.insert(
            id.clone(),
            Session {
                token_sha256: token_sha256.to_string(),
                csrf: random_hex(),
                expires: now + LIFETIME,
            },
        );
        id
    }

    /// The session with this id, unless it has ended.
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut open = self.open.lock().unwrap();
        match open.get(id) {
            Some(session) if session.expires > now => Some(session.clone()),
            Some(_) => {
                open.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.open.lock().unwrap().remove(id);
    }

    pub fn len(&self) -> usize {
        self.open.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session id the request's `Cookie` header carries, if any.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// The `Set-Cookie` value that opens a session: script cannot read it, no other site's request
/// carries it, and it is `Secure` when a TLS-terminating proxy says the browser used https.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let seconds = LIFETIME.num_seconds();
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={seconds}{secure}")
}

/// The `Set-Cookie` value that ends it in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let sessions = Sessions::default();
        let now = Utc::now();
        let id = sessions.open("hash", now);
        let session = sessions.get(&id, now).unwrap();
        assert_eq!(session.token_sha256, "hash");
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches("guess"));
        assert!(sessions.get("other", now).is_none());
        assert!(sessions.get(&id, now + LIFETIME).is_none());
        assert!(sessions.is_empty(), "an ended session is forgotten");
        let id = sessions.open("hash", now);
        sessions.close(&id);
        assert!(sessions.get(&id, now).is_none());
    }

    #[test]
    fn ids_and_csrf_secrets_are_random_and_never_the_token() {
        let sessions = Sessions::default();
        let now = Utc::now();
        let (one, two) = (sessions.open("hash", now), sessions.open("hash", now));
        assert_ne!(one, two);
        assert_eq!(one.len(), 64);
        let (a, b) = (
            sessions.get(&one, now).unwrap(),
            sessions.get(&two, now).unwrap(),
        );
        assert_ne!(a.csrf, b.csrf);
        assert_ne!(a.csrf, one);
    }

    #[test]
    fn the_cookie_is_read_among_others_and_set_strict() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            "theme=dark; nomarch_session=abc123; x=y".parse().unwrap(),
        );
        assert_eq!(cookie(&headers).as_deref(), Some("abc123"));
        assert_eq!(cookie(&HeaderMap::new()), None);
        let set = set_cookie("abc", false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let sessions = Sessions::with_limit(3);
        let now = Utc::now();
        let first = sessions.open("hash", now);
        for i in 1..5 {
            sessions.open("hash", now + Duration::seconds(i));
        }
        assert_eq!(sessions.len(), 3);
        assert!(sessions.get(&first, now).is_none(), "the oldest went first");
    }
}
