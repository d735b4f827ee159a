"""A @record behaves as the frozen dataclass it replaces: what code and people see of it is the same."""

import dataclasses
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.records import record


def ticket_class(make: Callable[[type], type]) -> Any:
    """The same class body, made a record or a frozen dataclass."""

    class Ticket:
        number: int
        window: str = "1"
        tags: list[str] = field(default_factory=list)
        seen_at: float = field(default=0.0, compare=False)
        secret: str = field(default="", repr=False)

    return make(Ticket)


Ticket = ticket_class(record)
TicketAsDataclass = ticket_class(dataclass(frozen=True))


def test_it_is_made_as_a_dataclass_is_with_positional_keyword_and_default_values():
    for made in (Ticket(7), Ticket(7, "2", ["vip"]), Ticket(number=7, window="2", secret="x")):
        twin = TicketAsDataclass(**dataclasses.asdict(made))
        assert dataclasses.astuple(made) == dataclasses.astuple(twin)
    names = [f.name for f in dataclasses.fields(Ticket)]
    assert names == [f.name for f in dataclasses.fields(TicketAsDataclass)]
    assert dataclasses.is_dataclass(Ticket) and Ticket.__match_args__ == TicketAsDataclass.__match_args__


def test_a_default_factory_gives_each_instance_its_own_value():
    first, second = Ticket(1), Ticket(2)
    first.tags.append("vip")
    assert second.tags == [] and Ticket(3).tags == []


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1, "2", [], 0.0, "", "extra"), {}), ((1,), {"number": 1}), ((1,), {"colour": "red"})],
)
def test_wrong_arguments_are_refused_as_a_dataclass_refuses_them(args, kwargs):
    with pytest.raises(TypeError):
        TicketAsDataclass(*args, **kwargs)
    with pytest.raises(TypeError):
        Ticket(*args, **kwargs)


def test_it_is_frozen():
    ticket = Ticket(5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ticket.number = 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        del ticket.window
    assert ticket.number == 5


@record
class Call:
    number: int
    window: str
    at: float = field(default=0.0, compare=False)


def test_equal_and_hashed_by_the_compared_fields_only():
    assert Ticket(5, seen_at=1.0) == Ticket(5, seen_at=2.0)
    assert Ticket(5) != Ticket(6) and Ticket(5, "1") != Ticket(5, "2")
    assert Ticket(5) != TicketAsDataclass(5)  # another class is never equal, as with dataclasses
    assert len({Call(5, "1", at=1.0), Call(5, "1", at=2.0), Call(6, "1"), Call(5, "2")}) == 3
    for unhashable in (Ticket(5), TicketAsDataclass(5)):  # a list field: neither hashes
        with pytest.raises(TypeError):
            hash(unhashable)


def test_its_repr_names_the_shown_fields_as_a_dataclass_does():
    ticket = Ticket(5, "2", ["vip"], 1.5, secret="hunter2")
    assert repr(ticket) == repr(TicketAsDataclass(5, "2", ["vip"], 1.5, "hunter2"))
    assert "hunter2" not in repr(ticket)


def test_replace_and_pickle_work():
    ticket = Ticket(5, "2", ["vip"])
    moved = dataclasses.replace(ticket, window="3")
    assert (moved.number, moved.window, moved.tags) == (5, "3", ["vip"]) and ticket.window == "2"
    call = Call(5, "2", at=1.5)
    assert pickle.loads(pickle.dumps(call)) == call


def test_a_record_without_fields_is_equal_to_its_kind():
    @record
    class Nothing:
        pass

    assert Nothing() == Nothing() and hash(Nothing()) == hash(Nothing())
    assert repr(Nothing()).endswith(".Nothing()")


def test_what_a_record_cannot_be_is_refused_when_the_class_is_defined():
    with pytest.raises(TypeError, match="plain init field"):

        @record
        class Hidden:
            shown: int
            computed: int = field(default=0, init=False)

    with pytest.raises(TypeError, match="plain init field"):

        @record
        class KeywordOnly:
            number: int = field(default=0, kw_only=True)
