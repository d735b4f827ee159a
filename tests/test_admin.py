"""hall-admin against the real test broker and a running daemon (in this process)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from command_rig import CommandHall
from hallsim.broker import free_port
from support import on_core, run_bench, wait_for

from edge import admin
from edge.config import load
from edge.daemon import Daemon


@pytest.fixture
def hall(tmp_path, make_hall, broker):
    hall = make_hall(None, rig=CommandHall, port=broker.port)
    hall.start()
    yield hall
    hall.close()


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path, capsys):
    out = tmp_path / "keys" / "it-2026a.key"
    assert admin.main(["keygen", "--kid", "it-2026a", "-o", str(out), "--json"]) == admin.EXIT_OK
    printed = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert printed["kid"] == "it-2026a" and printed["private_key_file"] == str(out)
    key = admin.load_private_key(str(out))
    assert admin.public_key_b64(key) == printed["public_key"]
    # never overwrites a key that may already be on the devices
    assert admin.main(["keygen", "--kid", "it-2026a", "-o", str(out)]) == admin.EXIT_LOCAL
    assert "never overwrites" in capsys.readouterr().err


def test_keygen_output_is_a_valid_device_configuration_line(tmp_path, capsys):
    out = tmp_path / "k.key"
    admin.main(["keygen", "--kid", "it-2026b", "-o", str(out)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("public_keys"))
    config = tmp_path / "hall-edge.toml"
    config.write_text(
        f"[mqtt]\ntls = false\n[commands]\n{line}\n[rfid]\nenabled = false\n[locker]\nenabled = false\n"
    )
    assert list(load(config).commands.public_keys) == ["it-2026b"]


def test_a_group_readable_signing_key_is_refused(hall, capsys):
    hall.key_path.chmod(0o640)
    assert admin.main(["send", hall.target, "status", *hall.admin_flags()]) == admin.EXIT_LOCAL
    assert "chmod 600" in capsys.readouterr().err


def test_send_status_prints_the_result_readably(hall, capsys):
    assert admin.main(["send", hall.target, "status", *hall.admin_flags()]) == admin.EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"ok  status  {hall.target}  id c-")
    assert f"  device: {hall.target}" in out and "  online: yes" in out


def test_send_json_and_arguments(hall, capsys):
    code = admin.main(
        ["send", hall.target, "config.get", "--arg", "key=display.brightness", "--json", *hall.admin_flags()]
    )
    assert code == admin.EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["schema"] == "lgsc.result/1"
    assert result["result"] == {"key": "display.brightness", "value": 160, "source": "default"}


def test_refused_command_exits_3(hall, capsys):
    assert admin.main(["send", hall.target, "no.such", *hall.admin_flags()]) == admin.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("refused  no.such") and "unknown_command" in err
    code = admin.main(["send", hall.target, "logs.tail", "--arg", "n=0", *hall.admin_flags()])
    assert code == admin.EXIT_REFUSED


def test_failed_command_exits_1(tmp_path, make_hall, broker, capsys):
    hall = make_hall(None, rig=CommandHall, port=broker.port)
    hall.daemon = Daemon(load(hall.config_path))  # started without its file path: config.set cannot work
    hall.daemon.start()
    try:
        wait_for(lambda: hall.core.link.online, 10, "online")
        code = admin.main(
            [
                *("send", hall.target, "config.set", "--arg", "key=display.brightness", "--arg", "value=90"),
                *hall.admin_flags(),
            ]
        )
        assert code == admin.EXIT_FAILED
        assert "unavailable" in capsys.readouterr().err
    finally:
        hall.close()


def test_no_answer_times_out_with_exit_4(hall, capsys):
    hall.stop()
    flags = [*hall.admin_flags(), "--timeout", "0.5"]
    assert admin.main(["send", hall.target, "status", *flags]) == admin.EXIT_TIMEOUT
    assert "no result" in capsys.readouterr().err


def test_unreachable_broker_exits_5(hall, capsys):
    flags = [*hall.admin_flags(), "--port", str(free_port())]  # a flag overrides the file
    assert admin.main(["send", hall.target, "status", *flags]) == admin.EXIT_UNREACHABLE
    assert "unreachable" in capsys.readouterr().err


def test_mqtt311_gets_the_result_on_cmd_result(hall, capsys):
    flags = [*hall.admin_flags(), "--protocol", "mqttv311", "--json"]
    assert admin.main(["send", hall.target, "status", *flags]) == admin.EXIT_OK
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_usage_errors_exit_2(hall, capsys):
    assert admin.main(["send", "not-a-target", "status", *hall.admin_flags()]) == admin.EXIT_USAGE
    assert admin.main(["send", hall.target, "status", "--arg", "novalue", *hall.admin_flags()]) == 2
    with pytest.raises(SystemExit) as exc:
        admin.main(["send"])
    assert exc.value.code == admin.EXIT_USAGE
    capsys.readouterr()


def test_fleet_status_table(tmp_path, make_hall, broker, capsys):
    first = make_hall(None, rig=CommandHall, port=broker.port, folder=tmp_path / "a")
    second = make_hall(
        None, rig=CommandHall, port=broker.port, folder=tmp_path / "b", site=first.site, device="hall-02"
    )
    first.start()
    second.start()
    second.stop()  # a clean stop leaves the retained offline state
    try:
        assert admin.main(["status", first.site, "--wait", "2", *first.admin_flags()]) == admin.EXIT_OK
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["DEVICE", "ONLINE", "VERSION", "COMPONENTS", "LAST", "SEEN"]
        row = {line.split()[0]: line for line in lines[1:-1]}
        assert row[first.target].split()[1] == "yes"
        assert row[second.target].split()[1] == "NO"
        assert lines[-1] == "2 controller(s), 1 online"
        assert admin.main(["status", first.site, "--json", *first.admin_flags()]) == admin.EXIT_OK
        rows = json.loads(capsys.readouterr().out)
        assert {r["device"]: r["online"] for r in rows} == {first.target: True, second.target: False}
    finally:
        first.close()
        second.close()


def test_snapshot_writes_the_screen_as_png(tmp_path, make_hall, broker, capsys):
    hall = make_hall(
        None, {"display": {"enabled": True, "device": "dummy"}}, rig=CommandHall, port=broker.port
    )
    hall.start()
    try:
        out = tmp_path / "screen.png"
        assert admin.main(["snapshot", hall.target, "-o", str(out), *hall.admin_flags()]) == admin.EXIT_OK
        assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert f"{out}: " in capsys.readouterr().out
    finally:
        hall.close()


def test_events_follow_prints_events_as_they_come(hall):
    script = Path(sys.executable).with_name("hall-admin")
    process = subprocess.Popen(
        [str(script), "events", hall.target, "--follow", *hall.admin_flags()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # Keep causing audit events until the follower (started asynchronously) prints one.
        os.set_blocking(process.stdout.fileno(), False)
        seen: list[str] = []
        last = [0.0]

        def printed() -> bool:
            if time.monotonic() - last[0] > 0.2:
                last[0] = time.monotonic()
                hall.publish(b"not json")
            with contextlib.suppress(BlockingIOError):
                seen.append(os.read(process.stdout.fileno(), 65536).decode())
            return any("audit.command_refused" in s for s in seen)

        wait_for(printed, 15, "an event line")
        line = next(x for x in "".join(seen).splitlines() if "audit.command_refused" in x)
        assert '{"reason":"not_json"}' in line
    finally:
        process.terminate()
        process.wait(5)


def test_arg_values_are_json_when_they_parse():
    assert admin.parse_arg("seconds=3600") == ("seconds", 3600)
    assert admin.parse_arg("text=今日下午停电") == ("text", "今日下午停电")
    assert admin.parse_arg('id="007"') == ("id", "007")
    assert admin.parse_arg('changes={"display": {"brightness": 90}}') == (
        "changes",
        {"display": {"brightness": 90}},
    )
    assert admin.parse_arg("auto=true") == ("auto", True)


def test_roundtrip_benchmark_smoke():
    """bench/admin_roundtrip.py with a few round trips: it runs and prints its figures."""
    out = run_bench("admin_roundtrip.py", "-n", "3", "--cli-n", "1")
    lines = out.splitlines()
    for label in ("raw paho echo", "admin send status", "hall-admin CLI status"):
        assert sum(line.startswith(label) for line in lines) == 2, out
    assert all("median" in line and "p99" in line for line in lines if line.startswith(("raw", "admin")))


def test_what_a_device_answers_never_drives_the_terminal(hall, capsys):
    """The device's error message repeats the key it was given: ESC and CR come back raw."""
    key = "key=a\x1b[2J\x1b]0;pwned\x07\rb"
    code = admin.main(["send", hall.target, "config.get", "--arg", key, *hall.admin_flags()])
    assert code == admin.EXIT_REFUSED
    printed = capsys.readouterr()
    assert "no such configuration key" in printed.err
    for stream in (printed.out, printed.err):
        assert not any(ch in stream for ch in "\x1b\x07\r"), repr(stream)
    assert "\\x1b[2J" in printed.err


