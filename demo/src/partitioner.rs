//! Kafka's default partitioner for keyed records: murmur2 of the key bytes, made
//! positive, modulo the partition count. Keeping it means a key lands on the same
//! partition in the embedded bus as it does on a real broker.

/// The murmur2 hash as Kafka's Java client computes it (seed `0x9747b28c`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut hash = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M);
        hash ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        hash ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        hash ^= u32::from(tail[1]) << 8;
    }
    if let Some(first) = tail.first() {
        hash ^= u32::from(*first);
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash as i32
}

/// The partition, out of `partitions` (at least one), that Kafka picks for `key`.
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    let positive = (murmur2(key) & 0x7fff_ffff) as usize;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // (key, hash from Kafka's own partitioner tests, why the case is here)
        let cases: [(&[u8], i32, &str); 6] = [
            (b"21", -973_932_308, "two bytes: tail only"),
            (b"foobar", -790_332_482, "one block and a two-byte tail"),
            (
                b"a-little-bit-long-string",
                -985_981_536,
                "whole blocks, no tail",
            ),
            (
                b"a-little-bit-longer-string",
                -1_486_304_829,
                "blocks and a two-byte tail",
            ),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
                "long key",
            ),
            (b"abc", 479_470_107, "three-byte tail"),
        ];
        for (key, expected, why) in cases {
            assert_eq!(murmur2(key), expected, "{why}");
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for partitions in 1..8 {
            for key in ["ord-1", "ord-1042", "", "x"] {
                let first = partition_for_key(key.as_bytes(), partitions);
                assert!(first < partitions);
                assert_eq!(first, partition_for_key(key.as_bytes(), partitions));
            }
        }
    }
}
