//! Where each record of this source stands: its position, which the runtime's
//! idempotent resume compares with what Kafka already holds, and its source
//! offset, which a restart starts from. Pure functions of LSNs and counters:
//! no I/O, so the rules are unit-tested here.
//!
//! **Positions.** A streamed change is (commit LSN, index in its transaction,
//! from 1); a snapshot row is (the slot's consistent point − 1, row number); a
//! heartbeat is (end LSN of the last transaction, 0). They rise in the order
//! records are emitted, and a replay after a crash gives the same record the
//! same position.
//!
//! **Offsets.** A streamed record's offset names its transaction (`lsn`,
//! `lsn_commit`, `txId`) and index (`seq`), and `lsn_flushed`: what PostgreSQL
//! may forget once the offset is stored. Only a transaction's last record
//! carries its end LSN there; the others carry the previous transaction's, so
//! a restart never resumes in the middle of a transaction.

use serde_json::json;
use sluice_api::{Position, SourceOffset};

/// The header with a streamed record's change LSN (decimal). Its commit LSN
/// is already in the runtime's `__sluice.position` header (`<commit LSN>/<index
/// in the transaction>`), which idempotent resume uses: the index, unlike the
/// change LSN, tells a delete from its tombstone. (A second header for the
/// commit LSN cost about 7 % of the narrow-row rate.)
pub const CHANGE_LSN_HEADER: &str = "__sluice.lsn.change";

/// The offset key holding an incremental snapshot's progress.
pub const INCREMENTAL_KEY: &str = "incremental_snapshot";

/// A JSON object as a source offset (anything else: an empty one).
pub fn offset_of(fields: serde_json::Value) -> SourceOffset {
    match fields {
        serde_json::Value::Object(m) => m,
        _ => SourceOffset::new(),
    }
}

fn lsn(offset: &SourceOffset, key: &str) -> Option<u64> {
    offset.get(key).and_then(serde_json::Value::as_u64)
}

/// The commit LSN up to which a stored offset's transactions were handled:
/// that of its record's transaction, or, for a heartbeat, anything before the
/// end of the last transaction it had seen.
pub fn handled_through(offset: &SourceOffset) -> u64 {
    match (lsn(offset, "lsn_commit"), offset.get("heartbeat")) {
        (Some(commit), _) => commit,
        (None, Some(_)) => lsn(offset, "lsn").unwrap_or(0).saturating_sub(1),
        (None, None) => 0,
    }
}

/// The position of the last streamed record a stored offset covers: its own,
/// or for a heartbeat, just below anything committed after what it had seen.
pub fn emitted_through(offset: &SourceOffset) -> Position {
    match (lsn(offset, "lsn_commit"), offset.get("heartbeat")) {
        (Some(commit), _) => Position::new(commit, lsn(offset, "seq").unwrap_or(0)),
        (None, Some(_)) => Position::new(lsn(offset, "lsn").unwrap_or(0), 0),
        (None, None) => Position::default(),
    }
}

/// The WAL a stored offset lets PostgreSQL forget (0: none).
pub fn flushed(offset: &SourceOffset) -> u64 {
    lsn(offset, "lsn_flushed").unwrap_or(0)
}

/// How many records of the transaction committing at `commit_lsn` were
/// emitted before, given the last position emitted: all of them
/// (`u64::MAX`, so its changes are not even decoded) for a transaction
/// committed before it, those up to its index for that very transaction, none
/// for a later one.
pub fn emitted_to(commit_lsn: u64, emitted: Position) -> u64 {
    match commit_lsn.cmp(&emitted.major) {
        std::cmp::Ordering::Less => u64::MAX,
        std::cmp::Ordering::Equal => emitted.minor,
        std::cmp::Ordering::Greater => 0,
    }
}

