"""The tool locker: checkout, denials, returns, inspection, alarms, restart consistency."""

from __future__ import annotations

import json
import logging

import pytest
from locker_hall import KEY, UIDS, LockerHall, locker_config
from support import wait_for

from drivers.rfid import card_hash
from edge.core import CommandError
from edge.messages import ScreenLineEnded


@pytest.fixture
def hall(tmp_path, make_hall):
    return make_hall(["locker"], locker_config(tmp_path), rig=LockerHall)


# ---- checkout -----------------------------------------------------------------------------


def test_checkout_needs_the_door_opened_and_shut(hall):
    hall.tap("W1")
    wait_for(lambda: hall.lock_high(1), what="lock 1 pulsed")
    assert hall.data("rental.checkout") == []  # unlocked is not a rental
    hall.door(1, True)
    hall.door(1, False)
    (event,) = hall.wait_event("rental.checkout")
    assert event["worker"] == "W000001"
    assert event["tool_id"] == "T-hammer-01"
    assert event["tool_type"] == "hammer"
    assert event["compartment"] == 1
    assert event["rental_id"].startswith("R-")
    wait_for(lambda: not hall.lock_high(1), what="lock released after the pulse")
    assert hall.status()["out"] == ["T-hammer-01"]
    assert "ok" in hall.buzzes
    history = hall.on_core(lambda: hall.locker.ledger.history("T-hammer-01"))
    assert [h["action"] for h in history] == ["added", "checkout"]


def test_the_open_compartments_line_leaves_when_its_door_shuts(hall):
    """Issue 13: `1号柜已开 请取工具` belongs to the open door; shutting it ends that line at once."""
    ended: list[ScreenLineEnded] = []
    hall.on_core(lambda: hall.core.subscribe(ScreenLineEnded, ended.append))
    hall.tap("W1")
    wait_for(lambda: "1号柜已开 请取工具" in hall.lines, what="the open line")
    hall.door(1, True)
    hall.door(1, False)
    hall.wait_event("rental.checkout")
    wait_for(lambda: ScreenLineEnded("locker", "door:1") in ended, what="the line withdrawn")


def test_select_button_chooses_the_compartment(hall):
    hall.select(2)
    event = hall.checkout("W1", 2)
    assert event["tool_id"] == "T-shovel-01"


@pytest.mark.parametrize(
    ("card", "reason", "worker"),
    [("STRANGER", "unknown_card", None), ("SUSP", "suspended", "W000004"), ("BAN", "banned", "W000005")],
)
def test_cards_that_may_not_borrow_are_denied_with_feedback(hall, card, reason, worker):
    hall.tap(card)
    (denied,) = hall.wait_event("rental.denied")
    assert denied["reason"] == reason
    assert denied.get("worker") == worker
    wait_for(lambda: "deny" in hall.buzzes and hall.lines, what="buzzer and screen line")
    assert hall.unlocks(1) == hall.unlocks(2) == hall.unlocks(3) == 0


def test_limit_denies_a_second_tool(hall):
    hall.checkout("W1", 1)
    hall.select(2)
    hall.tap("W1")
    (denied,) = hall.wait_event("rental.denied")
    assert denied == {"reason": "limit", "worker": "W000001"}


def test_limit_counts_a_tool_being_taken_right_now(hall):
    hall.tap("W1")
    wait_for(lambda: hall.lock_high(1), what="unlocked")
    hall.door(1, True)  # taking the hammer, door still open
    hall.select(2)
    hall.tap("W1")
    assert hall.wait_event("rental.denied")[0]["reason"] == "limit"
    hall.door(1, False)
    hall.wait_event("rental.checkout")


def test_tool_needing_approval(hall):
    hall.select(3)
    hall.tap("W1")
    assert hall.wait_event("rental.denied")[0]["reason"] == "not_approved"
    hall.select(3)
    assert hall.checkout("DRILLER", 3)["tool_type"] == "drill"


def test_worker_without_approval_gets_first_lendable_tool_then_no_tool(hall):
    assert hall.checkout("W1", 1)["tool_id"] == "T-hammer-01"
    assert hall.checkout("W2", 2)["tool_id"] == "T-shovel-01"
    hall.tap("W3")  # only the drill is left and W3 is not approved for it
    assert hall.wait_event("rental.denied")[0]["reason"] == "not_approved"
    assert hall.checkout("DRILLER", 3)["tool_id"] == "T-drill-01"
    hall.tap("W3")
    assert hall.wait_event("rental.denied", 2)[-1]["reason"] == "no_tool"


