"""Frozen records: dataclasses without the start-up bill of their generated code.

Python 3.11's ``@dataclass(frozen=True)`` writes six methods as source text and
``exec``s each one when the class is defined: 0.6 ms a class.  The daemon
defines about a hundred such classes before it is ready, most of them
settings and message shapes with a handful of instances, many with none
until a rare command arrives: 60 ms of a start at full speed, half a second
on the eighth of a core that stands in for a hall's Raspberry Pi.

A ``@record`` is still a dataclass (``fields``, ``replace``, ``asdict`` and
type checkers treat it as one), frozen and compared by its fields, but:

- ``__init__`` is generated the way dataclasses do it, on the class's first
  instance, so creating instances costs what it costs a dataclass;
- ``__eq__``, ``__hash__``, ``__repr__``, ``__setattr__`` and ``__delattr__`` are
  shared by every record and read the class's field names, not generated.

What dataclasses offer beyond that (``init=False`` fields, ``kw_only``,
``InitVar``, ordering) is refused when the class is defined: use ``@dataclass``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, ClassVar, Protocol, TypeVar, dataclass_transform

T = TypeVar("T")

_FACTORY = object()  # the default of a parameter whose field has a default_factory


class _Record(Protocol):
    _record_key: ClassVar[Callable[[Any], object]]  # the compared fields' values
    _record_shown: ClassVar[tuple[str, ...]]  # the fields repr shows


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass whose methods cost nothing until used (see the module)."""
    if cls.__doc__ is None:  # else dataclasses documents it with inspect.signature: slow
        cls.__doc__ = f"{cls.__name__} record."
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    for field in fields:
        if not field.init or field.kw_only is True or field.name == "self":
            raise TypeError(f"{cls.__qualname__}.{field.name}: a record field is a plain init field")
    compared = [field.name for field in fields if field.compare]
    shown = [field.name for field in fields if field.repr]
    attributes: dict[str, Any] = {
        "__init__": _init_on_first_use(cls),
        "__eq__": _eq,
        "__hash__": _hash,
        "__repr__": _repr,
        "__setattr__": _frozen_setattr,
        "__delattr__": _frozen_delattr,
        "_record_key": attrgetter(*compared) if compared else _no_fields,
        "_record_shown": tuple(shown),
    }
    for name, value in attributes.items():
        setattr(cls, name, value)
    return cls


def _init_on_first_use(cls: type) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _make_init(cls)
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _make_init(cls: type) -> Callable[..., None]:
    """The ``__init__`` dataclasses would write: positional-or-keyword parameters, defaults
    by reference, a default_factory called per instance, ``object.__setattr__`` (frozen)."""
    names: dict[str, Any] = {"_record_set": object.__setattr__, "_record_factory": _FACTORY}
    parameters, body = [], []
    for field in dataclasses.fields(cls):
        name = field.name
        if field.default is not dataclasses.MISSING:
            names[f"_record_default_{name}"] = field.default
            parameters.append(f"{name}=_record_default_{name}")
        elif field.default_factory is not dataclasses.MISSING:
            names[f"_record_make_{name}"] = field.default_factory
            parameters.append(f"{name}=_record_factory")
            body.append(f"if {name} is _record_factory: {name} = _record_make_{name}()")
        else:
            parameters.append(name)
        body.append(f"_record_set(self, {name!r}, {name})")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "".join(
        f"    {line}\n" for line in body or ["pass"]
    )
    exec(source, names)  # the text above: field names (identifiers) and references to names
    init: Callable[..., None] = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _no_fields(_record: object) -> tuple[()]:
    return ()


def _eq(self: _Record, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = type(self)._record_key  # from the class: a plain function there is not bound
    return bool(key(self) == key(other))


def _hash(self: _Record) -> int:
    return hash(type(self)._record_key(self))


def _repr(self: _Record) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._record_shown)
    return f"{self.__class__.__qualname__}({shown})"


def _frozen_setattr(self: object, name: str, _value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
