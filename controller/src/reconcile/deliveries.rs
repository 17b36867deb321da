//! Webhook deliveries already received, so a replayed request is refused. Forges name each
//! delivery (`X-GitHub-Delivery`, `X-Gitea-Delivery`, `X-Gogs-Delivery`,
//! `X-Gitlab-Event-UUID`); the most recent ones are remembered per source, in a bounded set.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use axum::http::HeaderMap;

/// How many deliveries are remembered: a forge retries within hours, and a busy repository
/// sends far fewer pushes than this in that time.
pub const REMEMBERED: usize = 4096;

/// The delivery's ID, from the first of these headers the request has.
pub fn delivery_id(headers: &HeaderMap) -> Option<&str> {
    [
        // GitHub.
        "x-github-delivery",
        // Gitea and Forgejo.
        "x-gitea-delivery",
        // Gogs.
        "x-gogs-delivery",
        // GitLab (15.x and later).
        "x-gitlab-event-uuid",
    ]
    .iter()
    .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
    .map(str::trim)
    .filter(|id| !id.is_empty())
}

/// A source (`kind/namespace/name`) and one of its delivery IDs.
type Delivery = (String, String);

#[derive(Default)]
struct Remembered {
    seen: HashSet<Delivery>,
    /// Oldest first, to forget in the order they came.
    order: VecDeque<Delivery>,
}

#[derive(Default)]
pub struct RecentDeliveries {
    state: Mutex<Remembered>,
}

impl RecentDeliveries {
    /// Records a delivery for a source; false when it was already recorded (a replay).
    pub fn first_time(&self, source: &str, id: &str) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entry = (source.to_string(), id.to_string());
        if !state.seen.insert(entry.clone()) {
            return false;
        }
        state.order.push_back(entry);
        if state.order.len() > REMEMBERED {
            if let Some(oldest) = state.order.pop_front() {
                state.seen.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_counts_once_per_source_and_the_oldest_are_forgotten() {
        let recent = RecentDeliveries::default();
        assert!(recent.first_time("default/state", "d-1"));
        assert!(!recent.first_time("default/state", "d-1"), "a replay");
        assert!(
            recent.first_time("default/other", "d-1"),
            "another source's"
        );
        for i in 0..REMEMBERED {
            assert!(recent.first_time("default/state", &format!("x-{i}")));
        }
        assert!(
            recent.first_time("default/state", "d-1"),
            "forgotten after {REMEMBERED}"
        );
    }

    #[test]
    fn the_first_delivery_header_present_names_it() {
        let mut headers = HeaderMap::new();
        assert_eq!(delivery_id(&headers), None);
        headers.insert("x-gitlab-event-uuid", "g-1".parse().unwrap());
        assert_eq!(delivery_id(&headers), Some("g-1"));
        headers.insert("x-github-delivery", " gh-1 ".parse().unwrap());
        assert_eq!(delivery_id(&headers), Some("gh-1"));
    }
}
