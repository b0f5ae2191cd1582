//! Attribute filters: a blocked Bloom filter per run of [`RUN_SPANS`] consecutive span
//! rows, over every (attribute key, value) pair that the run's spans and their resources
//! carry, so that `flows --where key=value` reads only the runs that may hold the value
//! (migration 0008, `attribute_search`).
//!
//! A pair becomes one 64-bit hash ([`pair_hash`]). Its low bits choose a block of
//! [`BLOCK_BITS`] bits, its high bits the [`PROBES`] bits set inside that block, so a
//! lookup reads one block. The writer fills a filter of [`MAX_BLOCKS`] blocks while a run
//! is open, then halves it (OR-ing block `b + n/2` onto block `b`, which keeps every pair
//! findable at `hash mod n/2`) while the estimated false-positive rate stays under
//! [`TARGET_FALSE_POSITIVES`], and stores the non-zero blocks once the run is full.
//!
//! A write adds its pairs to every run its new rows fall in. A write that replaced rows in
//! place (a retry inside the open segment, see `segments`) also adds them to the stored
//! filters of that segment's runs, since the replaced rows may sit in any of them.
//!
//! The pairs are those the text search looks for (`attribute_search`): a string value by
//! its text, any other value by its JSON text, and the pairs inside object values (and
//! objects inside arrays) as pairs of their own. The hash is our own and must never change:
//! stored filters depend on it.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, Transaction};

use crate::error::StorageError;
use serde_json::{Map, Value};

/// Bits per block (256 bytes).
pub(crate) const BLOCK_BITS: usize = 2048;
const BLOCK_BYTES: usize = BLOCK_BITS / 8;
/// Bits set per pair, all in the pair's block.
const PROBES: u32 = 6;
/// Blocks of an open run's filter (256 KiB): room for about 170,000 distinct pairs at 1%
/// false positives, 17 per span of a 10,000-span run.
pub(crate) const MAX_BLOCKS: usize = 1024;
/// Span rows per filtered run.
pub const RUN_SPANS: i64 = 10_000;
/// The false-positive rate a stored filter is halved down to.
const TARGET_FALSE_POSITIVES: f64 = 0.01;

/// Tag before a string value's text, so `"12"` and `12` hash apart.
const STRING_TAG: u8 = b's';
/// Tag before any other value's JSON text.
const JSON_TAG: u8 = b'j';

/// The hash of one attribute pair: `key` with a string value `text`, or with another value
/// whose JSON text is `text`.
pub(crate) fn pair_hash(key: &str, string_value: bool, text: &str) -> u64 {
    pair_hash_bytes(key, string_value, text.as_bytes())
}

fn pair_hash_bytes(key: &str, string_value: bool, text: &[u8]) -> u64 {
    let mut hasher = Hasher::default();
    hasher.write(key.as_bytes());
    hasher.write(&[0, if string_value { STRING_TAG } else { JSON_TAG }]);
    hasher.write(text);
    hasher.finish()
}

/// The hashes of every pair in `attributes` (see the module header), appended to `out`.
pub(crate) fn push_pair_hashes(attributes: &Map<String, Value>, out: &mut Vec<u64>) {
    let mut text = Vec::new();
    push_map(attributes, out, &mut text);
}

fn push_map(map: &Map<String, Value>, out: &mut Vec<u64>, text: &mut Vec<u8>) {
    for (key, value) in map {
        match value {
            Value::String(string) => out.push(pair_hash(key, true, string)),
            other => {
                text.clear();
                // Writing a JSON value to memory cannot fail.
                if serde_json::to_writer(&mut *text, other).is_ok() {
                    out.push(pair_hash_bytes(key, false, text));
                }
                push_nested(other, out, text);
            }
        }
    }
}

fn push_nested(value: &Value, out: &mut Vec<u64>, text: &mut Vec<u8>) {
    match value {
        Value::Object(map) => push_map(map, out, text),
        Value::Array(items) => {
            for item in items {
                if matches!(item, Value::Object(_) | Value::Array(_)) {
                    push_nested(item, out, text);
                }
            }
        }
        _ => {}
    }
}

