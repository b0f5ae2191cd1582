//! The OTLP/JSON side of `request_cost`: a walk over the JSON text that counts what
//! decoding will allocate without allocating it, notes the spans to reject alone (a
//! string that is not UTF-8, an id that is not hex), and the edits that let the rest
//! decode: each such span becomes `{}`, and a `doubleValue` of `"NaN"`, `"Infinity"` or
//! `"-Infinity"` (valid OTLP/JSON that the decoder refuses) becomes the text the
//! protobuf path stores for the same value.
//!
//! The walk follows RFC 8259 as strictly as the decoder does, so a body it refuses is
//! one the decoder would refuse too.

use std::ops::Range;

use crate::otlp::message_shape::{Field, Kind, Shape};
use crate::otlp::request_cost::{ScanError, Walk};

/// Deepest nesting of arrays and objects (the decoder's own limit).
const MAX_NESTING: usize = 128;
/// What one JSON value may cost while decoding besides the message it fills (a buffered
/// copy where the decoder reads ahead, as for a metric's data).
const BYTES_PER_VALUE: usize = 32;

/// A change to make to the body before decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The bytes to replace.
    pub range: Range<usize>,
    /// What to put there.
    pub replacement: &'static str,
}

/// What a scan found.
#[derive(Debug)]
pub struct JsonScan {
    /// Costs and spans to reject.
    pub walk: Walk,
    /// Non-finite doubles to rewrite.
    pub edits: Vec<Edit>,
}

impl JsonScan {
    /// Whether the body must be edited before decoding.
    pub fn needs_edits(&self) -> bool {
        !self.edits.is_empty() || !self.walk.bad_spans.is_empty()
    }

    /// `bytes` with every rejected span replaced by `{}` and every edit made.
    pub fn edited(&self, bytes: &[u8]) -> Vec<u8> {
        let mut changes: Vec<(Range<usize>, &str)> = self
            .walk
            .bad_spans
            .iter()
            .map(|span| (span.range.clone(), "{}"))
            .collect();
        for edit in &self.edits {
            let inside_rejected = self.walk.bad_spans.iter().any(|span| {
                span.range.start <= edit.range.start && edit.range.end <= span.range.end
            });
            if !inside_rejected {
                changes.push((edit.range.clone(), edit.replacement));
            }
        }
        changes.sort_by_key(|(range, _)| range.start);
        let mut out = Vec::with_capacity(bytes.len());
        let mut copied = 0;
        for (range, replacement) in changes {
            out.extend_from_slice(&bytes[copied..range.start]);
            out.extend_from_slice(replacement.as_bytes());
            copied = range.end;
        }
        out.extend_from_slice(&bytes[copied..]);
        out
    }
}

/// Walks the JSON document `bytes` holding a message of `shape`.
pub fn scan(bytes: &[u8], shape: &'static Shape) -> Result<JsonScan, ScanError> {
    let mut parser = Parser {
        bytes,
        position: 0,
        walk: Walk::default(),
        edits: Vec::new(),
    };
    parser.message(shape, 0)?;
    parser.whitespace();
    if parser.position < bytes.len() {
        return Err(parser.error("trailing characters after the document"));
    }
    Ok(JsonScan {
        walk: parser.walk,
        edits: parser.edits,
    })
}

struct Parser<'a> {
    bytes: &'a [u8],
    position: usize,
    walk: Walk,
    edits: Vec<Edit>,
}

