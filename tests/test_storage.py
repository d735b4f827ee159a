"""Storage: migrations that keep data, transactions, and the bad-storage paths."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support import make_config, run_bench

from edge.daemon import Daemon
from edge.storage import DB_NAME, Additive, Storage, StorageError

TOOLS_V1 = ["CREATE TABLE tools (id TEXT PRIMARY KEY, kind TEXT NOT NULL)"]
TOOLS_V2 = [
    *TOOLS_V1,
    "ALTER TABLE tools ADD COLUMN state TEXT NOT NULL DEFAULT 'ready';"
    "CREATE INDEX tools_state ON tools (state)",
]


@pytest.fixture
def storage(tmp_path):
    store = Storage(tmp_path / "state")
    yield store
    store.close()


# ---- migrations ----------------------------------------------------------------


def test_a_fresh_database_is_wal_and_full_sync(storage):
    assert storage.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert storage.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert storage.path.name == DB_NAME


def test_an_older_database_is_migrated_with_its_data_kept(tmp_path):
    old = Storage(tmp_path)
    assert old.migrate("tools", TOOLS_V1) == 1
    with old.transaction() as conn:
        conn.execute("INSERT INTO tools (id, kind) VALUES ('T-hammer-01', 'hammer')")
    old.close()

    new = Storage(tmp_path)
    assert new.version("tools") == 1
    assert new.migrate("tools", TOOLS_V2) == 2
    assert new.version("tools") == 2
    rows = new.execute("SELECT id, kind, state FROM tools").fetchall()
    assert rows == [("T-hammer-01", "hammer", "ready")]
    new.close()


def test_migrating_again_runs_nothing(storage):
    storage.migrate("tools", TOOLS_V2)
    storage.execute("INSERT INTO tools (id, kind) VALUES ('a', 'b')")
    assert storage.migrate("tools", TOOLS_V2) == 2
    assert storage.execute("SELECT COUNT(*) FROM tools").fetchone()[0] == 1


def test_parts_have_their_own_versions(storage):
    storage.migrate("tools", TOOLS_V2)
    storage.migrate("notes", ["CREATE TABLE notes (text TEXT)"])
    assert (storage.version("tools"), storage.version("notes"), storage.version("other")) == (2, 1, 0)


def test_a_failing_migration_leaves_the_database_as_it_was(storage):
    storage.migrate("tools", TOOLS_V1)
    with pytest.raises(sqlite3.OperationalError):
        storage.migrate("tools", [*TOOLS_V1, "ALTER TABLE tools ADD COLUMN x INT; THIS IS NOT SQL"])
    assert storage.version("tools") == 1
    columns = [row[1] for row in storage.execute("PRAGMA table_info(tools)")]
    assert columns == ["id", "kind"]


def test_a_database_newer_than_the_program_is_refused(storage):
    storage.migrate("tools", TOOLS_V2)
    with pytest.raises(StorageError, match="schema version 2, newer than this program knows"):
        storage.migrate("tools", TOOLS_V1)


# The release after TOOLS_V2: a column and a table, nothing the release before reads or writes.
TOOLS_V3 = [
    *TOOLS_V2,
    Additive("ALTER TABLE tools ADD COLUMN bought TEXT"),
    Additive("CREATE TABLE tool_photos (tool_id TEXT NOT NULL, path TEXT NOT NULL)"),
]


def test_after_a_rollback_the_release_before_runs_on_a_database_that_was_only_added_to(tmp_path):
    newer = Storage(tmp_path)
    newer.migrate("tools", TOOLS_V3)
    newer.execute("INSERT INTO tools (id, kind, bought) VALUES ('T-1', 'hammer', '2026-11')")
    newer.close()

    rolled_back = Storage(tmp_path)  # the release before, started on that database
    assert rolled_back.migrate("tools", TOOLS_V2) == 4
    rolled_back.execute("INSERT INTO tools (id, kind) VALUES ('T-2', 'shovel')")
    rolled_back.close()

    again = Storage(tmp_path)  # updated once more: nothing to run, both tools there
    assert again.migrate("tools", TOOLS_V3) == 4
    rows = again.execute("SELECT id, state, bought FROM tools ORDER BY id").fetchall()
    assert rows == [("T-1", "ready", "2026-11"), ("T-2", "ready", None)]
    again.close()


def test_a_change_that_is_not_only_added_still_keeps_the_release_before_out(storage):
    storage.migrate("tools", [*TOOLS_V3, "UPDATE tools SET state = 'checked'"])
    with pytest.raises(StorageError, match="must know its version 5 to use it"):
        storage.migrate("tools", TOOLS_V3)


def test_a_database_from_before_needs_counts_every_version_it_has_as_needed(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    conn = sqlite3.connect(folder / DB_NAME)
    conn.execute("CREATE TABLE schema_version (part TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    conn.execute(
        "CREATE TABLE tools (id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'ready')"
    )
    conn.execute("INSERT INTO schema_version VALUES ('tools', 2)")
    conn.commit()
    conn.close()
    storage = Storage(folder)
    try:
        with pytest.raises(StorageError, match="must know its version 2"):
            storage.migrate("tools", TOOLS_V1)
        assert storage.migrate("tools", TOOLS_V3) == 4
        assert storage.migrate("tools", TOOLS_V2) == 4  # V3's scripts only added to what V2 needs
    finally:
        storage.close()


# ---- transactions ----------------------------------------------------------------


def test_nested_transactions_commit_once_with_the_outer(storage):
    storage.migrate("tools", TOOLS_V1)
    committed = []
    with storage.transaction() as conn:
        conn.execute("INSERT INTO tools VALUES ('a', 'x')")
        with storage.transaction() as inner:
            inner.execute("INSERT INTO tools VALUES ('b', 'x')")
            storage.after_commit(lambda: committed.append("inner"))
        assert committed == []  # not yet: the outer transaction is still open
    assert committed == ["inner"]
    assert storage.execute("SELECT COUNT(*) FROM tools").fetchone()[0] == 2


def test_an_exception_rolls_back_everything_and_drops_after_commit(storage):
    storage.migrate("tools", TOOLS_V1)
    committed = []
    with pytest.raises(RuntimeError), storage.transaction() as conn:
        conn.execute("INSERT INTO tools VALUES ('a', 'x')")
        with storage.transaction() as inner:
            inner.execute("INSERT INTO tools VALUES ('b', 'x')")
        storage.after_commit(lambda: committed.append("x"))
        raise RuntimeError("boom")
    assert storage.execute("SELECT COUNT(*) FROM tools").fetchone()[0] == 0
    assert committed == []
    with storage.transaction() as conn:  # usable again afterwards
        conn.execute("INSERT INTO tools VALUES ('c', 'x')")
    assert storage.execute("SELECT id FROM tools").fetchall() == [("c",)]


def test_on_rollback_runs_only_when_the_transaction_rolls_back(storage):
    undone = []
    with storage.transaction():
        storage.on_rollback(lambda: undone.append("kept"))
    with pytest.raises(RuntimeError), storage.transaction():
        with storage.transaction():
            storage.on_rollback(lambda: undone.append("undone"))
        raise RuntimeError("boom")
    assert undone == ["undone"]


def test_a_failing_after_commit_callback_does_not_hide_the_commit(storage, caplog):
    storage.migrate("tools", TOOLS_V1)
    ran = []

    def broken() -> None:
        raise RuntimeError("listener bug")

    with storage.transaction() as conn:
        conn.execute("INSERT INTO tools VALUES ('a', 'x')")
        storage.after_commit(broken)
        storage.after_commit(lambda: ran.append("next"))
    assert ran == ["next"]
    assert storage.execute("SELECT COUNT(*) FROM tools").fetchone()[0] == 1
    assert any("after-commit callback" in r.getMessage() for r in caplog.records)


def test_after_commit_outside_a_transaction_runs_at_once(storage):
    ran = []
    storage.after_commit(lambda: ran.append(1))
    assert ran == [1]


def test_committed_data_is_seen_by_another_connection(storage):
    storage.migrate("tools", TOOLS_V1)
    with storage.transaction() as conn:
        conn.execute("INSERT INTO tools VALUES ('a', 'x')")
    other = sqlite3.connect(storage.path)
    assert other.execute("SELECT id FROM tools").fetchall() == [("a",)]
    other.close()


def test_a_transaction_without_sync_commits_and_full_sync_comes_back(storage):
    storage.migrate("tools", TOOLS_V1)
    with storage.transaction(durable=False) as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: no fsync
        conn.execute("INSERT INTO tools VALUES ('a', 'x')")
    assert storage.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    other = sqlite3.connect(storage.path)
    assert other.execute("SELECT id FROM tools").fetchall() == [("a",)]
    other.close()
    with pytest.raises(RuntimeError), storage.transaction(durable=False) as conn:
        conn.execute("INSERT INTO tools VALUES ('b', 'y')")
        raise RuntimeError("power cut")
    assert storage.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert storage.execute("SELECT COUNT(*) FROM tools").fetchone()[0] == 1


# ---- bad storage -----------------------------------------------------------------


def write_garbage(folder: Path) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    garbage = b"this is not an SQLite database, it was a power cut " * 200
    (folder / DB_NAME).write_bytes(garbage)
    return garbage


def test_a_corrupt_database_is_moved_aside_and_kept(tmp_path):
    garbage = write_garbage(tmp_path)
    store = Storage(tmp_path)
    assert store.moved_aside is not None
    assert store.moved_aside.name.startswith(f"{DB_NAME}.corrupt-")
    assert store.moved_aside.read_bytes() == garbage
    store.migrate("tools", TOOLS_V1)  # the new database works
    store.close()


def test_a_damaged_page_is_found_by_the_integrity_check(tmp_path):
    store = Storage(tmp_path)
    store.migrate("tools", TOOLS_V1)
    with store.transaction() as conn:
        conn.executemany("INSERT INTO tools VALUES (?, 'x')", [(f"t{i:05d}",) for i in range(3000)])
    store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = tmp_path / DB_NAME
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page + 8 : 3 * page] = b"\xa5" * (page - 8)  # scribble over a b-tree page
    path.write_bytes(bytes(data))

    reopened = Storage(tmp_path)
    assert reopened.moved_aside is not None
    assert reopened.version("tools") == 0
    reopened.close()


def test_two_corrupt_databases_in_a_row_are_both_kept(tmp_path):
    write_garbage(tmp_path)
    Storage(tmp_path).close()
    write_garbage(tmp_path)
    Storage(tmp_path).close()
    assert len(list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))) == 2


def test_a_corrupt_database_leaves_an_event_in_the_outbox_and_a_log_line(tmp_path, caplog):
    config = make_config(tmp_path)
    write_garbage(Path(config.storage.dir))
    daemon = Daemon(config)
    daemon.start()
    try:
        events = [e.body() for e in daemon.core.outbox.pending()]
    finally:
        daemon.core.stop()
        daemon.stop()
    corrupt = [e for e in events if e["type"] == "error.storage_corrupt"]
    assert len(corrupt) == 1
    moved_to = corrupt[0]["data"]["moved_to"]
    assert Path(moved_to).exists()
    assert any("moved aside to" in r.getMessage() and moved_to in r.getMessage() for r in caplog.records)


def test_a_database_that_cannot_be_opened_is_an_error_not_corruption(tmp_path):
    (tmp_path / DB_NAME).mkdir()  # e.g. a mistake by hand: never move it, say so
    with pytest.raises(StorageError, match="cannot be opened"):
        Storage(tmp_path)
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_a_storage_dir_that_cannot_be_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match=r"storage.dir .*a-file/state is not a writable folder"):
        Storage(blocker / "state")


def test_run_with_an_unwritable_storage_dir_exits_1_with_a_message(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    config = tmp_path / "hall-edge.toml"
    config.write_text(
        f'[mqtt]\ntls = false\n[storage]\ndir = "{blocker / "state"}"\n'
        "[display]\nenabled = false\n[printer]\nenabled = false\n[queue]\nenabled = false\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "is not a writable folder" in result.stderr
    assert "give the hall-edge user write access" in result.stderr
    assert "Traceback" not in result.stderr


def test_event_payloads_are_json_with_the_contract_fields(tmp_path):
    daemon = Daemon(make_config(tmp_path))
    event = daemon.core.emit("audit.test", {"n": 1})
    body = json.loads(event.payload)
    assert body["schema"] == "lgsc.event/1"
    assert body["device"] == "qinshui/hall-01"
    assert body["seq"] == 1
    assert body["clock"] == "synced"
    daemon.storage.close()


def test_a_database_from_an_older_hall_edge_gets_an_epoch_but_no_creation_time(tmp_path):
    """Its replay cache is whole: commands issued before the upgrade must not be refused."""
    folder = tmp_path / "state"
    folder.mkdir()
    conn = sqlite3.connect(folder / "hall-edge.db")
    conn.execute("CREATE TABLE schema_version (part TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES ('outbox', 2)")
    conn.commit()
    conn.close()
    storage = Storage(folder)
    try:
        assert storage.created_at == 0 and len(storage.epoch) == 26
        assert storage.moved_aside is None
    finally:
        storage.close()


def test_a_zero_length_database_is_set_aside_like_a_corrupt_one(tmp_path):
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "hall-edge.db").write_bytes(b"")
    storage = Storage(folder)
    try:
        assert storage.moved_aside is not None and storage.moved_aside.exists()
        assert "empty" in storage.moved_aside_reason
    finally:
        storage.close()


def test_a_grown_database_does_not_grow_the_daemon():
    """The start's integrity check reads every page of a database months old; what SQLite keeps
    of them stays bounded (bench/page_cache.py), where SQLite's default keeps 2 MiB for good."""
    out = run_bench("page_cache.py", "--mib", "8", timeout=120)
    held = {
        line.split(":")[0].strip(): float(line.split("holds")[1].split("MiB")[0])
        for line in out.splitlines()
        if "holds" in line
    }
    assert held["hall-edge storage"] <= 1.0, out  # 512 KiB of pages and what SQLite needs besides
    assert held["SQLite default"] >= 1.5, out  # the figure means something: the default does keep it
