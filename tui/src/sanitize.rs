//! Fitting untrusted strings into columns: cleaned by the one sanitiser
//! (`causeway_flow::sanitize`), measured in terminal cells, and cut with an ellipsis.

use ratatui::text::Span;

pub use causeway_flow::sanitize::{REPLACEMENT, clean, clean_join, is_unsafe};

/// Drawn at the end of a value cut to fit its column.
pub const ELLIPSIS: char = '…';

/// The number of terminal cells `text` takes.
pub fn width(text: &str) -> usize {
    Span::raw(text).width()
}

/// Cleans `text` and cuts it to at most `max_width` cells, ending in [`ELLIPSIS`] when
/// anything was cut.
pub fn fit(text: &str, max_width: usize) -> String {
    let clean = clean(text);
    if width(&clean) <= max_width {
        return clean.into_owned();
    }
    if max_width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    let mut buffer = [0u8; 4];
    for c in clean.chars() {
        let cell = width(c.encode_utf8(&mut buffer));
        if used + cell + 1 > max_width {
            break;
        }
        used += cell;
        out.push(c);
    }
    out.push(ELLIPSIS);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fit_truncates_with_an_ellipsis() {
        let cases: &[(&str, usize, &str, &str)] = &[
            ("short", 10, "short", "fits: unchanged"),
            ("exactly10!", 10, "exactly10!", "exact width: unchanged"),
            ("much too long", 8, "much to…", "cut, ellipsis counts"),
            ("注文注文", 5, "注文…", "wide characters count two cells"),
            ("anything", 0, "", "no room at all"),
            ("\u{1b}[31mred", 3, "\u{fffd}r…", "cleaned before cutting"),
        ];
        for (input, max, expected, reason) in cases {
            assert_eq!(fit(input, *max), *expected, "{reason}");
        }
    }

    proptest! {
        #[test]
        fn fitted_text_never_exceeds_its_width(text in any::<String>(), max in 0usize..40) {
            prop_assert!(width(&fit(&text, max)) <= max);
        }
    }
}