def test_unlocked_but_never_opened_relocks_with_timeout(tmp_path, make_hall):
    hall = make_hall(["locker"], locker_config(tmp_path, locker={"unlock_timeout_s": 0.5}), rig=LockerHall)
    try:
        hall.tap("W1")
        (denied,) = hall.wait_event("rental.denied")
        assert denied == {"reason": "timeout", "worker": "W000001", "compartment": 1}
        assert not hall.lock_high(1)
        assert hall.data("rental.checkout") == []
        hall.door(1, True)  # opening now is forcing it
        (alarm,) = hall.wait_event("alarm.forced_open")
        assert alarm["state"] == "raised" and alarm["compartment"] == 1
        hall.door(1, False)
        assert hall.wait_event("alarm.forced_open", 2)[-1]["state"] == "cleared"
    finally:
        hall.close()


def test_same_card_again_while_unlocked_and_two_cards_in_quick_succession(hall):
    hall.tap("W1")
    hall.tap("W1")
    hall.tap("W2")
    wait_for(lambda: hall.lock_high(1) and hall.lock_high(2), what="two compartments")
    assert hall.unlocks(1) == hall.unlocks(2) == 1 and hall.unlocks(3) == 0
    for n in (1, 2):
        hall.door(n, True)
        hall.door(n, False)
    events = hall.wait_event("rental.checkout", 2)
    assert sorted((e["worker"], e["compartment"]) for e in events) == [("W000001", 1), ("W000002", 2)]


# ---- return and inspection -------------------------------------------------------------------


def test_return_then_inspection_before_it_is_lent_again(hall):
    out = hall.checkout("W1", 1)
    hall.tap("W1")  # holding a tool and choosing nothing: a return
    wait_for(lambda: hall.unlocks(1) == 2, what="unlocked for the return")
    hall.door(1, True)
    hall.door(1, False)
    (back,) = hall.wait_event("rental.return")
    assert back["rental_id"] == out["rental_id"]
    assert back["worker"] == back["returned_by"] == "W000001"
    assert back["compartment"] == 1 and back["duration_s"] >= 0
    assert hall.status()["pending_inspection"] == ["T-hammer-01"]
    # Not lendable until inspected: the next worker gets the shovel.
    assert hall.checkout("W2", 2)["tool_id"] == "T-shovel-01"
    hall.tap("STAFF")
    (inspected,) = hall.wait_event("rental.inspected")
    assert inspected == {
        "rental_id": out["rental_id"],
        "tool_id": "T-hammer-01",
        "result": "ok",
        "inspector": "S000001",
        "note": "staff card at the locker",
    }
    assert "T-hammer-01" in hall.status()["available"]


def test_return_with_another_workers_card_records_both(hall):
    out = hall.checkout("W1", 1)
    hall.select(1)
    hall.tap("W2")
    wait_for(lambda: hall.unlocks(1) == 2, what="unlocked for the return")
    hall.door(1, True)
    hall.door(1, False)
    (back,) = hall.wait_event("rental.return")
    assert (back["rental_id"], back["worker"], back["returned_by"]) == (
        out["rental_id"],
        "W000001",
        "W000002",
    )


def return_tool(hall, name, number):
    before = len(hall.data("rental.return"))
    unlocks = hall.unlocks(number)
    hall.tap(name)
    wait_for(lambda: hall.unlocks(number) == unlocks + 1, what="unlocked for the return")
    hall.door(number, True)
    hall.door(number, False)
    return hall.wait_event("rental.return", before + 1)[-1]