/// The hashes of every pair in a JSON object's text, as the store keeps attributes and
/// resources; nothing for text that is not an object.
pub(crate) fn push_text_pair_hashes(json: &str, out: &mut Vec<u64>) {
    if let Ok(map) = serde_json::from_str::<Map<String, Value>>(json) {
        push_pair_hashes(&map, out);
    }
}

/// Word-at-a-time multiplicative hash with a murmur3 finaliser. Stable across builds and
/// platforms (unlike the standard library's hasher), fast on short keys.
#[derive(Debug, Default)]
struct Hasher {
    state: u64,
    length: u64,
}

impl Hasher {
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut array = [0u8; 8];
            array.copy_from_slice(word);
            self.mix(u64::from_le_bytes(array));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut array = [0u8; 8];
            array[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(array) ^ ((rest.len() as u64) << 56));
        }
        self.length = self.length.wrapping_add(bytes.len() as u64);
    }

    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word)
            .wrapping_mul(Self::MULTIPLIER)
            .rotate_left(29);
    }

    fn finish(&self) -> u64 {
        let mut hash = self.state ^ self.length;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

/// The block a pair lives in, among `blocks` (a power of two).
pub(crate) fn block_of(hash: u64, blocks: usize) -> usize {
    (hash as usize) & (blocks - 1)
}

/// The bits a pair sets inside its block.
fn probe_bits(hash: u64) -> impl Iterator<Item = usize> {
    let high = (hash >> 32) as u32;
    let start = high as usize % BLOCK_BITS;
    let step = ((high >> 11) | 1) as usize;
    (0..PROBES as usize).map(move |i| (start + i * step) % BLOCK_BITS)
}

/// Whether a stored block (`bits`, [`BLOCK_BYTES`] long) may hold the pair `hash`.
pub(crate) fn block_may_hold(bits: &[u8], hash: u64) -> bool {
    bits.len() == BLOCK_BYTES && probe_bits(hash).all(|bit| bits[bit / 8] & (1 << (bit % 8)) != 0)
}

/// The rows a write added: `after` is the highest rowid before it, `newest` after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub after: i64,
    pub newest: i64,
    /// Whether the write replaced rows in place (it wrote more rows than it added).
    pub replaced: bool,
    /// The first rowid of the segment the write went to.
    pub segment_first_rowid: i64,
}

/// The filter of the run being filled, kept by the span writer.
#[derive(Debug, Clone)]
pub(crate) struct RunFilter {
    /// The run's first rowid; `None` before the first span.
    first_rowid: Option<i64>,
    /// Span rows per run (normally [`RUN_SPANS`]; tests use fewer).
    run_spans: i64,
    bits: Vec<u8>,
}

impl RunFilter {
    /// The filter of the run holding `newest` (the highest stored rowid, 0 for none), empty.
    pub(crate) fn new(newest: i64, run_spans: i64) -> RunFilter {
        let run_spans = run_spans.max(1);
        RunFilter {
            first_rowid: (newest > 0).then(|| run_start(newest, run_spans)),
            run_spans,
            bits: vec![0; MAX_BLOCKS * BLOCK_BYTES],
        }
    }

    /// The filter of the newest run of rows, holding the pairs of the rows it already has
    /// (after a restart), so that the filter stored when it is full misses none.
    pub(crate) fn open(connection: &Connection, run_spans: i64) -> Result<RunFilter, StorageError> {
        let newest: i64 = connection
            .query_row("SELECT coalesce(max(rowid), 0) FROM spans", [], |row| {
                row.get(0)
            })
            .map_err(StorageError::from_write)?;
        let mut filter = RunFilter::new(newest, run_spans);
        let Some(first_rowid) = filter.first_rowid() else {
            return Ok(filter);
        };
        let mut statement = connection
            .prepare("SELECT attributes, resource FROM spans WHERE rowid >= ?")
            .map_err(StorageError::from_write)?;
        let mut rows = statement
            .query([first_rowid])
            .map_err(StorageError::from_write)?;
        let mut pairs = Vec::new();
        let mut last_resource = String::new();
        while let Some(row) = rows.next().map_err(StorageError::from_write)? {
            let attributes: String = row.get(0).map_err(StorageError::from_write)?;
            let resource: String = row.get(1).map_err(StorageError::from_write)?;
            pairs.clear();
            push_text_pair_hashes(&attributes, &mut pairs);
            if resource != last_resource {
                push_text_pair_hashes(&resource, &mut pairs);
                last_resource = resource;
            }
            filter.add(&pairs);
        }
        Ok(filter)
    }

