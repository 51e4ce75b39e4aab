//! The tables of `rollout.sqlite3`, their version, and the mapping between a row and
//! [`MinuteCounts`].
//!
//! The schema is an interface: `sqlite3 rollout.sqlite3 'SELECT * FROM rollups'` is a supported
//! way to look at the evidence, so counts are plain INTEGER columns named after what they count,
//! not an opaque blob. Columns also cost less: SQLite stores the integers 0 and 1 in the record
//! header alone (no payload byte), and most of a minute's 30 counts are 0 or 1, where a fixed
//! 20 × 4-byte latency blob would take 80 bytes every row. And `c = c + excluded.c` can add a
//! column in SQL, which a blob cannot.
//!
//! `PRAGMA user_version` holds [`VERSION`]. A file with a higher version was written by a newer
//! bridge and is left untouched (opening fails, the store degrades); adding a count column, e.g.
//! for a new command outcome, needs `VERSION + 1` and an `ALTER TABLE … ADD COLUMN … DEFAULT 0`
//! step in [`migrate`] — `tests` in this module fail until [`COUNT_COLUMNS`] follows the types.

use rusqlite::{Connection, Transaction};

use crate::rollout::ledger::{MinuteCounts, LATENCY_BINS};
use crate::transport::CommandOutcome;

/// The schema this build writes.
pub(super) const VERSION: i64 = 1;

/// Count columns of `rollups`, in [`to_columns`] order: outcomes as
/// [`CommandOutcome::as_str`] in [`CommandOutcome::ALL`] order, the latency bins, then sent,
/// retransmits and queue_full.
pub(super) const COUNT_COLUMNS: [&str; COUNTS] = [
    "success",
    "no_response",
    "timeout",
    "no_route",
    "send_error",
    "superseded",
    "cancelled",
    "lat_00",
    "lat_01",
    "lat_02",
    "lat_03",
    "lat_04",
    "lat_05",
    "lat_06",
    "lat_07",
    "lat_08",
    "lat_09",
    "lat_10",
    "lat_11",
    "lat_12",
    "lat_13",
    "lat_14",
    "lat_15",
    "lat_16",
    "lat_17",
    "lat_18",
    "lat_19",
    "sent",
    "retransmits",
    "queue_full",
];

const OUTCOMES: usize = CommandOutcome::ALL.len();

/// Counts in one [`MinuteCounts`].
pub(super) const COUNTS: usize = OUTCOMES + LATENCY_BINS + 3;

/// `minute` first in the key: retention deletes and loads are range scans of the key's prefix.
/// WITHOUT ROWID: the key is the table, no second b-tree for an index.
fn rollups_ddl() -> String {
    let counts: Vec<String> = COUNT_COLUMNS
        .iter()
        .map(|c| format!("{c} INTEGER NOT NULL DEFAULT 0"))
        .collect();
    format!(
        "CREATE TABLE rollups (minute INTEGER NOT NULL, series TEXT NOT NULL, {}, \
         PRIMARY KEY (minute, series)) WITHOUT ROWID",
        counts.join(", ")
    )
}

/// `commands.id` is the rowid, so it grows by one per insert and "all but the newest N" is one
/// range delete. `control` holds at most the one row `id = 1`.
const OTHER_TABLES: &str = "
CREATE TABLE wire (minute INTEGER PRIMARY KEY, received INTEGER NOT NULL DEFAULT 0,
                   decode_errors INTEGER NOT NULL DEFAULT 0);
CREATE TABLE commands (id INTEGER PRIMARY KEY, at_unix_ms INTEGER NOT NULL, device TEXT NOT NULL,
                       series TEXT NOT NULL, outcome TEXT NOT NULL, latency_ms INTEGER NOT NULL,
                       attempts INTEGER NOT NULL);
CREATE TABLE control (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL,
                      saved_unix_ms INTEGER NOT NULL);
";

/// What [`migrate`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Migration {
    /// The file is at [`VERSION`] (perhaps just created).
    Current,
    /// The file was written by a newer bridge, at this version.
    Newer(i64),
}

