"""What locker staff see and do (issue 15): locker.status, write-offs, tools back from repair, each
attributed to the staff member who acted, kept across restarts and as the contract describes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from contract_recorder import validators
from locker_hall import UIDS, LockerHall, locker_config
from support import wait_for
from test_locker import return_tool

from edge.core import CommandError

STAFF = "S000001"  # the staff member logged in (the command body's issuer)


@pytest.fixture
def hall(tmp_path, make_hall) -> LockerHall:
    return make_hall(["locker"], locker_config(tmp_path), rig=LockerHall)


def act(hall: LockerHall, name: str, **args: Any) -> dict[str, Any]:
    """A staff member's command, as the console or hall-admin runs it: the issuer names who acts."""
    handler = hall.core.command(name)
    assert handler is not None, name
    return hall.on_core(lambda: handler(args, {"issuer": STAFF}))


def files_after_kill_9(hall: LockerHall, folder: Path) -> Path:
    """The database as a kill -9 leaves it: the files copied while the daemon runs (process memory
    gone, a half-written WAL frame ignored by SQLite as after a real kill)."""
    folder.mkdir()
    state = Path(hall.config.storage.dir)
    for name in ("hall-edge.db", "hall-edge.db-wal"):
        if (state / name).exists():
            shutil.copyfile(state / name, folder / name)
    return folder / "hall-edge.db"


def tools(hall: LockerHall) -> dict[str, dict[str, Any]]:
    return {t["tool_id"]: t for t in act(hall, "locker.status")["tools"]}


def test_the_locker_page_shows_every_tool_with_its_holder_its_state_and_its_door(hall):
    out = hall.checkout("W1", 1)
    hall.checkout("W2", 2)
    return_tool(hall, "W2", 2)
    hall.door(3, True)  # someone has compartment 3 open
    wait_for(lambda: hall.data("alarm.forced_open"), what="the door seen open")
    status = act(hall, "locker.status")
    by_id = {t["tool_id"]: t for t in status["tools"]}
    assert [t["compartment"] for t in status["tools"]] == [1, 2, 3]
    hammer = by_id["T-hammer-01"]
    assert (hammer["state"], hammer["worker"], hammer["rental_id"], hammer["door"]) == (
        "out", "W000001", out["rental_id"], "closed")  # fmt: skip
    since, due = datetime.fromisoformat(hammer["since"]), datetime.fromisoformat(hammer["due"])
    assert (due - since).total_seconds() == pytest.approx(72 * 3600, abs=2)  # loan_hours 72
    shovel = by_id["T-shovel-01"]
    assert (shovel["state"], shovel["worker"], shovel["due"]) == ("awaiting_inspection", "W000002", None)
    drill = by_id["T-drill-01"]
    assert (drill["state"], drill["worker"], drill["door"]) == ("in_stock", None, "open")
    assert status["counts"] == {
        "in_stock": 1, "out": 1, "overdue": 0, "awaiting_inspection": 1, "in_repair": 0,
        "written_off": 0}  # fmt: skip
    assert status["doors_open"] == [3] and "forced_open:3" in status["alarms"]
    shown = json.dumps(status)
    assert not any(uid in shown for uid in UIDS.values())  # worker ids, never a card number
    hall.door(3, False)
    wait_for(lambda: tools(hall)["T-drill-01"]["door"] == "closed", what="the door shut")


def test_an_overdue_tool_is_shown_overdue(tmp_path, make_hall):
    overrides = locker_config(tmp_path, locker={"loan_hours": 0.0001})  # 0.36 s
    hall = make_hall(["locker"], overrides, rig=LockerHall)
    hall.checkout("W1", 1)
    hall.wait_event("alarm.tool_overdue")
    status = act(hall, "locker.status")
    (hammer,) = [t for t in status["tools"] if t["tool_id"] == "T-hammer-01"]
    assert (hammer["state"], hammer["worker"]) == ("overdue", "W000001")
    assert (status["counts"]["overdue"], status["counts"]["out"]) == (1, 0)


