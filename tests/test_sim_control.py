"""hallsim.control: the verb table, errors for people, and how the client finds a demo."""

from __future__ import annotations

import json

import pytest
from hallsim import control
from hallsim.control import ControlError, ControlServer, Verb, find_data_dir, load_sim, request


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


def test_the_data_dir_comes_from_the_flag_then_the_environment_then_the_last_demo(tmp_path, monkeypatch):
    last = tmp_path / "last"
    monkeypatch.setattr(control, "LAST_DEMO", last)
    monkeypatch.delenv("HALLSIM_DATA", raising=False)
    with pytest.raises(ControlError, match="no running demo found"):
        find_data_dir(None)
    last.write_text(str(tmp_path / "recent"))
    assert find_data_dir(None) == tmp_path / "recent"
    monkeypatch.setenv("HALLSIM_DATA", str(tmp_path / "env"))
    assert find_data_dir(None) == tmp_path / "env"
    assert find_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"


def test_sim_json_problems_are_named(tmp_path):
    with pytest.raises(ControlError, match="does not exist"):
        load_sim(tmp_path)
    (tmp_path / "sim.json").write_text("{")
    with pytest.raises(ControlError, match="not valid JSON"):
        load_sim(tmp_path)
    (tmp_path / "sim.json").write_text(json.dumps({"control": "x"}))
    assert load_sim(tmp_path) == {"control": "x"}