/// A transaction, as its Begin and (once it has come) its Commit describe it.
#[derive(Clone, Copy, Debug)]
pub struct Committed {
    pub xid: u32,
    pub commit_lsn: u64,
    pub end_lsn: u64,
    /// How many records it holds (so far, until its Commit).
    pub records: usize,
    /// How many of them were emitted before (see [`emitted_to`]).
    pub emitted_to: u64,
}

/// The position and offset of each of a transaction's records in `indices`
/// still to emit, by index in the transaction (from 0). `txn.records` is how
/// many it holds so far: a large transaction's records are handed on before
/// its Commit arrives, all but the last, which alone carries `end_lsn`.
/// `previous_end` is the end LSN of the last transaction wholly emitted;
/// `progress`, an incremental snapshot's, rides along in every offset.
pub fn streamed_offsets(
    txn: Committed,
    indices: std::ops::Range<usize>,
    previous_end: u64,
    progress: Option<&serde_json::Value>,
) -> impl Iterator<Item = (usize, Position, SourceOffset)> + '_ {
    indices.filter_map(move |i| {
        let seq = i as u64 + 1;
        // Emitted before this stream began (stored, or sent before a
        // reconnect): the runtime's resume scan may not see it.
        if seq <= txn.emitted_to {
            return None;
        }
        // Only the last record of a transaction lets PostgreSQL forget it.
        let flushed = if i + 1 == txn.records {
            txn.end_lsn
        } else {
            previous_end
        };
        let mut offset = offset_of(json!({
            "lsn": txn.commit_lsn, "lsn_commit": txn.commit_lsn, "txId": txn.xid,
            "seq": seq, "lsn_flushed": flushed
        }));
        if let Some(p) = progress {
            offset.insert(INCREMENTAL_KEY.into(), p.clone());
        }
        Some((i, Position::new(txn.commit_lsn, seq), offset))
    })
}

/// A heartbeat's position and offset: it confirms everything up to the end
/// of the last transaction wholly emitted.
pub fn heartbeat(last_end: u64, progress: Option<serde_json::Value>) -> (Position, SourceOffset) {
    let mut offset = offset_of(json!({
        "lsn": last_end, "lsn_flushed": last_end, "heartbeat": true
    }));
    if let Some(p) = progress {
        offset.insert(INCREMENTAL_KEY.into(), p);
    }
    (Position::new(last_end, 0), offset)
}

/// A snapshot row's position: just below the consistent point, because the
/// first streamed transaction may commit exactly at it and its positions must
/// rank above every snapshot row's.
pub fn snapshot_row(consistent_point: u64, row: u64) -> Position {
    Position::new(consistent_point.saturating_sub(1), row)
}

