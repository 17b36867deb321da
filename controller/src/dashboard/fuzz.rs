//! What must hold for any bytes a client sends the API and the dashboard, whatever they are:
//! shared by the `api` fuzz target (`make fuzz`) and the corpus replay test. Panics when it does
//! not hold, as a fuzzer wants. The handlers that reach etcd are covered end to end
//! (`controller/tests/api_e2e.rs`, hostile requests); this covers every piece of a request
//! they read before that, and the pages' escaping.
//!
//! The input is split at newlines into the parts a request has: a `Cookie` header, a
//! `continue` place, a label selector, a search word, a health word, a path segment.

use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;

use crate::api::{self, session};

/// Characters HTML gives meaning to in text and in double-quoted attributes (all a page
/// writes): text holding one must never reach a page as it is. (`'` means nothing there.)
const MARKUP: &[char] = &['<', '>', '"', '&'];

#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\n');
    let mut part = || parts.next().unwrap_or("");
    let (cookie, place, labels, search, health, segment) =
        (part(), part(), part(), part(), part(), part());

    // A session id is read only from our cookie, whole, and never spans another cookie.
    if let Ok(value) = HeaderValue::from_str(cookie) {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, value);
        if let Some(id) = session::cookie(&headers) {
            assert!(!id.contains(';'), "a session id spans cookies: {id:?}");
            assert!(
                cookie.contains(&format!("{}={id}", session::COOKIE)),
                "a session id not from its cookie: {id:?}"
            );
        }
    }
    // An unknown session id is no session.
    let sessions = session::Sessions::with_limit(4);
    assert!(sessions.get(cookie, Utc::now()).is_none());

    // A listing's place reads back as what it names.
    if let Some(object) = api::from_continue_key(place) {
        assert_eq!(
            api::from_continue_key(&api::continue_key(&object)),
            Some(object)
        );
    }

    // Selectors and filters parse or say why; neither panics, and a parsed one can be asked.
    if let Ok(selector) = crds::select::Selector::parse(labels) {
        let _ = selector.matches(&Default::default());
    }
    let _ = super::summary::Filter::parse(search, labels, health);
    let _ = api::kind_of(segment);

    // A query value survives its encoding.
    let encoded = super::pages::urlencode(segment);
    assert!(encoded
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
    assert_eq!(percent_decode(&encoded), segment.as_bytes());

    // Whatever a client writes reaches a page escaped: between two markers no markup survives.
    for written in [search, labels, segment] {
        if !written.contains(MARKUP) {
            continue;
        }
        let marked = format!("\u{1}{written}\u{1}");
        let page = super::pages::problem(None, &marked, &marked).into_string();
        assert!(!page.contains(&marked), "unescaped in a page: {written:?}");
    }
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
