"""The tool locker: card taps become checkouts and returns, doors become evidence.

Flow of a checkout: tap -> card known and active? -> under ``tools_max``? ->
approved for the tool type if it needs approval? -> which compartment (the
select button pressed just before, or the first lendable tool) -> a durable
*session* is written, then the lock is pulsed -> the door opens (the session
is marked) -> the door shuts -> ``rental.checkout``.  A return is the same
with the tool going back in; the tool then waits for inspection.

Why the session is written before the latch moves: after a power loss the
daemon must know which unlocks were in progress.  At start, a session whose
door was seen open (or is open now) is finished; one whose door never
opened is dropped (``rental.denied`` timeout): an unlocked compartment is
not a rental until its door sensor shows the tool was taken.

All of this runs on the core thread; the reader and the door sensors only
post messages.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from drivers.lockboard import LockBoards
from drivers.rfid import CardReader
from edge.core import CommandError, Core, Timer, acting_staff
from edge.locker import compartments as hw
from edge.locker.board import LockerState, locker_board
from edge.locker.ledger import LENDABLE, Ledger, Session, Tool, is_overdue
from edge.logs import mask_phone
from edge.messages import Buzz, ScreenLine, ScreenLineEnded, SnapshotUpdated
from edge.settings import Settings

log = logging.getLogger(__name__)

DENIAL_LINES = {
    "unknown_card": "无效卡 请到服务窗口登记",
    "suspended": "卡已暂停使用 请到服务窗口",
    "banned": "卡已停用 请到服务窗口",
    "limit": "已达借用上限 请先归还工具",
    "not_approved": "该工具需先审批 请到服务窗口",
    "no_tool": "暂无可借工具",
    "timeout": "柜门未打开 已重新上锁",
}
RESULTS = ("ok", "damaged", "lost")
NOTE_MAX = 500
SETTLE_S = 0.15
TAP_WAIT_S = 3.0  # how long a tap waits for the locker to settle after a start
LINE_S = 6.0  # a result (denied, returned...) stays at most this long; the next tap replaces it
SCREEN = "locker"  # one place speaks: the reader and its compartments, so a newer line replaces the older


class LockerFeature:
    name = "locker"

    def __init__(self, settings: Settings, card_key: bytes) -> None:
        self.settings = settings
        self.cfg = settings.locker
        self.card_key = card_key
        self.core: Core  # set by start()
        self.ledger: Ledger
        self.cards: dict[str, dict[str, Any]] = {}
        self.compartments: dict[int, hw.Compartment] = {}
        self.boards: LockBoards | None = None
        self.reader: CardReader | None = None
        self.sessions: dict[int, Session] = {}
        self.door_known: dict[int, bool] = {}
        self.authorised_until: dict[int, float] = {}  # monotonic: the door may open without an alarm
        self.selected: tuple[int, float] | None = None
        self.recovered = False
        self._reported_boards: set[int] = set()
        self._unlock_timers: dict[int, Timer] = {}
        self._door_timers: dict[int, Timer] = {}
        self._relock_timers: dict[int, Timer] = {}

    # -- lifecycle ------------------------------------------------------------------

    def start(self, core: Core) -> None:
        self.core = core
        self.ledger = Ledger(core)
        self.ledger.sync_tools(self.cfg.compartments)
        core.subscribe(SnapshotUpdated, self._on_snapshot)
        core.subscribe(hw.CardTapped, self._on_tap)
        core.subscribe(hw.ReaderHealth, self._on_reader_health)
        core.subscribe(hw.DoorChanged, self._on_door_changed)
        core.subscribe(hw.SelectPressed, self._on_select)
        core.subscribe(hw.BoardReport, self._on_board_report)
        core.subscribe(hw.BoardHealth, self._on_board_health)
        core.register_command("locker.open", self._cmd_open, args=("compartment", "reason"))
        core.register_command(
            "locker.inspect", self._cmd_inspect, args=("tool_id", "compartment", "result", "note")
        )
        core.register_command("locker.status", self._cmd_status, args=())
        core.register_command(
            "locker.write_off", self._cmd_write_off, args=("tool_id", "compartment", "note")
        )
        core.register_command("locker.repaired", self._cmd_repaired, args=("tool_id", "compartment", "note"))
        core.register_status("locker", self.status)
        self.compartments, self.boards = hw.build(self.settings, core.post)
        core.set_component("locker", "ok")
        if self.boards is None:
            # Inputs just set up with their pull-ups need a moment before their level is the
            # door's (and a remote pin factory a moment to deliver it): recover after that.
            core.call_later(SETTLE_S, self._recover)
        else:
            self.boards.start()  # recovery waits for every board's first status
        rfid = self.settings.rfid
        self.reader = CardReader(
            rfid.reader,
            rfid.port,
            self.card_key,
            lambda h: core.post(hw.CardTapped(h)),
            lambda ok: core.post(hw.ReaderHealth(ok)),
            baudrate=rfid.baudrate,
            same_card_s=rfid.same_card_s,
            poll_s=rfid.poll_ms / 1000,
        )
        self.reader.start()
        loan_s = self.cfg.loan_hours * 3600
        core.every(max(0.2, min(60.0, loan_s / 5)), self._check_overdue, first_after=0.5)

    def stop(self) -> None:
        if self.reader is not None:
            self.reader.stop()
        if self.boards is not None:
            self.boards.stop()
        for compartment in self.compartments.values():
            compartment.close()

    # -- cards ----------------------------------------------------------------------------

    def _on_snapshot(self, message: SnapshotUpdated) -> None:
        if message.kind != "cards":
            return
        self.cards = {card["h"]: card for card in message.snapshot.get("cards", [])}
        log.info("cards snapshot: %d cards (live=%s)", len(self.cards), message.live)

    def _on_tap(self, message: hw.CardTapped, waited: int = 0) -> None:
        if not self.recovered:  # sessions from before a restart are not settled yet
            if waited * SETTLE_S < TAP_WAIT_S:
                self.core.call_later(SETTLE_S, lambda: self._on_tap(message, waited + 1))
            else:  # e.g. an RS-485 board that has not answered since the start
                log.warning("locker not ready (door states unknown); a tap was ignored")
                self._feedback("deny", "工具柜暂不可用 请联系工作人员")
            return
        card = self.cards.get(message.h)
        if card is None:
            self._deny("unknown_card", None)
            return
        worker = card["worker"]
        busy = next((s for s in self.sessions.values() if s.worker == worker and not s.door_opened), None)
        if busy is not None:  # the same card again while its compartment stands unlocked
            self._line(
                f"{busy.compartment}号柜已开 请开门", f"door:{busy.compartment}", self.cfg.unlock_timeout_s
            )
            return
        selected = self._take_selection()
        staff = card["role"] == "staff" and card["status"] == "active"
        if staff and self._staff_inspects(worker, selected):
            return
        returning = self._tool_to_return(worker, selected)
        if returning is not None:
            self._begin("return", returning, worker)
            return
        reason, tool = self._choose_tool(card, selected)
        if tool is None:
            self._deny(reason, worker)
            return
        self._begin("checkout", tool, worker)

    def _tool_to_return(self, worker: str, selected: int | None) -> Tool | None:
        """A return: the selected compartment's tool is out (anyone may bring it), or no choice
        was made and this worker holds a tool."""
        if selected is not None:
            tool = self.ledger.in_compartment(selected)
            return tool if tool is not None and tool.state == "out" and self._free(tool) else None
        held = [t for t in self.ledger.held_by(worker) if self._free(t)]
        return held[0] if held else None

    def _choose_tool(self, card: dict[str, Any], selected: int | None) -> tuple[str, Tool | None]:
        """(denial reason, None) or ("", the tool to lend), checked in the order the rules give."""
        worker = card["worker"]
        if card["status"] != "active":
            return ("banned" if card["status"] == "banned" else "suspended"), None
        taking = sum(1 for s in self.sessions.values() if s.worker == worker and s.kind == "checkout")
        if len(self.ledger.held_by(worker)) + taking >= card.get("tools_max", 1):
            return "limit", None
        if selected is not None:
            tool = self.ledger.in_compartment(selected)
            candidates = [tool] if tool is not None and self._lendable(tool) else []
        else:
            tools = sorted(self.ledger.tools.values(), key=lambda t: t.compartment)
            candidates = [t for t in tools if self._lendable(t)]
        need = set(self.cfg.approval_required)
        allowed = [
            t for t in candidates if t.tool_type not in need or t.tool_type in card.get("approved", [])
        ]
        if allowed:
            return "", allowed[0]
        return ("not_approved" if candidates else "no_tool"), None

    def _free(self, tool: Tool) -> bool:
        """Its compartment exists, has no unlock in progress and its door is shut."""
        number = tool.compartment
        return number in self.compartments and number not in self.sessions and not self.door_known.get(number)

    def _lendable(self, tool: Tool) -> bool:
        return tool.state == LENDABLE and self._free(tool)

    def _take_selection(self) -> int | None:
        selected, self.selected = self.selected, None
        if selected is None or time.monotonic() - selected[1] > self.cfg.select_s:
            return None
        return selected[0]

    def _on_select(self, message: hw.SelectPressed) -> None:
        self.selected = (message.number, time.monotonic())
        self._line(f"{message.number}号柜 请刷卡", f"select:{message.number}", self.cfg.select_s)

    # -- unlocking ------------------------------------------------------------------------------

    def _begin(self, kind: str, tool: Tool, worker: str) -> None:
        number = tool.compartment
        session = self.ledger.open_session(kind, tool, worker)  # on disk before the latch moves
        self._unlock(number)
        self.ledger.mark_unlocked(session)
        self.sessions[number] = session
        self._unlock_timers[number] = self.core.call_later(
            self.cfg.unlock_timeout_s, lambda: self._unlock_timeout(number, session.rental_id)
        )
        what = "请取工具" if kind == "checkout" else "请放回工具"
        self._line(f"{number}号柜已开 {what}", f"door:{number}", self.cfg.unlock_timeout_s)
        log.info("locker %s session compartment=%d worker=%s", kind, number, worker)

    def _unlock(self, number: int) -> None:
        """Pulse the lock; the door may open without an alarm until the unlock times out."""
        compartment = self.compartments[number]
        compartment.unlock()
        self.authorised_until[number] = time.monotonic() + self.cfg.unlock_timeout_s
        self._cancel(self._relock_timers, number)  # a new pulse gets its full length
        self._relock_timers[number] = self.core.call_later(self.cfg.lock_pulse_s, compartment.relock)

    def _unlock_timeout(self, number: int, rental_id: str) -> None:
        session = self.sessions.get(number)
        if session is None or session.rental_id != rental_id or session.door_opened:
            return
        del self.sessions[number]
        self.compartments[number].relock()
        self.authorised_until[number] = 0.0
        self.ledger.drop_session(session, "timeout")
        self._feedback("deny", f"{number}号柜 " + DENIAL_LINES["timeout"])

    # -- doors ------------------------------------------------------------------------------------

    def _on_door_changed(self, message: hw.DoorChanged) -> None:
        if message.number in self.compartments and self.recovered:
            self._door_level(message.number, message.is_open)

    def _door_level(self, number: int, is_open: bool) -> None:
        if self.door_known.get(number) == is_open:
            return  # a bounce, or an edge whose level we already acted on
        self.door_known[number] = is_open
        if is_open:
            self._door_opened(number)
        else:
            self._door_closed(number)

    def _door_opened(self, number: int) -> None:
        session = self.sessions.get(number)
        if session is not None and not session.door_opened:
            self._cancel(self._unlock_timers, number)
            self.sessions[number] = self.ledger.door_opened(session)
        elif session is None and time.monotonic() > self.authorised_until.get(number, 0.0):
            facts = self._compartment_facts(number)
            if self.ledger.raise_alarm(f"forced_open:{number}", "alarm.forced_open", facts):
                self._feedback("alarm", f"{number}号柜被强行打开", f"door:{number}")
        self.authorised_until[number] = 0.0
        self._start_door_timer(number)

    def _start_door_timer(self, number: int) -> None:
        self._cancel(self._door_timers, number)
        self._door_timers[number] = self.core.call_later(
            self.cfg.door_open_alarm_s, lambda: self._door_open_too_long(number)
        )

    def _door_open_too_long(self, number: int) -> None:
        if not self.door_known.get(number):
            return
        facts = {**self._compartment_facts(number), "limit_s": self.cfg.door_open_alarm_s}
        if self.ledger.raise_alarm(f"door_open:{number}", "alarm.door_open_too_long", facts):
            self._feedback("alarm", f"{number}号柜门未关 请关门", f"door:{number}")

    def _door_closed(self, number: int) -> None:
        self.core.post(ScreenLineEnded(SCREEN, f"door:{number}"))  # 已开 / 请关门 are over now
        self._cancel(self._door_timers, number)
        self.ledger.clear_alarm(f"door_open:{number}")
        self.ledger.clear_alarm(f"forced_open:{number}")
        session = self.sessions.get(number)
        if session is not None and session.door_opened:
            self._finish(session)

    def _finish(self, session: Session) -> None:
        """The door opened and shut again: the tool went out, or came back."""
        self.sessions.pop(session.compartment, None)
        self._cancel(self._unlock_timers, session.compartment)
        if session.kind == "checkout":
            self.ledger.checkout(session)
            self._feedback("ok", "借出成功 请按时归还")
            return
        with self.core.storage.transaction():
            self.ledger.give_back(session)
            self.ledger.clear_alarm(f"overdue:{session.rental_id}")
        self._feedback("ok", "归还成功 谢谢")

    # -- after a restart ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Settle sessions left by a crash or power loss against what the door sensors say now."""
        self.door_known = {n: c.door_open() for n, c in self.compartments.items()}
        for number, session in self.ledger.sessions().items():
            open_now = self.door_known.get(number, False)
            if open_now:
                # Open now: the tool is on its way; finish when the door shuts.
                self.sessions[number] = session if session.door_opened else self.ledger.door_opened(session)
            elif session.door_opened:
                self._finish(session)
            else:
                log.info("locker restart: compartment %d was unlocked but never opened", number)
                self.ledger.drop_session(session, "timeout")
        for number, is_open in self.door_known.items():
            if is_open:
                self._start_door_timer(number)
            else:
                self.ledger.clear_alarm(f"door_open:{number}")
                self.ledger.clear_alarm(f"forced_open:{number}")
        self.recovered = True
        log.info(
            "locker ready: %d compartments, %d unlocks in progress",
            len(self.compartments),
            len(self.sessions),
        )

    # -- RS-485 boards -------------------------------------------------------------------------------

    def _on_board_report(self, message: hw.BoardReport) -> None:
        status = message.status
        open_bit = bool(self.cfg.rs485_open_bit)
        for number, compartment in self.compartments.items():
            if isinstance(compartment, hw.BoardCompartment) and compartment.board == status.board:
                compartment.board_door_open = status.locks[compartment.lock_no - 1] == open_bit
                if self.recovered:
                    self._door_level(number, compartment.board_door_open)
        self._reported_boards.add(status.board)
        if (
            not self.recovered
            and self.boards is not None
            and self._reported_boards >= set(self.boards.boards)
        ):
            self._recover()

    def _on_board_health(self, message: hw.BoardHealth) -> None:
        self.core.set_component("locker", "ok" if message.ok else "offline")

    # -- reader health, overdue tools ------------------------------------------------------------------

    def _on_reader_health(self, message: hw.ReaderHealth) -> None:
        self.core.set_component("rfid", "ok" if message.ok else "offline")
        if message.ok:
            self.ledger.clear_alarm("rfid_offline")
        else:
            facts = {"reader": self.settings.rfid.reader, "port": self.settings.rfid.port}
            self.ledger.raise_alarm("rfid_offline", "alarm.rfid_offline", facts)

    def _check_overdue(self) -> None:
        limit_s = self.cfg.loan_hours * 3600
        now = time.time()
        out = set()
        for tool in list(self.ledger.tools.values()):
            if tool.state != "out" or tool.out_epoch is None:
                continue
            out.add(tool.rental_id)
            if is_overdue(tool, now, limit_s):
                facts = {
                    "rental_id": tool.rental_id,
                    "worker": tool.worker,
                    "tool_id": tool.tool_id,
                    "compartment": tool.compartment,
                    "loan_hours": self.cfg.loan_hours,
                }
                self.ledger.raise_alarm(f"overdue:{tool.rental_id}", "alarm.tool_overdue", facts)
        for key in [k for k in self.ledger.alarms if k.startswith("overdue:")]:
            if key.split(":", 1)[1] not in out:
                self.ledger.clear_alarm(key)

    # -- inspection -------------------------------------------------------------------------------------

    def _staff_inspects(self, inspector: str, selected: int | None) -> bool:
        """A staff card signs off one returned tool as ok (the selected one, else the longest waiting)
        and opens its compartment for a look.  False when nothing waits: staff may borrow too."""
        waiting = [
            t
            for t in self.ledger.tools.values()
            if t.state == "pending_inspection" and self._free(t) and selected in (None, t.compartment)
        ]
        if not waiting:
            return False
        tool = min(waiting, key=lambda t: t.rental_id or "")  # rental ids are time-ordered ULIDs
        self.ledger.inspect(tool, "ok", inspector, "staff card at the locker")
        self._unlock(tool.compartment)
        self._feedback("ok", f"{tool.compartment}号柜 检查合格 已入库")
        return True

    def _cmd_inspect(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        tool = self._tool_from_args(args)
        result, note = args.get("result"), _note_arg(args)
        if result not in RESULTS:
            raise CommandError("bad_arguments", "result must be one of ok, damaged, lost")
        if result == "lost" and tool.state == LENDABLE:
            return self._cmd_write_off(args, body)  # found missing from stock: that is a write-off
        if tool.state not in ("pending_inspection", "repair"):
            raise CommandError(
                "bad_state",
                f"tool {tool.tool_id} is {tool.state}, not waiting for inspection"
                " (a tool missing from stock: locker.write_off)",
            )
        return self.ledger.inspect(tool, result, acting_staff(body), note)

    def _cmd_write_off(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """报损 a tool that is not out: found missing from stock, lost after its return, beyond repair."""
        tool = self._tool_from_args(args)
        note = _note_arg(args)
        if tool.state == "out":
            raise CommandError(
                "tool_out",
                f"tool {tool.tool_id} is out on rental {tool.rental_id} with {tool.worker}:"
                " it is written off when it comes back (locker.inspect result=lost)",
            )
        if tool.state == "written_off":
            raise CommandError("already_written_off", f"tool {tool.tool_id} is written off already")
        self._refuse_if_unlocked(tool)
        done = self.ledger.write_off(tool, acting_staff(body), note)
        keep = ("tool_id", "compartment", "from", "by", "note", "rental_id")
        return {**{key: done[key] for key in keep}, "state": "written_off"}

    def _cmd_repaired(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """A tool back from repair is in stock again (an ok inspection of a tool in repair)."""
        tool = self._tool_from_args(args)
        note = _note_arg(args)
        if tool.state != "repair":
            raise CommandError("not_in_repair", f"tool {tool.tool_id} is {tool.state}, not in repair")
        done = self.ledger.inspect(tool, "ok", acting_staff(body), note)
        return {
            "tool_id": tool.tool_id,
            "compartment": tool.compartment,
            "state": "in_stock",
            "by": done["inspector"],
            "note": note,
            "rental_id": tool.rental_id,
        }

    def _refuse_if_unlocked(self, tool: Tool) -> None:
        """A compartment unlocked for a card right now: its tool is about to change hands."""
        session = self.sessions.get(tool.compartment)
        if session is not None:
            raise CommandError(
                "busy", f"compartment {tool.compartment} is unlocked for a {session.kind} right now"
            )

    def _cmd_status(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        """locker.status: every tool with its state, door and counts (docs/locker.md)."""
        state = LockerState(
            tools=list(self.ledger.tools.values()),
            last_acts=self.ledger.last_acts(),
            compartments=set(self.compartments),
            doors=dict(self.door_known),
            sessions=dict(self.sessions),
            alarms=list(self.ledger.alarms),
        )
        return locker_board(state, self.core.clock.now(), self.cfg.loan_hours)

    def _tool_from_args(self, args: dict[str, Any]) -> Tool:
        tool_id, number = args.get("tool_id"), args.get("compartment")
        if isinstance(tool_id, str) and tool_id in self.ledger.tools:
            return self.ledger.tools[tool_id]
        if isinstance(number, int) and not isinstance(number, bool):
            tool = self.ledger.in_compartment(number)
            if tool is not None:
                return tool
        raise CommandError("bad_arguments", "give tool_id or compartment of a configured tool")

    def _cmd_open(self, args: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        number, reason = args.get("compartment"), args.get("reason")
        if isinstance(number, bool) or number not in self.compartments:
            known = ", ".join(str(n) for n in sorted(self.compartments))
            raise CommandError("bad_arguments", f"compartment must be one of {known}")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
            raise CommandError("bad_arguments", "reason must be a short text saying why")
        with self.core.storage.transaction():
            facts = {"compartment": number, "reason": mask_phone(reason), "issuer": body.get("issuer")}
            self.core.emit("audit.locker_opened", facts)
        self._unlock(number)
        return {"compartment": number, "unlocked": True}

    # -- status, feedback ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        tools = self.ledger.tools.values()
        by_state: dict[str, list[str]] = {}
        for tool in tools:
            by_state.setdefault(tool.state, []).append(tool.tool_id)
        return {
            "tools_out": len(by_state.get("out", [])),
            "out": sorted(by_state.get("out", [])),
            "pending_inspection": sorted(by_state.get("pending_inspection", [])),
            "in_repair": sorted(by_state.get("repair", [])),
            "written_off": sorted(by_state.get("written_off", [])),
            "available": sorted(by_state.get(LENDABLE, [])),
            "doors_open": sorted(n for n, is_open in self.door_known.items() if is_open),
            "alarms": sorted(self.ledger.alarms),
        }

    def _compartment_facts(self, number: int) -> dict[str, Any]:
        tool = self.ledger.in_compartment(number)
        return {"compartment": number, "tool_id": tool.tool_id if tool else None}

    def _deny(self, reason: str, worker: str | None) -> None:
        data: dict[str, Any] = {"reason": reason}
        if worker is not None:
            data["worker"] = worker
        self.core.emit("rental.denied", data)
        self._feedback("deny", DENIAL_LINES[reason])

    def _feedback(self, pattern: str, text: str, cause: str = "") -> None:
        self.core.post(Buzz(pattern))
        self._line(text, cause)

    def _line(self, text: str, cause: str = "", seconds: float = LINE_S) -> None:
        """``cause`` (door:N, select:N) names the moment whose end withdraws the line."""
        self.core.post(ScreenLine(text, seconds, SCREEN, cause))

    @staticmethod
    def _cancel(timers: dict[int, Timer], number: int) -> None:
        timer = timers.pop(number, None)
        if timer is not None:
            timer.cancel()


def _note_arg(args: dict[str, Any]) -> str:
    """A staff note: optional text of at most NOTE_MAX characters.  It goes into events, so a phone
    number in it is masked like in a log line."""
    note = args.get("note", "")
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise CommandError("bad_arguments", f"note must be text of at most {NOTE_MAX} characters")
    return mask_phone(note.strip())
