//! Making untrusted strings safe to print: the one sanitiser for every place text from a
//! span, a header or the store reaches a terminal (`flow`, `flows`, `lag`, `alerts`, the
//! dashboard).
//!
//! Nothing that a terminal would interpret, and nothing that makes one string look like
//! another, passes: control characters, escape sequences, bidirectional controls,
//! zero-width characters and the Unicode line and paragraph separators.

use std::borrow::Cow;

/// Printed in place of a removed control character, escape sequence or invisible character.
pub const REPLACEMENT: char = '\u{fffd}';

/// Whether `c` reorders text (bidi embeddings, overrides, isolates and marks): a span
/// attribute must not be able to make the screen read differently from its bytes.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` draws nothing yet changes a string: zero-width space, non-joiner and joiner,
/// word joiner and the byte-order mark. `ord-1` and `ord-1` followed by one of these
/// must not print alike.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}')
}

/// Whether `c` must never be printed as is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || is_invisible(c)
}

/// Returns `text` with everything a terminal would interpret replaced: tabs, line breaks
/// and the Unicode line and paragraph separators become one space; an ANSI/VT escape
/// sequence (CSI, OSC, DCS, or a two-character escape) becomes one [`REPLACEMENT`]; any
/// other control, bidi or zero-width character becomes one [`REPLACEMENT`]. Clean text is
/// returned without copying.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) || is_line_separator(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' | '\n' | '\r' => out.push(' '),
            c if is_line_separator(c) => out.push(' '),
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

/// Cleans each of `names` on its own, then joins them with `separator`: an unfinished
/// escape sequence in one name cannot swallow the names after it.
pub fn clean_join<S: AsRef<str>>(names: &[S], separator: &str) -> String {
    names
        .iter()
        .map(|name| clean(name.as_ref()))
        .collect::<Vec<_>>()
        .join(separator)
}

/// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: line breaks to some terminals.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
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

#[cfg(test)]
mod tests {
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
            (
                "ord-1\u{200b}",
                "ord-1\u{fffd}",
                "zero-width space is shown",
            ),
            (
                "ord\u{200c}-1",
                "ord\u{fffd}-1",
                "zero-width non-joiner is shown",
            ),
            (
                "ord\u{200d}-1",
                "ord\u{fffd}-1",
                "zero-width joiner is shown",
            ),
            ("ord\u{2060}-1", "ord\u{fffd}-1", "word joiner is shown"),
            ("\u{feff}ord-1", "\u{fffd}ord-1", "byte-order mark is shown"),
            (
                "a\u{2028}b\u{2029}c",
                "a b c",
                "line and paragraph separators",
            ),
            (
                "👩\u{200d}💻",
                "👩\u{fffd}💻",
                "even inside an emoji sequence",
            ),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(clean(input), *expected, "{reason}");
        }
    }

    #[test]
    fn names_are_cleaned_before_they_are_joined() {
        let names = ["billing\u{1b}]8;;", "mailer", "orders"];
        assert_eq!(
            clean_join(&names, ","),
            "billing\u{fffd},mailer,orders",
            "an unfinished OSC in one name keeps the names after it"
        );
    }

    proptest! {
        #[test]
        fn cleaned_text_has_nothing_unsafe(text in any::<String>()) {
            let cleaned = clean(&text);
            prop_assert!(!cleaned.chars().any(|c| is_unsafe(c) || is_line_separator(c)));
        }
    }
}
