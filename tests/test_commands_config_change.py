"""config.set's pure parts: the change requested, the merge, the remote file written, the atomic write."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from support import fuzz

from edge.config import ConfigError, parse
from edge.config_change import changed_keys, merged, remote_edit, requested_changes, write_atomic
from edge.core import CommandError
from edge.layers import REMOTE_FILE, Layers, units
from edge.settings import to_dict


def layers_of(tmp_path: Path, base: str, remote: str = "") -> Layers:
    config = tmp_path / "hall-edge.toml"
    config.write_text(f'[storage]\ndir = "{tmp_path}"\n' + base)
    (tmp_path / REMOTE_FILE).write_text(remote)
    return Layers.read(config)


def test_the_remote_file_keeps_its_comments_and_holds_only_what_differs(tmp_path):
    remote = "# set remotely for the night shift (Li, 11-28)\n[display]\nnight_brightness = 20  # dim\n"
    layers = layers_of(tmp_path, "[display]\nbrightness = 160\n[queue]\nrecall_max = 4\n", remote)
    wanted = merged(layers.merged(), requested_changes({"changes": {"display.brightness": 90}}))
    edited = remote_edit(layers, wanted)
    assert edited.remote_text == remote + "brightness = 90\n"
    back = merged(edited.merged(), requested_changes({"key": "display.brightness", "value": 160}))
    assert remote_edit(edited, back).remote_text == remote  # the installer's value again: not written
    assert edited.sources()["display.brightness"] == str(tmp_path / REMOTE_FILE)
    assert edited.sources()["queue.recall_max"] == str(tmp_path / "hall-edge.toml")


@fuzz(100)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.recursive(
            st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False)
            | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=5), inner)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
# An empty schema table sets nothing: the remote file rightly leaves it out (found in long mode).
@example(doc={"health": {}})
def test_any_change_written_to_the_remote_file_reads_back(doc):
    layers = Layers(Path("base.toml"), {}, Path("remote.toml"), {})
    edited = remote_edit(layers, doc)
    assert tomllib.loads(edited.remote_text) == edited.remote
    # Compared value by value, as layering reads it: `[health]` with no keys equals no `[health]`.
    assert units(edited.merged()) == units(doc)


def test_a_remote_file_may_not_set_what_only_the_site_may(tmp_path):
    layers = layers_of(tmp_path, "", '[rfid]\ncard_key_file = "/tmp/x"\n')
    with pytest.raises(ConfigError) as exc:
        layers.settings()
    assert "rfid.card_key_file: can only be set on site" in exc.value.errors[0]


def test_key_value_replaces_and_changes_merge():
    doc = {"display": {"brightness": 160, "font_size": 16}, "commands": {"public_keys": {"a": "1", "b": "2"}}}
    assert merged(doc, requested_changes({"key": "display.brightness", "value": 90}))["display"] == {
        "brightness": 90,
        "font_size": 16,
    }
    replaced = merged(doc, requested_changes({"key": "commands.public_keys", "value": {"c": "3"}}))
    assert replaced["commands"]["public_keys"] == {"c": "3"}
    added = merged(doc, requested_changes({"changes": {"commands": {"public_keys": {"c": "3"}}}}))
    assert added["commands"]["public_keys"] == {"a": "1", "b": "2", "c": "3"}
    removed = merged(doc, requested_changes({"key": "commands.public_keys.a", "value": None}))
    assert removed["commands"]["public_keys"] == {"b": "2"}
    dotted = merged(doc, requested_changes({"changes": {"display.brightness": 10}}))
    assert dotted["display"]["brightness"] == 10


@pytest.mark.parametrize(
    "args", [{}, {"key": "x"}, {"key": 5, "value": 1}, {"changes": {}}, {"changes": [1]}]
)
def test_a_change_must_say_what(args):
    with pytest.raises(CommandError) as exc:
        requested_changes(args)
    assert exc.value.code == "bad_arguments"


def test_changed_keys_follow_the_schema():
    old = parse("[mqtt]\ntls = false\n[rfid]\nenabled = false\n[locker]\nenabled = false\n")
    new = parse("[mqtt]\ntls = false\nport = 2883\n[rfid]\nenabled = false\n[locker]\nenabled = false\n")
    assert changed_keys(to_dict(old), to_dict(new)) == ["mqtt.port"]


def test_write_atomic_replaces_with_the_mode_asked(tmp_path):
    target = tmp_path / "hall-edge.toml"
    target.write_text("old")
    write_atomic(target, b"new", 0o640)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["hall-edge.toml"]
