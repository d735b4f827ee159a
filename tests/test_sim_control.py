"""hallsim.control: the verb table, errors for people, and how the client finds a demo."""

from __future__ import annotations

import json
import os

import pytest
from hallsim import control
from hallsim.control import ControlError, ControlServer, Verb, find_data_dir, load_sim, request
from support import wait_for


def echo(args: list[str]) -> dict:
    return {"args": args}


def refuse(args: list[str]) -> str:
    raise ControlError(f"no such thing: {args[0]}")


def crash(_args: list[str]) -> str:
    raise KeyError("bug")


@pytest.fixture
def server(tmp_path):
    verbs = {
        "echo": Verb(echo, "echo WORDS", "say it back"),
        "refuse": Verb(refuse, "refuse X", "always no"),
        "crash": Verb(crash, "crash", "a bug in a handler"),
        "where": Verb(lambda args: str(live.current.path(args[0])), "where FILE", "resolve a path"),
    }
    live = ControlServer(tmp_path / "control.sock", verbs).start()
    yield live
    live.stop()


def test_a_verb_gets_its_words_and_returns_its_result(server):
    assert request(server.socket_path, "echo", ["press", "A"]) == {
        "ok": True,
        "result": {"args": ["press", "A"]},
    }


def test_a_refusal_comes_back_with_the_usage(server):
    response = request(server.socket_path, "refuse", ["Z"])
    assert response["ok"] is False
    assert response["error"] == "no such thing: Z\nusage: hall-sim refuse X"


def test_a_handler_bug_is_reported_and_the_server_keeps_serving(server):
    response = request(server.socket_path, "crash", [])
    assert response == {"ok": False, "error": "crash failed: KeyError: 'bug'"}
    assert request(server.socket_path, "echo", [])["ok"] is True


def test_an_unknown_verb_lists_the_known_ones(server):
    response = request(server.socket_path, "fly", [])
    assert response["ok"] is False
    assert response["error"] == "unknown verb 'fly'; try: crash, echo, refuse, where"


