//! What an export request will cost in memory, worked out from its bytes before it is
//! decoded, and which of its spans must be rejected on their own.
//!
//! A decoded request is far larger than its encoding: an empty span is two bytes of
//! protobuf (or `{},` of JSON) and a few hundred bytes once decoded, so a 20 MiB body of
//! them would take gigabytes. The scans (`proto_scan`, `json_scan`) walk the bytes with
//! the request's [`Shape`], counting messages, texts and numbers as they go; [`Walk`]
//! turns those counts into an upper bound on what decoding, and then converting the spans
//! for the store, will allocate. The receivers charge that bound to the memory budget
//! before decoding anything.
//!
//! The same walk notes the spans that cannot be decoded as they are (a string that is not
//! UTF-8, a JSON id that is not hex) so that they alone are rejected: the receiver blanks
//! them before decoding, the conversion rejects the blank spans, and [`BadSpan::explain`]
//! puts the real reason back into the reply.

use std::ops::Range;

use causeway_storage::EncodedSpans;

use crate::otlp::convert::Rejections;
use crate::otlp::message_shape::{Field, Role, Shape};

/// Allocator bookkeeping and rounding assumed for every heap allocation.
const ALLOCATION_OVERHEAD: usize = 16;
/// Deepest nesting of messages accepted (prost's own limit on decoding).
pub const MAX_DEPTH: usize = 100;
/// Longest service name a span copies from its resource (attribute values are cut there).
const MAX_SERVICE_NAME_BYTES: usize = crate::otlp::attribute_value::MAX_ATTRIBUTE_VALUE_BYTES;
/// What one message or value adds to a span's stored JSON besides its texts: quotes,
/// colons, brackets, and numbers written out.
const JSON_BYTES_PER_NODE: usize = 48;
/// How many times a span's texts may be held once converted: the attribute JSON, the
/// messaging columns copied out of the attributes, and the correlation and topology keys.
const TEXT_COPIES: usize = 3;
/// What escaping may add per byte that JSON escapes (`\u0001` for one byte).
const ESCAPE_GROWTH: usize = 5;

/// Why a request cannot be scanned: it is not a valid request in its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScanError(pub String);

/// Where a span sits in its request, as the conversion names it in rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanPlace {
    /// Index in `resource_spans`.
    pub resource: usize,
    /// Index in `scope_spans`.
    pub scope: usize,
    /// Index in `spans`.
    pub span: usize,
}

impl std::fmt::Display for SpanPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resource_spans[{}].scope_spans[{}].spans[{}]",
            self.resource, self.scope, self.span
        )
    }
}

/// A span that is rejected before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSpan {
    /// Where it is.
    pub place: SpanPlace,
    /// Why it is rejected.
    pub reason: String,
    /// Its bytes in the (decompressed) body: the protobuf message's payload, or the JSON
    /// object from `{` to `}`.
    pub range: Range<usize>,
}

impl BadSpan {
    /// Puts the reasons of `bad` spans into `rejections`, in place of what the conversion
    /// said about their blanked copies (their ids are missing).
    pub fn explain(bad: &[BadSpan], rejections: &mut Rejections) {
        for span in bad {
            let prefix = format!("{}: ", span.place);
            for message in &mut rejections.messages {
                if message.starts_with(&prefix) {
                    *message = format!("{prefix}{}", span.reason);
                }
            }
        }
    }
}

/// Counts gathered by a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Bytes the decoded request occupies, at most.
    pub decoded: usize,
    /// Spans.
    pub spans: usize,
    /// Links.
    pub links: usize,
    /// Bytes of text and bytes values.
    pub text: usize,
    /// Text bytes that JSON escapes.
    pub escapes: usize,
    /// Messages, each a value or a structure in the stored JSON.
    pub nodes: usize,
    /// Bytes of the service and scope names every span copies.
    pub name_copies: usize,
}

impl Tally {
    /// At most what the request's accepted spans take once converted for the store.
    pub fn encoded_spans(&self) -> usize {
        rows(self.spans, EncodedSpans::SPAN_ROW_BYTES)
            .saturating_add(self.spans.saturating_mul(8 * ALLOCATION_OVERHEAD))
            .saturating_add(rows(self.links, EncodedSpans::LINK_ROW_BYTES))
            .saturating_add(self.links.saturating_mul(2 * ALLOCATION_OVERHEAD))
            .saturating_add(self.text.saturating_mul(TEXT_COPIES))
            .saturating_add(self.escapes.saturating_mul(ESCAPE_GROWTH))
            .saturating_add(self.nodes.saturating_mul(JSON_BYTES_PER_NODE))
            .saturating_add(self.name_copies)
    }
}

/// What a vector of `count` rows of `size` bytes, filled one row at a time, may hold at
/// its peak: its capacity doubles as it grows (a power of two, at least 4), and while it
/// grows the old buffer and the new one are both held.
fn rows(count: usize, size: usize) -> usize {
    if count == 0 {
        return 0;
    }
    let capacity = count
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
        .max(4);
    capacity.saturating_mul(size).saturating_mul(3) / 2
}

/// The state of one scan: where it is in the request and what it has counted.
#[derive(Debug, Default)]
pub struct Walk {
    /// What was counted.
    pub tally: Tally,
    /// Spans to reject on their own.
    pub bad_spans: Vec<BadSpan>,
    /// The roles of the messages being walked, outermost first.
    roles: Vec<Role>,
    resources: usize,
    scopes: usize,
    spans: usize,
    /// The span being walked: where it starts and the first problem found in it.
    span: Option<(SpanPlace, usize, Option<String>)>,
    /// Longest text of the current resource's attributes.
    resource_text: usize,
    spans_in_resource: usize,
    scope_name: usize,
    spans_in_scope: usize,
}

