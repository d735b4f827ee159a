"""The typed settings: they agree with the schema key for key, and they cannot be changed in place."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import pytest

from edge.config import SCHEMA, parse
from edge.schema import Key, TableList, defaults
from edge.settings import CategorySettings, QueueSettings, Settings, from_dict, to_dict

# A schema type and the field type that holds its value (lists and tables stay unchangeable).
FIELD_TYPES: dict[Any, Any] = {
    str: str,
    int: int,
    float: float,
    bool: bool,
    list: tuple[str, ...],
    dict: Mapping[str, str],
}


def _fits(hint: Any, value: Any) -> bool:
    """Whether a schema default (a TOML value) can be held by a field of type ``hint``."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if origin is Mapping:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return type(value) is hint


def disagreements(schema: dict[str, Any], cls: type, where: str = "") -> list[str]:
    """Every place where ``cls`` and ``schema`` differ: keys and their order, types, defaults' types."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    problems = []
    if names != list(schema):
        problems.append(f"{where or 'top level'}: {cls.__name__} has {names}, the schema {list(schema)}")
    for name, spec in schema.items():
        hint, path = hints.get(name), f"{where}{name}"
        if hint is None:
            continue
        if isinstance(spec, dict):
            if not dataclasses.is_dataclass(hint):
                problems.append(f"{path}: a table, but {cls.__name__}.{name} is {hint}")
            else:
                problems += disagreements(spec, hint, path + ".")
        elif isinstance(spec, TableList):
            item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
            if not dataclasses.is_dataclass(item):
                problems.append(f"{path}: an array of tables, but {cls.__name__}.{name} is {hint}")
            else:
                problems += disagreements(spec.item, item, path + "[].")
        elif hint != FIELD_TYPES.get(spec.type):
            problems.append(f"{path}: the schema says {spec.type}, {cls.__name__}.{name} is {hint}")
        elif not _fits(hint, spec.default):
            problems.append(f"{path}: default {spec.default!r} does not fit {hint}")
    return problems


def test_the_classes_have_every_schema_key_in_order_with_its_type():
    assert disagreements(SCHEMA, Settings) == []


def test_a_key_added_to_the_schema_alone_is_caught():
    drifted = {**SCHEMA, "queue": {**SCHEMA["queue"], "volume": Key(int, 3)}}
    assert disagreements(drifted, Settings) == [
        f"queue.: QueueSettings has {[f.name for f in dataclasses.fields(QueueSettings)]}, "
        f"the schema {list(drifted['queue'])}"
    ]
    retyped = {**SCHEMA, "queue": {**SCHEMA["queue"], "recall_max": Key(float, 5.0)}}
    assert disagreements(retyped, Settings) == [
        "queue.recall_max: the schema says <class 'float'>, QueueSettings.recall_max is <class 'int'>"
    ]
    bad_default = {**SCHEMA, "queue": {**SCHEMA["queue"], "recall_max": Key(int, "5")}}
    assert disagreements(bad_default, Settings) == [
        "queue.recall_max: default '5' does not fit <class 'int'>"
    ]


def test_sections_are_typed_objects_and_arrays_of_tables_are_tuples():
    settings = parse('[queue]\n[[queue.categories]]\ncode = "Z"\nname = "test"\npin = 4\n')
    assert settings.queue.categories == (CategorySettings(code="Z", name="test", pin=4),)
    assert settings.locker.approval_required == ("drill",)
    assert isinstance(settings.mqtt.port, int)


def test_settings_cannot_be_changed_in_place():
    settings = parse("")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.mqtt.port = 2883  # type: ignore[misc]  # what the test checks: frozen refuses it


def test_plain_tables_and_typed_settings_turn_into_each_other():
    settings = parse('[commands]\npublic_keys = {it = "' + "A" * 43 + '="}\n[display]\nbrightness = 90\n')
    tables = to_dict(settings)
    assert tables["display"]["brightness"] == 90
    assert tables["queue"]["categories"][0] == {"code": "A", "name": "求职登记", "pin": 5}
    assert tables["commands"]["public_keys"] == {"it": "A" * 43 + "="}
    assert from_dict(Settings, tables) == settings
    assert to_dict(parse("")) == defaults(SCHEMA)
