"""A locker on a test bench: conftest's ``make_hall`` with the locker, gpiozero MockFactory pins
(reed-switch doors, recording locks) and a pty card reader.

Doors are reed switches to GND (``ReedPin``): the pull-up cannot lift a pin
whose switch is closed, so a door stays shut when the daemon re-creates its
Button after a restart, as on real hardware.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockPin
from hall_rig import FeatureSpec, Hall
from hallsim.rfid import SimReader
from support import wait_for

from drivers.rfid import card_hash
from edge.locker.compartments import CardTapped
from edge.messages import Buzz, ScreenLine, SnapshotUpdated

KEY = b"test-site-card-key"
COMPARTMENTS = [
    {
        "number": 1,
        "tool_id": "T-hammer-01",
        "tool_type": "hammer",
        "lock_pin": 5,
        "door_pin": 6,
        "select_pin": 13,
    },
    {
        "number": 2,
        "tool_id": "T-shovel-01",
        "tool_type": "shovel",
        "lock_pin": 17,
        "door_pin": 27,
        "select_pin": 19,
    },
    {
        "number": 3,
        "tool_id": "T-drill-01",
        "tool_type": "drill",
        "lock_pin": 22,
        "door_pin": 23,
        "select_pin": 26,
    },
]
UIDS = {
    "W1": "0100000001",
    "W2": "0100000002",
    "W3": "0100000003",
    "SUSP": "0100000004",
    "BAN": "0100000005",
    "STAFF": "0100000006",
    "DRILLER": "0100000007",
    "STRANGER": "0F0F0F0F0F",
    "MIFARE": "04A1B2C3D4E5F6",  # a 7-byte ISO 14443A card for the PN532
}


def cards_snapshot() -> dict[str, Any]:
    def card(name: str, worker: str, **extra: Any) -> dict[str, Any]:
        entry = {"h": card_hash(KEY, UIDS[name]), "worker": worker, "role": "worker", "status": "active"}
        entry.update({"tools_max": 1, "approved": []})
        entry.update(extra)
        return entry

    return {
        "schema": "lgsc.cards/1",
        "generated_at": "2026-11-22T08:00:00+08:00",
        "hash": {"alg": "hmac-sha256", "key_id": "k2026"},
        "cards": [
            card("W1", "W000001"),
            card("W2", "W000002"),
            card("W3", "W000003", tools_max=2),
            card("SUSP", "W000004", status="suspended"),
            card("BAN", "W000005", status="banned"),
            card("STAFF", "S000001", role="staff"),
            card("DRILLER", "W000007", approved=["drill"]),
            card("MIFARE", "W000008"),
        ],
    }


class ReedPin(MockPin):
    """A door switch to GND: closed (``shut``) holds the pin low whatever the pull."""

    def __init__(self, factory: Any, info: Any) -> None:
        self.shut = True
        super().__init__(factory, info)

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if self.shut:
            self.drive_low()


class LockPin(MockPin):
    """A lock output that remembers when it last went high (perf_counter)."""

    def __init__(self, factory: Any, info: Any) -> None:
        self.high_at: list[float] = []
        super().__init__(factory, info)

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed and value:
            self.high_at.append(time.perf_counter())
        return changed


def card_key(folder: Path) -> Path:
    """The site card key file (mode 0600, as the configuration check wants)."""
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "card.key"
    key_file.write_bytes(KEY)
    os.chmod(key_file, 0o600)
    return key_file


def locker_config(
    folder: Path, locker: dict | None = None, rfid: dict | None = None, reader: str = "rdm6300"
) -> dict[str, Any]:
    """Overrides for ``make_hall(["locker"], ..., rig=LockerHall)``: three GPIO compartments."""
    return {
        "rfid": {
            "enabled": True,
            "port": str(folder / "hall-rfid"),
            "card_key_file": str(card_key(folder)),
            "same_card_s": 0.1,
            "reader": reader,
            "poll_ms": 30,
            **(rfid or {}),
        },
        "locker": {
            "enabled": True,
            "unlock_timeout_s": 5.0,
            "lock_pulse_s": 0.2,
            "compartments": COMPARTMENTS,
            **(locker or {}),
        },
    }


def hand_cards(hall: Hall) -> None:
    """What the link does at start: the cached cards snapshot, then the locker settles."""
    hall.core.post(SnapshotUpdated("cards", cards_snapshot(), datetime.now(UTC), live=False))
    wait_for(lambda: hall.feature("locker").recovered, what="locker settled after start")


class LockerHall(Hall):
    """A hall whose GPIO locker the test works by hand: taps, doors, select buttons, the locks."""

    def __init__(
        self, folder: Path, features: list[FeatureSpec] | None, overrides: dict | None, **options: Any
    ) -> None:
        super().__init__(folder, features, overrides, watch=(Buzz, ScreenLine), start=False, **options)
        self.sim = SimReader(self.config.rfid.reader, link=Path(self.config.rfid.port), hold_s=0.05).start()
        self.pins: dict[str, Any] = {}
        for c in self.config.locker.compartments:
            self.pins[f"door{c.number}"] = Device.pin_factory.pin(c.door_pin, pin_class=ReedPin)
            self.pins[f"lock{c.number}"] = Device.pin_factory.pin(c.lock_pin, pin_class=LockPin)
            self.pins[f"select{c.number}"] = Device.pin_factory.pin(c.select_pin)
        self.start()

    def start(self) -> LockerHall:
        super().start()
        hand_cards(self)
        return self

    def close(self) -> None:
        super().close()
        self.sim.stop()

    @property
    def locker(self) -> Any:
        return self.feature("locker")

    @property
    def buzzes(self) -> list[str]:
        return [buzz.pattern for buzz in self.watch(Buzz)]

    @property
    def lines(self) -> list[str]:
        return [line.text for line in self.watch(ScreenLine)]

    # -- the hall side ---------------------------------------------------------------------

    def tap(self, name: str) -> None:
        """A tap as the reader thread hands it over (the pty path is tested in test_rfid)."""
        self.core.post(CardTapped(card_hash(KEY, UIDS[name])))

    def door(self, number: int, is_open: bool) -> None:
        pin = self.pins[f"door{number}"]
        pin.shut = not is_open
        if is_open:
            pin.drive_high()
        else:
            pin.drive_low()

    def select(self, number: int) -> None:
        pin = self.pins[f"select{number}"]
        pin.drive_low()
        pin.drive_high()

    def lock_high(self, number: int) -> bool:
        return bool(self.pins[f"lock{number}"].state)

    def unlocks(self, number: int) -> int:
        return len(self.pins[f"lock{number}"].high_at)

    def status(self) -> dict[str, Any]:
        return self.on_core(self.core.status)["locker"]

    def checkout(self, name: str, number: int) -> dict[str, Any]:
        """Tap, take the tool from ``number``, shut the door; the rental.checkout event."""
        before = len(self.data("rental.checkout"))
        self.tap(name)
        wait_for(lambda: self.lock_high(number), what=f"lock {number} pulsed")
        self.door(number, True)
        self.door(number, False)
        event = self.wait_event("rental.checkout", before + 1)[-1]
        wait_for(lambda: not self.lock_high(number), what=f"lock {number} released")
        return event
