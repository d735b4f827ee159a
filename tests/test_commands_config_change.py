"""config.set's pure parts: the change requested, the merge, the TOML written, the atomic write."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import fuzz

from edge.config import parse
from edge.config_change import changed_keys, merged, render_toml, requested_changes, write_atomic
from edge.core import CommandError

EXAMPLE = Path(__file__).resolve().parents[1] / "firmware_config" / "hall-edge.example.toml"


def test_the_example_configuration_survives_a_rewrite():
    doc = tomllib.loads(EXAMPLE.read_text())
    assert tomllib.loads(render_toml(doc)) == doc


@fuzz(100)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.recursive(
            st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=5), inner)
            ),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_any_document_round_trips(doc):
    assert tomllib.loads(render_toml(doc)) == doc


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
    assert changed_keys(old, new) == ["mqtt.port"]


def test_write_atomic_replaces_with_the_mode_asked(tmp_path):
    target = tmp_path / "hall-edge.toml"
    target.write_text("old")
    write_atomic(target, b"new", 0o640)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["hall-edge.toml"]
