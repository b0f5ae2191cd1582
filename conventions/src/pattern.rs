//! The one name-pattern syntax of causeway's configuration and command line: `*` stands for
//! any run of characters (including none), every other character for itself. Lag rules'
//! group and topic patterns, `--dead-letter` and `--compensation` all use it.

/// Topic patterns that name a dead-letter topic unless configured otherwise (matched in any
/// case): the flow model's dead-letter anomaly and the collector's `dead_letter` flow rule.
pub const DEFAULT_DEAD_LETTER_TOPICS: &[&str] =
    &["*.dlq", "*-dlq", "*.dlt", "*-dlt", "*.dead-letter", "dlq.*"];

/// Event type patterns that name a saga's undo step unless configured otherwise: the flow
/// model's compensation anomaly and the collector's `compensation` flow rule.
pub const DEFAULT_COMPENSATION_EVENT_TYPES: &[&str] = &[
    "*.released.*",
    "*.released",
    "*.cancelled.*",
    "*.cancelled",
    "*.canceled.*",
    "*.refunded.*",
    "*.refunded",
    "*.compensat*",
];

/// Whether `text` matches `pattern`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // `*` is ASCII, so matching UTF-8 bytes is the same as matching characters.
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run() {
        let cases = [
            ("*", "", true, "a lone star matches nothing too"),
            ("orders", "orders", true, "a literal matches itself"),
            ("orders", "orders.dlq", false, "a literal is not a prefix"),
            ("*.dlq", "orders.dlq", true, "suffix"),
            ("bill*", "billing", true, "prefix"),
            ("*.voided.*", "order.voided.v1", true, "infix"),
            ("a*b*c", "aXbYc", true, "several stars"),
            ("a*b*c", "aXbY", false, "a missing tail"),
            ("**", "anything", true, "stars in a row"),
            ("注*", "注文", true, "non-ASCII text"),
        ];
        for (pattern, text, expected, reason) in cases {
            assert_eq!(glob_match(pattern, text), expected, "{reason}");
        }
    }
}