impl Walk {
    /// A message of `shape` starts at byte `start`.
    pub fn enter(&mut self, shape: &Shape, start: usize) -> Result<(), ScanError> {
        if self.roles.len() >= MAX_DEPTH {
            return Err(ScanError(format!(
                "messages nested deeper than {MAX_DEPTH} levels"
            )));
        }
        self.tally.decoded = self
            .tally
            .decoded
            .saturating_add(2 * shape.size + ALLOCATION_OVERHEAD);
        self.tally.nodes += 1;
        match shape.role {
            Role::ResourceSpans => {
                self.scopes = 0;
                self.resource_text = 0;
                self.spans_in_resource = 0;
            }
            Role::ScopeSpans => {
                self.spans = 0;
                self.scope_name = 0;
                self.spans_in_scope = 0;
            }
            Role::Span => {
                let place = SpanPlace {
                    resource: self.resources,
                    scope: self.scopes,
                    span: self.spans,
                };
                self.span = Some((place, start, None));
                self.tally.spans += 1;
                self.spans_in_resource += 1;
                self.spans_in_scope += 1;
            }
            Role::Link => self.tally.links += 1,
            Role::Plain | Role::Resource | Role::Scope => {}
        }
        self.roles.push(shape.role);
        Ok(())
    }

    /// The message of `shape` entered last ends at byte `end`.
    pub fn leave(&mut self, shape: &Shape, end: usize) {
        self.roles.pop();
        match shape.role {
            Role::ResourceSpans => {
                let name = self.resource_text.min(MAX_SERVICE_NAME_BYTES);
                self.tally.name_copies = self
                    .tally
                    .name_copies
                    .saturating_add(self.spans_in_resource.saturating_mul(name));
                self.resources += 1;
            }
            Role::ScopeSpans => {
                self.tally.name_copies = self
                    .tally
                    .name_copies
                    .saturating_add(self.spans_in_scope.saturating_mul(self.scope_name));
                self.scopes += 1;
            }
            Role::Span => {
                if let Some((place, start, Some(reason))) = self.span.take() {
                    self.bad_spans.push(BadSpan {
                        place,
                        reason,
                        range: start..end,
                    });
                }
                self.spans += 1;
            }
            Role::Plain | Role::Resource | Role::Scope | Role::Link => {}
        }
    }

    /// A text `field` of `len` bytes (decoded), `escapes` of which JSON escapes; `valid`
    /// is false when it is not UTF-8.
    pub fn text(
        &mut self,
        field: &Field,
        len: usize,
        escapes: usize,
        valid: bool,
    ) -> Result<(), ScanError> {
        self.bytes(len);
        self.tally.escapes = self.tally.escapes.saturating_add(escapes);
        if self.roles.contains(&Role::Resource) {
            self.resource_text = self.resource_text.max(len);
        }
        if self.roles.last() == Some(&Role::Scope) && field.number == 1 {
            self.scope_name = len;
        }
        if valid {
            Ok(())
        } else {
            self.fault(format!("{} is not valid UTF-8", field.json))
        }
    }

    /// A bytes value (or id) of `len` bytes once decoded.
    pub fn bytes(&mut self, len: usize) {
        self.tally.decoded = self
            .tally
            .decoded
            .saturating_add(len.saturating_add(ALLOCATION_OVERHEAD));
        self.tally.text = self.tally.text.saturating_add(len);
    }

    /// `count` repeated numbers.
    pub fn numbers(&mut self, count: usize) {
        self.tally.decoded = self
            .tally
            .decoded
            .saturating_add(count.saturating_mul(16).saturating_add(ALLOCATION_OVERHEAD));
    }

    /// Something that cannot be decoded: the span being walked is rejected for it, and
    /// outside a span the whole request is.
    pub fn fault(&mut self, reason: String) -> Result<(), ScanError> {
        match &mut self.span {
            Some((_, _, problem)) if self.roles.contains(&Role::Span) => {
                problem.get_or_insert(reason);
                Ok(())
            }
            _ => Err(ScanError(reason)),
        }
    }

    /// Whether a span is being walked.
    pub fn in_span(&self) -> bool {
        self.roles.contains(&Role::Span)
    }
}

/// How many bytes of `text` JSON escapes.
pub fn escaped_bytes(text: &[u8]) -> usize {
    text.iter()
        .filter(|&&b| b < 0x20 || b == b'"' || b == b'\\')
        .count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn places_read_as_the_conversion_writes_them() {
        let place = SpanPlace {
            resource: 1,
            scope: 0,
            span: 7,
        };
        assert_eq!(
            place.to_string(),
            "resource_spans[1].scope_spans[0].spans[7]"
        );
    }

    #[test]
    fn explained_spans_get_their_reason_back() {
        let bad = [BadSpan {
            place: SpanPlace {
                resource: 0,
                scope: 0,
                span: 2,
            },
            reason: "name is not valid UTF-8".into(),
            range: 0..1,
        }];
        let mut rejections = Rejections {
            count: 2,
            messages: vec![
                "resource_spans[0].scope_spans[0].spans[1]: invalid span id: x".into(),
                "resource_spans[0].scope_spans[0].spans[2]: invalid trace id: y".into(),
            ],
        };
        BadSpan::explain(&bad, &mut rejections);
        assert_eq!(
            rejections.messages,
            [
                "resource_spans[0].scope_spans[0].spans[1]: invalid span id: x",
                "resource_spans[0].scope_spans[0].spans[2]: name is not valid UTF-8",
            ]
        );
    }

    #[test]
    fn escaped_bytes_are_controls_quotes_and_backslashes() {
        assert_eq!(escaped_bytes(b"plain text"), 0);
        assert_eq!(escaped_bytes(b"a\"b\\c\x01\n"), 4);
    }
}
