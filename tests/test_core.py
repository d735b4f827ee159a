"""The core thread: dispatch in order, timers, and failures that must not stop it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from support import make_config, wait_for

from edge.clock import Clock
from edge.core import CommandError, ComponentChanged, Core
from edge.storage import Storage


@dataclass(frozen=True)
class Tick:
    n: int


@dataclass(frozen=True)
class Other:
    text: str


@pytest.fixture
def core(tmp_path):
    config = make_config(tmp_path)
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock(config.time.zone, config.time.clock))
    yield core
    core.stop()
    storage.close()


def test_messages_reach_their_handlers_in_order_on_the_core_thread(core):
    seen = []
    threads = set()

    def on_tick(msg: Tick) -> None:
        seen.append(msg.n)
        threads.add(threading.current_thread().name)

    core.subscribe(Tick, on_tick)
    core.subscribe(Other, lambda msg: seen.append(msg.text))
    core.start()
    posters = [threading.Thread(target=lambda: [core.post(Tick(i)) for i in range(100)]) for _ in range(3)]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join()
    core.post(Other("last"))
    wait_for(lambda: "last" in seen, 5, "all messages")
    assert len(seen) == 301
    assert threads == {"core"}
    assert seen[:-1].count(0) == 3


def test_every_subscriber_of_a_type_gets_the_message(core):
    got = []
    core.subscribe(Tick, lambda m: got.append(("a", m.n)))
    core.subscribe(Tick, lambda m: got.append(("b", m.n)))
    core.start()
    core.post(Tick(1))
    wait_for(lambda: len(got) == 2, 5)
    assert got == [("a", 1), ("b", 1)]


def test_a_failing_handler_does_not_stop_the_core_or_the_other_handlers(core, caplog):
    got = []

    def broken(_msg: Tick) -> None:
        raise ValueError("bad input")

    core.subscribe(Tick, broken)
    core.subscribe(Tick, lambda m: got.append(m.n))
    core.start()
    core.post(Tick(1))
    core.post(Tick(2))
    wait_for(lambda: got == [1, 2], 5, "both messages")
    assert any("handler" in r.getMessage() and "broken" in r.getMessage() for r in caplog.records)


def test_a_failing_call_soon_and_timer_do_not_stop_the_core(core):
    ran = []

    def broken() -> None:
        raise RuntimeError("timer bug")

    core.start()
    core.call_soon(broken)
    core.call_soon(lambda: core.call_later(0.01, broken))
    core.call_soon(lambda: core.call_later(0.02, lambda: ran.append("after")))
    wait_for(lambda: ran == ["after"], 5, "timer after the broken one")
    assert not core.stopped.is_set()


def test_timers_run_in_due_order_on_the_core_thread(core):
    order = []
    core.call_later(0.06, lambda: order.append("c"))
    core.call_later(0.02, lambda: order.append("a"))
    core.call_later(0.04, lambda: order.append(threading.current_thread().name))
    core.start()
    wait_for(lambda: len(order) == 3, 5)
    assert order == ["a", "core", "c"]


def test_a_timer_set_from_another_thread_runs_on_time_on_the_core_thread(core):
    ran = []
    core.start()
    wait_for(lambda: core.heartbeat, 5)
    begin = time.monotonic()
    core.call_later(0.05, lambda: ran.append((threading.current_thread().name, time.monotonic() - begin)))
    wait_for(lambda: ran, 5, "timer from a driver thread")
    name, after = ran[0]
    assert name == "core"
    assert 0.04 <= after < 0.5  # not overslept until the loop's next 1 s turn


def test_a_cancelled_timer_does_not_run(core):
    ran = []
    timer = core.call_later(0.02, lambda: ran.append("no"))
    core.call_later(0.05, lambda: ran.append("yes"))
    timer.cancel()
    core.start()
    wait_for(lambda: ran, 5)
    assert ran == ["yes"]


def test_every_repeats_until_cancelled_even_when_it_fails(core):
    count = []

    def flaky() -> None:
        count.append(1)
        if len(count) == 2:
            raise RuntimeError("one bad round")

    timer = core.every(0.01, flaky, first_after=0)
    core.start()
    wait_for(lambda: len(count) >= 5, 5, "five rounds")
    core.call_soon(timer.cancel)
    wait_for(lambda: timer.cancelled, 5)
    settled = len(count)
    done = threading.Event()
    core.call_soon(lambda: core.call_later(0.05, done.set))  # timers belong to the core thread
    assert done.wait(5)
    assert len(count) <= settled + 1


def test_stop_finishes_the_message_in_hand_and_refuses_new_ones(core):
    started, finished, later = threading.Event(), [], []
    release = threading.Event()

    def slow(msg: Tick) -> None:
        if msg.n == 1:
            started.set()
            release.wait(5)
            finished.append(msg.n)
        else:
            later.append(msg.n)

    core.subscribe(Tick, slow)
    core.start()
    core.post(Tick(1))
    started.wait(5)
    stopper = threading.Thread(target=core.stop)
    stopper.start()
    wait_for(lambda: not core._accepting, 5, "intake closed")
    core.post(Tick(2))  # after stop: dropped
    release.set()
    stopper.join(5)
    assert finished == [1]
    assert later == []
    assert core.stopped.is_set()


def test_stop_returns_within_its_timeout_even_if_a_handler_hangs(core):
    hang = threading.Event()
    core.subscribe(Tick, lambda _m: hang.wait(10))
    core.start()
    core.post(Tick(1))
    begin = time.monotonic()
    assert core.stop(timeout=0.3) is False  # the caller learns the core thread is still busy
    assert time.monotonic() - begin < 1.0
    hang.set()


def test_a_backlog_at_stop_is_handled_in_order_until_the_time_is_up_then_cut_after_the_message_in_hand(
    core,
):
    handled: list[int] = []
    pause = threading.Event()  # never set: each message takes 20 ms, like a synced SD-card write

    def slow(msg: Tick) -> None:
        pause.wait(0.02)
        handled.append(msg.n)

    core.subscribe(Tick, slow)
    for n in range(200):  # 4 s of work: a slow Pi's backlog of commands after a reconnect
        core.post(Tick(n))
    core.start()
    begin = time.monotonic()
    assert core.stop(timeout=0.3) is True
    assert time.monotonic() - begin < 1.0
    assert core.stopped.is_set()
    assert 0 < len(handled) < 200
    assert handled == list(range(len(handled)))  # a prefix, in order: none skipped, none twice


def test_commands_are_registered_once(core):
    core.register_command("queue.call", lambda args, body: {"ok": True}, args=("window",))
    assert core.command("queue.call")({"window": 1}, {}) == {"ok": True}
    assert core.command("nope") is None
    with pytest.raises(ValueError, match="registered twice"):
        core.register_command("queue.call", lambda args, body: {}, args=())


def test_a_command_refuses_arguments_it_does_not_declare_before_its_handler_runs(core):
    ran = []
    core.register_command("queue.call", lambda args, body: ran.append(args) or {}, args=("window",))
    core.register_command("sync", lambda args, body: ran.append(args) or {}, args=())
    with pytest.raises(CommandError) as refused:
        core.command("queue.call")({"windw": 2, "x": 1}, {})
    assert refused.value.code == "bad_arguments"
    assert refused.value.message == (
        "unknown arguments 'windw' (did you mean 'window'?), 'x': queue.call takes window"
    )
    with pytest.raises(CommandError, match=r"^unknown argument 'x': sync takes no arguments$"):
        core.command("sync")({"x": 1}, {})
    assert ran == []


def test_command_error_carries_a_code():
    err = CommandError("bad_args", "window 9 does not exist")
    assert (err.code, err.message, str(err)) == ("bad_args", "window 9 does not exist", err.message)


def test_status_collects_every_section(core):
    core.register_status("queue", lambda: {"waiting": 3})
    core.register_status("printer", lambda: "ok")
    assert core.status() == {"queue": {"waiting": 3}, "printer": "ok"}


def test_component_changes_are_dispatched_only_on_a_change(core):
    changes = []
    core.subscribe(ComponentChanged, changes.append)
    core.set_component("printer", "ok")
    core.set_component("printer", "ok")
    core.set_component("printer", "paper_out")
    assert changes == [ComponentChanged("printer", "ok"), ComponentChanged("printer", "paper_out")]
    assert core.components == {"printer": "paper_out"}


def test_emit_records_events_with_increasing_seq_and_tells_listeners_after_commit(core):
    told = []
    core.outbox.listeners.append(lambda e: told.append(e.seq))
    with core.storage.transaction():
        first = core.emit("ticket.issued", {"ticket": "A001"})
        second = core.emit("ticket.issued", {"ticket": "A002"})
        assert told == []  # not before the commit
    assert (first.seq, second.seq) == (1, 2)
    assert told == [1, 2]
    assert [e.event_id for e in core.outbox.pending()] == [first.event_id, second.event_id]
    assert first.event_id != second.event_id


def test_a_record_and_its_event_roll_back_together(core):
    core.storage.migrate("tickets", ["CREATE TABLE tickets (code TEXT)"])
    with pytest.raises(RuntimeError), core.storage.transaction() as conn:
        conn.execute("INSERT INTO tickets VALUES ('A001')")
        core.emit("ticket.issued", {"ticket": "A001"})
        raise RuntimeError("printer exploded")
    assert core.storage.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    assert core.outbox.depth() == 0
    assert core.storage.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 0
    assert core.emit("ticket.issued", {"ticket": "A001"}).seq == 1  # seq not burnt


def test_an_event_of_unknown_kind_is_refused(core):
    with pytest.raises(ValueError, match="kind must be one of"):
        core.emit("party.started", {})


def test_acknowledged_events_leave_the_outbox(core):
    events = [core.emit("audit.x", {"i": i}) for i in range(3)]
    core.outbox.acknowledge([events[0].seq, events[1].seq])
    assert [e.seq for e in core.outbox.pending()] == [events[2].seq]
    assert core.outbox.depth() == 1


def test_the_clock_says_hall_time_and_whether_to_trust_it():
    from edge.clock import kernel_clock_synced, rfc3339

    clock = Clock("Asia/Shanghai", "unsynced")
    now = clock.now()
    assert now.utcoffset().total_seconds() == 8 * 3600
    assert clock.status() == "unsynced"
    assert Clock(mode="synced").status() == "synced"
    auto = Clock(mode="auto").status()
    assert auto == ("synced" if kernel_clock_synced() else "unsynced")
    stamp = rfc3339(now)
    assert stamp.endswith("+08:00")
    assert len(stamp.split("T")[1].split("+")[0]) == len("09:01:02.123")