/// A JSON string as read: its length once unescaped, and whether it is valid text.
struct Text {
    decoded: usize,
    raw: Range<usize>,
    valid: bool,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> ScanError {
        ScanError(format!("{what} at byte {}", self.position))
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.position) {
            self.position += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.bytes.get(self.position).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.position += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", byte as char)))
        }
    }

    /// A message of `shape`, or `null`.
    fn message(&mut self, shape: &'static Shape, depth: usize) -> Result<(), ScanError> {
        if self.literal_null() {
            return Ok(());
        }
        if depth >= MAX_NESTING {
            return Err(self.error("nesting too deep"));
        }
        self.whitespace();
        let start = self.position;
        self.expect(b'{')?;
        self.walk.enter(shape, start)?;
        if self.peek() == Some(b'}') {
            self.position += 1;
        } else {
            loop {
                self.whitespace();
                let key_start = self.position;
                let key = self.string()?;
                self.expect(b':')?;
                let field = self.field_named(shape, &key)?;
                self.field_value(field, key_start, depth + 1)?;
                match self.peek() {
                    Some(b',') => self.position += 1,
                    Some(b'}') => {
                        self.position += 1;
                        break;
                    }
                    _ => return Err(self.error("expected `,` or `}`")),
                }
            }
        }
        self.walk.leave(shape, self.position);
        Ok(())
    }

    /// The field of `shape` a key names (keys with escapes are unescaped first).
    fn field_named(
        &mut self,
        shape: &'static Shape,
        key: &Text,
    ) -> Result<Option<&'static Field>, ScanError> {
        let raw = &self.bytes[key.raw.clone()];
        if !key.valid {
            // A key that is not text: the decoder refuses the object holding it.
            self.walk.fault("a key is not valid UTF-8".to_owned())?;
            return Ok(None);
        }
        if !raw.contains(&b'\\') {
            return Ok(shape.by_json(raw));
        }
        let quoted = &self.bytes[key.raw.start - 1..key.raw.end + 1];
        Ok(serde_json::from_slice::<String>(quoted)
            .ok()
            .and_then(|name| shape.by_json(name.as_bytes())))
    }

    fn field_value(
        &mut self,
        field: Option<&'static Field>,
        key_start: usize,
        depth: usize,
    ) -> Result<(), ScanError> {
        let Some(field) = field else {
            return self.any_value(depth);
        };
        match field.kind {
            Kind::Message(inner) => {
                if self.peek() == Some(b'[') {
                    self.array(depth, |parser, depth| parser.message(inner, depth))
                } else {
                    self.message(inner, depth)
                }
            }
            Kind::Text => {
                if self.peek() == Some(b'[') {
                    self.array(depth, |parser, _| parser.text_value(field))
                } else {
                    self.text_value(field)
                }
            }
            Kind::Bytes => {
                if self.peek() == Some(b'"') {
                    let text = self.string()?;
                    self.walk.bytes(text.decoded / 4 * 3 + 3);
                    Ok(())
                } else {
                    self.any_value(depth)
                }
            }
            Kind::Id(name) => {
                if self.peek() != Some(b'"') {
                    return self.any_value(depth);
                }
                let text = self.string()?;
                let raw = &self.bytes[text.raw.clone()];
                let digits = raw.strip_prefix(b"0x").unwrap_or(raw);
                self.walk.bytes(digits.len() / 2);
                if digits.len().is_multiple_of(2) && digits.iter().all(u8::is_ascii_hexdigit) {
                    Ok(())
                } else {
                    self.walk.fault(format!("{} is not hex", name.text()))
                }
            }
            Kind::Double => {
                if self.peek() != Some(b'"') {
                    return self.any_value(depth);
                }
                let text = self.string()?;
                let replacement = match &self.bytes[text.raw.clone()] {
                    b"NaN" => Some("\"stringValue\":\"NaN\""),
                    b"Infinity" => Some("\"stringValue\":\"inf\""),
                    b"-Infinity" => Some("\"stringValue\":\"-inf\""),
                    _ => None,
                };
                if let Some(replacement) = replacement {
                    self.edits.push(Edit {
                        range: key_start..text.raw.end + 1,
                        replacement,
                    });
                }
                self.walk.bytes(text.decoded);
                Ok(())
            }
            Kind::Numbers { .. } => {
                if self.peek() == Some(b'[') {
                    let mut count = 0;
                    self.array(depth, |parser, depth| {
                        count += 1;
                        parser.any_value(depth)
                    })?;
                    self.walk.numbers(count);
                    Ok(())
                } else {
                    self.any_value(depth)
                }
            }
            Kind::Scalar => self.any_value(depth),
        }
    }

    fn text_value(&mut self, field: &'static Field) -> Result<(), ScanError> {
        if self.literal_null() {
            return Ok(());
        }
        if self.peek() != Some(b'"') {
            // A number or object where text belongs: the decoder refuses it.
            return self.any_value(0);
        }
        let text = self.string()?;
        let raw = text.raw.len();
        self.walk.text(
            field,
            text.decoded,
            raw.saturating_sub(text.decoded),
            text.valid,
        )
    }

    fn array(
        &mut self,
        depth: usize,
        mut element: impl FnMut(&mut Self, usize) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        if depth >= MAX_NESTING {
            return Err(self.error("nesting too deep"));
        }
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.position += 1;
            return Ok(());
        }
        loop {
            element(self, depth + 1)?;
            match self.peek() {
                Some(b',') => self.position += 1,
                Some(b']') => {
                    self.position += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// Any value where the shape says nothing: counted as what a buffered copy costs.
    fn any_value(&mut self, depth: usize) -> Result<(), ScanError> {
        self.walk.tally.decoded = self.walk.tally.decoded.saturating_add(BYTES_PER_VALUE);
        match self.peek() {
            Some(b'{') => {
                if depth >= MAX_NESTING {
                    return Err(self.error("nesting too deep"));
                }
                self.position += 1;
                if self.peek() == Some(b'}') {
                    self.position += 1;
                    return Ok(());
                }
                loop {
                    let key = self.string()?;
                    self.walk.bytes(key.decoded);
                    if !key.valid {
                        self.walk.fault("a key is not valid UTF-8".to_owned())?;
                    }
                    self.expect(b':')?;
                    self.any_value(depth + 1)?;
                    match self.peek() {
                        Some(b',') => self.position += 1,
                        Some(b'}') => {
                            self.position += 1;
                            return Ok(());
                        }
                        _ => return Err(self.error("expected `,` or `}`")),
                    }
                }
            }
            Some(b'[') => self.array(depth, |parser, depth| parser.any_value(depth)),
            Some(b'"') => {
                let text = self.string()?;
                self.walk.bytes(text.decoded);
                if text.valid {
                    Ok(())
                } else {
                    self.walk.fault("a string is not valid UTF-8".to_owned())
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn literal_null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes[self.position..].starts_with(b"null") {
            self.position += 4;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        if self.bytes[self.position..].starts_with(word) {
            self.position += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.position;
        while let Some(b'0'..=b'9') = self.bytes.get(self.position) {
            self.position += 1;
        }
        self.position - start
    }

    fn number(&mut self) -> Result<(), ScanError> {
        if self.bytes.get(self.position) == Some(&b'-') {
            self.position += 1;
        }
        match self.bytes.get(self.position) {
            Some(b'0') => self.position += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.bytes.get(self.position) == Some(&b'.') {
            self.position += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.position) {
            self.position += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.position) {
                self.position += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        Ok(())
    }

    /// A string; `valid` is false for bytes that are not UTF-8 or an escaped lone
    /// surrogate, which the decoder refuses.
    fn string(&mut self) -> Result<Text, ScanError> {
        self.expect(b'"')?;
        let start = self.position;
        let mut decoded = 0;
        let mut valid = true;
        let mut plain_from = self.position;
        loop {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(self.error("unterminated string"));
            };
            match byte {
                b'"' => break,
                b'\\' => {
                    valid &= std::str::from_utf8(&self.bytes[plain_from..self.position]).is_ok();
                    self.position += 1;
                    let (length, ok) = self.escape()?;
                    decoded += length;
                    valid &= ok;
                    plain_from = self.position;
                }
                0x00..=0x1f => return Err(self.error("control character in a string")),
                _ => {
                    self.position += 1;
                    decoded += 1;
                }
            }
        }
        valid &= std::str::from_utf8(&self.bytes[plain_from..self.position]).is_ok();
        let raw = start..self.position;
        self.position += 1;
        Ok(Text {
            decoded,
            raw,
            valid,
        })
    }

    /// One escape after its backslash: its length once decoded, and whether it is valid
    /// text (a lone surrogate is not).
    fn escape(&mut self) -> Result<(usize, bool), ScanError> {
        let Some(&kind) = self.bytes.get(self.position) else {
            return Err(self.error("unterminated escape"));
        };
        self.position += 1;
        match kind {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok((1, true)),
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xd800..=0xdbff => {
                        if self.bytes[self.position..].starts_with(b"\\u") {
                            self.position += 2;
                            let low = self.hex4()?;
                            Ok((4, (0xdc00..=0xdfff).contains(&low)))
                        } else {
                            Ok((3, false))
                        }
                    }
                    0xdc00..=0xdfff => Ok((3, false)),
                    0..=0x7f => Ok((1, true)),
                    0x80..=0x7ff => Ok((2, true)),
                    _ => Ok((3, true)),
                }
            }
            _ => Err(self.error("invalid escape")),
        }
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let digits = self
            .bytes
            .get(self.position..self.position + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("invalid \\u escape"))?;
        let value = u32::from_str_radix(text, 16).map_err(|_| self.error("invalid \\u escape"))?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(self.error("invalid \\u escape"));
        }
        self.position += 4;
        Ok(value)
    }
}

#[cfg(test)]
#[path = "json_scan_tests.rs"]
mod tests;
