//! "Did you mean ...?" for misspelt field, kind and variant names.

/// The closest candidate within a small edit distance, or none when nothing is close enough to
/// be a likely typo.
pub fn nearest<'c>(typed: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let typed_lower = typed.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&typed_lower, &c.to_ascii_lowercase()),
                *c,
            )
        })
        .filter(|(distance, c)| *distance <= (c.len().max(typed.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// The names serde puts in backticks: "`imagee`, expected one of `image`, `args`" → all three.
pub fn backticked_names(message: &str) -> Vec<String> {
    message
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let fields = ["image", "replicas", "resources", "ports"];
        assert_eq!(nearest("imagee", &fields), Some("image"));
        assert_eq!(nearest("replcias", &fields), Some("replicas"));
        assert_eq!(nearest("Ports", &fields), Some("ports"));
        assert_eq!(nearest("volumes", &fields), None);
    }

    #[test]
    fn reads_serde_name_lists() {
        assert_eq!(
            backticked_names("`x`, expected one of `a`, `b`"),
            vec!["x", "a", "b"]
        );
    }
}
