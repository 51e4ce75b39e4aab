//! SQLite access: opening (with the corrupt-file recovery), loading, one flush's transaction,
//! and the read-only queries of `slo report`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction};

use super::batch::Batch;
use super::health::{StoreError, StoreErrorKind};
use super::schema::{self, Migration, COUNTS};
use super::{CommandRow, Loaded, StoreSettings};
use crate::rollout::ledger::{Ledger, Series, UnixMinute, WireCounts};
use crate::transport::CommandOutcome;

/// How long a statement waits for another connection's lock before failing with "locked". Short:
/// the writer holds a batch in memory and retries on the next flush, so waiting longer only
/// delays the flush waiters and the health report.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_millis(200);

/// A connection ready for [`write`], and the file a corrupt database was moved to, if one was.
pub(super) struct Opened {
    pub(super) conn: Connection,
    pub(super) moved_corrupt: Option<PathBuf>,
}

/// Opens (or creates) the store; a file SQLite cannot read as a database is moved aside
/// ([`move_aside`]) and a fresh one created in its place.
///
/// The data directory itself is never created: a missing one usually means an unmounted volume,
/// and a database created in its place would be lost with the container.
pub(super) fn open(settings: &StoreSettings) -> Result<Opened, StoreError> {
    check_dir(&settings.path)?;
    match connect(settings) {
        Err(e) if e.kind == StoreErrorKind::Corrupt => {
            let moved = move_aside(&settings.path)?;
            let conn = connect(settings)?;
            Ok(Opened {
                conn,
                moved_corrupt: Some(moved),
            })
        }
        other => other.map(|conn| Opened {
            conn,
            moved_corrupt: None,
        }),
    }
}

fn check_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if dir.is_dir() {
        return Ok(());
    }
    Err(StoreError::new(
        StoreErrorKind::Open,
        format!(
            "the data directory {} does not exist or is not a directory; create it (or mount the \
             volume) — counts are kept in memory until it appears",
            dir.display()
        ),
    ))
}

/// WAL: readers (`slo report`) never block the writer. synchronous=FULL: one fsync per flush (at
/// most one a second) makes "durable before `flush()` returns" true across power loss too, at a
/// cost the batching makes negligible.
fn connect(settings: &StoreSettings) -> Result<Connection, StoreError> {
    let path = &settings.path;
    let err = |e: rusqlite::Error| StoreError::sqlite(&e, path);
    let mut conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "wal")
        .map_err(err)?;
    conn.pragma_update(None, "synchronous", "full")
        .map_err(err)?;
    if let Some(pages) = settings.max_page_count {
        conn.pragma_update(None, "max_page_count", pages)
            .map_err(err)?;
    }
    match schema::migrate(&mut conn).map_err(err)? {
        Migration::Current => Ok(conn),
        Migration::Newer(version) => Err(newer(path, version)),
    }
}

fn newer(path: &Path, version: i64) -> StoreError {
    StoreError::new(
        StoreErrorKind::Open,
        format!(
            "{} was written by a newer cync-bridge (schema {version}, this one reads {}); \
             upgrade, or move the file away to start a fresh history",
            path.display(),
            schema::VERSION
        ),
    )
}

/// Renames `path` (and its `-wal`/`-shm` files, so `sqlite3` can still open the copy) to
/// `<path>.corrupt-<unix seconds>`, returning the new name. Kept rather than deleted: it may be
/// salvageable, and it is the evidence of what went wrong; fresh rather than refusing: the bridge
/// must keep counting, and the history it lost is at most the retention.
pub(super) fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let secs = super::now_unix_ms() / 1000;
    let mut target = path.as_os_str().to_owned();
    target.push(format!(".corrupt-{secs}"));
    let target = PathBuf::from(target);
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Corrupt,
                format!(
                    "{} is corrupt and could not be moved aside ({e}); move or delete it by hand",
                    path.display()
                ),
            )
        })
    };
    rename(path, &target)?;
    for suffix in ["-wal", "-shm"] {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let from = PathBuf::from(from);
        if from.exists() {
            let mut to = target.as_os_str().to_owned();
            to.push(suffix);
            rename(&from, Path::new(&to))?;
        }
    }
    tracing::warn!(
        path = %path.display(),
        kept_as = %target.display(),
        "the rollout store was not a readable database; it is kept aside and a fresh one started: \
         the rollout history restarts now"
    );
    Ok(target)
}

/// The first minute kept by `retention` when the current minute is `now`.
pub(super) fn oldest_kept(retention: Duration, now: UnixMinute) -> UnixMinute {
    now.minus(Ledger::new(retention).retention() - 1)
}

/// Everything within the retention.
pub(super) fn load(
    conn: &Connection,
    path: &Path,
    retention: Duration,
) -> Result<Loaded, StoreError> {
    let err = |e: rusqlite::Error| StoreError::sqlite(&e, path);
    let ledger = read_rollups(conn, retention).map_err(err)?;
    let control = read_control(conn).map_err(err)?;
    Ok(Loaded { ledger, control })
}

/// The control document, if one was ever saved.
pub(super) fn read_control(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT json FROM control WHERE id = 1", [], |r| r.get(0))
        .optional()
}