def test_paths_are_relative_to_where_the_user_typed_them(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert request(server.socket_path, "where", ["out.png"])["result"] == str(tmp_path / "out.png")


def test_a_malformed_line_gets_an_answer_not_a_crash(server):
    assert server.handle_line(b"not json")["ok"] is False
    assert server.handle_line(b'{"args": []}')["ok"] is False


def test_no_server_is_a_clear_error(tmp_path):
    with pytest.raises(ControlError, match="has it stopped"):
        request(str(tmp_path / "nobody.sock"), "status", [])


def test_the_data_dir_comes_from_the_flag_then_the_environment_then_the_users_default(tmp_path, monkeypatch):
    """No shared pointer to "the last demo": without --data or $HALLSIM_DATA, the user's own folder."""
    monkeypatch.delenv("HALLSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert find_data_dir(None) == tmp_path / "state" / "hall-sim" / "demo"
    monkeypatch.setenv("HALLSIM_DATA", str(tmp_path / "env"))
    assert find_data_dir(None) == tmp_path / "env"
    assert find_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"


def test_a_folder_holds_one_demo_and_a_second_is_told_how_to_reach_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    default = control.default_data_dir()
    first = control.claim_data_dir(default)
    (default / "sim.json").write_text(json.dumps({"pid": 4242}))
    with pytest.raises(ControlError) as refused:
        control.claim_data_dir(default)
    assert str(refused.value) == (
        f"another hall-sim demo (pid 4242) is running with data in {default}: reach it with"
        " `hall-sim status`, stop it with `hall-sim stop`; or start this one with --data OTHER_DIR"
    )
    other = control.claim_data_dir(tmp_path / "other")  # a demo of its own folder runs beside it
    assert control.other_demo_note(tmp_path / "other") == (
        f"another hall-sim demo is running with data in {default} (reach it with `hall-sim status`,"
        f" stop it with `hall-sim stop`); verbs reach this one with --data {tmp_path / 'other'}"
    )
    os.close(first)  # the first demo ends: its folder is free, the other demo is untouched
    os.close(control.claim_data_dir(default))
    assert control.demo_running(tmp_path / "other")
    os.close(other)
    assert not control.demo_running(tmp_path / "other")


def test_sim_json_problems_are_named(tmp_path):
    with pytest.raises(ControlError, match="does not exist"):
        load_sim(tmp_path)
    (tmp_path / "sim.json").write_text("{")
    with pytest.raises(ControlError, match="not valid JSON"):
        load_sim(tmp_path)
    (tmp_path / "sim.json").write_text(json.dumps({"control": "x"}))
    assert load_sim(tmp_path) == {"control": "x"}


# ---- the demo's verbs, on a pin board with real gpiozero buttons ------------------


@pytest.fixture
def wired_demo(tmp_path):
    from gpiozero import Button
    from hallsim.demo import Demo
    from hallsim.pins import PinBoard, SimFactory

    demo = Demo(tmp_path / "data")
    demo.board = PinBoard(tmp_path / "pins.sock").start()
    factory = SimFactory(demo.board.socket_path)
    pressed: list[int] = []
    buttons = []
    for pin in (5, 12, 16, 20, 21, 4):
        button = Button(pin, pull_up=True, pin_factory=factory)
        button.when_pressed = lambda pin=pin: pressed.append(pin)
        buttons.append(button)
    yield demo, pressed
    for button in buttons:
        button.close()
    factory.close()
    demo.board.stop()


def test_press_priority_presses_the_priority_key_then_the_category(wired_demo):
    demo, pressed = wired_demo
    assert demo.verbs.press(["priority", "a"]) == "pressed priority, then A (GPIO 5)"
    wait_for(lambda: pressed == [12, 5], 5, "priority then A")


def test_press_priority_alone_presses_only_the_priority_key(wired_demo):
    """A worker presses 绿色通道 and walks away: the screen's prompt and its 10 s can be tried."""
    demo, pressed = wired_demo
    assert demo.verbs.press(["priority"]).startswith("pressed priority (GPIO 12)")
    wait_for(lambda: pressed == [12], 5, "priority alone")


def test_window_keys_press_their_pins(wired_demo):
    demo, pressed = wired_demo
    assert demo.verbs.window(["1"], "call") == (
        "window 1: call (GPIO 16); which ticket is not known without the fake central"
    )
    demo.verbs.window(["1"], "recall")
    demo.verbs.window(["1"], "skip")
    wait_for(lambda: pressed == [16, 20, 21], 5, "call, recall, skip")


@pytest.mark.parametrize(
    ("verb", "args", "message"),
    [
        ("press", [], "which category? one of A, B, C, D, E"),
        ("press", ["Q"], "which category?"),
        ("call", ["9"], "which window? one of 1"),
        ("door", ["1"], "door N open|close"),
        ("door", ["9", "open"], "no compartment 9; they are 1, 2, 3"),
        ("force", [], "force N"),
        ("tap", ["worker"], "no card reader in this demo"),
        ("printer", ["ok"], "no printer in this demo"),
        ("job", [], "no central platform in this demo"),
        ("screen", ["--png"], "no screen in this demo"),
    ],
)
def test_a_wrong_verb_says_what_is_expected(wired_demo, verb, args, message):
    demo, _ = wired_demo
    with pytest.raises(ControlError, match=message.replace("?", r"\?").replace("|", r"\|")):
        demo.verbs.table()[verb].handler(args)


def test_job_values_are_json_when_they_can_be():
    """`hall-sim job --verified false` is a job the platform has not verified, not the text "false"."""
    from hallsim.verbs import job_fields

    fields = job_fields(["--title", "木工", "--headcount", "2", "--verified", "false", "--urgent", "true"])
    assert fields == {"title": "木工", "headcount": 2, "verified": False, "urgent": True}
    assert job_fields(["--wage", '{"amount": 25, "unit": "hour"}', "--contact", "007"]) == {
        "wage": {"amount": 25, "unit": "hour"},
        "contact": "007",
    }
    with pytest.raises(ControlError, match="expected --FIELD VALUE pairs"):
        job_fields(["--title"])


def test_the_demo_restarts_the_daemon_as_often_as_systemd_would():
    """systemd (StartLimitBurst=4, StartLimitIntervalSec=120) allows 4 starts in a window that
    opens at the first of them; the 5th is refused.  The demo counted exits instead, and gave up
    on a config.set rollback that systemd would have started (3 changes in a minute, then the
    rollback, the last start long before)."""
    from hallsim.supervise import StartLimit

    limit = StartLimit(burst=4, interval_s=120.0)
    assert limit.allow(0.0)  # the demo's first start
    assert all(limit.allow(t) for t in (300.0, 333.0, 342.0, 363.0))  # a fresh window from 300
    assert not limit.allow(380.0)  # the 5th start within 120 s of 300
    fast = StartLimit(burst=4, interval_s=120.0)
    assert [fast.allow(t) for t in (0.0, 6.0, 12.0, 18.0, 24.0)] == [True, True, True, True, False]
    assert fast.allow(121.0)  # the window has passed: counting starts again


def test_doors_drive_their_reed_switch_and_say_what_happened(wired_demo):
    demo, _ = wired_demo
    assert demo.verbs.door(["3", "open"]) == (
        "compartment 3: door opened while its lock was shut (nobody unlocked it, or it locked again"
        " after locker.unlock_timeout_s): the locker raises alarm.forced_open"
    )
    assert demo.board.levels[25] is True  # open switch: high
    assert demo.verbs.force(["3"]) == (
        "compartment 3 forced open without unlocking: the locker raises alarm.forced_open"
    )
    assert demo.verbs.door(["3", "close"]) == "compartment 3: door closed"
    assert demo.board.levels[25] is False
    assert demo.verbs.locker_view()["3"] == {"tool": "T-drill-01", "lock": "locked", "door": "closed"}


def test_select_presses_the_compartments_button(wired_demo):
    demo, pressed = wired_demo
    assert demo.verbs.select(["1"]).startswith("pressed compartment 1's select button (GPIO 4)")
    wait_for(lambda: pressed == [4], 5, "select 1")


def test_a_key_held_down_stays_down_until_released(wired_demo):
    """`hall-sim hold A` is how the stuck-key alarm of docs/queue.md is tried in the demo."""
    demo, pressed = wired_demo
    assert demo.verbs.hold(["a"]).startswith("holding A (GPIO 5) down: after queue.stuck_after_s")
    wait_for(lambda: pressed == [5], 5, "A pressed")
    assert demo.board.levels[5] is False  # still down
    assert demo.verbs.hold(["call", "1"]).startswith("holding call 1 (GPIO 16) down")
    assert demo.verbs.release([]) == "released A, call 1"
    assert demo.board.levels[5] is True
    assert demo.board.levels[16] is True
    assert demo.verbs.release([]) == "no key is held"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        (
            "wroker",
            "no sample card 'wroker'; did you mean 'worker'? the sample cards are worker, driller, staff,"
            " suspended, banned, stranger, or give a card UID of 10 hex digits (e.g. 67003B51C6)",
        ),
        ("stafff", "did you mean 'staff'?"),
        ("12345", "no sample card '12345'; the sample cards are"),
    ],
)
def test_an_unknown_card_names_the_sample_cards_and_the_closest(word, message):
    from hallsim.verbs import card_uid

    with pytest.raises(ControlError) as refused:
        card_uid(word)
    assert message in str(refused.value)
    assert card_uid("Worker") == "67003B51C6"
    assert card_uid("0a1b2c3d4e") == "0A1B2C3D4E"


