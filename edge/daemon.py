"""Assembles the daemon: storage, clock, core and the features, and runs it.

Start order: storage (migrated) -> core -> features wire themselves and
start their drivers -> core thread runs -> READY=1.  Stop order on
SIGTERM/SIGINT: the core stops taking messages and finishes the one in hand,
then features stop (drivers closed, the link says offline), then storage
closes.  The whole stop takes well under 2 s.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from edge import __version__, sdnotify
from edge.clock import Clock
from edge.core import Core, Feature
from edge.settings import Settings
from edge.storage import open_storage

log = logging.getLogger(__name__)

FeatureFactory = Callable[[Settings], Feature | None]
"""Builds a feature from the configuration, or None when it is disabled."""


def feature_factories() -> list[FeatureFactory]:
    """Every part of the daemon, in start order (imported here so each stays optional)."""
    factories: list[FeatureFactory] = []
    from edge import link  # first: core.link exists for the others, and it says offline last

    factories.append(link.build)
    from edge import health

    factories.append(health.build)
    from edge import commands

    factories.append(commands.build)
    from edge import buzzer, tickets, voice  # buzzer and voice before tickets: they hear the first call

    factories += [buzzer.build, voice.build, tickets.build]
    from edge import display

    factories.append(display.build)
    from edge import locker

    factories.append(locker.build)
    from edge import console  # last: every command it offers is registered when it starts serving

    factories.append(console.build)
    return factories


class Daemon:
    def __init__(
        self,
        config: Settings,
        config_path: str | Path | None = None,
        factories: Sequence[FeatureFactory] | None = None,
    ) -> None:
        self.config = config
        # The features, in start order: all of them, or the few a test's hall names (tests/hall_rig.py).
        self.factories = list(factories) if factories is not None else feature_factories()
        self.storage = open_storage(config.storage)
        self.clock = Clock(config.time.zone, config.time.clock)
        self.core = Core(config, self.storage, self.clock)
        # The file it came from: config.set rewrites it and restarts (edge/config_change.py).
        self.core.config_path = Path(config_path) if config_path else None
        self.features: list[Feature] = []
        self.stop_requested = threading.Event()
        self._signalled: int | None = None
        self.ready_at: float | None = None

    def start(self) -> None:
        if self.storage.moved_aside is not None:
            self.core.emit(
                "error.storage_corrupt",
                {"moved_to": str(self.storage.moved_aside), "reason": self.storage.moved_aside_reason},
            )
        self.core.register_status("version", lambda: __version__)
        for factory in self.factories:
            feature = self._start_feature(factory)
            if feature is not None:
                self.features.append(feature)
        self.core.start()
        self.ready_at = time.monotonic()
        log.info(
            "ready version=%s device=%s features=%s",
            __version__,
            self.core.device,
            ",".join(f.name for f in self.features),
        )
        if self.storage.started_full:
            sdnotify.notify("READY=1\nSTATUS=degraded: the disk is full (alarm.disk_full); free space")
        else:
            sdnotify.notify("READY=1\nSTATUS=running")

    def _start_feature(self, factory: FeatureFactory) -> Feature | None:
        """Build and start one feature; one that fails is left out and the rest of the hall runs."""
        feature: Feature | None = None
        try:
            feature = factory(self.config)
            if feature is not None:
                feature.start(self.core)
            return feature
        except Exception as exc:
            # A factory that failed made no feature: its package names it (edge.link.build: link).
            module = getattr(factory, "__module__", "") or ""
            fallback = module.rsplit(".", 1)[-1] if module.startswith("edge.") else ""
            name = getattr(feature, "name", fallback or getattr(factory, "__qualname__", "feature"))
            log.exception("feature %s failed to start; running without it", name)
            if feature is not None:
                self._stop_feature(feature)
            self.core.emit("error.feature_failed", {"feature": name, "reason": type(exc).__name__})
            self.core.set_component(name, "failed")
            return None

    def _stop_feature(self, feature: Feature) -> None:
        try:
            feature.stop()
        except Exception:
            log.exception("feature %s failed to stop cleanly", feature.name)

    def stop(self) -> None:
        sdnotify.notify("STOPPING=1")
        core_ended = self.core.stop()
        for feature in reversed(self.features):
            self._stop_feature(feature)
        if core_ended:
            self.storage.close()
        else:
            # Closing a SQLite connection that another thread is inside of can crash the process;
            # what is committed is on disk either way, and the process exit closes the file.
            log.warning("the core thread is still in a handler: the database is left open for the exit")
        log.info("stopped")

    def catch_signals(self) -> None:
        """SIGTERM/SIGINT set stop_requested. Call before start: systemd may stop us right after READY=1."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def run_until_signalled(self) -> None:
        """Block until SIGTERM/SIGINT (or stop_requested), feeding the systemd watchdog."""
        self.catch_signals()
        watchdog = sdnotify.watchdog_interval_s()
        next_ping = time.monotonic()
        while self._signalled is None and not self.stop_requested.wait(0.2):
            if self.core.stopped.is_set():
                break  # the core asked to exit (restart command)
            now = time.monotonic()
            if watchdog and now >= next_ping:
                next_ping = now + watchdog
                if now - self.core.heartbeat < 3 * watchdog:
                    sdnotify.notify("WATCHDOG=1")
        if self._signalled is not None:
            log.info("signal %s: stopping", signal.Signals(self._signalled).name)
            self.stop_requested.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only a plain assignment: Event.set() (or logging) here can deadlock with the
        # Event.wait() this handler interrupted in the same thread.
        self._signalled = signum
