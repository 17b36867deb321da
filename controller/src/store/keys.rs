//! Where things live in etcd, all under one prefix (default `/nomarch/`):
//!
//! | key | value |
//! |---|---|
//! | `objects/{kind}/{namespace}/{name}` | the object (metadata + spec) |
//! | `status/{kind}/{namespace}/{name}` | its status, written separately so it never bumps `generation` |
//! | `history/{kind}/{namespace}/{name}/{generation:020}` | previous generations, for rollback |
//! | `events/{namespace}/{kind}/{name}/{id}` | events, with a lease TTL |
//! | `tokens/{name}` | an API token: its role, namespace, expiry and the SHA-256 of its secret |

use crds::{Kind, ObjectRef};

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn object(&self, r: &ObjectRef) -> String {
        format!(
            "{}objects/{}/{}/{}",
            self.prefix,
            r.kind.singular(),
            r.namespace,
            r.name
        )
    }

    pub fn status(&self, r: &ObjectRef) -> String {
        format!(
            "{}status/{}/{}/{}",
            self.prefix,
            r.kind.singular(),
            r.namespace,
            r.name
        )
    }

    /// Prefix of every object, or of every object of one kind.
    pub fn objects(&self, kind: Option<Kind>) -> String {
        match kind {
            Some(kind) => format!("{}objects/{}/", self.prefix, kind.singular()),
            None => format!("{}objects/", self.prefix),
        }
    }

    pub fn statuses(&self, kind: Option<Kind>) -> String {
        match kind {
            Some(kind) => format!("{}status/{}/", self.prefix, kind.singular()),
            None => format!("{}status/", self.prefix),
        }
    }

    pub fn history_of(&self, r: &ObjectRef) -> String {
        format!(
            "{}history/{}/{}/{}/",
            self.prefix,
            r.kind.singular(),
            r.namespace,
            r.name
        )
    }

    pub fn history(&self, r: &ObjectRef, generation: i64) -> String {
        format!("{}{generation:020}", self.history_of(r))
    }

    pub fn events(&self) -> String {
        format!("{}events/", self.prefix)
    }

    /// One object's events: `events/{namespace}/{kind}/{name}/`.
    pub fn events_of(&self, r: &ObjectRef) -> String {
        format!(
            "{}events/{}/{}/{}/",
            self.prefix,
            r.namespace,
            r.kind.singular(),
            r.name
        )
    }

    pub fn event(&self, r: &ObjectRef, id: &str) -> String {
        format!("{}{id}", self.events_of(r))
    }

    /// The object a status or object key belongs to: `.../status/app/default/web` → `app/web`.
    pub fn object_ref_of(&self, key: &str) -> Option<ObjectRef> {
        let rest = key.strip_prefix(&self.prefix)?;
        let mut parts = rest.splitn(4, '/');
        let _table = parts.next()?;
        let kind = Kind::from_cli_name(parts.next()?)?;
        let namespace = parts.next()?;
        let name = parts.next()?;
        Some(ObjectRef::new(kind, namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_to_object_refs() {
        let keys = Keys::new("/nomarch");
        let r = ObjectRef::new(Kind::CronJob, "ops", "backup");
        assert_eq!(keys.object(&r), "/nomarch/objects/cronjob/ops/backup");
        assert_eq!(keys.object_ref_of(&keys.status(&r)), Some(r.clone()));
        assert_eq!(
            keys.history(&r, 7),
            "/nomarch/history/cronjob/ops/backup/00000000000000000007"
        );
        assert!(
            keys.history(&r, 7) < keys.history(&r, 10),
            "history keys sort by generation"
        );
        // An object's events range holds its own events and not a longer name's.
        let web = ObjectRef::new(Kind::App, "ops", "web");
        let web2 = ObjectRef::new(Kind::App, "ops", "web-2");
        assert!(keys.event(&web, "e1").starts_with(&keys.events_of(&web)));
        assert!(!keys.event(&web2, "e1").starts_with(&keys.events_of(&web)));
        assert!(keys.event(&web, "e1").starts_with(&keys.events()));
    }
}
