"""Health: overheat and disk-low alarms, one event per incident, hysteresis, restart-safe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hall_rig import Hall
from support import wait_for

from edge.health.feature import HealthFeature, disk_free_mb, read_cpu_temp_c
from edge.settings import Settings

MIB = 1024 * 1024


class Disk:
    """The file system's answer at the OS boundary: a settable number of free bytes."""

    def __init__(self, free_mb: float) -> None:
        self.free_mb = free_mb

    def __call__(self, _path: str) -> int:
        return int(self.free_mb * MIB)


OVERRIDES = {"storage": {"disk_low_mb": 200}, "health": {"overheat_c": 80.0}}


def sensors_at(thermal: Path, disk: Disk) -> Callable[[Settings], HealthFeature]:
    """The health feature reading this thermal file and this disk (the OS boundary)."""
    return lambda settings: HealthFeature(settings, str(thermal), disk)


class HealthHall(Hall):
    """A hall with the health feature; the test decides when it checks (on the core thread)."""

    @property
    def health(self) -> HealthFeature:
        return self.feature("health")

    @property
    def disk(self) -> Disk:
        return self.health.free_bytes_probe

    def temp(self, celsius: float) -> None:
        Path(self.health.thermal_path).write_text(f"{int(celsius * 1000)}\n")

    def check(self) -> None:
        self.on_core(self.health.check)

    def status(self) -> dict:
        return self.on_core(self.core.status)["health"]

    def alarms(self) -> list[tuple[str, str]]:
        pending = self.on_core(self.core.outbox.pending)
        return [(e.type, e.body()["data"]["state"]) for e in pending if "alarm." in e.type]


@pytest.fixture
def hall(tmp_path, make_hall):
    thermal = tmp_path / "temp"
    thermal.write_text("45000\n")
    return make_hall([sensors_at(thermal, Disk(5000))], OVERRIDES, rig=HealthHall)


def test_overheat_is_one_event_per_incident_and_one_when_it_clears(hall):
    hall.check()
    assert hall.alarms() == []
    hall.temp(81.2)
    for _ in range(3):
        hall.check()
    assert hall.alarms() == [("alarm.overheat", "raised")]
    event = hall.on_core(hall.core.outbox.pending)[-1].body()["data"]
    assert event["cpu_temp_c"] == 81.2
    assert event["limit_c"] == 80.0
    hall.temp(77.0)  # below the limit but inside the margin: still the same incident
    hall.check()
    assert hall.alarms() == [("alarm.overheat", "raised")]
    hall.temp(60.0)
    hall.check()
    hall.check()
    assert hall.alarms() == [("alarm.overheat", "raised"), ("alarm.overheat", "cleared")]
    assert hall.status()["alarms"] == []


def test_disk_low_raises_and_clears_with_a_margin(hall):
    hall.disk.free_mb = 150
    hall.check()
    hall.check()
    assert hall.alarms() == [("alarm.disk_low", "raised")]
    assert hall.status()["alarms"] == ["disk_low"]
    hall.disk.free_mb = 210  # above the limit, below limit + 10 %
    hall.check()
    assert len(hall.alarms()) == 1
    hall.disk.free_mb = 400
    hall.check()
    assert hall.alarms() == [("alarm.disk_low", "raised"), ("alarm.disk_low", "cleared")]
    cleared = hall.on_core(hall.core.outbox.pending)[-1].body()["data"]
    assert cleared["disk_free_mb"] == 400
    assert cleared["since"]


def test_a_restart_during_an_incident_neither_repeats_nor_forgets_it(hall):
    hall.temp(90)
    hall.check()
    assert hall.alarms() == [("alarm.overheat", "raised")]
    hall.restart()
    hall.check()
    assert hall.alarms() == [("alarm.overheat", "raised")]
    hall.temp(50)
    hall.check()
    assert hall.alarms()[-1] == ("alarm.overheat", "cleared")


def test_no_sensor_means_no_reading_and_no_alarm(tmp_path, make_hall):
    hall = make_hall([sensors_at(tmp_path / "no-such-zone", Disk(5000))], OVERRIDES, rig=HealthHall)
    hall.check()
    status = hall.status()
    assert status["cpu_temp_c"] is None
    assert status["disk_free_mb"] == 5000
    assert hall.alarms() == []


@pytest.mark.parametrize("content", ["", "hot\n", "\xff"])
def test_garbage_in_the_thermal_file_is_no_reading(tmp_path, content):
    path = tmp_path / "temp"
    path.write_text(content, encoding="latin-1")
    assert read_cpu_temp_c(str(path)) is None


def test_readings_from_the_real_machine(tmp_path):
    assert disk_free_mb(str(tmp_path)) > 0
    assert disk_free_mb(str(tmp_path / "gone" / "deeper")) is None
    real = read_cpu_temp_c()
    assert real is None or -40 < real < 130


def test_the_daemon_runs_health_and_reports_it_in_status(make_hall):
    hall = make_hall(None)  # every feature, as the daemon starts them
    assert "health" in [f.name for f in hall.features]
    wait_for(lambda: hall.on_core(hall.core.status)["health"]["disk_free_mb"], 10, "the first health check")
    keys = {"cpu_temp_c", "disk_free_mb", "db_mb", "alarms", "disk_reserve"}
    assert set(hall.on_core(hall.core.status)["health"]) == keys


def test_alarm_events_match_the_contract_schema(hall):
    import json

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs/schemas/event.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    hall.temp(95)
    hall.disk.free_mb = 10
    hall.check()
    hall.temp(40)
    hall.disk.free_mb = 9000
    hall.check()
    events = [e.body() for e in hall.on_core(hall.core.outbox.pending)]
    assert [(e["type"], e["data"]["state"]) for e in events] == [
        ("alarm.overheat", "raised"),
        ("alarm.disk_low", "raised"),
        ("alarm.overheat", "cleared"),
        ("alarm.disk_low", "cleared"),
    ]
    for event in events:
        validator.validate(event)
