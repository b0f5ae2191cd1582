//! Making untrusted strings safe to draw: no control characters, escape sequences or
//! bidirectional overrides reach the terminal, and long values end in an ellipsis.

use std::borrow::Cow;

use ratatui::text::Span;

/// Drawn in place of a removed control character or escape sequence.
pub const REPLACEMENT: char = '\u{fffd}';
/// Drawn at the end of a value cut to fit its column.
pub const ELLIPSIS: char = '…';

/// Whether `c` reorders text (bidi embeddings, overrides, isolates and marks): a span
/// attribute must not be able to make the screen read differently from its bytes.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` must never be drawn as is.
fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Returns `text` with every control character, escape sequence and bidi control
/// replaced: tabs and line breaks become one space, an ANSI/VT escape sequence (CSI, OSC,
/// or a two-character escape) becomes one [`REPLACEMENT`], any other control or bidi
/// character becomes one [`REPLACEMENT`]. Clean text is returned without copying.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' | '\n' | '\r' => out.push(' '),
            '\u{1b}' => {
                skip_escape(&mut chars);
                out.push(REPLACEMENT);
            }
            c if is_unsafe(c) => out.push(REPLACEMENT),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Consumes the rest of an escape sequence whose ESC has been read.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek() {
        // CSI: parameters and intermediates, then one final byte in @..~.
        Some('[') => {
            chars.next();
            for c in chars.by_ref() {
                if ('\u{40}'..='\u{7e}').contains(&c) {
                    break;
                }
            }
        }
        // OSC, DCS, APC, PM, SOS: until BEL or the string terminator ESC \.
        Some(']' | 'P' | '_' | '^' | 'X') => {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        // A two-character escape such as ESC c (reset): drop the second character too,
        // unless it is itself unsafe (it is then replaced on its own).
        Some(&c) if !is_unsafe(c) => {
            chars.next();
        }
        _ => {}
    }
}

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
    fn clean_removes_what_a_terminal_would_interpret() {
        let cases: &[(&str, &str, &str)] = &[
            ("order.placed.v1", "order.placed.v1", "plain text is kept"),
            ("a\tb\nc\rd", "a b c d", "whitespace controls become spaces"),
            (
                "\u{1b}[31mred\u{1b}[0m",
                "\u{fffd}red\u{fffd}",
                "SGR colour sequences",
            ),
            (
                "\u{1b}[2J\u{1b}[H",
                "\u{fffd}\u{fffd}",
                "clear screen and cursor home",
            ),
            (
                "\u{1b}]0;pwned\u{7}x",
                "\u{fffd}x",
                "OSC title change ended by BEL",
            ),
            (
                "\u{1b}]8;;http://e\u{1b}\\link",
                "\u{fffd}link",
                "OSC 8 hyperlink ended by ST",
            ),
            ("\u{1b}cx", "\u{fffd}x", "two-character reset"),
            (
                "evil\u{202e}gnp.exe",
                "evil\u{fffd}gnp.exe",
                "right-to-left override",
            ),
            ("\u{2066}x\u{2069}", "\u{fffd}x\u{fffd}", "bidi isolates"),
            (
                "nul\0bell\u{7}del\u{7f}",
                "nul\u{fffd}bell\u{fffd}del\u{fffd}",
                "C0 and DEL",
            ),
            ("c1\u{9b}31m", "c1\u{fffd}31m", "8-bit CSI"),
            (
                "trailing\u{1b}",
                "trailing\u{fffd}",
                "a lone ESC at the end",
            ),
            ("caf\u{e9} 注文", "caf\u{e9} 注文", "non-ASCII text is kept"),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(clean(input), *expected, "{reason}");
        }
    }

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
        fn cleaned_text_has_no_unsafe_characters(text in any::<String>()) {
            prop_assert!(!clean(&text).chars().any(is_unsafe));
        }

        #[test]
        fn fitted_text_never_exceeds_its_width(text in any::<String>(), max in 0usize..40) {
            prop_assert!(width(&fit(&text, max)) <= max);
        }
    }
}