def test_report_prints_a_days_queue_figures_as_a_table_or_csv(make_hall, broker, capsys):
    """Issue 14: `hall-admin report SITE/DEVICE` asks the controller (signed queue.report) and prints
    the figures per category and window; --csv gives the same rows to a spreadsheet."""
    hall = make_hall(None, {"queue": {"enabled": True}}, rig=CommandHall, port=broker.port)
    hall.start()
    tickets = hall.feature("tickets")
    day = on_core(hall.core, lambda: tickets.issue("A") and tickets.queue.current_day()[0])
    on_core(hall.core, lambda: (tickets.call(1), tickets.finish(1), tickets.rate(1, 5)))
    assert admin.main(["report", hall.target, "--day", day, *hall.admin_flags()]) == admin.EXIT_OK
    table = capsys.readouterr().out
    assert table.startswith(f"queue report {day}")
    header, row_a = table.splitlines()[1:3]
    assert "非常满意" in header and "wait p90 s" in header
    assert row_a.split()[:5] == ["A", "1", "1", "1", "0"]  # issued, called, served, no-show
    assert admin.main(["report", hall.target, "--day", day, "--csv", *hall.admin_flags()]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("day,kind,name,issued,called,served,no_show,transferred,wait_mean")
    assert rows[1].startswith(f"{day},category,A,1,1,1,0,0,")
    assert rows[1].endswith(",1,0,0,0,0,0")  # one 非常满意, none unrated
    assert admin.main(["report", hall.target, "--day", "30/11", *hall.admin_flags()]) == admin.EXIT_USAGE


# ---- long-running commands: config.set and update wait for their outcome -----------------------


def admin_in_thread(argv: list[str]) -> tuple[Any, dict[str, Any]]:
    """Run hall-admin in a thread (the test plays systemd meanwhile); its exit code and output."""
    import io
    import threading
    from contextlib import redirect_stderr, redirect_stdout

    box: dict[str, Any] = {}
    out, err = io.StringIO(), io.StringIO()

    def run() -> None:
        with redirect_stdout(out), redirect_stderr(err):
            box["code"] = admin.main(argv)
        box["out"], box["err"] = out.getvalue(), err.getvalue()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_send_config_set_waits_until_the_change_is_confirmed(hall):
    """It used to exit at `restarting: yes`; whether the change held showed only in events and logs."""
    argv = [
        *("send", hall.target, "config.set", "--arg", "key=display.brightness", "--arg", "value=90"),
        *hall.admin_flags(),
        *("--wait-timeout", "30"),
    ]
    thread, box = admin_in_thread(argv)
    hall.wait_exit()  # the daemon restarts to apply the change, as systemd would
    hall.start()
    thread.join(30)
    assert box["code"] == 0, box
    assert "waiting for the outcome" in box["out"]
    assert "confirmed  config.set" in box["out"]


def test_send_config_set_reports_a_rollback_with_its_reason_and_exits_1(hall):
    argv = [
        *("send", hall.target, "config.set", "--arg", "key=mqtt.port", "--arg", f"value={free_port()}"),
        *hall.admin_flags(),
        *("--wait-timeout", "30"),
    ]
    thread, box = admin_in_thread(argv)
    hall.wait_exit()
    hall.start(online=False)  # no broker on the new port
    hall.wait_exit(timeout=15)  # rolled back after the probation (3 s)
    hall.start()
    thread.join(30)
    assert box["code"] == 1, box
    assert "rolled back  config.set" in box["err"]
    assert "did not come online" in box["err"]


def test_no_wait_returns_at_the_first_result(hall, capsys):
    argv = [*("send", hall.target, "config.set", "--arg", "key=display.brightness", "--arg", "value=90")]
    assert admin.main([*argv, "--no-wait", *hall.admin_flags()]) == 0
    assert "restarting: yes" in capsys.readouterr().out


def test_rollout_waves_are_one_then_a_share_then_the_rest():
    from edge.admin.rollout import waves

    devices = [f"s/hall-{n:02d}" for n in range(10)]
    assert [len(wave) for wave in waves(devices, 0.25)] == [1, 3, 6]
    assert waves(devices[:1], 0.25) == [devices[:1]]
    assert [len(wave) for wave in waves(devices[:2], 0.25)] == [1, 1]
    assert [len(wave) for wave in waves(devices, 1.0)] == [1, 9]
