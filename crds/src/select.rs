//! Choosing and ordering objects (`nomarch get`, the dashboard's lists): label selectors
//! (`-l`) as kubectl reads them, and `--sort-by` a field path. Pure.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// `-l app=web,tier!=db,canary,!legacy`: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

impl Selector {
    /// Equality (`k=v`, `k==v`), inequality (`k!=v`), existence (`k`) and absence (`!k`),
    /// comma-separated. Set forms (`k in (a,b)`) are refused by name.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim) {
            let key_ok = |key: &str| {
                !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            };
            let requirement = if part.contains(" in ") || part.contains(" notin ") {
                return Err(format!(
                    "`{part}`: set selectors (in, notin) are not supported; use key=value"
                ));
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some(key) = part.strip_prefix('!') {
                Requirement::Absent(key.trim().into())
            } else {
                Requirement::Exists(part.into())
            };
            let key = match &requirement {
                Requirement::Equals(k, _)
                | Requirement::NotEquals(k, _)
                | Requirement::Exists(k)
                | Requirement::Absent(k) => k,
            };
            if !key_ok(key) {
                return Err(format!(
                    "`{part}` is not a label selector (key=value, key!=value, key or !key)"
                ));
            }
            requirements.push(requirement);
        }
        Ok(Selector(requirements))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::Absent(k) => !labels.contains_key(k),
        })
    }
}

/// `--sort-by .status.replicas.healthy`: a dotted path into the object as `-o json` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortBy(Vec<String>);

impl SortBy {
    pub fn parse(text: &str) -> Result<SortBy, String> {
        let path = text.trim().trim_start_matches('{').trim_end_matches('}');
        let path = path.strip_prefix('.').unwrap_or(path);
        let parts: Vec<String> = path.split('.').map(String::from).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!(
                "`{text}` is not a field path such as .metadata.name or .status.replicas.healthy"
            ));
        }
        Ok(SortBy(parts))
    }

    fn value<'a>(&self, object: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(object, |v, key| v.get(key))
    }

    /// Numbers by value, everything else by its text; objects without the field last.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        match (self.value(a), self.value(b)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => text(x).cmp(&text(y)),
            },
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_read_as_kubectl_reads_them() {
        let web = labels(&[("app", "web"), ("tier", "front"), ("canary", "")]);
        let db = labels(&[("app", "db"), ("tier", "back"), ("legacy", "yes")]);
        let cases = [
            ("app=web", true, false),
            ("app==web", true, false),
            ("app!=web", false, true),
            ("canary", true, false),
            ("!legacy", true, false),
            ("tier, !canary", false, true),
            ("app=web,tier=back", false, false),
            ("missing!=x", true, true),
        ];
        for (text, on_web, on_db) in cases {
            let selector = Selector::parse(text).unwrap();
            assert_eq!(
                (selector.matches(&web), selector.matches(&db)),
                (on_web, on_db),
                "{text}"
            );
        }
        for bad in ["app in (web,db)", "=web", "a b=c", ""] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sorting_compares_numbers_as_numbers_and_puts_missing_last() {
        let objects = [
            json!({"metadata": {"name": "c"}, "status": {"replicas": {"healthy": 10}}}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"name": "b"}, "status": {"replicas": {"healthy": 9}}}),
        ];
        let order = |path: &str| {
            let by = SortBy::parse(path).unwrap();
            let mut sorted = objects.to_vec();
            sorted.sort_by(|a, b| by.compare(a, b));
            sorted
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(".metadata.name"), ["a", "b", "c"]);
        assert_eq!(order(".status.replicas.healthy"), ["b", "c", "a"]);
        assert_eq!(order("{.status.replicas.healthy}"), ["b", "c", "a"]);
        assert!(SortBy::parse(".status..x").is_err());
    }
}