def test_an_unknown_key_to_hold_names_the_keys():
    from hallsim.verbs import _key_name

    with pytest.raises(ControlError, match="which key\\? one of A, B, C, D, E, priority, call 1"):
        _key_name(["Z"])
    with pytest.raises(ControlError, match="did you mean 'priority'"):
        _key_name(["priorty"])


# ---- the hall-sim command line -----------------------------------------------------


def test_hall_sim_without_words_prints_the_verbs(capsys):
    from hallsim.cli import main

    assert main([]) == 2
    out = capsys.readouterr().out
    for verb in ("press [priority] A", "tap CARD", "door N open|close", "screen --png FILE", "hold KEY"):
        assert verb in out


def test_hall_sim_verb_without_a_demo_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from hallsim.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("HALLSIM_DATA", raising=False)
    assert main(["press", "A"]) == 1
    err = capsys.readouterr().err
    assert "no running demo found" in err
    assert "start one with `hall-sim demo`" in err
    assert main(["--data", str(tmp_path), "press", "A"]) == 1
    err = capsys.readouterr().err
    assert "sim.json does not exist" in err
    assert f"`hall-sim demo --data {tmp_path}`" in err


def test_every_verb_has_help_without_a_demo(tmp_path, monkeypatch):
    """`hall-sim screen --help` printed a usage error and exited 1: every verb answers --help."""
    import subprocess
    import sys

    from hallsim.verbs import VERBS

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # no demo anywhere
    commands = [["--help"], ["demo", "--help"], ["central", "--help"]]
    commands += [[spec.name, "--help"] for spec in VERBS] + [[spec.name, "-h"] for spec in VERBS[:2]]
    for words in commands:
        done = subprocess.run(
            [sys.executable, "-m", "hallsim.cli", *words],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"hall-sim {' '.join(words)}: {done.stderr}"
        assert done.stdout.strip(), f"hall-sim {' '.join(words)} printed nothing"
        assert "usage" in done.stdout.lower()
    assert {spec.name for spec in VERBS} >= {"screen", "job", "hold", "release", "select", "tap"}


def test_an_unknown_verb_suggests_the_closest(capsys):
    from hallsim.cli import main

    assert main(["stauts"]) == 2
    assert (
        "unknown verb 'stauts'; did you mean 'status'? `hall-sim --help` lists them"
        in capsys.readouterr().err
    )


def test_hall_sim_talks_to_the_socket_named_in_sim_json(tmp_path, capsys):
    from hallsim.cli import main

    verbs = {"status": Verb(echo, "status", "say it back"), "tap": Verb(refuse, "tap CARD", "always no")}
    live = ControlServer(tmp_path / "control.sock", verbs).start()
    try:
        (tmp_path / "sim.json").write_text(json.dumps({"control": live.socket_path}))
        assert main(["status", "--data", str(tmp_path), "hi"]) == 0
        assert json.loads(capsys.readouterr().out) == {"args": ["hi"]}
        assert main([f"--data={tmp_path}", "tap", "x"]) == 1
        assert "hall-sim tap: no such thing: x" in capsys.readouterr().err
    finally:
        live.stop()


def test_a_data_folder_used_again_keeps_its_keys(tmp_path):
    from hallsim.hallconfig import Paths, make_keys

    paths = Paths(tmp_path, tmp_path)
    public = make_keys(paths)
    card_key = paths.card_key.read_bytes()
    assert make_keys(Paths(tmp_path, tmp_path)) == public
    assert paths.card_key.read_bytes() == card_key
    paths.admin_key.chmod(0o644)  # an open private key is not worth keeping
    assert make_keys(paths) != public
    assert paths.admin_key.stat().st_mode & 0o777 == 0o600
