//! Decoding a consumer group member's assignment (the Kafka consumer protocol's
//! `ConsumerProtocolAssignment`): which topics and partitions the member owns. The bytes
//! come from the broker, so any input yields a result or `None`, never a panic.

/// Topics and partitions of one member's assignment.
pub type Assignment = Vec<(String, Vec<i32>)>;

/// Decodes `version: i16, [topic: string, [partition: i32]], user_data: bytes` (big
/// endian); the trailing user data is ignored. `None` when the bytes are malformed.
pub fn decode_assignment(bytes: &[u8]) -> Option<Assignment> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.i16()?;
    if version < 0 {
        return None;
    }
    let topics = reader.count()?;
    let mut assignment = Vec::new();
    for _ in 0..topics {
        let length = usize::try_from(reader.i16()?).ok()?;
        let name = String::from_utf8(reader.take(length)?.to_vec()).ok()?;
        let partitions = reader.count()?;
        let mut ids = Vec::new();
        for _ in 0..partitions {
            ids.push(reader.i32()?);
        }
        assignment.push((name, ids));
    }
    Some(assignment)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(length)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn i16(&mut self) -> Option<i16> {
        let bytes = self.take(2)?;
        Some(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        let bytes = self.take(4)?;
        Some(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// An array length; -1 (null) reads as empty; a length longer than the remaining
    /// bytes could hold is refused before anything is allocated.
    fn count(&mut self) -> Option<usize> {
        let count = self.i32()?;
        if count < 0 {
            return Some(0);
        }
        let count = usize::try_from(count).ok()?;
        (count <= self.bytes.len().saturating_sub(self.at)).then_some(count)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn encode(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut bytes = vec![0, 1];
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (name, partitions) in topics {
            bytes.extend((name.len() as i16).to_be_bytes());
            bytes.extend(name.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes());
        bytes
    }

    #[test]
    fn assignments_decode() {
        let good = encode(&[("orders", &[0, 2]), ("payments", &[1])]);
        let cases: Vec<(&str, Vec<u8>, Option<Assignment>)> = vec![
            (
                "two topics",
                good.clone(),
                Some(vec![
                    ("orders".into(), vec![0, 2]),
                    ("payments".into(), vec![1]),
                ]),
            ),
            ("no topics", encode(&[]), Some(vec![])),
            ("empty input", vec![], None),
            (
                "truncated inside a partition list",
                good[..good.len() - 7].to_vec(),
                None,
            ),
            ("negative version", vec![0xff, 0xff, 0, 0, 0, 0], None),
            (
                "absurd topic count is refused",
                vec![0, 1, 0x7f, 0xff, 0xff, 0xff],
                None,
            ),
            (
                "invalid utf-8 topic",
                vec![0, 1, 0, 0, 0, 1, 0, 1, 0xff, 0, 0, 0, 0],
                None,
            ),
        ];
        for (reason, bytes, expected) in cases {
            assert_eq!(decode_assignment(&bytes), expected, "{reason}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode_assignment(&bytes);
        }

        #[test]
        fn encoded_assignments_round_trip(
            topics in proptest::collection::vec(("[a-z.-]{1,20}", proptest::collection::vec(0i32..10_000, 0..8)), 0..6)
        ) {
            let borrowed: Vec<(&str, &[i32])> = topics.iter().map(|(t, p)| (t.as_str(), p.as_slice())).collect();
            let decoded = decode_assignment(&encode(&borrowed));
            proptest::prop_assert_eq!(decoded, Some(topics));
        }
    }

    #[test]
    fn no_prefix_of_a_valid_assignment_panics() {
        let good = encode(&[("orders", &[0, 1, 2]), ("x", &[])]);
        for end in 0..good.len() {
            let _ = decode_assignment(&good[..end]);
        }
        // And every single-byte corruption.
        for index in 0..good.len() {
            let mut bad = good.clone();
            bad[index] ^= 0xa5;
            let _ = decode_assignment(&bad);
        }
    }
}
