"""The ``update`` command: download, verify, install beside, switch, prove health or roll back.

Modelled on ``config.set`` (``edge.config_change``): a durable record, a
restart, a probation on the new side, a rollback that ends in a restart on
the old side, and the outcome reported by the side that is running then.

1. ``update`` (core thread): the arguments, the URL's scheme, the version
   (no downgrade unless ``allow_downgrade``), free disk and systemd's start
   limit are checked; a refusal is ``update.refused`` and an ``ok: false``
   result.  Otherwise the record goes into ``update_pending`` (state
   ``downloading``), ``update.started`` is recorded, and the result says
   ``accepted``.
2. A worker thread downloads (``edge.update.download``), verifies the bundle
   (``edge.release.read_bundle``: signature, every file), checks the signed
   version and ``min_replaces``, and builds ``releases/VERSION`` beside the
   running one (``edge.releases.install_release``).  It only ``core.post``s
   what happened; the record changes on the core thread.
3. Installed: the record becomes ``switched`` (with the time), the boot
   marker for the guard is written (``edge.update.guard``), ``current`` is
   switched and the daemon exits; systemd starts the new release.
4. The new release finds ``switched`` with itself running: the health gate
   (``HealthGate``) runs until it passes (``update.confirmed``, the marker
   removed, older releases pruned to two) or fails (state ``rolling_back``,
   ``current`` back to the old release, exit).
5. The old release finds ``rolling_back`` (its own version running), or
   ``switched`` with its own version running (the guard rolled back a release
   that crashed, or the switch never happened): ``update.failed`` with the
   reason, and once online a second, ``ok: false`` result for the command.

A kill -9 or a power cut at any step leaves a record that the next start
reads with the version that is running: before the switch the update failed
(``interrupted``) and the old release runs; after it the health gate or the
guard decides.  docs/releases.md has the table.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.config_change import Origin, SendError
from edge.core import CommandError, CommandTable, Core, Timer
from edge.diskspace import MIB, free_bytes
from edge.probation import pending_row, when_online
from edge.protocol import load_public_keys
from edge.records import record
from edge.settings import Settings
from edge.update import guard
from edge.update.download import DownloadFailed, DownloadRefused, Source, check_url, fetch

if TYPE_CHECKING:
    from edge.release import Manifest

log = logging.getLogger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE update_pending (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        command_id TEXT NOT NULL,
        issuer TEXT NOT NULL,
        version TEXT NOT NULL,
        from_version TEXT NOT NULL,
        url TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        allow_downgrade INTEGER NOT NULL,
        state TEXT NOT NULL,
        event TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        baseline TEXT NOT NULL,
        response_topic TEXT,
        correlation_data BLOB,
        created_at REAL NOT NULL,
        switched_at REAL,
        health_deadline_s REAL NOT NULL,
        ready_within_s REAL NOT NULL
    )
    """,
]

BEFORE_SWITCH = ("downloading", "verifying", "installing", "installed")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
INSTALL_FACTOR = 3  # a venv built from wheels takes about this many times the bundle's size
SPACE_MARGIN = 32 * MIB  # left free after the update: the database and the logs go on
CHECK_EVERY_S = 0.5
RESTART_DELAY_S = 0.5  # lets the link send the result before the daemon exits


@record
class _Step:
    """From the worker thread: the update reached ``state`` (or was refused / failed)."""

    command_id: str
    state: str
    reason: str = ""
    detail: str = ""


