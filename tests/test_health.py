"""Health: overheat and disk-low alarms, one event per incident, hysteresis, restart-safe."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import make_config, wait_for

from edge.clock import Clock
from edge.core import Core
from edge.daemon import Daemon
from edge.health import Health, disk_free_mb, read_cpu_temp_c
from edge.storage import Storage

MIB = 1024 * 1024


class Disk:
    """The file system's answer at the OS boundary: a settable number of free bytes."""

    def __init__(self, free_mb: float) -> None:
        self.free_mb = free_mb

    def __call__(self, _path: str) -> int:
        return int(self.free_mb * MIB)


class Harness:
    """A core with storage, not running its thread: the test thread plays the core thread."""

    def __init__(self, tmp_path: Path, disk: Disk, thermal: Path) -> None:
        self.config = make_config(tmp_path, {"storage": {"disk_low_mb": 200}, "health": {"overheat_c": 80.0}})
        self.thermal = thermal
        self.disk = disk
        self.storage = Storage(self.config.storage.dir)
        self.core = Core(self.config, self.storage, Clock("Asia/Shanghai", "synced"))
        self.health = Health(self.config, str(thermal), disk)
        self.health.start(self.core)

    def temp(self, celsius: float) -> None:
        self.thermal.write_text(f"{int(celsius * 1000)}\n")

    def alarms(self) -> list[tuple[str, str]]:
        return [(e.type, e.body()["data"]["state"]) for e in self.core.outbox.pending() if "alarm." in e.type]

    def close(self) -> None:
        self.health.stop()
        self.storage.close()


@pytest.fixture
def hall(tmp_path):
    thermal = tmp_path / "temp"
    thermal.write_text("45000\n")
    harness = Harness(tmp_path, Disk(5000), thermal)
    yield harness
    harness.close()


def test_overheat_is_one_event_per_incident_and_one_when_it_clears(hall):
    hall.health.check()
    assert hall.alarms() == []
    hall.temp(81.2)
    for _ in range(3):
        hall.health.check()
    assert hall.alarms() == [("alarm.overheat", "raised")]
    event = hall.core.outbox.pending()[-1].body()["data"]
    assert event["cpu_temp_c"] == 81.2
    assert event["limit_c"] == 80.0
    hall.temp(77.0)  # below the limit but inside the margin: still the same incident
    hall.health.check()
    assert hall.alarms() == [("alarm.overheat", "raised")]
    hall.temp(60.0)
    hall.health.check()
    hall.health.check()
    assert hall.alarms() == [("alarm.overheat", "raised"), ("alarm.overheat", "cleared")]
    assert hall.core.status()["health"]["alarms"] == []


def test_disk_low_raises_and_clears_with_a_margin(hall):
    hall.disk.free_mb = 150
    hall.health.check()
    hall.health.check()
    assert hall.alarms() == [("alarm.disk_low", "raised")]
    assert hall.core.status()["health"]["alarms"] == ["disk_low"]
    hall.disk.free_mb = 210  # above the limit, below limit + 10 %
    hall.health.check()
    assert len(hall.alarms()) == 1
    hall.disk.free_mb = 400
    hall.health.check()
    assert hall.alarms() == [("alarm.disk_low", "raised"), ("alarm.disk_low", "cleared")]
    cleared = hall.core.outbox.pending()[-1].body()["data"]
    assert cleared["disk_free_mb"] == 400
    assert cleared["since"]


def test_a_restart_during_an_incident_neither_repeats_nor_forgets_it(tmp_path):
    thermal = tmp_path / "temp"
    thermal.write_text("90000\n")
    first = Harness(tmp_path, Disk(5000), thermal)
    first.health.check()
    assert first.alarms() == [("alarm.overheat", "raised")]
    first.close()

    second = Harness(tmp_path, Disk(5000), thermal)
    try:
        second.health.check()
        assert second.alarms() == [("alarm.overheat", "raised")]
        second.temp(50)
        second.health.check()
        assert second.alarms()[-1] == ("alarm.overheat", "cleared")
    finally:
        second.close()


def test_no_sensor_means_no_reading_and_no_alarm(tmp_path):
    harness = Harness(tmp_path, Disk(5000), tmp_path / "no-such-zone")
    try:
        harness.health.check()
        status = harness.core.status()["health"]
        assert status["cpu_temp_c"] is None
        assert status["disk_free_mb"] == 5000
        assert harness.alarms() == []
    finally:
        harness.close()


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


def test_the_daemon_runs_health_and_reports_it_in_status(tmp_path):
    daemon = Daemon(make_config(tmp_path))
    daemon.start()
    try:
        assert "health" in [f.name for f in daemon.features]
        wait_for(lambda: daemon.core.status()["health"]["disk_free_mb"], 10, "the first health check")
        keys = {"cpu_temp_c", "disk_free_mb", "db_mb", "alarms", "disk_reserve"}
        assert set(daemon.core.status()["health"]) == keys
    finally:
        daemon.stop()


def test_alarm_events_match_the_contract_schema(hall):
    import json

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs/schemas/event.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    hall.temp(95)
    hall.disk.free_mb = 10
    hall.health.check()
    hall.temp(40)
    hall.disk.free_mb = 9000
    hall.health.check()
    events = [e.body() for e in hall.core.outbox.pending()]
    assert [(e["type"], e["data"]["state"]) for e in events] == [
        ("alarm.overheat", "raised"),
        ("alarm.disk_low", "raised"),
        ("alarm.overheat", "cleared"),
        ("alarm.disk_low", "cleared"),
    ]
    for event in events:
        validator.validate(event)
