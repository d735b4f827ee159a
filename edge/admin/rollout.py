"""``hall-admin rollout``: one update for many controllers, in waves, stopping at the first failure.

The first wave is one controller; the second a share (``--fraction``) of the
rest; the third the rest.  A wave's controllers update at the same time, and
the next wave starts only when every one of them is confirmed: a release that
rolls back (or is refused, or does not report in time) stops the rollout with
the other controllers untouched.  Controllers offline at the start, and those
already on the version, are left out and shown as such.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.admin.session import Session, await_outcomes, send, watch_outcome
from edge.admin.settings import EXIT_FAILED, EXIT_OK, AdminError, AdminSettings

DEFAULT_WAIT_S = 600.0


def waves(devices: list[str], fraction: float) -> list[list[str]]:
    """[first one], [a fraction of the rest, at least one], [the rest]; empty waves left out."""
    if not devices:
        return []
    rest = devices[1:]
    second = math.ceil(fraction * len(rest)) if rest else 0
    return [wave for wave in (devices[:1], rest[:second], rest[second:]) if wave]


class Rollout:
    def __init__(
        self,
        session: Session,
        settings: AdminSettings,
        key: Ed25519PrivateKey,
        args: dict[str, Any],
        *,
        fraction: float,
        wait_s: float,
    ) -> None:
        self.session, self.settings, self.key = session, settings, key
        self.args = args
        self.version = str(args["version"])
        self.fraction = fraction
        self.wait_s = wait_s
        self.rows: list[dict[str, Any]] = []
        self.waves: list[list[str]] = []

    def plan(self, states: dict[str, dict[str, Any]]) -> None:
        """One row per controller seen in the retained states; the waves of those to update."""
        from edge.release import compare_versions

        todo = []
        for device, state in sorted(states.items()):
            running = str(state.get("version", "-"))
            row = {"device": device, "from": running, "to": self.version, "wave": "-", "outcome": ""}
            if not state.get("online"):
                row["outcome"] = "offline: left out"
            elif _same(running, self.version, compare_versions):
                row["outcome"] = f"already on {self.version}"
            else:
                row["outcome"] = "waiting"
                todo.append(device)
            self.rows.append(row)
        self.waves = waves(todo, self.fraction)
        for number, wave in enumerate(self.waves, 1):
            for device in wave:
                self._row(device)["wave"] = number

    def run(self, say: Callable[[str], None]) -> int:
        for number, wave in enumerate(self.waves, 1):
            say(f"wave {number} of {len(self.waves)}: {', '.join(wave)}")
            if not self._wave(wave):
                for later in self.waves[number:]:
                    for device in later:
                        self._row(device)["outcome"] = "not started: the rollout stopped"
                return EXIT_FAILED
        return EXIT_OK

    def _wave(self, wave: list[str]) -> bool:
        """Update every controller of one wave; True when all of them are confirmed."""
        started: dict[str, str] = {}  # command id -> device
        for device in wave:
            row = self._row(device)
            try:
                watch_outcome(self.session, device, "update")
                outcome = send(
                    self.session, device, "update", args=self.args, settings=self.settings, key=self.key
                )
            except AdminError as exc:
                row["outcome"] = f"not sent: {exc.message}"
                continue
            result = outcome.result
            if result.get("ok"):
                row["outcome"] = "updating"
                started[str(result.get("id"))] = device
            else:
                error = result.get("error") or {}
                row["outcome"] = f"refused: {error.get('code')}: {error.get('message')}"
        found = await_outcomes(self.session, set(started), "update", time.monotonic() + self.wait_s)
        healthy = len(started) == len(wave)
        for command_id, device in started.items():
            row = self._row(device)
            final = found.get(command_id)
            if final is None:
                row["outcome"] = f"no outcome within {self.wait_s:g} s"
                healthy = False
            elif final.word == "confirmed":
                row["outcome"] = f"confirmed in {final.data.get('seconds', '?')} s"
            else:
                row["outcome"] = f"{final.word}: {final.data.get('reason')}: {final.data.get('detail', '')}"
                healthy = False
        return healthy

    def _row(self, device: str) -> dict[str, Any]:
        return next(row for row in self.rows if row["device"] == device)


def _same(running: str, wanted: str, compare: Callable[[str, str], int]) -> bool:
    try:
        return compare(running, wanted) == 0
    except ValueError:  # "-" or a version we cannot read: not the same
        return False


def rollout_table(rows: list[dict[str, Any]]) -> str:
    header = ("DEVICE", "FROM", "TO", "WAVE", "OUTCOME")
    lines = [header, *((r["device"], r["from"], r["to"], str(r["wave"]), r["outcome"]) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in lines
    )
