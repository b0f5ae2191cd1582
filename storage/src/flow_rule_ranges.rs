//! How a flow rule pass splits the spans stored since its cursor into ranges it reads one
//! at a time: by rowid on SQLite, by writing transaction on PostgreSQL.

/// The ranges `(after, through]` of rowids `after + 1 ..= end`, in order, each
/// `width` rowids wide or less (SQLite: every rowid is one row).
pub(crate) fn chunk_ranges(after: i64, end: i64, width: usize) -> impl Iterator<Item = (i64, i64)> {
    let width = i64::try_from(width.max(1)).unwrap_or(i64::MAX);
    let mut from = after;
    std::iter::from_fn(move || {
        (from < end).then(|| {
            let through = from.saturating_add(width).min(end);
            let range = (from, through);
            from = through;
            range
        })
    })
}

/// The ranges `(after, through]` of transaction ids covering `counts` ((transaction id,
/// rows it wrote), ascending, all after `after`): a range holds whole transactions, up to
/// `chunk_rows` rows unless one transaction alone wrote more; the ranges stop once they hold
/// `max_rows` rows (PostgreSQL).
pub(crate) fn transaction_ranges(
    after: i64,
    counts: &[(i64, i64)],
    chunk_rows: usize,
    max_rows: usize,
) -> Vec<(i64, i64)> {
    let chunk_rows = i64::try_from(chunk_rows.max(1)).unwrap_or(i64::MAX);
    let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
    let mut ranges = Vec::new();
    let mut from = after;
    let mut in_range = 0i64;
    let mut total = 0i64;
    let mut last = after;
    for &(xid, rows) in counts {
        if total >= max_rows {
            break;
        }
        if in_range > 0 && in_range.saturating_add(rows) > chunk_rows {
            ranges.push((from, last));
            from = last;
            in_range = 0;
        }
        in_range = in_range.saturating_add(rows);
        total = total.saturating_add(rows);
        last = xid;
    }
    if in_range > 0 {
        ranges.push((from, last));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_ranges_cover_every_rowid_after_the_cursor_once() {
        assert_eq!(chunk_ranges(5, 5, 10).count(), 0, "nothing new");
        assert_eq!(
            chunk_ranges(7, 3, 10).count(),
            0,
            "a cursor past the newest row"
        );
        assert_eq!(chunk_ranges(0, 1, 10).collect::<Vec<_>>(), [(0, 1)]);
        assert_eq!(
            chunk_ranges(10, 33, 10).collect::<Vec<_>>(),
            [(10, 20), (20, 30), (30, 33)]
        );
    }

    #[test]
    fn postgres_ranges_hold_whole_transactions() {
        assert!(
            transaction_ranges(4, &[], 10, 100).is_empty(),
            "nothing new"
        );
        // Transactions 5 (4 rows), 7 (5), 9 (3), 12 (30: more than a range alone), 13 (1).
        let counts = [(5, 4), (7, 5), (9, 3), (12, 30), (13, 1)];
        assert_eq!(
            transaction_ranges(4, &counts, 10, 100),
            [(4, 7), (7, 9), (9, 12), (12, 13)]
        );
        // At most 10 rows a pass: the ranges stop after the one that reaches it.
        assert_eq!(transaction_ranges(4, &counts, 10, 10), [(4, 7), (7, 9)]);
        assert_eq!(transaction_ranges(4, &counts, 100, 100), [(4, 13)]);
    }
}
