"""Shared fixtures: a private mosquitto per test session, deadlines instead of sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contract_recorder import contract_recorder  # noqa: F401 - every published message is checked
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
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
