"""Shared fixtures: a private mosquitto per test session, MockFactory pins, and ``make_hall``
(the one way a test builds a hall: tests/hall_rig.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from contract_recorder import contract_recorder  # noqa: F401 - every published message is checked
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from hall_rig import FeatureSpec, Hall
from hallsim.broker import Mosquitto


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One mosquitto on a free loopback port for the whole test session."""
    with Mosquitto(tmp_path_factory.mktemp("broker")) as mosquitto:
        yield mosquitto


@pytest.fixture
def own_broker(tmp_path) -> Iterator[Mosquitto]:
    """A broker this test may stop and restart."""
    mosquitto = Mosquitto(tmp_path / "broker").start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    """gpiozero's MockFactory as the pin factory for this test, closed and unset after it."""
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory.close()
    Device.pin_factory = None


@pytest.fixture
def make_hall(tmp_path: Path, pins: MockFactory) -> Iterator[Callable[..., Hall]]:
    """``make_hall(["link", "tickets"], {"mqtt": {"port": broker.port}}, watch=(LinkStatus,))``:
    a running hall with those features (None: every feature of the daemon), in ``tmp_path``
    unless ``folder=`` says otherwise; ``rig=`` a Hall subclass with a device bench
    (tests/locker_hall.py).  Every hall made is closed after the test."""
    halls: list[Hall] = []

    def make(
        features: Sequence[FeatureSpec] | None,
        overrides: dict[str, Any] | None = None,
        *,
        folder: Path | None = None,
        rig: Callable[..., Hall] = Hall,
        **options: Any,
    ) -> Hall:
        hall = rig(folder or tmp_path, features, overrides, **options)
        halls.append(hall)
        return hall

    yield make
    for hall in reversed(halls):
        hall.close()
