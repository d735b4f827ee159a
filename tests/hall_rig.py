"""One hall in this process, assembled the way the daemon assembles it, for any set of features.

``make_hall`` (tests/conftest.py) builds one: its configuration file on disk
(``make_config``'s defaults plus the test's overrides), then ``edge.daemon.Daemon``
with only the features the test names: storage -> core -> the features in that
order -> the core thread.  ``stop()`` is the daemon's stop, ``restart()`` is
systemd starting it again on the same folder (and re-reading the file, which
``config.set`` may have rewritten).  Pins are gpiozero's MockFactory (the
``pins`` fixture); the broker is the test's.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from support import config_document, on_core, wait_for

from edge.config import load
from edge.core import Core, Feature
from edge.daemon import Daemon, FeatureFactory
from edge.outbox import Event
from edge.settings import Settings
from edge.storage import Storage

FeatureSpec = str | FeatureFactory
"""A feature by its package name (``"link"`` -> ``edge.link.build``), or any factory."""


def factory_for(spec: FeatureSpec) -> FeatureFactory:
    if isinstance(spec, str):
        return importlib.import_module(f"edge.{spec}").build  # type: ignore[no-any-return]  # every feature package has build
    return spec


class Hall:
    """A running hall: ``.core``, ``.storage``, ``.features``, ``.feature(name)``, the events it recorded."""

    def __init__(
        self,
        folder: Path,
        features: Sequence[FeatureSpec] | None,
        overrides: dict[str, Any] | None = None,
        *,
        watch: Sequence[type] = (),
        start: bool = True,
        **top: Any,
    ) -> None:
        self.folder = folder
        self.config_path = folder / "etc" / "hall-edge.toml"
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self._overrides, self._top = overrides, top
        self.config_path.write_text(tomlkit.dumps(self.document()))
        self.config_path.chmod(0o600)
        self.config: Settings = load(self.config_path)
        self._config_read = True  # the first start uses it; later ones read the file again
        self.factories = None if features is None else [factory_for(spec) for spec in features]
        self.seen: dict[type, list[Any]] = {kind: [] for kind in watch}
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self.daemon: Daemon | None = None
        if start:
            self.start()

    def document(self) -> dict[str, Any]:
        """The installer's configuration file of this hall as a dict (``make_config``'s defaults
        plus the overrides)."""
        return config_document(self.folder, self._overrides, **self._top)

    # -- the daemon's life --------------------------------------------------------------

    def start(self) -> Hall:
        """Start the daemon (all features when ``features`` was None); a feature that fails to
        start fails the test instead of being left out as the daemon would."""
        if not self._config_read:  # config.set may have changed it since (as systemd's restart)
            self.config = load(self.config_path)
        self._config_read = False
        self.daemon = Daemon(self.config, self.config_path, self.factories)
        core = self.daemon.core
        core.outbox.listeners.append(self._record)
        for kind, seen in self.seen.items():
            core.subscribe(kind, seen.append)
        self.daemon.start()
        failed = sorted(name for name, state in core.components.items() if state == "failed")
        if failed:
            self.stop()
            raise AssertionError(f"feature(s) {', '.join(failed)} failed to start (see the log)")
        return self

    def stop(self) -> None:
        """The daemon's stop: core, then the features in reverse order, then storage (idempotent)."""
        if self.daemon is not None:
            daemon, self.daemon = self.daemon, None
            daemon.stop()

    def close(self) -> None:
        """Stop, and let go of what the rig itself holds (a subclass's simulated devices)."""
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def wait_exit(self, timeout: float = 10.0) -> None:
        """What systemd sees: the core stopped by itself (restart, config.set); then stop the rest."""
        core = self.core
        wait_for(core.stopped.is_set, timeout, "the daemon to exit by itself")
        self.stop()

    # -- what the test looks at -----------------------------------------------------------

    @property
    def running(self) -> Daemon:
        if self.daemon is None:
            raise AssertionError("the hall is not running")
        return self.daemon

    @property
    def core(self) -> Core:
        return self.running.core

    @property
    def storage(self) -> Storage:
        return self.running.storage

    @property
    def features(self) -> list[Feature]:
        return self.running.features

    def feature(self, name: str) -> Any:
        """The running feature called ``name`` (``hall.feature("tickets").queue``)."""
        found = [feature for feature in self.features if feature.name == name]
        if not found:
            raise AssertionError(f"no running feature {name!r}: {[f.name for f in self.features]}")
        return found[0]

    def watch(self, kind: type) -> list[Any]:
        """Every ``kind`` message the core dispatched (name it in ``watch=`` when building)."""
        if kind not in self.seen:
            raise AssertionError(f"{kind.__name__} is not watched: pass watch=({kind.__name__},)")
        return self.seen[kind]

    def on_core(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the core thread (which owns the state and storage) and return its result."""
        return on_core(self.core, fn, timeout)

    def emit(self, type_: str, data: dict[str, Any]) -> Any:
        return self.on_core(lambda: self.core.emit(type_, data))

    def command(self, name: str, args: dict[str, Any] | None = None, **more: Any) -> Any:
        """Run a registered command's handler on the core thread, as the dispatcher does:
        ``hall.command("queue.call", window=2)`` or ``hall.command("display.message", {...})``."""
        handler = self.core.command(name)
        if handler is None:
            raise AssertionError(f"no command {name!r} registered")
        return self.on_core(lambda: handler({**(args or {}), **more}, {}))

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def data(self, type_: str) -> list[dict[str, Any]]:
        """The ``data`` of every ``type_`` event recorded, oldest first."""
        with self._lock:
            return [e.body()["data"] for e in self.events if e.type == type_]

    def wait_event(self, type_: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.data(type_)) >= count, timeout, what=f"{count} x {type_}")
        return self.data(type_)
