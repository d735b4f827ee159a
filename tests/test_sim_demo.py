"""hall-sim demo as a newcomer runs it: comes up, writes sim.json, takes verbs, stops cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from console_support import Client
from support import wait_for


def hall_sim(
    *args: str, data: Path | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("HALLSIM_DATA", None)
    prefix = ["--data", str(data)] if data else []
    return subprocess.run(
        [sys.executable, "-m", "hallsim.cli", *prefix, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
        cwd=cwd,
    )


def ok(*args: str, data: Path, cwd: Path | None = None) -> str:
    result = hall_sim(*args, data=data, cwd=cwd)
    assert result.returncode == 0, f"hall-sim {' '.join(args)}: {result.stderr}"
    return result.stdout


def sim_status(data: Path) -> dict:
    return json.loads(ok("status", data=data))


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_demo(data: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hallsim.cli", "demo", "--data", str(data), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, killed whole at teardown
    )


def running_sim(data: Path, demo: subprocess.Popen[str]) -> dict:
    def ready() -> dict | None:
        if demo.poll() is not None:
            raise AssertionError(
                f"demo exited {demo.returncode}: {demo.stdout.read() if demo.stdout else ''}"
            )
        try:
            sim = json.loads((data / "sim.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return sim if sim["state"] == "running" else None

    return wait_for(ready, 20, "sim.json with state running")


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (the daemon and mosquitto run in their own sessions,
    out of the demo's process group), from /proc's children lists."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def started_with(text: str) -> list[int]:
    """Processes whose command line holds ``text`` (a test's own data folder: a daemon or a
    mosquitto left by a demo that died before it could stop them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def kill_tree(demo: subprocess.Popen[str]) -> None:
    """SIGKILL the demo, its process group and every session below it, whatever state it is in
    (also what it started, found by the data folder in their command lines, if it is dead)."""
    data = str(demo.args[demo.args.index("--data") + 1])
    pids = [*descendants(demo.pid), *started_with(data)]
    for group in {demo.pid, *pids}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    for pid in [demo.pid, *pids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    demo.wait()


@pytest.fixture
def stop_demo():
    """The demos a test started; at teardown, pass or fail, the demo and everything it started
    is killed (a failed assertion must not leave a daemon and a broker running)."""
    demos: list[subprocess.Popen[str]] = []
    yield demos.append
    for demo in demos:
        if demo.poll() is None:
            # SIGTERM first: the demo stops its daemon and broker cleanly; then nothing may survive.
            demo.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                demo.wait(15)
        kill_tree(demo)


def test_demo_comes_up_takes_verbs_and_stops_everything_on_sigterm(tmp_path, stop_demo):
    data = tmp_path / "data"
    demo = start_demo(data)
    stop_demo(demo)
    sim = running_sim(data, demo)

    assert sim["broker"].startswith("mqtt://127.0.0.1:")
    assert (sim["site"], sim["device"]) == ("qinshui", "hall-01")
    assert Path(sim["config"]) == data / "hall-edge.toml"
    assert oct((data / "card.key").stat().st_mode & 0o777) == "0o600"
    assert oct(Path(sim["admin_key"]).stat().st_mode & 0o777) == "0o600"
    assert "worker" in sim["cards"]
    # The staff console, with the sample accounts the demo sets by signed console.account.
    console = Client(sim["console"]["url"])
    boss = next(a for a in sim["console"]["accounts"] if a["role"] == "supervisor")
    wait_for(lambda: console.login(boss["user"], boss["password"]).status == 303, 60, "the console login")
    assert {a["role"] for a in sim["console"]["accounts"]} == {"window", "locker", "supervisor"}
    daemon_pid = sim["daemon_pid"]
    broker_port = int(sim["broker"].rsplit(":", 1)[1])
    assert not gone(daemon_pid)
    assert listening(broker_port)

    check = subprocess.run(
        # The demo is the example's hall (qinshui/hall-01): its placeholders only warn here.
        [sys.executable, "-m", "edge", "check-config", "--placeholders", "warn", sim["config"]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stderr

    status = hall_sim("status", data=data)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["daemon"]["running"] is True
    pressed = hall_sim("press", "A", data=data)
    assert pressed.returncode == 0, pressed.stderr
    assert "pressed A" in pressed.stdout
    # The whole chain: button -> daemon -> printer and central; central -> daemon -> screen.
    wait_for(lambda: (sim_status(data)["printer"] or {}).get("tickets"), 10, "a printed ticket")
    wait_for(
        lambda: sim_status(data)["central"]["by_type"].get("ticket.issued"), 10, "ticket.issued at central"
    )
    assert "A001" in sim_status(data)["printer"]["last_ticket"]
    wait_for(lambda: sim_status(data)["screen"]["frames"], 10, "a frame on the screen")
    assert "saved" in ok("screen", "--png", "shot.png", "--enlarged", data=data, cwd=tmp_path)
    assert (tmp_path / "shot.png").read_bytes().startswith(b"\x89PNG")
    assert ok("job", "--title", "木工", "--headcount", "2", data=data).startswith("published job J")
    # The locker: a tap unlocks compartment 1 (the first free tool), the worker takes the hammer.
    assert ok("tap", "worker", data=data).strip() == "tapped worker"
    wait_for(lambda: sim_status(data)["locker"]["1"]["lock"] == "released", 10, "lock 1 released")
    assert ok("door", "1", "open", data=data).startswith("compartment 1: door opened (T-hammer-01 inside)")
    assert ok("door", "1", "close", data=data).strip() == "compartment 1: door closed"
    wait_for(lambda: sim_status(data)["central"]["by_type"].get("rental.checkout"), 10, "rental.checkout")
    assert ok("printer", "paper-out", data=data).strip() == "printer: paper-out"
    assert ok("unplug", "printer", data=data).strip() == "printer unplugged"
    assert not Path(sim["printer"]).exists()
    assert sim_status(data)["printer"]["state"] == "unplugged"  # not the paper state it had
    assert ok("plug", "printer", data=data).strip() == "printer plugged in"
    assert Path(sim["printer"]).exists()
    assert sim_status(data)["printer"]["state"] == "paper-out"
    # The staff keys say which ticket they called, skipped or recalled.
    assert ok("call", "1", data=data).startswith("window 1 called A001 (waited ")
    assert ok("skip", "1", data=data).strip() == "window 1 skipped A001 (过号)"
    assert ok("recall", "1", data=data).strip() == (
        "window 1: recall pressed, nothing to recall: the window has no called ticket"
    )
    assert ok("call", "1", data=data).strip() == (
        "window 1: call pressed, no ticket called: nobody is waiting (`hall-sim press A`)"
    )
    wrong_card = hall_sim("tap", "wroker", data=data)
    assert wrong_card.returncode == 1
    assert "did you mean 'worker'?" in wrong_card.stderr

    wrong = hall_sim("press", "Z", data=data)
    assert wrong.returncode == 1
    assert "which category" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    # A second demo in the same folder leaves the first alone and says how to reach it.
    second = subprocess.run(
        [sys.executable, "-m", "hallsim.cli", "demo", "--data", str(data)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert second.returncode == 1
    assert f"another hall-sim demo (pid {demo.pid}) is running with data in {data}" in second.stderr
    assert f"`hall-sim --data {data} status`" in second.stderr
    assert sim_status(data)["daemon"]["running"] is True

    # A daemon that dies is started again, as systemd would; the hall carries on.
    os.kill(daemon_pid, signal.SIGKILL)

    def new_daemon_pid() -> int | None:
        pid = json.loads((data / "sim.json").read_text())["daemon_pid"]
        return pid if pid != daemon_pid else None

    daemon_pid = wait_for(new_daemon_pid, 20, "the daemon started again")
    wait_for(lambda: sim_status(data)["daemon"]["running"], 10, "daemon running again")
    assert ok("press", "B", data=data).startswith("pressed B")
    wait_for(lambda: sim_status(data)["central"]["by_type"].get("ticket.issued", 0) >= 2, 10, "B001 issued")

    # Personal data: no raw card UID or unmasked phone number in the daemon's log or its events.
    raw = [card["uid"] for card in sim["cards"].values()] + ["13812345678"]
    for record in (data / "daemon.log", data / "central" / "events.jsonl"):
        text = record.read_text(encoding="utf-8")
        assert text
        leaked = [value for value in raw if value in text or value.lower() in text]
        assert not leaked, f"{record.name} contains {leaked}"

    demo.send_signal(signal.SIGTERM)
    assert demo.wait(15) == 0
    output = demo.stdout.read() if demo.stdout else ""
    assert "hall-sim demo is running" in output
    assert "hall-sim demo: stopped" in output
    stopped = re.search(r"daemon stopped in ([0-9.]+) s \(exit 0\)", output)
    assert stopped, output
    assert float(stopped.group(1)) < 2.0  # every feature running, SIGTERM to exit within 2 s
    wait_for(lambda: gone(daemon_pid), 5, "daemon gone")
    assert not listening(broker_port)
    assert "stopped" in (data / "daemon.log").read_text()  # the daemon stopped cleanly, by SIGTERM
    stored = b"".join(f.read_bytes() for f in (data / "state").glob("hall-edge.db*"))
    uids = [card["uid"] for card in sim["cards"].values()]
    assert not [uid for uid in uids if uid.encode() in stored or uid.lower().encode() in stored]
    after = hall_sim("status", data=data)
    assert after.returncode == 1
    assert (
        f"the demo in {data} has stopped: start it again with `hall-sim demo --data {data}`" in after.stderr
    )
    assert json.loads((data / "sim.json").read_text())["state"] == "stopped"


def test_demo_with_an_outside_broker_and_no_central_stops_on_ctrl_c(tmp_path, broker, stop_demo):
    data = tmp_path / "data"
    demo = start_demo(data, "--broker", broker.url, "--no-central")
    stop_demo(demo)
    sim = running_sim(data, demo)
    assert sim["broker"] == broker.url
    assert sim["central"] is False
    assert not (data / "broker").exists()
    demo.send_signal(signal.SIGINT)
    begin = time.monotonic()
    assert demo.wait(15) == 0
    assert time.monotonic() - begin < 10
    wait_for(lambda: gone(sim["daemon_pid"]), 5, "daemon gone")
    assert listening(broker.port)  # not ours to stop


def test_demo_with_an_rs485_lock_board_and_the_select_buttons(tmp_path, stop_demo):
    """docs/locker.md's procedures with a Kerong-style board: the select button chooses the
    compartment, the board unlocks it and senses its door."""
    data = tmp_path / "data"
    demo = start_demo(data, "--locks", "rs485")
    stop_demo(demo)
    sim = running_sim(data, demo)
    assert sim["locks"] == {"kind": "rs485", "port": str(data / "dev" / "hall-locks")}
    assert "lock_pin" not in sim["wiring"]["compartments"][0]
    # The driller may hold two tools: the select button of compartment 3 (the drill), then the card.
    assert ok("select", "3", data=data).startswith("pressed compartment 3's select button (GPIO 9)")
    assert ok("tap", "driller", data=data).strip() == "tapped driller"
    wait_for(lambda: sim_status(data)["locker"]["3"]["lock"] == "released", 10, "compartment 3 released")
    assert sim_status(data)["locker"]["1"]["lock"] == "locked"  # not the first free one
    assert ok("door", "3", "open", data=data).startswith("compartment 3: door opened (T-drill-01 inside)")
    # The board is polled (locker.rs485_poll_s): the driller holds the door open until the
    # controller has read it open, as a person taking a tool out does.
    polls = sim_status(data)["lock_board_polls"]
    wait_for(lambda: sim_status(data)["lock_board_polls"] >= polls + 2, 10, "the doors read while open")
    assert ok("door", "3", "close", data=data).strip() == "compartment 3: door closed"
    wait_for(lambda: sim_status(data)["central"]["by_type"].get("rental.checkout"), 10, "rental.checkout")
    assert sim_status(data)["locker"]["3"] == {"tool": "T-drill-01", "lock": "locked", "door": "closed"}
    assert ok("unplug", "locks", data=data).strip() == "locks unplugged"
    assert sim_status(data)["lock_board"] == "unplugged"
    assert ok("plug", "locks", data=data).strip() == "locks plugged in"
    demo.send_signal(signal.SIGTERM)
    assert demo.wait(15) == 0


def test_the_window_caller_verbs_drive_the_daemon(tmp_path, stop_demo):
    """Issue 14: finish, rate, pause, resume, hold, bring-back and transfer from hall-sim, each
    answered with what the daemon did (its event at the fake central)."""
    data = tmp_path / "data"
    demo = start_demo(data)
    stop_demo(demo)
    running_sim(data, demo)
    for code in ("A", "A", "B"):
        ok("press", code, data=data)
    wait_for(lambda: sim_status(data)["central"]["by_type"].get("ticket.issued") == 3, 15, "three tickets")
    assert "called A001" in ok("call", "1", data=data)
    assert "finished A001" in ok("finish", "1", data=data)
    assert "rating of A001: 5 (非常满意)" in ok("rate", "1", "5", data=data)
    assert "no rating recorded" in ok("rate", "1", "2", data=data)
    assert "paused" in ok("pause", "1", data=data)
    assert "already paused" in ok("pause", "1", data=data)
    assert "the window is paused" in ok("call", "1", data=data)
    assert "resumed" in ok("resume", "1", data=data)
    assert "called A002" in ok("call", "1", data=data)
    assert "holds A002 aside" in ok("hold", "1", data=data)
    assert "called B001" in ok("call", "1", data=data)
    assert "brought back A002" in ok("bring-back", "1", data=data)
    assert "transfer refused (bad_arguments)" in ok("transfer", "1", "Z", data=data)
    assert "transferred A002 to D" in ok("transfer", "1", "D", data=data)
    assert "called A002" in ok("call", "1", data=data)  # transferred, it waits again (window 1 calls D)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_demo_leaves_no_daemon_or_broker_behind(tmp_path, stop_demo, how):
    """SIGTERM stops the demo in order; SIGKILL gives it no chance, and its daemon and mosquitto
    (in sessions of their own, out of the demo's process group) end by the parent-death signal."""
    data = tmp_path / "data"
    demo = start_demo(data)
    stop_demo(demo)
    sim = running_sim(data, demo)
    children = descendants(demo.pid)
    daemon_pid = sim["daemon_pid"]
    broker_port = int(sim["broker"].rsplit(":", 1)[1])
    assert daemon_pid in children and len(children) >= 2  # the daemon and mosquitto
    os.kill(demo.pid, how)
    demo.wait(15)
    wait_for(lambda: all(gone(pid) for pid in children), 15, "the demo's daemon and mosquitto gone")
    assert not listening(broker_port)
