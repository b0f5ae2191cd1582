//! A flow rule write cut into transactions: on SQLite a write holds the one write lock,
//! which span commits wait for, so a range's due items and consumptions go in parts.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::connection::GIVE_WAY;
use crate::flow_rule_rows::FlowPassWrite;

/// Due items and consumptions written per transaction. At about 10,000 rows, a chunk of
/// the ingest bench held the write lock 75 to 160 ms, and span commits waited that long.
pub(crate) const ROWS_PER_TRANSACTION: usize = 1_000;

/// Writes `pass` with `write`, in parts of at most [`ROWS_PER_TRANSACTION`] rows, each in
/// a transaction of its own, with a pause between them for the span writer; the cursor,
/// the counts and the alerts go with the last part.
pub(crate) fn write_in_parts(
    connection: &mut Connection,
    pass: FlowPassWrite,
    write: impl Fn(&Transaction<'_>, &FlowPassWrite) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut parts = in_parts(pass, ROWS_PER_TRANSACTION).into_iter().peekable();
    while let Some(part) = parts.next() {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        write(&transaction, &part)?;
        transaction.commit()?;
        if parts.peek().is_some() {
            std::thread::sleep(GIVE_WAY);
        }
    }
    Ok(())
}

/// `pass` in parts of at most `rows` due deletes, due upserts and consumptions (in that
/// order, as one transaction writes them); the last part also holds everything else.
///
/// Safe to stop between parts: until the cursor moves, a restart evaluates the same spans
/// again, and every part can be written twice. Due items are replaced whole; a consumption
/// of a due item already changed takes nothing more (and of one already deleted, it is
/// remembered like any early consumption); a consumption remembered twice names the same
/// group; overdue counts are counted again from the due table on restart.
fn in_parts(mut pass: FlowPassWrite, rows: usize) -> Vec<FlowPassWrite> {
    let rows = rows.max(1);
    let mut deletes = std::mem::take(&mut pass.due_deletes).into_iter();
    let mut upserts = std::mem::take(&mut pass.due_upserts).into_iter();
    let mut marks = std::mem::take(&mut pass.seen).into_iter();
    let mut parts = Vec::new();
    loop {
        let due_deletes: Vec<_> = deletes.by_ref().take(rows).collect();
        let due_upserts: Vec<_> = upserts.by_ref().take(rows - due_deletes.len()).collect();
        let room = rows - due_deletes.len() - due_upserts.len();
        let seen: Vec<_> = marks.by_ref().take(room).collect();
        if deletes.len() + upserts.len() + marks.len() == 0 {
            parts.push(FlowPassWrite {
                due_deletes,
                due_upserts,
                seen,
                ..pass
            });
            return parts;
        }
        parts.push(FlowPassWrite {
            due_deletes,
            due_upserts,
            seen,
            ..FlowPassWrite::default()
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow_rule_rows::{DueKey, SeenMark};
    use crate::ids::SpanId;

    /// A consumption remembered, of message `m{n}`.
    pub(crate) fn mark(n: usize) -> SeenMark {
        SeenMark {
            consumer_group: Some("billing".into()),
            source_span_id: None,
            topic: Some("orders".into()),
            message_id: Some(format!("m{n}")),
            partition: None,
            offset: None,
        }
    }

    fn delete(n: u8) -> DueKey {
        DueKey {
            sent_ns: i64::from(n),
            send_span_id: SpanId([n; 8]),
            rule: "late".into(),
        }
    }

    #[test]
    fn a_write_is_cut_into_parts_in_order_and_the_rest_goes_last() {
        let pass = FlowPassWrite {
            cursor: Some(9),
            due_deletes: (0..5).map(delete).collect(),
            seen: (0..4).map(mark).collect(),
            forget_seen_before_ns: Some(3),
            subjects_deleted: vec!["f".into()],
            ..FlowPassWrite::default()
        };
        let parts = in_parts(pass.clone(), 4);
        let sizes: Vec<(usize, usize)> = parts
            .iter()
            .map(|p| (p.due_deletes.len(), p.seen.len()))
            .collect();
        assert_eq!(sizes, [(4, 0), (1, 3), (0, 1)]);
        assert!(parts[..2].iter().all(|p| p.cursor.is_none()
            && p.forget_seen_before_ns.is_none()
            && p.subjects_deleted.is_empty()));
        let last = parts.last().unwrap();
        assert_eq!(last.cursor, Some(9));
        assert_eq!(last.forget_seen_before_ns, Some(3));
        assert_eq!(last.subjects_deleted, ["f"]);
        let deletes: Vec<_> = parts.iter().flat_map(|p| p.due_deletes.clone()).collect();
        let seen: Vec<_> = parts.iter().flat_map(|p| p.seen.clone()).collect();
        assert_eq!(deletes, pass.due_deletes, "every row once, in order");
        assert_eq!(seen, pass.seen);

        assert_eq!(
            in_parts(pass.clone(), 9).len(),
            1,
            "a write that fits is one part"
        );
        let exact = in_parts(pass.clone(), 3);
        assert_eq!(
            exact.len(),
            3,
            "the part that takes the last rows holds the rest"
        );
        assert_eq!(exact[2].cursor, Some(9));
        assert_eq!(exact[2].seen.len(), 3);
        assert_eq!(in_parts(FlowPassWrite::default(), 4).len(), 1);
    }
}
