//! A token or password that never appears in logs, errors or debug output.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (a request header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads an environment variable, treating empty as unset.
    pub fn from_env(name: &str) -> Option<Secret> {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_prints_its_value() {
        let secret = super::Secret::new("s3cr3t-token");
        assert!(!format!("{secret} {secret:?}").contains("s3cr3t"));
        assert_eq!(secret.expose(), "s3cr3t-token");
    }
}