def test_inspect_command_damaged_to_repair_and_lost_written_off(hall):
    hall.checkout("W1", 1)
    return_tool(hall, "W1", 1)
    hall.checkout("W2", 2)
    return_tool(hall, "W2", 2)
    inspect = hall.locker._cmd_inspect
    body = {"issuer": "staff-li"}
    with pytest.raises(CommandError):
        hall.on_core(lambda: inspect({"tool_id": "T-drill-01", "result": "ok"}, body))  # not returned
    with pytest.raises(CommandError):
        hall.on_core(lambda: inspect({"compartment": 1, "result": "broken"}, body))
    damaged = hall.on_core(
        lambda: inspect({"compartment": 1, "result": "damaged", "note": "handle cracked"}, body)
    )
    assert damaged["result"] == "damaged" and damaged["inspector"] == "staff-li"
    hall.on_core(lambda: inspect({"tool_id": "T-shovel-01", "result": "lost"}, body))
    status = hall.status()
    assert status["in_repair"] == ["T-hammer-01"] and status["written_off"] == ["T-shovel-01"]
    hall.on_core(lambda: inspect({"tool_id": "T-hammer-01", "result": "ok", "note": "new handle"}, body))
    assert "T-hammer-01" in hall.status()["available"]
    history = hall.on_core(lambda: hall.locker.ledger.history("T-hammer-01"))
    assert [h["action"] for h in history] == [
        "added",
        "checkout",
        "return",
        "inspected",
        "repair",
        "repaired",
    ]
    shovel = hall.on_core(lambda: hall.locker.ledger.history("T-shovel-01"))
    assert shovel[-1]["action"] == "written_off"


# ---- commands -------------------------------------------------------------------------------------


def test_locker_open_is_audited_and_its_door_is_not_forced(hall):
    result = hall.on_core(
        lambda: hall.locker._cmd_open({"compartment": 2, "reason": "restock"}, {"issuer": "it-wang"})
    )
    assert result == {"compartment": 2, "unlocked": True}
    (audit,) = hall.wait_event("audit.locker_opened")
    assert audit == {"compartment": 2, "reason": "restock", "issuer": "it-wang"}
    wait_for(lambda: hall.unlocks(2) == 1, what="unlocked")
    hall.door(2, True)
    hall.door(2, False)
    hall.tap("STRANGER")  # a marker: everything before it has been handled
    hall.wait_event("rental.denied")
    assert hall.data("alarm.forced_open") == []
    with pytest.raises(CommandError):
        hall.on_core(lambda: hall.locker._cmd_open({"compartment": 9, "reason": "x"}, {}))


def test_free_text_of_locker_commands_reaches_events_with_phone_numbers_masked(hall):
    reason = "工人 13812345678 门卡坏了"
    hall.on_core(lambda: hall.locker._cmd_open({"compartment": 2, "reason": reason}, {"issuer": "it-wang"}))
    assert hall.wait_event("audit.locker_opened")[0]["reason"] == "工人 138****5678 门卡坏了"
    hall.checkout("W1", 1)
    return_tool(hall, "W1", 1)
    note = "damage reported by phone 139-1234-5678"
    args = {"compartment": 1, "result": "damaged", "note": note}
    hall.on_core(lambda: hall.locker._cmd_inspect(args, {"issuer": "staff-li"}))
    assert hall.wait_event("rental.inspected")[0]["note"] == "damage reported by phone 139****5678"


# ---- alarms -----------------------------------------------------------------------------------------


def test_door_open_too_long_raises_once_and_clears(tmp_path, make_hall):
    hall = make_hall(["locker"], locker_config(tmp_path, locker={"door_open_alarm_s": 0.5}), rig=LockerHall)
    try:
        hall.tap("W1")
        wait_for(lambda: hall.lock_high(1), what="unlocked")
        hall.door(1, True)
        (raised,) = hall.wait_event("alarm.door_open_too_long")
        assert raised["state"] == "raised" and raised["compartment"] == 1
        hall.door(1, False)
        events = hall.wait_event("alarm.door_open_too_long", 2)
        assert [e["state"] for e in events] == ["raised", "cleared"]
        hall.wait_event("rental.checkout")
    finally:
        hall.close()


def test_overdue_tool_raises_once_and_clears_on_return(tmp_path, make_hall):
    hall = make_hall(
        ["locker"], locker_config(tmp_path, locker={"loan_hours": 0.0001}), rig=LockerHall
    )  # 0.36 s
    try:
        out = hall.checkout("W1", 1)
        (raised,) = hall.wait_event("alarm.tool_overdue")
        assert raised["state"] == "raised" and raised["rental_id"] == out["rental_id"]
        assert raised["worker"] == "W000001" and raised["tool_id"] == "T-hammer-01"
        return_tool(hall, "W1", 1)
        events = hall.wait_event("alarm.tool_overdue", 2)
        assert [e["state"] for e in events] == ["raised", "cleared"]
    finally:
        hall.close()


