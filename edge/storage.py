"""The one SQLite database: WAL, power-loss-safe commits, per-part migrations.

Each part of the daemon (outbox, tickets, locker, ...) owns its tables and
hands ``Storage.migrate`` an ordered list of SQL scripts; the ``schema_version``
table remembers how many of each part's scripts have run, so an older
database is brought forward with its data kept.

A rollback runs the release before on the database the newer one migrated.
So each part also records how many of its scripts a program must know to use
the database (``needs``): a script marked ``Additive`` does not raise it, and
the older release starts; any other script does, and the older release
refuses the database with a message that says so (docs/releases.md).

Only the core thread uses a Storage (one connection, no locking games).

A full disk (``edge.diskspace``): the storage holds a reserve file, released
before a write when the disk is nearly full (or after a write the disk
refused), so the records go on; a daemon started on a full disk releases it
to open, and says so (``started_full``, ``alarm.disk_full``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from edge.diskspace import MIB, SpaceReserve
from edge.protocol import new_ulid
from edge.settings import StorageSettings

log = logging.getLogger(__name__)

DB_NAME = "hall-edge.db"
# needs: how many of the part's scripts a program must know to use it (NULL: a row from before it: all).
_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version"
    " (part TEXT PRIMARY KEY, version INTEGER NOT NULL, needs INTEGER)"
)
_META_TABLE = "CREATE TABLE IF NOT EXISTS storage_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


class StorageError(RuntimeError):
    """The storage folder or database cannot be used; the message says why."""


class Additive(str):
    """A migration script that a program knowing fewer of the part's scripts may ignore.

    It adds and changes nothing that older code reads or writes: new tables, new
    indexes, new columns that may be NULL or have a default.  The older code
    names the columns it inserts; the newer code takes a NULL in a new column
    for a row that older code wrote (after a rollback, before the next update).
    """


class Storage:
    def __init__(self, folder: str | Path, reserve: SpaceReserve | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.moved_aside: Path | None = None  # a corrupt database we set aside at open
        self.moved_aside_reason = ""
        self._depth = 0
        self._after_commit: list[Callable[[], None]] = []
        self._on_rollback: list[Callable[[], None]] = []
        self.started_full = False  # the disk was full at start: the reserve (if any) opened it
        self.reserve = reserve or SpaceReserve(self.folder)
        if not _writable(self.folder):
            self.started_full = True
            self.reserve.release("full at start")
            log.error(
                "storage.dir %s is on a full disk: starting degraded; records go on only in the "
                "space the reserve held; free space on it (docs/troubleshooting.md, 'A full disk')",
                self.folder,
            )
        self.conn = self._open()
        self._version_table()
        self.epoch, self.created_at = self._epoch()
        self.reserve.restore()

    def _version_table(self) -> None:
        self.conn.execute(_VERSION_TABLE)
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(schema_version)")}
        if "needs" not in columns:  # a database from before rollbacks were thought of
            with self.transaction() as conn:
                conn.execute("ALTER TABLE schema_version ADD COLUMN needs INTEGER")

    def _epoch(self) -> tuple[str, float]:
        """This database's epoch (a ULID) and creation time (Unix seconds), made once with it.

        Events carry the epoch: a platform tells a ``seq`` that restarted at 1 with a new
        database from lost events.  The commands feature refuses commands issued before
        ``created_at``: its replay cache is no older than the database.  A database made by
        an older hall-edge gets ``created_at`` 0 (its age is unknown, its cache is whole).
        """
        with self.transaction() as conn:
            conn.execute(_META_TABLE)
            meta = dict(conn.execute("SELECT name, value FROM storage_meta").fetchall())
            if "epoch" not in meta:
                older = conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] > 0
                meta = {"epoch": new_ulid(), "created_at": "0" if older else repr(time.time())}
                conn.executemany("INSERT INTO storage_meta (name, value) VALUES (?, ?)", meta.items())
        return meta["epoch"], float(meta["created_at"])

    def restamp_created_at(self, at: float) -> None:
        """Correct a creation time that a wrong clock stamped in the future."""
        with self.transaction() as conn:
            conn.execute("UPDATE storage_meta SET value = ? WHERE name = 'created_at'", (repr(at),))
        self.created_at = at

    # -- opening ---------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if _is_empty_file(self.path):
            # SQLite takes a zero-length file for a new database: our records (and the replay
            # cache) are gone all the same, so it is reported like a corrupt one.
            self.moved_aside_reason = "the database file is empty (0 bytes)"
            self.moved_aside = _move_aside(self.path, self.moved_aside_reason)
        try:
            conn = _connect(self.path)
            _check_integrity(conn)
            return conn
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                # Locked, read-only, disk full, I/O error: the file may be fine; never move it.
                raise StorageError(f"database {self.path} cannot be opened: {exc}") from None
            self.moved_aside_reason = "integrity check failed"
            self.moved_aside = _move_aside(self.path, str(exc))
            try:
                return _connect(self.path)
            except sqlite3.DatabaseError as again:
                raise StorageError(f"database {self.path} cannot be created: {again}") from None

    def close(self) -> None:
        # A second close does nothing; a use after it raises sqlite3.ProgrammingError.
        self.conn.close()

    # -- transactions ----------------------------------------------------

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; nested uses join the outer transaction.

        With synchronous=FULL the COMMIT returns only once the data is on
        the disk, so whatever a transaction recorded survives a power loss.
        ``durable=False`` skips that sync (WAL, synchronous=NORMAL) for a write
        whose loss on power failure is harmless or made good right after: the
        commit still survives a killed process, and the next durable commit
        syncs it too.  A nested transaction takes the outer one's setting.
        """
        if not durable and not self._depth:
            self.conn.execute("PRAGMA synchronous=NORMAL")
            try:
                with self.transaction() as conn:
                    yield conn
            finally:
                self.conn.execute("PRAGMA synchronous=FULL")
            return
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.reserve.guard()
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
            self.conn.commit()  # inside: a commit the disk refuses is rolled back like the rest
        except BaseException as exc:
            self._depth = 0
            self._after_commit.clear()
            if self.conn.in_transaction:
                self.conn.rollback()
            undo, self._on_rollback = self._on_rollback, []
            for callback in undo:
                callback()
            if _is_disk_full(exc):
                self.reserve.release("a write was refused")  # this one is lost; the next goes through
            raise
        self._depth = 0
        self._on_rollback.clear()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            _run_committed(callback)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction has committed (now, if none is open).

        A callback that fails is logged: what was committed stays committed, and the
        caller does not see an error for a record that is safely on disk.
        """
        if self._depth:
            self._after_commit.append(callback)
        else:
            _run_committed(callback)

    def on_rollback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` if the current transaction rolls back (e.g. to undo an in-memory count)."""
        if self._depth:
            self._on_rollback.append(callback)

    def execute(self, sql: str, params: Sequence | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    # -- migrations ------------------------------------------------------

    def migrate(self, part: str, scripts: Sequence[str]) -> int:
        """Run the scripts of ``part`` that this database has not seen; returns its version.

        A database that a newer program migrated is used as it is when its newer
        scripts were all ``Additive``, and refused otherwise.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT version, needs FROM schema_version WHERE part = ?", (part,)).fetchone()
            current, needs = (row[0], row[0] if row[1] is None else row[1]) if row else (0, 0)
            if current > len(scripts):
                return self._newer(part, current, needs, len(scripts))
            for version, script in enumerate(scripts[current:], start=current + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                if not isinstance(script, Additive):
                    needs = version
                conn.execute(
                    "INSERT INTO schema_version (part, version, needs) VALUES (?, ?, ?)"
                    " ON CONFLICT(part) DO UPDATE SET version = excluded.version, needs = excluded.needs",
                    (part, version, needs),
                )
                log.info("migrated part=%s version=%d", part, version)
        return len(scripts)

    def _newer(self, part: str, current: int, needs: int, known: int) -> int:
        if needs > known:
            raise StorageError(
                f"{self.path}: part {part!r} is at schema version {current}, newer than this "
                f"program knows ({known}), and a program must know its version {needs} to use it; "
                "install the newer hall-edge or restore a backup"
            )
        log.warning(
            "part=%s is at schema version %d, newer than this program's %d; the newer migrations "
            "only add, so this program uses the database as it is",
            part,
            current,
            known,
        )
        return current

    def version(self, part: str) -> int:
        row = self.execute("SELECT version FROM schema_version WHERE part = ?", (part,)).fetchone()
        return row[0] if row else 0


def open_storage(settings: StorageSettings) -> Storage:
    """The daemon's storage: ``storage.dir`` with its ``storage.reserve_mb`` held back for a full disk."""
    folder = Path(settings.dir)
    return Storage(folder, SpaceReserve(folder, settings.reserve_mb * MIB))


def _run_committed(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("after-commit callback %s failed", getattr(callback, "__qualname__", callback))


def _statements(script: str) -> list[str]:
    """Split a migration script on ';' (scripts here hold no triggers or string semicolons)."""
    return [s.strip() for s in script.split(";") if s.strip()]


_CORRUPTION = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """A damaged file (move it aside), as opposed to a locked, read-only or unreachable one."""
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        return name.startswith(_CORRUPTION)
    # Our own integrity-check failure carries no SQLite code.
    return not isinstance(exc, sqlite3.OperationalError)


def _is_empty_file(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


PAGE_CACHE_KIB = 512
"""SQLite's page cache for our connection.  Its default (2,000 KiB) fills at the first start on
a grown database, since the integrity check reads every page, and stays full for the life of
the process: a hall's daemon would be 2 MiB bigger after months of records than on its first
day.  What the hall reads again (the outbox's tail, today's tickets) is a few pages; the rest
of the file stays in the kernel's cache (bench/page_cache.py)."""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    try:
        conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError:
        conn.close()  # release the file before it is moved aside
        raise
    return conn


def _check_integrity(conn: sqlite3.Connection) -> None:
    result = conn.execute("PRAGMA quick_check").fetchone()
    if result is None or result[0] != "ok":
        conn.close()
        raise sqlite3.DatabaseError(f"integrity check failed: {result[0] if result else 'no answer'}")


def _move_aside(path: Path, reason: str) -> Path:
    """Keep a corrupt database (never delete it) and its WAL under a new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            os.replace(source, Path(str(target) + suffix))
    log.error("database %s is corrupt (%s); moved aside to %s, starting a new one", path, reason, target)
    return target


def _is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"


def _writable(folder: Path) -> bool:
    """Make the folder; can a byte be written there now? False on a full disk, an error otherwise."""
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        return True
    except OSError as exc:
        if exc.errno == errno.ENOSPC and folder.is_dir():
            return False  # the folder is fine, the disk is full: the caller releases the reserve
        raise StorageError(
            f"storage.dir {folder} is not a writable folder ({exc.strerror}); "
            "create it and give the hall-edge user write access"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