/// After an in-process restart of a snapshot: how many rows the lost session
/// returned, if the new session reads the same snapshot (same consistent point,
/// so the same row numbers).
pub fn snapshot_rows_returned(consistent_point: u64, returned: Option<Position>) -> Option<u64> {
    returned
        .filter(|p| p.major == consistent_point.saturating_sub(1))
        .map(|p| p.minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(records: usize, emitted_to: u64) -> Committed {
        Committed {
            xid: 7,
            commit_lsn: 500,
            end_lsn: 560,
            records,
            emitted_to,
        }
    }

    #[test]
    fn only_a_transactions_last_record_lets_postgres_forget_it() {
        let out: Vec<_> = streamed_offsets(txn(3, 0), 0..3, 400, None).collect();
        assert_eq!(out.len(), 3);
        let flushed: Vec<u64> = out.iter().map(|(_, _, o)| flushed(o)).collect();
        assert_eq!(flushed, [400, 400, 560]);
        let positions: Vec<Position> = out.iter().map(|(_, p, _)| *p).collect();
        assert_eq!(
            positions,
            [
                Position::new(500, 1),
                Position::new(500, 2),
                Position::new(500, 3)
            ]
        );
        assert_eq!(out[1].2["txId"], 7);
        assert_eq!(out[1].2["seq"], 2);
        assert_eq!(out[1].2["lsn_commit"], 500);
    }

    #[test]
    fn a_transaction_handed_on_in_parts_gets_the_offsets_it_would_get_whole() {
        let whole: Vec<_> = streamed_offsets(txn(5, 0), 0..5, 400, None).collect();
        // Before the Commit only 3 records had come: the first 2 go on, and
        // none of them may let PostgreSQL forget the transaction.
        let mut parts: Vec<_> = streamed_offsets(txn(3, 0), 0..2, 400, None).collect();
        parts.extend(streamed_offsets(txn(5, 0), 2..5, 400, None));
        assert_eq!(parts, whole);
    }

    #[test]
    fn records_emitted_before_are_not_emitted_again() {
        let out: Vec<_> = streamed_offsets(txn(4, 2), 0..4, 400, None).collect();
        let indexes: Vec<usize> = out.iter().map(|(i, _, _)| *i).collect();
        assert_eq!(indexes, [2, 3]);
        assert_eq!(
            streamed_offsets(txn(4, u64::MAX), 0..4, 400, None).count(),
            0
        );
    }

    #[test]
    fn incremental_progress_rides_in_every_offset() {
        let progress = json!({"table": "public.t"});
        let out: Vec<_> = streamed_offsets(txn(2, 0), 0..2, 0, Some(&progress)).collect();
        assert!(out.iter().all(|(_, _, o)| o[INCREMENTAL_KEY] == progress));
        let (_, hb) = heartbeat(9, Some(progress.clone()));
        assert_eq!(hb[INCREMENTAL_KEY], progress);
    }

    #[test]
    fn a_transaction_is_skipped_by_where_it_commits() {
        let emitted = Position::new(500, 2);
        assert_eq!(emitted_to(499, emitted), u64::MAX);
        assert_eq!(emitted_to(500, emitted), 2);
        assert_eq!(emitted_to(501, emitted), 0);
        assert_eq!(emitted_to(1, Position::default()), 0);
    }

    #[test]
    fn a_stored_record_offset_resumes_after_its_own_position() {
        let (_, _, stored) = streamed_offsets(txn(3, 0), 0..3, 400, None)
            .nth(1)
            .expect("a second record");
        assert_eq!(handled_through(&stored), 500);
        assert_eq!(emitted_through(&stored), Position::new(500, 2));
        assert_eq!(flushed(&stored), 400);
    }

    #[test]
    fn a_stored_heartbeat_resumes_after_what_it_had_seen() {
        let (position, stored) = heartbeat(560, None);
        assert_eq!(position, Position::new(560, 0));
        // A transaction committing at the heartbeat's LSN is after it.
        assert_eq!(handled_through(&stored), 559);
        assert_eq!(emitted_through(&stored), position);
        assert_eq!(emitted_to(560, emitted_through(&stored)), 0);
        assert_eq!(flushed(&stored), 560);
    }

    #[test]
    fn an_offset_with_neither_resumes_from_nothing() {
        let snapshot = offset_of(json!({"snapshot": true, "lsn": 42}));
        assert_eq!(handled_through(&snapshot), 0);
        assert_eq!(emitted_through(&snapshot), Position::default());
        assert_eq!(offset_of(json!([1, 2])), SourceOffset::new());
    }

    #[test]
    fn snapshot_rows_rank_below_a_transaction_committing_at_the_consistent_point() {
        assert!(snapshot_row(1000, u64::MAX) < Position::new(1000, 1));
        assert_eq!(snapshot_row(0, 3), Position::new(0, 3));
    }

    #[test]
    fn a_restarted_snapshot_skips_rows_only_of_the_same_snapshot() {
        let returned = Some(snapshot_row(1000, 17));
        assert_eq!(snapshot_rows_returned(1000, returned), Some(17));
        assert_eq!(snapshot_rows_returned(2000, returned), None);
        assert_eq!(snapshot_rows_returned(1000, None), None);
    }
}
