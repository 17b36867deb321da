//! Durations as people write them in manifests (`10s`, `1m30s`, `500ms`), kept as written so a
//! round trip through the store shows the user's own spelling.

use std::fmt;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: StdDuration,
}

impl Duration {
    pub fn parse(text: &str) -> Result<Duration, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(
                "expected a duration such as `10s`, `1m30s` or `500ms`, found an empty string"
                    .into(),
            );
        }
        let value = humantime::parse_duration(trimmed).map_err(|e| {
            format!("`{trimmed}` is not a duration ({e}); write it like `10s`, `1m30s` or `500ms`")
        })?;
        Ok(Duration {
            text: trimmed.to_string(),
            value,
        })
    }

    /// For defaults written in code; panics on a bad literal, which a unit test would catch.
    pub fn from_static(text: &'static str) -> Duration {
        Duration::parse(text).expect("static duration literal parses")
    }

    pub fn get(&self) -> StdDuration {
        self.value
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `10s`, `1m30s` or `500ms`.",
            "pattern": "^\\s*([0-9]+\\s*[a-zµ]+\\s*)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(
            Duration::parse("1m30s").unwrap().get(),
            StdDuration::from_secs(90)
        );
        assert_eq!(
            Duration::parse("500ms").unwrap().get(),
            StdDuration::from_millis(500)
        );
        assert_eq!(Duration::parse(" 2h ").unwrap().as_str(), "2h");
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = Duration::parse("ten seconds").unwrap_err();
        assert!(err.contains("`ten seconds` is not a duration"), "{err}");
        assert!(Duration::parse("").is_err());
        assert!(Duration::parse("10").is_err(), "a bare number has no unit");
    }
}
