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
from dataclasses import dataclass
from typing import Any

from drivers.printer import PRINTABLE, PrinterPort, PrintResult, Transport, open_transport
from edge.core import CommandError, Core
from edge.messages import Announce, Buzz, ScreenCall, ScreenCallEnded, ScreenLine, ScreenLineEnded
from edge.phrases import call_words
from edge.settings import Settings
from edge.tickets.keys import KeyPressed, KeyReleased, Keys, KeyStuck
from edge.tickets.layout import TicketText, test_page_bytes, ticket_bytes
from edge.tickets.queue import Issued, QueueError, TicketQueue
from edge.wiring import key_pins

log = logging.getLogger(__name__)

PRIORITY_ARMED_S = (
    10.0  # after the priority key, the next service button within this issues a priority ticket
)
DAY_CHECK_S = 30.0
PRINTER_TROUBLE = {
    "paper_out": "打印机缺纸",
    "cover_open": "打印机盖未关",
    "offline": "打印机故障",
}
LINE_SECONDS = 10.0


@dataclass(frozen=True)
class PrinterState:
    word: str


@dataclass(frozen=True)
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
        )
        self.queue.roll_day(core.clock.now())
        core.subscribe(KeyPressed, self._on_key)
        core.subscribe(KeyStuck, self._on_stuck)
        core.subscribe(KeyReleased, self._on_released)
        core.subscribe(PrinterState, self._on_printer_state)
        core.subscribe(PrintDone, self._on_print_done)
        core.register_command("queue.call", self.cmd_call, args=("window",))
        core.register_command("queue.recall", self.cmd_recall, args=("window", "ticket"))
        core.register_command("queue.skip", self.cmd_skip, args=("window",))
        core.register_command("queue.reset", self.cmd_reset, args=())
        core.register_command("printer.test", self.cmd_printer_test, args=())
        core.register_status("queue", self.status)
        core.every(DAY_CHECK_S, lambda: self.queue.roll_day(core.clock.now()))
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
        try:
            if action == "call":
                self.call(window)
            elif action == "recall":
                self.recall(window)
            elif action == "skip":
                self.skip(window)
        except QueueError as exc:
            log.info("window %d %s: %s", window, action, exc.message)

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

    def call(self, window: int) -> str | None:
        called = self.queue.call_next(window, self.core.clock.now())
        if called is None:
            self.core.dispatch(ScreenCallEnded(window))  # its ticket was served; nobody else waits
            return None
        self._announce(called.ticket, window)
        return called.ticket

    def recall(self, window: int, ticket: str | None = None) -> str:
        called = self.queue.recall(window, self.core.clock.now(), ticket)
        self._announce(called.ticket, window)
        return called.ticket

    def skip(self, window: int) -> str:
        ticket = self.queue.skip(window, self.core.clock.now())
        self.core.dispatch(ScreenCallEnded(window))  # the screen never shows a number the window passed
        self.core.dispatch(ScreenLineEnded("printer", f"ticket:{ticket}"))
        return ticket

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
        window = self._window_arg(args)
        return {"window": window, "ticket": self.call(window)}

    def cmd_recall(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        window = self._window_arg(args)
        ticket = args.get("ticket")
        if ticket is not None and not (isinstance(ticket, str) and 2 <= len(ticket) <= 8):
            raise CommandError("bad_arguments", f"ticket {ticket!r} is not a ticket number such as A023")
        try:
            return {"window": window, "ticket": self.recall(window, ticket.upper() if ticket else None)}
        except QueueError as exc:
            raise CommandError(exc.code, exc.message) from None

    def cmd_skip(self, args: dict[str, Any], _body: dict[str, Any]) -> dict[str, Any]:
        window = self._window_arg(args)
        try:
            return {"window": window, "ticket": self.skip(window)}
        except QueueError as exc:
            raise CommandError(exc.code, exc.message) from None

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
        return figures