def test_a_tool_missing_from_stock_is_written_off_by_the_staff_member_and_stays_so(hall, tmp_path):
    written = act(hall, "locker.write_off", compartment=3, note="柜内无工具 联系 13812345678")
    assert written == {
        "tool_id": "T-drill-01", "compartment": 3, "state": "written_off", "from": "in_stock",
        "by": STAFF, "note": "柜内无工具 联系 138****5678", "rental_id": None}  # fmt: skip
    (event,) = hall.wait_event("audit.tool_written_off")
    assert (event["tool_id"], event["from"], event["by"], event["tool_type"]) == (
        "T-drill-01", "in_stock", STAFF, "drill")  # fmt: skip
    drill = tools(hall)["T-drill-01"]
    assert (drill["state"], drill["by"], drill["note"]) == (
        "written_off",
        STAFF,
        "柜内无工具 联系 138****5678",
    )
    with pytest.raises(CommandError) as again:
        act(hall, "locker.write_off", tool_id="T-drill-01")
    assert again.value.code == "already_written_off"
    # kill -9 now: what is on the disk (the database and its WAL, copied as they are) has it all.
    killed = files_after_kill_9(hall, tmp_path / "killed")
    with sqlite3.connect(killed) as db:
        assert db.execute("SELECT state FROM locker_tools WHERE tool_id = 'T-drill-01'").fetchone() == (
            "written_off",
        )
        assert db.execute("SELECT COUNT(*) FROM outbox WHERE type = 'audit.tool_written_off'").fetchone() == (
            1,
        )
    hall.restart()
    assert tools(hall)["T-drill-01"]["state"] == "written_off"
    history = hall.on_core(lambda: hall.locker.ledger.history("T-drill-01"))
    assert (history[-1]["action"], history[-1]["worker"]) == ("written_off", STAFF)
    hall.select(3)
    hall.tap("DRILLER")  # approved for drills, but there is none to lend now
    (denied,) = hall.wait_event("rental.denied")
    assert denied["reason"] == "no_tool"


def test_inspect_lost_on_a_tool_in_stock_writes_it_off_instead_of_bad_state(hall):
    answer = act(hall, "locker.inspect", tool_id="T-shovel-01", result="lost", note="盘点缺失")
    assert (answer["state"], answer["from"], answer["by"]) == ("written_off", "in_stock", STAFF)
    assert hall.wait_event("audit.tool_written_off")[0]["tool_id"] == "T-shovel-01"
    with pytest.raises(CommandError) as refused:
        act(hall, "locker.inspect", tool_id="T-hammer-01", result="ok")  # in stock, not returned
    assert refused.value.code == "bad_state" and "locker.write_off" in refused.value.message


def test_a_tool_out_cannot_be_written_off_and_one_awaiting_inspection_closes_its_rental(hall):
    out = hall.checkout("W1", 1)
    with pytest.raises(CommandError) as refused:
        act(hall, "locker.write_off", tool_id="T-hammer-01")
    assert refused.value.code == "tool_out"
    assert tools(hall)["T-hammer-01"]["state"] == "out"  # nothing changed
    return_tool(hall, "W1", 1)
    written = act(hall, "locker.write_off", tool_id="T-hammer-01", note="归还后发现缺件")
    assert (written["from"], written["rental_id"]) == ("awaiting_inspection", out["rental_id"])
    (inspected,) = hall.wait_event("rental.inspected")
    assert (inspected["rental_id"], inspected["result"], inspected["inspector"]) == (
        out["rental_id"], "lost", STAFF)  # fmt: skip
    assert hall.wait_event("audit.tool_written_off")[0]["rental_id"] == out["rental_id"]


def test_a_tool_back_from_repair_is_in_stock_again_and_lent(hall):
    hall.checkout("W1", 1)
    return_tool(hall, "W1", 1)
    act(hall, "locker.inspect", compartment=1, result="damaged", note="锤柄断裂")
    hammer = tools(hall)["T-hammer-01"]
    assert (hammer["state"], hammer["by"], hammer["note"]) == ("in_repair", STAFF, "锤柄断裂")
    with pytest.raises(CommandError) as not_yet:
        act(hall, "locker.repaired", tool_id="T-shovel-01")
    assert not_yet.value.code == "not_in_repair"
    hall.restart()  # in repair is on disk
    back = act(hall, "locker.repaired", compartment=1, note="已换新锤柄")
    assert back == {
        "tool_id": "T-hammer-01", "compartment": 1, "state": "in_stock", "by": STAFF,
        "note": "已换新锤柄", "rental_id": back["rental_id"]}  # fmt: skip
    repaired = hall.wait_event("rental.inspected", 2)[-1]
    assert (repaired["result"], repaired["repaired"], repaired["inspector"]) == ("ok", True, STAFF)
    assert tools(hall)["T-hammer-01"]["state"] == "in_stock"
    assert hall.checkout("W2", 1)["tool_id"] == "T-hammer-01"  # lent again


def test_the_staff_events_match_the_contract_schema(hall):
    hall.checkout("W1", 1)
    return_tool(hall, "W1", 1)
    act(hall, "locker.inspect", compartment=1, result="damaged")
    act(hall, "locker.repaired", compartment=1)
    act(hall, "locker.write_off", compartment=2)
    hall.wait_event("audit.tool_written_off")
    event_schema = validators()["event"]
    for event in hall.events:
        if event.type in ("rental.inspected", "audit.tool_written_off"):
            event_schema.validate(event.body())
    with pytest.raises(CommandError) as bad:
        act(hall, "locker.write_off", compartment=3, note="x" * 501)
    assert bad.value.code == "bad_arguments"
