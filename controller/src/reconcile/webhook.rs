//! `POST /api/v1/webhooks/git/{name}[?namespace=ns]`: a push to a source's repository asks for
//! a sync now instead of at the next poll. The request must prove it knows the source's webhook
//! secret, or nothing happens (401). Accepted proofs, first match wins:
//!
//! 1. `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (GitHub, Gitea, Forgejo, Gogs);
//! 2. `X-Gitea-Signature: <hex HMAC-SHA256 of the body>` (older Gitea);
//! 3. `X-Gitlab-Token: <the secret itself>` (GitLab does not sign; compared in constant time).
//!
//! A verified push to another branch, or a ping, is answered and triggers nothing. A verified
//! delivery whose ID (`X-GitHub-Delivery` and the like) was already received is a replay: 409,
//! nothing queued. The signature covers the body only, so this stops replays of captured
//! requests as sent, not one with a made-up delivery ID; that can only ask for a fetch.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use crds::{Kind, ObjectRef, Resource};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::gitsource::GitState;
use crate::runtime::context::Context;

/// Push payloads larger than this are refused (413); GitHub's own cap is 25 MB, but a push
/// webhook's body is only read for its `ref`.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// Why a request's proof failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Malformed,
    Mismatch,
}

/// Checks the request's proof of the secret (the rules in the module doc, in order).
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), Rejection> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(signature) = header("x-hub-signature-256") {
        let hex_digest = signature
            .strip_prefix("sha256=")
            .ok_or(Rejection::Malformed)?;
        return verify_hmac(hex_digest, body, secret);
    }
    if let Some(signature) = header("x-gitea-signature") {
        return verify_hmac(signature, body, secret);
    }
    if let Some(token) = header("x-gitlab-token") {
        return if bool::from(token.as_bytes().ct_eq(secret)) {
            Ok(())
        } else {
            Err(Rejection::Mismatch)
        };
    }
    Err(Rejection::Missing)
}

fn verify_hmac(hex_digest: &str, body: &[u8], secret: &[u8]) -> Result<(), Rejection> {
    let expected = hex::decode(hex_digest.trim()).map_err(|_| Rejection::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).map_err(|_| Rejection::Mismatch)
}

/// The branch a push payload is about (`refs/heads/<branch>`), from GitHub's, Gitea's and
/// GitLab's common `ref` field. `None` for a payload that is not a push (a ping).
pub fn pushed_branch(body: &[u8]) -> Result<Option<String>, String> {
    let payload: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Some(reference) = payload.get("ref") else {
        return Ok(None);
    };
    let reference = reference
        .as_str()
        .ok_or("`ref` is not a string".to_string())?;
    Ok(reference.strip_prefix("refs/heads/").map(str::to_string))
}

/// What must hold for any request bytes (the first line a signature header, the rest the
/// body), whatever they are: shared by the fuzz target and the corpus replay test. Panics when
/// it does not hold, as a fuzzer wants.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    const SECRET: &[u8] = b"fuzz-secret";
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    let Ok(value) = axum::http::HeaderValue::from_bytes(line) else {
        return;
    };
    headers.insert("x-hub-signature-256", value);
    // Only the body's real signature passes; anything a fuzzer makes up is refused.
    let accepted = verify(&headers, body, SECRET).is_ok();
    let genuine = {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("any key length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.strip_prefix("sha256="))
            .and_then(|hex_digest| hex::decode(hex_digest.trim()).ok())
            .is_some_and(|claimed| claimed == digest.as_slice())
    };
    assert_eq!(
        accepted, genuine,
        "verify accepted a wrong proof or refused the right one"
    );
    if let Ok(Some(branch)) = pushed_branch(body) {
        assert!(!branch.is_empty() || body.windows(11).any(|w| w == b"refs/heads/"));
    }
}

