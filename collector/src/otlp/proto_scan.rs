//! The protobuf side of `request_cost`: a walk over the wire format that counts what
//! decoding will allocate without allocating it, and the rewrite that blanks rejected
//! spans so the rest of the request decodes.
//!
//! The walk reads tags and lengths only; it follows the fields its [`Shape`] knows into
//! their messages and skips the rest as prost does. Whatever it cannot read is an error
//! of the whole request, as it would be for prost.

use crate::otlp::message_shape::{Kind, Shape};
use crate::otlp::request_cost::{BadSpan, ScanError, Walk, escaped_bytes};

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const START_GROUP: u64 = 3;
const END_GROUP: u64 = 4;
const FIXED32: u64 = 5;

/// Walks the protobuf message `bytes` of `shape`.
pub fn scan(bytes: &[u8], shape: &'static Shape) -> Result<Walk, ScanError> {
    let mut walk = Walk::default();
    walk.enter(shape, 0)?;
    scan_fields(bytes, 0, shape, &mut walk)?;
    walk.leave(shape, bytes.len());
    Ok(walk)
}

fn scan_fields(
    bytes: &[u8],
    offset: usize,
    shape: &'static Shape,
    walk: &mut Walk,
) -> Result<(), ScanError> {
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let (number, wire_type) = reader.key()?;
        let kind = shape.by_number(number).map(|field| (field, field.kind));
        match wire_type {
            VARINT => {
                reader.varint()?;
                if let Some((_, Kind::Numbers { .. })) = kind {
                    walk.numbers(1);
                }
            }
            FIXED64 => {
                reader.take(8)?;
                if let Some((_, Kind::Numbers { .. })) = kind {
                    walk.numbers(1);
                }
            }
            FIXED32 => {
                reader.take(4)?;
            }
            LENGTH_DELIMITED => {
                let payload = reader.length_delimited()?;
                let start = offset + reader.position() - payload.len();
                match kind {
                    Some((_, Kind::Message(inner))) => {
                        walk.enter(inner, start)?;
                        scan_fields(payload, start, inner, walk)?;
                        walk.leave(inner, start + payload.len());
                    }
                    Some((field, Kind::Text)) => {
                        let valid = std::str::from_utf8(payload).is_ok();
                        walk.text(field, payload.len(), escaped_bytes(payload), valid)?;
                    }
                    Some((_, Kind::Bytes | Kind::Id(_))) => walk.bytes(payload.len()),
                    Some((_, Kind::Numbers { wire_bytes })) => {
                        walk.numbers(payload.len() / wire_bytes.max(1));
                    }
                    Some((_, Kind::Double | Kind::Scalar)) | None => {}
                }
            }
            START_GROUP => reader.skip_group(number)?,
            other => {
                return Err(ScanError(format!(
                    "invalid wire type {other} for field {number}"
                )));
            }
        }
    }
    Ok(())
}

/// Copies the request `bytes` of `shape` with each of the `bad` spans' payloads emptied:
/// the span stays in its place (so the others keep their indexes) with no ids, which the
/// conversion rejects.
pub fn blank_spans(bytes: &[u8], shape: &'static Shape, bad: &[BadSpan]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    // The scan read these bytes already: a failure here cannot happen, and would only
    // leave the copy shorter, which the decoder then refuses.
    let _ = copy_blanking(bytes, 0, shape, bad, &mut out);
    out
}

fn copy_blanking(
    bytes: &[u8],
    offset: usize,
    shape: &'static Shape,
    bad: &[BadSpan],
    out: &mut Vec<u8>,
) -> Result<(), ScanError> {
    let mut reader = Reader::new(bytes);
    while !reader.is_done() {
        let field_start = reader.position();
        let (number, wire_type) = reader.key()?;
        let inner = match (wire_type, shape.by_number(number).map(|f| f.kind)) {
            (LENGTH_DELIMITED, Some(Kind::Message(inner))) => inner,
            _ => {
                skip_value(&mut reader, number, wire_type)?;
                out.extend_from_slice(&bytes[field_start..reader.position()]);
                continue;
            }
        };
        let payload = reader.length_delimited()?;
        let start = offset + reader.position() - payload.len();
        let range = start..start + payload.len();
        let key_bytes = &bytes[field_start..field_start + key_length(number, wire_type)];
        if bad.iter().any(|span| span.range == range) {
            out.extend_from_slice(key_bytes);
            out.push(0);
        } else if bad
            .iter()
            .any(|span| range.start <= span.range.start && span.range.end <= range.end)
        {
            let mut copy = Vec::with_capacity(payload.len());
            copy_blanking(payload, start, inner, bad, &mut copy)?;
            out.extend_from_slice(key_bytes);
            put_varint(out, copy.len() as u64);
            out.extend_from_slice(&copy);
        } else {
            out.extend_from_slice(&bytes[field_start..reader.position()]);
        }
    }
    Ok(())
}

fn skip_value(reader: &mut Reader<'_>, number: u32, wire_type: u64) -> Result<(), ScanError> {
    match wire_type {
        VARINT => reader.varint().map(drop),
        FIXED64 => reader.take(8).map(drop),
        FIXED32 => reader.take(4).map(drop),
        LENGTH_DELIMITED => reader.length_delimited().map(drop),
        START_GROUP => reader.skip_group(number),
        other => Err(ScanError(format!(
            "invalid wire type {other} for field {number}"
        ))),
    }
}

fn key_length(number: u32, wire_type: u64) -> usize {
    varint_length((u64::from(number) << 3) | wire_type)
}

fn varint_length(mut value: u64) -> usize {
    let mut length = 1;
    while value >= 0x80 {
        value >>= 7;
        length += 1;
    }
    length
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads protobuf wire format.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, position: 0 }
    }

    fn is_done(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn position(&self) -> usize {
        self.position
    }

    fn varint(&mut self) -> Result<u64, ScanError> {
        let mut value = 0_u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(ScanError("truncated varint".into()));
            };
            self.position += 1;
            if shift == 63 && byte > 1 {
                return Err(ScanError("varint overflows 64 bits".into()));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ScanError("varint longer than 10 bytes".into()))
    }

    fn key(&mut self) -> Result<(u32, u64), ScanError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| (1..=0x1fff_ffff).contains(n))
            .ok_or_else(|| ScanError(format!("invalid field number in key {key}")))?;
        Ok((number, key & 7))
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], ScanError> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| ScanError("field runs past the end of its message".into()))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], ScanError> {
        let length = self.varint()?;
        let length =
            usize::try_from(length).map_err(|_| ScanError("field length overflows".into()))?;
        self.take(length)
    }

    /// Skips a group's fields up to its end tag (deprecated wire format, still skipped by
    /// prost when unknown).
    fn skip_group(&mut self, number: u32) -> Result<(), ScanError> {
        let mut open = vec![number];
        while let Some(&innermost) = open.last() {
            let (inner, wire_type) = self.key()?;
            match wire_type {
                END_GROUP if inner == innermost => {
                    open.pop();
                }
                END_GROUP => return Err(ScanError("unbalanced group end".into())),
                START_GROUP => {
                    if open.len() >= crate::otlp::request_cost::MAX_DEPTH {
                        return Err(ScanError("groups nested too deep".into()));
                    }
                    open.push(inner);
                }
                other => skip_value(self, inner, other)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "proto_scan_tests.rs"]
mod tests;