class Updates:
    """The ``update`` command and what follows it, over the core (built by the commands feature)."""

    def __init__(
        self,
        core: Core,
        settings: Settings,
        send_error: SendError,
        current: Callable[[], tuple[Any, Any] | None],
        config_pending: Callable[[], bool] = lambda: False,
    ) -> None:
        self.core = core
        self.settings = settings.update
        self.root = Path(settings.update.root)
        self.folder = Path(settings.storage.dir) / "updates"
        self.release_keys, _problems = load_public_keys(settings.releases.public_keys)
        self.send_error = send_error
        self.current = current
        self.config_pending = config_pending  # a config.set on probation: one restart story at a time
        self.gate: HealthGate | None = None
        self._report: Timer | None = None
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        core.storage.migrate("update", MIGRATIONS)
        core.subscribe(_Step, self._on_step)
        core.register_status("update", self.status)

    def commands(self) -> CommandTable:
        return {"update": (self.update, ("url", "sha256", "size", "version", "allow_downgrade"))}

    def status(self) -> dict[str, Any]:
        row = self.pending()
        running = {"version": __version__, "root": str(self.root)}
        if row is None:
            return {**running, "pending": None}
        fields = ("command_id", "version", "from_version", "state", "reason", "detail")
        return {**running, "pending": {key: row[key] for key in fields}}

    def stop(self) -> None:
        self._cancel.set()

    # -- the command (core thread) ----------------------------------------------

    def update(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        from edge.commands.generic import check_start_limit

        running = self.current()
        if running is None:
            raise CommandError("internal", "update outside a command")
        command, reply = running
        source, version, allow_downgrade = _checked_args(args)
        origin = Origin(command.id, command.issuer, reply.response_topic, reply.correlation_data)
        facts = {"id": command.id, "version": version, "from_version": __version__}
        try:
            check_url(source.url, self.settings.allow_http_hosts)
            self._check_version(version, allow_downgrade)
            self._check_space(source.size)
            if self.pending() is not None:
                raise DownloadRefused("busy", "another update is in progress")
            if self.config_pending():
                raise DownloadRefused("busy", "a configuration change is on probation: try again after it")
        except DownloadRefused as exc:
            self.core.emit("update.refused", {**facts, "reason": exc.reason, "detail": exc.message})
            raise CommandError(exc.reason, exc.message) from None
        check_start_limit(self.core.storage, restarts=2)  # the switch, and perhaps the rollback
        with self.core.storage.transaction() as conn:
            conn.execute(
                "INSERT INTO update_pending (singleton, command_id, issuer, version, from_version, url,"
                " sha256, size, allow_downgrade, state, baseline, response_topic, correlation_data,"
                " created_at, health_deadline_s, ready_within_s)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, 'downloading', ?, ?, ?, ?, ?, ?)",
                (
                    origin.command_id,
                    origin.issuer,
                    version,
                    __version__,
                    source.url,
                    source.sha256,
                    source.size,
                    int(allow_downgrade),
                    json.dumps(self.core.components),
                    origin.response_topic,
                    origin.correlation_data,
                    time.time(),
                    self.settings.health_deadline_s,
                    self.settings.ready_within_s,
                ),
            )
            self.core.emit("update.started", {**facts, "size": source.size})
        self._start_worker(command.id, source, version, allow_downgrade)
        log.info("update id=%s to %s accepted; downloading %s", command.id, version, source.url)
        return {"accepted": True, "version": version, "from_version": __version__, "state": "downloading"}

    def _check_version(self, version: str, allow_downgrade: bool) -> None:
        order = _compare_with_running(version)
        if order == 0:
            raise DownloadRefused("same_version", f"{version} is the running release")
        if order < 0 and not allow_downgrade:
            raise DownloadRefused(
                "downgrade", f"{version} is older than the running {__version__}; send allow_downgrade=true"
            )

    def _check_space(self, size: int) -> None:
        """Room for the bundle (storage) and its release (root), on one disk or two, before a byte."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        needs = {self.folder: size + SPACE_MARGIN, self.root: INSTALL_FACTOR * size + SPACE_MARGIN}
        if os.stat(self.folder).st_dev == os.stat(self.root).st_dev:
            needs = {self.folder: sum(needs.values()) - SPACE_MARGIN}
        for folder, need in needs.items():
            free = free_bytes(str(folder))
            if free < need:
                raise DownloadRefused(
                    "no_space",
                    f"{folder} has {free // MIB} MiB free; the update needs {need // MIB} MiB"
                    f" (the {size // MIB} MiB bundle and the release built from it)",
                )

    # -- the worker thread ----------------------------------------------------------

    def _start_worker(self, command_id: str, source: Source, version: str, allow_downgrade: bool) -> None:
        def work() -> None:
            try:
                bundle = fetch(
                    source,
                    self.folder,
                    timeout_s=self.settings.timeout_s,
                    ca_file=self.settings.ca_file,
                    cancel=self._cancel,
                )
                _step("update-downloaded")
                self.core.post(_Step(command_id, "verifying"))
                manifest = self._verified(bundle, version, allow_downgrade)
                self.core.post(_Step(command_id, "installing"))
                self._install(bundle, manifest)
                bundle.unlink(missing_ok=True)  # the release holds its wheels; the bundle is not needed
                _step("update-installed")
                self.core.post(_Step(command_id, "installed"))
            except DownloadRefused as exc:
                self.core.post(_Step(command_id, "refused", exc.reason, exc.message))
            except DownloadFailed as exc:
                self.core.post(_Step(command_id, "failed", "download_failed", str(exc)))
            except Exception as exc:
                log.exception("update %s failed", command_id)
                self.core.post(_Step(command_id, "failed", "install_failed", f"{type(exc).__name__}: {exc}"))

        self._worker = threading.Thread(target=work, name="update", daemon=True)
        self._worker.start()

    def _verified(self, bundle: Path, version: str, allow_downgrade: bool) -> Manifest:
        from edge.release import ReleaseRefused, compare_versions, read_bundle

        try:
            manifest = read_bundle(bundle, self.release_keys)
        except ReleaseRefused as exc:
            bundle.unlink(missing_ok=True)
            raise DownloadRefused(exc.reason, exc.message) from None
        try:
            if compare_versions(manifest.version, version) != 0:
                raise DownloadRefused(
                    "version_mismatch", f"the signed bundle is {manifest.version}, the command says {version}"
                )
            self._check_version(manifest.version, allow_downgrade)
            if _compare_with_running(manifest.min_replaces) > 0:
                raise DownloadRefused(
                    "not_replaceable",
                    f"{manifest.version} replaces {manifest.min_replaces} or newer; this is {__version__}:"
                    f" update to {manifest.min_replaces} first",
                )
        except DownloadRefused:
            bundle.unlink(missing_ok=True)
            raise
        return manifest

    def _install(self, bundle: Path, manifest: Manifest) -> None:
        from edge.releases import base_python, install_release

        install_release(self.root, bundle, manifest, python=base_python())

    # -- the steps (core thread) ------------------------------------------------------

    def _on_step(self, step: _Step) -> None:
        row = self.pending()
        if row is None or row["command_id"] != step.command_id or row["state"] not in BEFORE_SWITCH:
            return
        if step.state == "refused":
            self._finish(row, "update.refused", step.reason, step.detail)
        elif step.state == "failed":
            self._finish(row, "update.failed", step.reason, step.detail)
        elif step.state == "installed":
            self._switch(row)
        else:
            self._set(state=step.state)

    def _switch(self, row: dict[str, Any]) -> None:
        """Record, mark for the guard, switch ``current``, exit: systemd starts the new release."""
        from edge.releases import switch_to

        self._set(state="switched", switched_at=time.time())
        guard.write_marker(
            self.root, {"to": row["version"], "from": row["from_version"], "starts": 0, "max_starts": 1}
        )
        _step("update-marked")
        switch_to(self.root, row["version"])
        _step("update-switched")
        log.info("update id=%s: switched to %s; restarting", row["command_id"], row["version"])
        self.core.call_later(RESTART_DELAY_S, self.core.stop)

    # -- at start ---------------------------------------------------------------------

    def pending(self) -> dict[str, Any] | None:
        return pending_row(self.core.storage, "update_pending")

    def resume(self) -> None:
        """Carry on with an update that a restart interrupted, from what is running now."""
        row = self.pending()
        if row is None:
            if guard.read_marker(self.root) is not None:
                guard.clear_marker(self.root)  # the update it guarded is over
            return
        # Only now: a start with no update under way never loads the release tooling (tarfile).
        from edge.release import compare_versions
        from edge.releases import switch_to

        state = row["state"]
        try:
            on_new = compare_versions(__version__, row["version"]) == 0
        except ValueError:  # a running version that is no release's: not the new one
            on_new = __version__ == row["version"]
        if state in BEFORE_SWITCH:
            self._remove_unfinished(row["version"])
            self._finish(row, "update.failed", "interrupted", f"the controller restarted while {state}")
        elif state == "switched" and on_new:
            self.gate = HealthGate(self, row)
        elif state == "switched":
            marker = guard.read_marker(self.root) or {}
            guard.clear_marker(self.root)
            if marker.get("rolled_back"):
                self._finish(row, "update.failed", "crashed", str(marker["rolled_back"]))
            else:
                detail = f"the controller restarted before {row['version']} took over"
                self._finish(row, "update.failed", "interrupted", detail)
        elif state == "rolling_back" and on_new:  # stopped between the record and the switch back
            switch_to(self.root, row["from_version"])
            guard.clear_marker(self.root)
            self.core.call_later(RESTART_DELAY_S, self.core.stop)
        elif state == "rolling_back":
            guard.clear_marker(self.root)
            self._finish(row, "update.failed", row["reason"], row["detail"])
        else:  # "reporting": the outcome is recorded, the result not yet sent
            self._report_later()

    def _remove_unfinished(self, version: str) -> None:
        from edge.releases import current_version, previous_version, release_dir

        if version in (current_version(self.root), previous_version(self.root)):
            return
        folder = release_dir(self.root, version)
        if folder.is_dir():  # complete but never switched to: built again by the next update
            shutil.rmtree(folder, ignore_errors=True)

    # -- outcomes -----------------------------------------------------------------------

    def confirm(self, row: dict[str, Any]) -> None:
        from edge.releases import locked, prune

        # The marker goes first: a kill -9 after it leaves a record the next start confirms again,
        # never a marker that would roll back a release already confirmed.
        guard.clear_marker(self.root)
        _step("update-confirming")
        seconds = round(time.time() - row["created_at"], 1)
        with self.core.storage.transaction() as conn:
            conn.execute("DELETE FROM update_pending")
            self.core.emit(
                "update.confirmed",
                {
                    "id": row["command_id"],
                    "version": row["version"],
                    "from_version": row["from_version"],
                    "seconds": seconds,
                },
            )
        log.info("update id=%s confirmed: %s is healthy (%.1f s)", row["command_id"], row["version"], seconds)
        shutil.rmtree(self.folder, ignore_errors=True)  # partial downloads of other updates
        try:
            with locked(self.root):
                removed = prune(self.root, keep=2)
            if removed:
                log.info("removed old releases: %s", ", ".join(removed))
        except OSError:
            log.exception("could not remove old releases from %s", self.root)

    def roll_back(self, row: dict[str, Any], reason: str, detail: str) -> None:
        """On the new release: record why, point ``current`` back, exit; the old one reports."""
        from edge.releases import switch_to

        log.error(
            "update id=%s: %s is not healthy (%s); rolling back", row["command_id"], row["version"], detail
        )
        self._set(state="rolling_back", reason=reason, detail=detail)
        _step("update-rolling-back")
        switch_to(self.root, row["from_version"])
        guard.clear_marker(self.root)
        self.core.call_soon(self.core.stop)

    def _finish(self, row: dict[str, Any], event: str, reason: str, detail: str) -> None:
        """Record the outcome now; answer the command a second time once online."""
        data = {"id": row["command_id"], "version": row["version"], "from_version": row["from_version"]}
        with self.core.storage.transaction():
            self.core.emit(event, {**data, "reason": reason, "detail": detail})
            self._set(state="reporting", event=event, reason=reason, detail=detail)
        log.warning("update id=%s to %s: %s %s: %s", row["command_id"], row["version"], event, reason, detail)
        self._report_later()

    def _report_later(self) -> None:
        self._report = when_online(self.core, self._report_outcome)

    def _report_outcome(self) -> None:
        row = self.pending()
        if row is None or row["state"] != "reporting":
            return
        verb = "refused" if row["event"] == "update.refused" else "failed"
        message = f"update to {row['version']} {verb}: {row['detail']}"
        self.send_error(
            row["command_id"], row["reason"], message, row["response_topic"], row["correlation_data"]
        )
        self.core.storage.execute("DELETE FROM update_pending")

    def _set(self, **fields: Any) -> None:
        names = ", ".join(f"{name} = ?" for name in fields)
        with self.core.storage.transaction() as conn:
            conn.execute(f"UPDATE update_pending SET {names}", tuple(fields.values()))


class HealthGate:
    """On the new release: READY in time, link online, outbox draining, nothing failed that ran."""

    def __init__(self, updates: Updates, row: dict[str, Any]) -> None:
        self.updates = updates
        self.core = updates.core
        self.row = row
        self.baseline: dict[str, str] = json.loads(row["baseline"])
        self.outbox_at_start: int | None = None
        self.started = time.monotonic()
        log.info("update id=%s: %s on probation", row["command_id"], row["version"])
        self._poll = self.core.every(CHECK_EVERY_S, self.check, first_after=0)
        self._deadline = self.core.call_later(row["health_deadline_s"], self.expired)

    def check(self) -> None:
        row = self.row
        if self.outbox_at_start is None:  # the first turn of the core thread: READY=1 was just sent
            self.outbox_at_start = self.core.outbox.depth()
            _step("update-probation")
            ready_s = time.time() - row["switched_at"]
            if ready_s > row["ready_within_s"]:
                bound = row["ready_within_s"]
                self.fail(f"READY came {ready_s:.0f} s after the switch; the bound is {bound:g} s")
                return
        failed = self.failed_features()
        if failed:
            self.fail(f"feature(s) that ran on {row['from_version']} failed: {', '.join(failed)}")
            return
        if not self.missing():
            self._stop()
            self.updates.confirm(row)

    def failed_features(self) -> list[str]:
        """Features that failed to start here but not on the old release (absent there: it ran)."""
        return sorted(
            name
            for name, state in self.core.components.items()
            if state == "failed" and self.baseline.get(name) != "failed"
        )

    def missing(self) -> list[str]:
        """What the release has not shown yet (empty: healthy)."""
        link = self.core.link
        missing = []
        if link is None or not link.online:
            missing.append("the link is not online")
        depth = self.core.outbox.depth()
        if depth and self.outbox_at_start is not None and depth >= self.outbox_at_start:
            missing.append(f"its outbox is not draining ({depth} events waiting)")
        return missing

    def expired(self) -> None:
        missing = self.missing() or ["the check did not run"]
        self.fail(f"within {self.row['health_deadline_s']:g} s: {'; '.join(missing)}")

    def fail(self, detail: str) -> None:
        self._stop()
        self.updates.roll_back(self.row, "unhealthy", detail)

    def _stop(self) -> None:
        self._poll.cancel()
        self._deadline.cancel()


def _compare_with_running(version: str) -> int:
    """compare_versions(version, the running release); a running version we cannot order (a
    source tree's 0.0.0+source) is refused rather than guessed."""
    from edge.release import compare_versions

    try:
        return compare_versions(version, __version__)
    except ValueError:
        raise DownloadRefused(
            "not_replaceable",
            f"the running version {__version__!r} is not a release version: install a release on site",
        ) from None


def _step(name: str) -> None:
    """A named point of an update; the kill -9 tests stop the daemon there (edge.releases' switch)."""
    from edge.releases import _step as release_step

    release_step(name)


def _checked_args(args: dict[str, Any]) -> tuple[Source, str, bool]:
    from edge.release import version_key

    url, sha256, size, version = (args.get(name) for name in ("url", "sha256", "size", "version"))
    allow_downgrade = args.get("allow_downgrade", False)
    if not isinstance(url, str) or not url:
        raise CommandError("bad_arguments", "url must be the bundle's https:// URL")
    if not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        raise CommandError("bad_arguments", "sha256 must be the bundle's SHA-256, 64 lowercase hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise CommandError("bad_arguments", "size must be the bundle's size in bytes, a positive integer")
    if not isinstance(version, str):
        raise CommandError("bad_arguments", "version must be the bundle's version, e.g. 0.2.0")
    try:
        version_key(version)
    except ValueError as exc:
        raise CommandError("bad_arguments", f"version: {exc}") from None
    if not isinstance(allow_downgrade, bool):
        raise CommandError("bad_arguments", "allow_downgrade must be true or false")
    return Source(url, sha256, size), version, allow_downgrade