    /// The first rowid of the run being filled.
    pub(crate) fn first_rowid(&self) -> Option<i64> {
        self.first_rowid
    }

    /// Adds pairs by their hashes.
    pub(crate) fn add(&mut self, hashes: &[u64]) {
        for &hash in hashes {
            let base = block_of(hash, MAX_BLOCKS) * BLOCK_BYTES;
            for bit in probe_bits(hash) {
                self.bits[base + bit / 8] |= 1 << (bit % 8);
            }
        }
    }

    fn restart(&mut self, first_rowid: i64) {
        self.first_rowid = Some(first_rowid);
        self.bits.fill(0);
    }

    /// Within the writer's transaction, after its inserts: stores the filters of the runs
    /// this write filled, and adds its pairs (`pairs`) where rows they may be in are
    /// filtered. Returns the filter to keep once the transaction has committed (the
    /// writer's own stays as it was if the transaction fails).
    pub(crate) fn stage(
        &self,
        transaction: &Transaction<'_>,
        written: Written,
        pairs: &[&[u64]],
    ) -> rusqlite::Result<RunFilter> {
        let mut next = self.clone();
        let add_all = |filter: &mut RunFilter| {
            for hashes in pairs {
                filter.add(hashes);
            }
        };
        if written.newest > written.after {
            let first_new = written.after + 1;
            let start = run_start(first_new, next.run_spans);
            match next.first_rowid {
                Some(open) if open > first_new => {
                    // Rowids started over (retention emptied the table): the stored
                    // filters from here on describe rows that are gone.
                    transaction
                        .prepare_cached(
                            "DELETE FROM attribute_filter_blocks WHERE first_rowid >= ?",
                        )?
                        .execute([start])?;
                    transaction
                        .prepare_cached("DELETE FROM attribute_filter_runs WHERE first_rowid >= ?")?
                        .execute([start])?;
                    next.restart(start);
                }
                Some(open) if open + next.run_spans <= first_new => {
                    // The open run was full; this write starts the next one.
                    next.store(transaction, open, open + next.run_spans - 1)?;
                    next.restart(start);
                }
                Some(_) => {}
                None => next.restart(start),
            }
            add_all(&mut next);
            while let Some(open) = next.first_rowid
                && open + next.run_spans <= written.newest
            {
                next.store(transaction, open, open + next.run_spans - 1)?;
                next.restart(open + next.run_spans);
                add_all(&mut next);
            }
        } else {
            add_all(&mut next);
        }
        if written.replaced {
            let below = next.first_rowid.unwrap_or(i64::MAX);
            add_to_stored(transaction, written.segment_first_rowid, below, pairs)?;
        }
        Ok(next)
    }

    /// The filter as it is stored: halved while its estimated false-positive rate stays
    /// under [`TARGET_FALSE_POSITIVES`]. Returns the number of blocks and the blocks.
    pub(crate) fn folded(&self) -> (usize, Vec<u8>) {
        let mut bits = self.bits.clone();
        let mut blocks = MAX_BLOCKS;
        while blocks > 1 && false_positive_rate(&bits, blocks / 2) <= TARGET_FALSE_POSITIVES {
            let half = blocks / 2 * BLOCK_BYTES;
            let (low, high) = bits.split_at_mut(half);
            for (low, high) in low.iter_mut().zip(high.iter()) {
                *low |= *high;
            }
            bits.truncate(half);
            blocks /= 2;
        }
        (blocks, bits)
    }