def test_reader_unplugged_is_offline_with_one_alarm_and_back(hall):
    wait_for(lambda: hall.core.components.get("rfid") == "ok", what="reader ok")
    hall.sim.unplug()
    wait_for(lambda: hall.core.components.get("rfid") == "offline", what="reader offline")
    hall.sim.plug()
    wait_for(lambda: hall.core.components.get("rfid") == "ok", what="reader back")
    assert [e["state"] for e in hall.wait_event("alarm.rfid_offline", 2)] == ["raised", "cleared"]


def test_a_real_tap_on_the_reader_unlocks_and_no_uid_leaks(hall, caplog):
    caplog.set_level(logging.DEBUG)
    wait_for(lambda: hall.core.components.get("rfid") == "ok", what="reader ok")
    hall.sim.tap(UIDS["W2"])
    wait_for(lambda: hall.lock_high(1), what="unlocked by a real frame")
    hall.door(1, True)
    hall.door(1, False)
    hall.wait_event("rental.checkout")
    for uid in (UIDS["W2"], UIDS["W2"].lower()):
        assert uid not in caplog.text
        assert all(uid not in e.payload.decode() for e in hall.events)
    assert card_hash(KEY, UIDS["W2"]) not in json.dumps(hall.status())


def test_pn532_reader_tap_unlocks(tmp_path, make_hall):
    hall = make_hall(["locker"], locker_config(tmp_path, reader="pn532"), rig=LockerHall)
    try:
        wait_for(lambda: hall.core.components.get("rfid") == "ok", what="PN532 answering")
        hall.sim.tap(UIDS["MIFARE"], hold_s=0.3)  # held over several polls: one tap
        wait_for(lambda: hall.lock_high(1), what="unlocked by a PN532 poll answer")
        hall.door(1, True)
        hall.door(1, False)
        assert hall.wait_event("rental.checkout")[0]["worker"] == "W000008"
        assert hall.unlocks(1) == 1
        assert UIDS["MIFARE"] not in json.dumps([e.body() for e in hall.events])
    finally:
        hall.close()


# ---- restarts -------------------------------------------------------------------------------------------


def test_crash_after_the_door_opened_finishes_the_checkout_once(hall):
    hall.tap("W1")
    wait_for(lambda: hall.lock_high(1), what="unlocked")
    hall.door(1, True)
    wait_for(
        lambda: hall.locker.sessions.get(1) and hall.locker.sessions[1].door_opened, what="door seen open"
    )
    hall.stop()
    hall.door(1, False)  # shut while the daemon was down
    hall.start()
    (event,) = hall.wait_event("rental.checkout")
    assert event["worker"] == "W000001"
    hall.restart()
    hall.tap("STRANGER")
    hall.wait_event("rental.denied")
    assert len(hall.data("rental.checkout")) == 1
    assert hall.status()["out"] == ["T-hammer-01"]


def test_crash_with_the_door_still_open_finishes_when_it_shuts(hall):
    hall.select(2)
    hall.tap("W2")
    wait_for(lambda: hall.lock_high(2), what="unlocked")
    hall.stop()  # before the daemon saw the door open
    hall.door(2, True)
    hall.start()
    hall.door(2, False)
    (event,) = hall.wait_event("rental.checkout")
    assert (event["worker"], event["compartment"]) == ("W000002", 2)


def test_crash_after_unlock_that_was_never_opened_is_no_rental(hall):
    hall.tap("W1")
    wait_for(lambda: hall.lock_high(1), what="unlocked")
    hall.stop()
    hall.start()
    (denied,) = hall.wait_event("rental.denied")
    assert denied["reason"] == "timeout"
    assert hall.data("rental.checkout") == []
    assert "T-hammer-01" in hall.status()["available"]


def test_crash_during_a_return_finishes_the_return(hall):
    hall.checkout("W1", 1)
    hall.tap("W1")
    wait_for(lambda: hall.unlocks(1) == 2, what="unlocked for the return")
    hall.door(1, True)
    wait_for(
        lambda: hall.locker.sessions.get(1) and hall.locker.sessions[1].door_opened, what="door seen open"
    )
    hall.stop()
    hall.door(1, False)
    hall.start()
    (back,) = hall.wait_event("rental.return")
    assert back["worker"] == "W000001"
    assert hall.status()["pending_inspection"] == ["T-hammer-01"]