/// Brings the file to [`VERSION`]; an empty file gets every table. Reads only, when the file
/// is already current, so a database locked by a writer still opens.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<Migration> {
    let version = user_version(conn)?;
    if version == VERSION {
        return Ok(Migration::Current);
    }
    if version > VERSION {
        return Ok(Migration::Newer(version));
    }
    let tx = conn.transaction()?;
    if version == 0 {
        create(&tx)?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(Migration::Current)
}

/// `PRAGMA user_version` (0 for a file no bridge has written).
pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn create(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(&rollups_ddl())?;
    tx.execute_batch(OTHER_TABLES)
}

/// The upsert of one (minute, series): `?1` minute, `?2` series, `?3..` the counts.
pub(super) fn upsert_rollup_sql() -> String {
    let names = COUNT_COLUMNS.join(", ");
    let params: Vec<String> = (3..3 + COUNTS).map(|i| format!("?{i}")).collect();
    let sums: Vec<String> = COUNT_COLUMNS
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO rollups (minute, series, {names}) VALUES (?1, ?2, {}) \
         ON CONFLICT (minute, series) DO UPDATE SET {}",
        params.join(", "),
        sums.join(", ")
    )
}

/// `SELECT minute, series, <counts> FROM rollups WHERE minute >= ?1`.
pub(super) fn select_rollups_sql() -> String {
    format!(
        "SELECT minute, series, {} FROM rollups WHERE minute >= ?1",
        COUNT_COLUMNS.join(", ")
    )
}

/// The counts of `c` in [`COUNT_COLUMNS`] order.
pub(super) fn to_columns(c: &MinuteCounts) -> [u32; COUNTS] {
    let mut out = [0u32; COUNTS];
    out[..OUTCOMES].copy_from_slice(&c.outcomes);
    out[OUTCOMES..OUTCOMES + LATENCY_BINS].copy_from_slice(&c.latency);
    out[COUNTS - 3] = c.sent;
    out[COUNTS - 2] = c.retransmits;
    out[COUNTS - 1] = c.queue_full;
    out
}

/// The inverse of [`to_columns`].
pub(super) fn from_columns(cols: &[u32; COUNTS]) -> MinuteCounts {
    let mut c = MinuteCounts::default();
    c.outcomes.copy_from_slice(&cols[..OUTCOMES]);
    c.latency
        .copy_from_slice(&cols[OUTCOMES..OUTCOMES + LATENCY_BINS]);
    c.sent = cols[COUNTS - 3];
    c.retransmits = cols[COUNTS - 2];
    c.queue_full = cols[COUNTS - 1];
    c
}

/// A stored count as the `u32` the ledger holds: SQL sums are 64-bit, so a (never seen) sum past
/// `u32::MAX` saturates like [`MinuteCounts::add`], and a negative one (only by hand) reads as 0.
pub(super) fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcome_columns_are_the_outcome_labels_in_ledger_order() {
        let names: Vec<&str> = CommandOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(&COUNT_COLUMNS[..OUTCOMES], names.as_slice());
        for (i, name) in COUNT_COLUMNS[OUTCOMES..OUTCOMES + LATENCY_BINS]
            .iter()
            .enumerate()
        {
            assert_eq!(*name, format!("lat_{i:02}"));
        }
    }

    #[test]
    fn columns_round_trip_every_field() {
        let mut c = MinuteCounts::default();
        for (i, v) in c.outcomes.iter_mut().enumerate() {
            *v = 1 + i as u32;
        }
        for (i, v) in c.latency.iter_mut().enumerate() {
            *v = 100 + i as u32;
        }
        (c.sent, c.retransmits, c.queue_full) = (200, 201, 202);
        let cols = to_columns(&c);
        assert_eq!(from_columns(&cols), c);
        assert_eq!(
            cols.iter().collect::<std::collections::BTreeSet<_>>().len(),
            COUNTS
        );
    }

    #[test]
    fn a_new_file_gets_the_current_version_and_a_newer_one_is_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
        assert_eq!(user_version(&conn).unwrap(), VERSION);
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Current);
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), Migration::Newer(VERSION + 1));
        assert_eq!(user_version(&conn).unwrap(), VERSION + 1);
    }
}