/// Rows with a series this build does not know are skipped (and said so once): the file stays
/// as it is, and nothing this build counts is lost.
pub(super) fn read_rollups(conn: &Connection, retention: Duration) -> rusqlite::Result<Ledger> {
    let mut ledger = Ledger::new(retention);
    let oldest = oldest_kept(retention, super::now_minute());
    let mut stmt = conn.prepare(&schema::select_rollups_sql())?;
    let mut rows = stmt.query([oldest.0])?;
    let mut unknown = 0usize;
    while let Some(row) = rows.next()? {
        let minute = UnixMinute(schema::count(row.get(0)?));
        let Some(series) = Series::parse(&row.get::<_, String>(1)?) else {
            unknown += 1;
            continue;
        };
        let mut cols = [0u32; COUNTS];
        for (i, c) in cols.iter_mut().enumerate() {
            *c = schema::count(row.get(i + 2)?);
        }
        ledger.add(series, minute, &schema::from_columns(&cols));
    }
    let mut stmt =
        conn.prepare("SELECT minute, received, decode_errors FROM wire WHERE minute >= ?1")?;
    let mut rows = stmt.query([oldest.0])?;
    while let Some(row) = rows.next()? {
        let counts = WireCounts {
            received: schema::count(row.get(1)?),
            decode_errors: schema::count(row.get(2)?),
        };
        ledger.add_wire(UnixMinute(schema::count(row.get(0)?)), &counts);
    }
    if unknown > 0 {
        tracing::warn!(
            rows = unknown,
            "rollout store rows of an unknown series were skipped"
        );
    }
    Ok(ledger)
}

/// One flush: every delta, the new rows, the control document, then retention, in one
/// transaction — all of it is on disk, or none of it and the batch is retried.
pub(super) fn write(
    conn: &mut Connection,
    batch: &Batch,
    settings: &StoreSettings,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction()
        .map_err(|e| StoreError::sqlite(&e, &settings.path))?;
    write_in(&tx, batch, settings)
        .and_then(|()| tx.commit())
        .map_err(|e| StoreError::sqlite(&e, &settings.path))
}

fn write_in(tx: &Transaction<'_>, batch: &Batch, settings: &StoreSettings) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&schema::upsert_rollup_sql())?;
    for ((minute, series), counts) in &batch.rollups {
        upsert.raw_bind_parameter(1, minute.0)?;
        upsert.raw_bind_parameter(2, series.as_str())?;
        for (i, value) in schema::to_columns(counts).into_iter().enumerate() {
            upsert.raw_bind_parameter(i + 3, value)?;
        }
        upsert.raw_execute()?;
    }
    let mut wire = tx.prepare_cached(
        "INSERT INTO wire (minute, received, decode_errors) VALUES (?1, ?2, ?3) \
         ON CONFLICT (minute) DO UPDATE SET received = received + excluded.received, \
         decode_errors = decode_errors + excluded.decode_errors",
    )?;
    for (minute, c) in &batch.wire {
        wire.execute((minute.0, c.received, c.decode_errors))?;
    }
    write_commands(tx, &batch.commands, settings.recent_commands)?;
    if let Some(json) = &batch.control {
        tx.prepare_cached(
            "INSERT INTO control (id, json, saved_unix_ms) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET json = excluded.json, \
             saved_unix_ms = excluded.saved_unix_ms",
        )?
        .execute((
            json,
            i64::try_from(super::now_unix_ms()).unwrap_or(i64::MAX),
        ))?;
    }
    let oldest = oldest_kept(settings.retention, super::now_minute());
    tx.prepare_cached("DELETE FROM rollups WHERE minute < ?1")?
        .execute([oldest.0])?;
    tx.prepare_cached("DELETE FROM wire WHERE minute < ?1")?
        .execute([oldest.0])?;
    Ok(())
}

fn write_commands<'a>(
    tx: &Transaction<'_>,
    rows: impl IntoIterator<Item = &'a CommandRow>,
    keep: usize,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO commands (at_unix_ms, device, series, outcome, latency_ms, attempts) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut any = false;
    for r in rows {
        any = true;
        insert.execute((
            i64::try_from(r.at_unix_ms).unwrap_or(i64::MAX),
            &r.device,
            r.series.as_str(),
            r.outcome.as_str(),
            r.latency_ms,
            r.attempts,
        ))?;
    }
    if any {
        tx.prepare_cached("DELETE FROM commands WHERE id <= (SELECT max(id) FROM commands) - ?1")?
            .execute([i64::try_from(keep).unwrap_or(i64::MAX)])?;
    }
    Ok(())
}

/// A connection that cannot write: `slo report` next to a running bridge. A file no bridge has
/// written yet reads as empty rather than failing.
pub(super) fn open_read_only(path: &Path) -> Result<Option<Connection>, StoreError> {
    if !path.exists() {
        return Err(StoreError::new(
            StoreErrorKind::Open,
            format!(
                "there is no rollout store at {}; check the data directory (the bridge creates it \
                 when it starts)",
                path.display()
            ),
        ));
    }
    let err = |e: rusqlite::Error| StoreError::sqlite(&e, path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    match schema::user_version(&conn).map_err(err)? {
        0 => Ok(None),
        v if v > schema::VERSION => Err(newer(path, v)),
        _ => Ok(Some(conn)),
    }
}

/// The newest `limit` command rows, oldest first. Rows naming a series or outcome this build
/// does not know are skipped.
pub(super) fn read_commands(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<CommandRow>> {
    let mut stmt = conn.prepare(
        "SELECT at_unix_ms, device, series, outcome, latency_ms, attempts FROM commands \
         ORDER BY id DESC LIMIT ?1",
    )?;
    let mut rows = stmt.query([i64::try_from(limit).unwrap_or(i64::MAX)])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let series = Series::parse(&row.get::<_, String>(2)?);
        let outcome: String = row.get(3)?;
        let outcome = CommandOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == outcome);
        let (Some(series), Some(outcome)) = (series, outcome) else {
            continue;
        };
        out.push(CommandRow {
            at_unix_ms: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
            device: row.get(1)?,
            series,
            outcome,
            latency_ms: schema::count(row.get(4)?),
            attempts: schema::count(row.get(5)?),
        });
    }
    out.reverse();
    Ok(out)
}