/// The webhook's route, mounted by the runtime's server (`Kinds::routes`).
pub fn routes(git: Arc<GitState>) -> axum::Router<Arc<Context>> {
    axum::Router::new()
        .route("/api/v1/webhooks/git/{name}", axum::routing::post(git_push))
        .layer(axum::Extension(git))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

pub async fn git_push(
    State(ctx): State<Arc<Context>>,
    axum::Extension(git): axum::Extension<Arc<GitState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let namespace = query
        .get("namespace")
        .cloned()
        .unwrap_or_else(|| crds::meta::DEFAULT_NAMESPACE.to_string());
    let key = ObjectRef::new(Kind::GitSource, namespace, name);
    if !ctx.cache.is_synced() {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "the controller is starting",
        );
    }
    let Some(Resource::GitSource(source)) = ctx.cache.get(&key) else {
        return reply(StatusCode::NOT_FOUND, &format!("no {key}"));
    };
    let Some(secret_ref) = &source.spec.webhook_secret_ref else {
        return reply(
            StatusCode::UNAUTHORIZED,
            &format!("{key} has no webhookSecretRef, so no webhook can be verified"),
        );
    };
    let read = ctx
        .nomad
        .variable_item(&key.namespace, &secret_ref.name, &secret_ref.key)
        .await;
    let secret = match read {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            tracing::warn!(source = %key, variable = %secret_ref.name, item = %secret_ref.key, "webhook secret missing");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the webhook secret cannot be read",
            );
        }
        Err(e) => {
            tracing::warn!(source = %key, error = %e, "webhook secret unavailable");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the webhook secret cannot be read",
            );
        }
    };
    if let Err(rejection) = verify(&headers, &body, secret.expose().as_bytes()) {
        tracing::warn!(source = %key, ?rejection, "webhook refused");
        ctx.metrics.webhooks_refused.inc();
        return reply(
            StatusCode::UNAUTHORIZED,
            "the signature is missing or does not match",
        );
    }
    if let Some(id) = super::deliveries::delivery_id(&headers) {
        if !git.deliveries.first_time(&key.to_string(), id) {
            ctx.metrics.webhooks_refused.inc();
            return reply(
                StatusCode::CONFLICT,
                &format!("delivery {id} was already received (a replay); nothing done"),
            );
        }
    }
    match pushed_branch(&body) {
        Err(e) => reply(StatusCode::BAD_REQUEST, &e),
        Ok(None) => reply(StatusCode::OK, "verified; not a push, nothing to do"),
        Ok(Some(branch)) if branch != source.spec.branch => reply(
            StatusCode::ACCEPTED,
            &format!("push to `{branch}`; {key} follows `{}`", source.spec.branch),
        ),
        Ok(Some(_)) => {
            git.fetch_requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone());
            ctx.queue.add(key.clone());
            tracing::info!(source = %key, "webhook: sync queued");
            reply(StatusCode::ACCEPTED, "sync queued")
        }
    }
}

fn reply(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(body: &[u8], secret: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn signatures_are_checked_by_the_first_header_present() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = signed(body, b"s3cret");
        let table: Vec<(HeaderMap, Result<(), Rejection>)> = vec![
            // GitHub/Gitea style, right and wrong.
            (
                headers(&[("x-hub-signature-256", format!("sha256={good}"))]),
                Ok(()),
            ),
            (
                headers(&[(
                    "x-hub-signature-256",
                    format!("sha256={}", signed(body, b"other")),
                )]),
                Err(Rejection::Mismatch),
            ),
            (
                headers(&[("x-hub-signature-256", good.clone())]),
                Err(Rejection::Malformed),
            ),
            (
                headers(&[("x-hub-signature-256", "sha256=zz".into())]),
                Err(Rejection::Malformed),
            ),
            // Older Gitea: the bare hex digest.
            (headers(&[("x-gitea-signature", good.clone())]), Ok(())),
            // GitLab: the token itself.
            (headers(&[("x-gitlab-token", "s3cret".into())]), Ok(())),
            (
                headers(&[("x-gitlab-token", "s3cre".into())]),
                Err(Rejection::Mismatch),
            ),
            // The signed header wins over a matching token: a forged signature fails.
            (
                headers(&[
                    (
                        "x-hub-signature-256",
                        format!("sha256={}", signed(body, b"x")),
                    ),
                    ("x-gitlab-token", "s3cret".into()),
                ]),
                Err(Rejection::Mismatch),
            ),
            (HeaderMap::new(), Err(Rejection::Missing)),
        ];
        for (i, (headers, expected)) in table.into_iter().enumerate() {
            assert_eq!(verify(&headers, body, b"s3cret"), expected, "case {i}");
        }
        // The signature covers the body: the same header over another body fails.
        let tampered = br#"{"ref":"refs/heads/evil"}"#;
        let h = headers(&[("x-hub-signature-256", format!("sha256={good}"))]);
        assert_eq!(verify(&h, tampered, b"s3cret"), Err(Rejection::Mismatch));
    }

    #[test]
    fn push_payloads_name_their_branch() {
        assert_eq!(
            pushed_branch(br#"{"ref":"refs/heads/main","after":"abc"}"#),
            Ok(Some("main".into()))
        );
        assert_eq!(pushed_branch(br#"{"ref":"refs/tags/v1"}"#), Ok(None));
        assert_eq!(pushed_branch(br#"{"zen":"ping"}"#), Ok(None));
        assert!(pushed_branch(b"not json").is_err());
        assert!(pushed_branch(br#"{"ref":7}"#).is_err());
    }
}