    /// Stores the filter as that of rows `first_rowid..=last_rowid`.
    fn store(
        &self,
        transaction: &Transaction<'_>,
        first_rowid: i64,
        last_rowid: i64,
    ) -> rusqlite::Result<()> {
        let (blocks, bits) = self.folded();
        transaction
            .prepare_cached("DELETE FROM attribute_filter_blocks WHERE first_rowid = ?")?
            .execute([first_rowid])?;
        let mut insert = transaction.prepare_cached(
            "INSERT INTO attribute_filter_blocks (first_rowid, block, bits) VALUES (?, ?, ?)",
        )?;
        for (block, bits) in bits.chunks_exact(BLOCK_BYTES).enumerate() {
            if bits.iter().any(|byte| *byte != 0) {
                insert.execute(rusqlite::params![first_rowid, block as i64, bits])?;
            }
        }
        transaction
            .prepare_cached(
                "INSERT OR REPLACE INTO attribute_filter_runs (first_rowid, last_rowid, blocks) \
                 VALUES (?, ?, ?)",
            )?
            .execute(rusqlite::params![first_rowid, last_rowid, blocks as i64])?;
        Ok(())
    }
}

/// The first rowid of the run holding `rowid`.
fn run_start(rowid: i64, run_spans: i64) -> i64 {
    (rowid - 1).div_euclid(run_spans) * run_spans + 1
}

