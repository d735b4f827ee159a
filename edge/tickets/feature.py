"""The tickets feature: service buttons in, numbers out, tickets printed, calls to windows.

Everything here runs on the core thread; the buttons and the printer port
only post messages (``keys.KeyPressed``, ``PrinterState``, ...).  A press
always yields a number: the ticket and its ``ticket.issued`` event are
recorded first, then the bytes go to the printer.  When the printer cannot
print (no paper, cover open, offline) the number goes to the LED screen
instead (A023 号 打印机缺纸 请到窗口) and staff serve the worker by number.
What became of each ticket on paper is its ``ticket.printed`` event.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from drivers.printer import PRINTABLE, PrinterPort, PrintResult, Transport, open_transport
from edge.core import CommandError, Core
from edge.messages import Announce, Buzz, ScreenCall, ScreenCallEnded, ScreenLine, ScreenLineEnded
from edge.phrases import RATE_PROMPT, call_words, pause_words, resume_words
from edge.records import record
from edge.settings import Settings
from edge.tickets.board import QueuePlan, caller_board
from edge.tickets.keys import KeyPressed, KeyReleased, Keys, KeyStuck
from edge.tickets.layout import TicketText, test_page_bytes, ticket_bytes
from edge.tickets.queue import Issued, QueueError, TicketQueue, business_day
from edge.tickets.report import daily_report, mark_reported, reported, unreported_days
from edge.wiring import key_pins

log = logging.getLogger(__name__)

PRIORITY_ARMED_S = (
    10.0  # after the priority key, the next service button within this issues a priority ticket
)
DAY_CHECK_S = 30.0
STUCK_CHECK_S = 1.0  # how often the core looks for a key held past queue.stuck_after_s
PRINTER_TROUBLE = {
    "paper_out": "打印机缺纸",
    "cover_open": "打印机盖未关",
    "offline": "打印机故障",
}
LINE_SECONDS = 10.0
RATE_PROMPT_TEXT = "请对本次服务进行评价"
LEVEL_NAMES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
MISSED_REPORT_DAYS = 3  # a controller that was off at closing time sends the last few days' reports late


@record
class PrinterState:
    word: str


@record
class PrintDone:
    result: PrintResult


TEST_PAGE = "test"  # the job key of printer.test's page: no ticket behind it


class TicketsFeature:
    name = "tickets"

    def __init__(self, config: Settings, opener: Callable[[], Transport] | None = None) -> None:
        self.config = config
        self.q = config.queue
        self.categories = {c.code: c.name for c in self.q.categories}
        self.windows = {w.number for w in self.q.windows}
        printer = config.printer
        self._opener = opener or (lambda: open_transport(printer.transport, printer.port, printer.baudrate))
        self.core: Core  # set by start()
        self.queue: TicketQueue  # set by start()
        self.printer: PrinterPort | None = None
        self.printer_state: str | None = None  # None until the first poll has answered
        self.keys = Keys(key_pins(config), self.q.bounce_ms, self.q.stuck_after_s)
        self.stuck: set[str] = set()
        self._priority_armed_until = 0.0
        # window -> (the ticket it finished last, monotonic deadline of its rating)
        self.awaiting_rating: dict[int, tuple[str, float]] = {}
        self.ratings_ignored = 0
        self._last_check: str | None = None  # hall time (HH:MM) of the last closing-time check
        self.transfer_to = {w.number: w.transfer_to for w in self.q.windows}
        self._at_printer: dict[str, Issued] = {}  # job key -> the ticket, until its PrintResult
        self._jobs = 0

    # -- life cycle ------------------------------------------------------

    def start(self, core: Core) -> None:
        self.core = core
        self.queue = TicketQueue(
            core.storage,
            core.emit,
            reset_at=self.q.reset_at,
            priority_max_in_row=self.q.priority_max_in_row,
            recall_max=self.q.recall_max,
            default_service_s=self.q.service_s_default,
            windows=len(self.windows),
            clock_synced=lambda: core.clock.status() == "synced",
            serves={w.number: w.serves for w in self.q.windows},
            categories=tuple(self.categories),
        )
        self.queue.roll_day(core.clock.now())
        core.subscribe(KeyPressed, self._on_key)
        core.subscribe(KeyReleased, self._on_released)
        core.subscribe(PrinterState, self._on_printer_state)
        core.subscribe(PrintDone, self._on_print_done)
        core.register_command("queue.call", self.cmd_call, args=("window",))
        core.register_command("queue.recall", self.cmd_recall, args=("window", "ticket"))
        core.register_command("queue.skip", self.cmd_skip, args=("window",))
        core.register_command("queue.reset", self.cmd_reset, args=())
        core.register_command("queue.finish", self.cmd_finish, args=("window",))
        core.register_command("queue.pause", self.cmd_pause, args=("window",))
        core.register_command("queue.resume", self.cmd_resume, args=("window",))
        core.register_command("queue.transfer", self.cmd_transfer, args=("window", "category", "to_window"))
        core.register_command("queue.hold", self.cmd_hold, args=("window",))
        core.register_command("queue.bring_back", self.cmd_bring_back, args=("window", "ticket"))
        core.register_command("queue.report", self.cmd_report, args=("day",))
        core.register_command("queue.status", self.cmd_status, args=("window",))
        core.register_command("printer.test", self.cmd_printer_test, args=())
        core.register_status("queue", self.status)
        core.every(DAY_CHECK_S, self._on_day_check)
        core.every(STUCK_CHECK_S, self._check_stuck)
        self._report_due_days()
        if self.config.printer.enabled:
            self.printer = PrinterPort(
                self._opener,
                poll_s=self.config.printer.status_poll_s,
                timeout_s=self.config.printer.status_timeout_s,
                on_status=lambda word: core.post(PrinterState(word)),
                on_result=lambda result: core.post(PrintDone(result)),
                status_queries=self.config.printer.status_queries,
            )
            self.printer.start()
        else:
            core.set_component("printer", "disabled")
        self.keys.open(core.post)

    def stop(self) -> None:
        self.keys.close()
        if self.printer is not None:
            self.printer.stop()

    # -- keys ------------------------------------------------------------

    def _on_key(self, press: KeyPressed) -> None:
        key = press.key
        if key == "priority":
            self._priority_armed_until = time.monotonic() + PRIORITY_ARMED_S
            self.core.dispatch(ScreenLine("绿色通道 请按业务键取号", PRIORITY_ARMED_S, "keys", "priority"))
        elif key in self.categories:
            priority = time.monotonic() < self._priority_armed_until
            self._priority_armed_until = 0.0
            self.core.dispatch(ScreenLineEnded("keys", "priority"))  # the key press it asked for came
            try:
                self.issue(key, priority)
                if self.core.components.get("tickets") == "storage_error":
                    self.core.set_component("tickets", "ok")
            except sqlite3.Error:
                # Nothing could be recorded (disk full, card failing): say so rather than stay silent.
                log.exception("ticket for %s could not be recorded", key)
                self.core.set_component("tickets", "storage_error")
                self.core.dispatch(ScreenLine("取号失败 请到窗口", LINE_SECONDS, "keys"))
        elif key.startswith("window"):
            window_text, action = key[len("window") :].split(".")
            self._staff_key(int(window_text), action)

    def _staff_key(self, window: int, action: str) -> None:
        if action.startswith("rate"):
            self.rate(window, int(action[len("rate") :]))
            return
        acts: dict[str, Callable[[int], object]] = {
            "call": self.call,
            "recall": self.recall,
            "skip": self.skip,
            "finish": self.finish,
            "pause": self._pause_key,
            "hold": self.hold,
            "bring_back": self.bring_back,
            "transfer": self._transfer_key,
        }
        try:
            acts[action](window)
        except QueueError as exc:
            # A key has no one to answer to: the log says why, and a paused window says so on screen.
            log.info("window %d %s: %s", window, action, exc.message)
            if exc.code == "window_paused":
                self._show_paused(window)

    def _pause_key(self, window: int) -> None:
        """暂停/恢复 is one key: it pauses a serving window and resumes a paused one."""
        self.set_paused(window, self.queue.paused_at(window) is None)

    def _transfer_key(self, window: int) -> None:
        target = self.transfer_to.get(window, "")
        if not target:
            raise QueueError("no_target", f"window {window}'s transfer key has no transfer_to in the config")
        self.transfer(window, to_category=target)

    def _check_stuck(self) -> None:
        for stuck in self.keys.held_too_long():
            self._on_stuck(stuck)

    def _on_stuck(self, stuck: KeyStuck) -> None:
        if stuck.key in self.stuck:
            return
        self.stuck.add(stuck.key)
        log.warning("key %s held for %.0f s: stuck?", stuck.key, stuck.held_s)
        self.core.emit("alarm.key_stuck", {"key": stuck.key, "held_s": round(stuck.held_s), "state": "stuck"})
        self.core.set_component("keys", "stuck")

    def _on_released(self, released: KeyReleased) -> None:
        if released.key not in self.stuck:
            return
        self.stuck.discard(released.key)
        self.core.emit("alarm.key_stuck", {"key": released.key, "state": "released"})
        if not self.stuck:
            self.core.set_component("keys", "ok")

    # -- issuing and printing -------------------------------------------

    def issue(self, category: str, priority: bool = False) -> str:
        now = self.core.clock.now()
        printer = self.printer if self.printer_state in (None, *PRINTABLE) else None
        issued = self.queue.issue(category, priority, now, {"printer": self.printer_state or "unknown"})
        if printer is not None:
            text = TicketText(
                hall_name=self.config.hall_name,
                service=self.categories[category],
                ticket=issued.ticket,
                priority=priority,
                waiting_ahead=issued.waiting_ahead,
                wait_estimate_s=issued.wait_estimate_s,
                wait_text=self.q.wait_text,
                void_text=self.q.void_text,
                issued_at=now,
                hotline=self.config.hotlines.service,
                complaint=self.config.hotlines.complaint,
                qr_url=self.config.printer.qr_url,
            )
            self._jobs += 1
            key = f"{issued.ticket}#{self._jobs}"  # one number can be pending in two rounds
            self._at_printer[key] = issued
            paper = self.config.printer
            printer.submit(key, ticket_bytes(text, paper.paper_mm, paper.cut))
        else:
            state = (self.printer_state or "offline") if self.printer is not None else "disabled"
            self.queue.record_print(issued, False, state)
            self._show_unprinted(issued.ticket, state)
        return issued.ticket

    def _show_unprinted(self, ticket: str, state: str) -> None:
        trouble = PRINTER_TROUBLE.get(state, "打印机故障") if self.printer is not None else "未接打印机"
        # Until that number is called or skipped at most: then the window has moved past it.
        self.core.dispatch(
            ScreenLine(f"{ticket} 号 {trouble} 请到窗口", LINE_SECONDS, "printer", f"ticket:{ticket}")
        )

    def _on_print_done(self, done: PrintDone) -> None:
        result = done.result
        issued = self._at_printer.pop(result.job.key, None)
        if issued is None:  # the test page
            return
        self.queue.record_print(issued, result.printed, result.status)
        if result.printed is False:
            log.warning("ticket %s not printed: printer %s", issued.ticket, result.status)
            self._show_unprinted(issued.ticket, result.status)
        elif result.printed is None:
            log.warning("ticket %s sent, but the printer did not answer after it", issued.ticket)

    def _on_printer_state(self, state: PrinterState) -> None:
        previous, self.printer_state = self.printer_state, state.word
        if previous is not None or state.word != "ok":  # the first "ok" after start is no news
            self.core.emit("alarm.printer", {"state": state.word, "previous": previous or "unknown"})
        self.core.set_component("printer", state.word)

    # -- calling ---------------------------------------------------------

    def call(self, window: int) -> dict[str, Any]:
        """呼叫: what the window called (``ticket`` None with ``reason`` nobody_waiting) and the
        ticket the call finished (``finished``)."""
        serving = self.queue.called_ticket(window)
        called = self.queue.call_next(window, self.core.clock.now())
        self._after_finish(window, serving, prompt=False)  # the next call finished it
        if called is None:
            self._call_left_screen(window)
            return {"ticket": None, "reason": "nobody_waiting", "finished": serving}
        self._announce(called.ticket, window)
        return {
            "ticket": called.ticket,
            "category": called.category,
            "priority": called.priority,
            "wait_s": round(called.wait_s, 1),
            "finished": serving,
        }

    def recall(self, window: int, ticket: str | None = None) -> dict[str, Any]:
        serving = self.queue.called_ticket(window)
        called = self.queue.recall(window, self.core.clock.now(), ticket)
        finished = serving if serving != called.ticket else None
        self._after_finish(window, finished, prompt=False)  # the window moved on to a skipped one
        self._announce(called.ticket, window)
        return {"ticket": called.ticket, "recalls": called.recalls, "finished": finished}

    def skip(self, window: int) -> str:
        ticket = self.queue.skip(window, self.core.clock.now())
        self._call_left_screen(window)
        self.core.dispatch(ScreenLineEnded("printer", f"ticket:{ticket}"))
        return ticket

    def finish(self, window: int) -> dict[str, Any]:
        """办结: the service is done; the rating keypad waits for the worker's press."""
        finished = self.queue.finish(window, self.core.clock.now())
        self._call_left_screen(window)
        self._after_finish(window, finished.ticket, prompt=True)
        return {"ticket": finished.ticket, "service_s": round(finished.service_s, 1)}

    def set_paused(self, window: int, paused: bool) -> bool:
        changed = self.queue.set_paused(window, paused, self.core.clock.now())
        if changed and paused:
            self._show_paused(window)
            self.core.dispatch(Announce(pause_words(window), key=f"window:{window}", repeat=1))
        elif changed:
            self._screen_line(f"{window}号窗口 恢复服务", LINE_SECONDS, window)
            self.core.dispatch(Announce(resume_words(window), key=f"window:{window}", repeat=1))
        return changed

    def _show_paused(self, window: int) -> None:
        """Whoever looks for a paused window (its key, a transfer to it) sees that it is paused."""
        self._screen_line(f"{window}号窗口 暂停服务", LINE_SECONDS, window)

    def transfer(self, window: int, to_category: str | None = None, to_window: int | None = None) -> str:
        moved = self.queue.transfer(window, self.core.clock.now(), to_category, to_window)
        self._call_left_screen(window)
        if to_window is not None:
            self._screen_line(f"{moved.ticket} 请到{to_window}号窗口等候", LINE_SECONDS, window)
            if self.queue.paused_at(to_window) is not None:
                self._show_paused(to_window)
        else:
            service = self.categories.get(to_category or "", to_category)
            self._screen_line(f"{moved.ticket} 转{service} 请等候呼叫", LINE_SECONDS, window)
        return moved.ticket

    def hold(self, window: int) -> str:
        ticket = self.queue.hold(window, self.core.clock.now())
        self._call_left_screen(window)
        return ticket

    def bring_back(self, window: int, ticket: str | None = None) -> dict[str, Any]:
        serving = self.queue.called_ticket(window)
        called = self.queue.bring_back(window, self.core.clock.now(), ticket)
        self._after_finish(window, serving, prompt=False)
        self._announce(called.ticket, window)
        return {"ticket": called.ticket, "finished": serving}

    # -- 好差评 ratings ---------------------------------------------------

    def _after_finish(self, window: int, ticket: str | None, *, prompt: bool) -> None:
        """The worker just served (``ticket``) may rate the service for ``queue.rating_s``; after a
        finish (办结) the screen and the voice ask for it."""
        if ticket is None:
            return
        self.awaiting_rating[window] = (ticket, time.monotonic() + self.q.rating_s)
        if prompt:
            self._screen_line(f"{ticket} {RATE_PROMPT_TEXT}", self.q.rating_s, window)
            self.core.dispatch(Announce(RATE_PROMPT, key=f"rate:{window}", repeat=1))

    def rate(self, window: int, level: int) -> bool:
        """A rating key: recorded for the ticket the window finished last, once, within rating_s;
        any other press (nothing finished, too late, rated already, a bounce) is ignored and counted."""
        ticket, until = self.awaiting_rating.pop(window, ("", 0.0))
        now = self.core.clock.now()
        if ticket and time.monotonic() < until and self.queue.rate(window, ticket, level, now):
            self._screen_line(f"感谢您的评价 {LEVEL_NAMES[level]}", 3.0, window)
            return True
        self.ratings_ignored += 1
        self.queue.rating_ignored(window, now)
        return False

    # -- daily figures ---------------------------------------------------

    def _on_day_check(self) -> None:
        self.queue.roll_day(self.core.clock.now())
        self._report_due_days()

    def _report_due_days(self) -> None:
        """report.daily once per day at closing time (and, late, for a day the controller was off)."""
        now = self.core.clock.now()
        today = business_day(now, self.q.reset_at)
        closed = now.strftime("%H:%M") >= self.q.closing_at and today == now.date().isoformat()
        earliest = (now.date() - timedelta(days=MISSED_REPORT_DAYS)).isoformat()
        storage = self.core.storage
        due = [day for day in unreported_days(storage, earliest, today) if day < today or closed]
        crossed = closed and self._last_check is not None and self._last_check < self.q.closing_at
        if crossed and today not in due and not reported(storage, today):
            due.append(today)  # a day without a ticket is reported too (seen closing while running)
        self._last_check = now.strftime("%H:%M")
        for day in due:
            with storage.transaction():
                mark_reported(storage, day, now.timestamp())
                self.core.emit("report.daily", self.report(day))

    def report(self, day: str) -> dict[str, Any]:
        figures = daily_report(self.core.storage, day, self.core.clock.zone)
        for code, figure in figures["categories"].items():
            figure["name"] = self.categories.get(code, code)
        return figures

    # -- the screen ------------------------------------------------------

    def _screen_line(self, text: str, seconds: float, window: int) -> None:
        """A line about ``window`` (its pause, its rating prompt, a ticket it sent on): each window
        speaks for itself, so a newer line of the same window replaces the older (issue 13)."""
        self.core.dispatch(ScreenLine(text, seconds, f"window{window}"))

    def _call_left_screen(self, window: int) -> None:
        """The window moved past its called ticket (skip, finish, hold, transfer, nobody left to
        call): the screen takes its call off in the same frame (issue 13)."""
        self.core.dispatch(ScreenCallEnded(window))

    def _announce(self, ticket: str, window: int) -> None:
        self.core.dispatch(ScreenLineEnded("printer", f"ticket:{ticket}"))  # the call says it now
        self.core.dispatch(ScreenCall(ticket, window, self.q.call_seconds))
        self.core.dispatch(Buzz("call"))
        # Keyed by ticket: a recall while the call is still waiting to be said replaces it.
        self.core.dispatch(Announce(call_words(ticket, window), key=f"ticket:{ticket}"))

    # -- commands --------------------------------------------------------

    def _window_arg(self, args: dict[str, Any]) -> int:
        window = args.get("window")
        if isinstance(window, bool) or not isinstance(window, int) or window not in self.windows:
            known = ", ".join(str(w) for w in sorted(self.windows))
            raise CommandError(
                "bad_arguments", f"window {window!r} is not one of this hall's windows ({known})"
            )
        return window

    def cmd_call(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        return self._window_act(args, self.call)

    def cmd_recall(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        ticket = _ticket_arg(args)
        return self._window_act(args, lambda window: self.recall(window, ticket))

    def cmd_skip(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        return self._window_act(args, self.skip)

    def _window_act(self, args: dict[str, Any], act: Callable[[int], dict[str, Any] | str]) -> dict[str, Any]:
        """Run a caller act for the ``window`` argument: its answer, or the queue's refusal
        (nothing changed) as the command's error."""
        window = self._window_arg(args)
        try:
            done = act(window)
        except QueueError as exc:
            raise CommandError(exc.code, exc.message) from None
        return {"window": window, **(done if isinstance(done, dict) else {"ticket": done})}

    def cmd_finish(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        return self._window_act(args, self.finish)

    def cmd_hold(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        return self._window_act(args, self.hold)

    def cmd_pause(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        window = self._window_arg(args)
        return {"window": window, "paused": True, "changed": self.set_paused(window, True)}

    def cmd_resume(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        window = self._window_arg(args)
        return {"window": window, "paused": False, "changed": self.set_paused(window, False)}

    def cmd_bring_back(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        ticket = _ticket_arg(args)
        return self._window_act(args, lambda window: self.bring_back(window, ticket))

    def cmd_status(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        """queue.status: what the caller screens show (docs/queue.md); ``window`` for one window."""
        only = self._window_arg(args) if args.get("window") is not None else None
        now = self.core.clock.now()
        day, round_ = self.queue.current_day()
        if business_day(now, self.q.reset_at) != day:  # a screen left open overnight shows the new day
            day, round_ = self.queue.today(now)  # (a write: only when the day has turned)
        hall = QueuePlan(self.categories, {w.number: w.serves for w in self.q.windows}, self.transfer_to)
        return caller_board(
            hall,
            self.queue.open_tickets(),
            day=day,
            round_=round_,
            now=now,
            paused=self.queue.paused_windows(),
            next_up={w: self.queue.next_ticket(w) for w in sorted(self.windows) if only in (None, w)},
            only=only,
        )

    def cmd_transfer(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        """queue.transfer {window, category: "D"} or {window, to_window: 3}."""
        window = self._window_arg(args)
        category, to_window = args.get("category"), args.get("to_window")
        if (category is None) == (to_window is None):
            raise CommandError("bad_arguments", "give category (a code such as D) or to_window, one of them")
        if category is not None and (
            not isinstance(category, str) or category.upper() not in self.categories
        ):
            known = ", ".join(self.categories)
            raise CommandError("bad_arguments", f"category {category!r} does not exist here ({known})")
        if to_window is not None and (isinstance(to_window, bool) or to_window not in self.windows):
            known = ", ".join(str(w) for w in sorted(self.windows))
            raise CommandError(
                "bad_arguments", f"to_window {to_window!r} is not one of this hall's windows ({known})"
            )
        try:
            ticket = self.transfer(window, category.upper() if category else None, to_window)
        except QueueError as exc:
            raise CommandError(exc.code, exc.message) from None
        return {"window": window, "ticket": ticket, "category": category, "to_window": to_window}

    def cmd_report(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        """The daily figures of ``day`` (YYYY-MM-DD; default the current queue day), without an event."""
        day = args.get("day") or self.queue.current_day()[0]
        try:
            date.fromisoformat(day)
        except (TypeError, ValueError):
            raise CommandError("bad_arguments", f"day {day!r} is not a date such as 2026-11-30") from None
        return self.report(day)

    def cmd_reset(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        day, round_ = self.queue.reset(self.core.clock.now())
        for window in self.windows:  # the old numbers mean nothing now
            self.core.dispatch(ScreenCallEnded(window))
        return {"day": day, "round": round_}

    def cmd_printer_test(self, _args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        if self.printer is None:
            raise CommandError("printer_disabled", "printer.enabled is false")
        if self.printer_state not in (None, *PRINTABLE):
            raise CommandError("printer_not_ready", f"the printer reports {self.printer_state}")
        page = test_page_bytes(
            self.config.hall_name,
            self.core.clock.now(),
            self.config.printer.qr_url,
            self.config.printer.paper_mm,
            self.config.printer.cut,
        )
        self.printer.submit(TEST_PAGE, page)
        return {"printer": self.printer_state or "unknown", "bytes": len(page)}

    def status(self) -> dict[str, Any]:
        figures = self.queue.stats()
        for code, name in self.categories.items():
            figures["categories"].setdefault(
                code,
                {"issued": 0, "waiting": 0, "called": 0, "skipped": 0, "priority": 0, "avg_wait_s": None},
            )["name"] = name
        figures["printer"] = self.printer_state or ("disabled" if self.printer is None else "unknown")
        figures["stuck_keys"] = sorted(self.stuck)
        figures["ratings_ignored"] = self.ratings_ignored
        return figures


def _ticket_arg(args: dict[str, Any]) -> str | None:
    ticket = args.get("ticket")
    if ticket is not None and not (isinstance(ticket, str) and 2 <= len(ticket) <= 8):
        raise CommandError("bad_arguments", f"ticket {ticket!r} is not a ticket number such as A023")
    return ticket.upper() if ticket else None