/// Adds `pairs` to the stored filters of the runs from the one holding `from_rowid` up to
/// (not including) the run starting at `below`: rows replaced in place may sit in any.
fn add_to_stored(
    transaction: &Transaction<'_>,
    from_rowid: i64,
    below: i64,
    pairs: &[&[u64]],
) -> rusqlite::Result<()> {
    let runs: Vec<(i64, i64)> = transaction
        .prepare_cached(
            "SELECT first_rowid, blocks FROM attribute_filter_runs \
             WHERE last_rowid >= ? AND first_rowid < ?",
        )?
        .query_map([from_rowid, below], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut read = transaction
        .prepare_cached("SELECT block, bits FROM attribute_filter_blocks WHERE first_rowid = ?")?;
    let mut write = transaction.prepare_cached(
        "INSERT OR REPLACE INTO attribute_filter_blocks (first_rowid, block, bits) VALUES (?, ?, ?)",
    )?;
    for (first_rowid, blocks) in runs {
        let blocks = usize::try_from(blocks).unwrap_or(1).max(1);
        let mut stored: HashMap<usize, Vec<u8>> = read
            .query_map([first_rowid], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?
            .filter_map(|row| match row {
                Ok((block, bits)) => usize::try_from(block).ok().map(|block| Ok((block, bits))),
                Err(error) => Some(Err(error)),
            })
            .collect::<Result<_, _>>()?;
        let mut changed = HashSet::new();
        for &hash in pairs.iter().flat_map(|hashes| hashes.iter()) {
            let block = block_of(hash, blocks);
            let bits = stored.entry(block).or_insert_with(|| vec![0; BLOCK_BYTES]);
            if bits.len() != BLOCK_BYTES {
                // Not a block this build wrote: saturate it rather than miss a value.
                *bits = vec![0xff; BLOCK_BYTES];
            }
            for bit in probe_bits(hash) {
                bits[bit / 8] |= 1 << (bit % 8);
            }
            changed.insert(block);
        }
        for block in changed {
            if let Some(bits) = stored.get(&block) {
                write.execute(rusqlite::params![first_rowid, block as i64, bits])?;
            }
        }
    }
    Ok(())
}

/// Forgets the filters of runs whose rows retention deleted.
pub(crate) const FORGET_DELETED_FILTERS: [&str; 2] = [
    "DELETE FROM attribute_filter_blocks WHERE first_rowid IN (SELECT first_rowid FROM \
     attribute_filter_runs WHERE last_rowid < (SELECT min(rowid) FROM spans))",
    "DELETE FROM attribute_filter_runs WHERE last_rowid < (SELECT min(rowid) FROM spans)",
];

/// The false-positive rate of `bits` (a filter of some power-of-two number of blocks) once
/// folded to `blocks` blocks, estimated from how many distinct pairs its fill implies.
fn false_positive_rate(bits: &[u8], blocks: usize) -> f64 {
    let set: u64 = bits.iter().map(|byte| u64::from(byte.count_ones())).sum();
    let total = (bits.len() * 8) as f64;
    let fill = set as f64 / total;
    if fill >= 1.0 {
        return 1.0;
    }
    let probes = f64::from(PROBES);
    // Distinct pairs, from the fill of the unfolded filter.
    let pairs = -(total / probes) * (1.0 - fill).ln();
    let folded = (blocks * BLOCK_BITS) as f64;
    (1.0 - (-probes * pairs / folded).exp()).powf(probes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn stored_may_hold((blocks, bits): &(usize, Vec<u8>), hash: u64) -> bool {
        let block = block_of(hash, *blocks);
        block_may_hold(&bits[block * BLOCK_BYTES..(block + 1) * BLOCK_BYTES], hash)
    }

    #[test]
    fn the_hash_is_stable() {
        // Stored filters depend on these values: a change here makes them useless.
        assert_eq!(
            pair_hash("payment.method", true, "card"),
            0x5260_2d3a_e3cf_346c
        );
        assert_eq!(pair_hash("qty", false, "12"), 0xf1bc_d203_5725_2b99);
    }

    #[test]
    fn pairs_are_the_values_the_text_search_matches() {
        let attributes = json!({
            "payment.method": "card",
            "qty": 12,
            "ok": true,
            "shipping": {"carrier": "dhl", "boxes": [{"size": "m"}]},
        });
        let mut hashes = Vec::new();
        push_pair_hashes(attributes.as_object().unwrap(), &mut hashes);
        let cases = [
            (
                pair_hash("payment.method", true, "card"),
                "a string by its text",
            ),
            (pair_hash("qty", false, "12"), "a number by its JSON text"),
            (pair_hash("ok", false, "true"), "a boolean"),
            (
                pair_hash("carrier", true, "dhl"),
                "a pair inside an object value",
            ),
            (
                pair_hash("size", true, "m"),
                "a pair inside an object in an array",
            ),
            (
                pair_hash(
                    "shipping",
                    false,
                    r#"{"boxes":[{"size":"m"}],"carrier":"dhl"}"#,
                ),
                "an object value by its JSON text",
            ),
        ];
        for (hash, reason) in cases {
            assert!(hashes.contains(&hash), "{reason}");
        }
        assert!(
            !hashes.contains(&pair_hash("qty", true, "12")),
            "a number is not its string"
        );
        let mut from_text = Vec::new();
        push_text_pair_hashes(&attributes.to_string(), &mut from_text);
        hashes.sort_unstable();
        from_text.sort_unstable();
        assert_eq!(hashes, from_text, "stored text hashes as the record did");
    }

    #[test]
    fn every_added_pair_is_found_after_folding_and_few_others_are() {
        for pairs in [1u64, 1_000, 150_000] {
            let mut filter = RunFilter::new(0, RUN_SPANS);
            let hashes: Vec<u64> = (0..pairs)
                .map(|n| pair_hash("order.id", true, &n.to_string()))
                .collect();
            filter.add(&hashes);
            let stored = filter.folded();
            for hash in &hashes {
                assert!(stored_may_hold(&stored, *hash), "{pairs} pairs: no miss");
            }
            if pairs <= 1_000 {
                assert!(stored.0 < MAX_BLOCKS, "{pairs} pairs fold");
            }
            let absent = 20_000;
            let false_positives = (0..absent)
                .filter(|n| stored_may_hold(&stored, pair_hash("order.id", true, &format!("x{n}"))))
                .count();
            let rate = false_positives as f64 / f64::from(absent);
            assert!(rate < 0.03, "{pairs} pairs: false positives {rate}");
        }
    }

    #[test]
    fn an_empty_filter_folds_to_one_empty_block() {
        let filter = RunFilter::new(0, RUN_SPANS);
        let stored = filter.folded();
        assert_eq!(stored.0, 1);
        assert!(stored.1.iter().all(|byte| *byte == 0));
        assert!(!stored_may_hold(&stored, pair_hash("a", true, "b")));
    }
}
