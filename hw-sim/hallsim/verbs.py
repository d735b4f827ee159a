"""What ``hall-sim VERB`` does to a running demo: one table of verbs and their handlers.

``VERBS`` is static (name, usage, help), so ``hall-sim VERB --help`` answers
without a demo.  ``HallVerbs`` carries them out on a running ``Demo``: each
handler takes the words after the verb and returns text for the person at the
keyboard (``status`` returns a report as JSON), or raises ``ControlError``
with what was expected and what to try.
"""

from __future__ import annotations

import difflib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hallsim.commander import send
from hallsim.control import ControlError, Verb
from hallsim.device import Device
from hallsim.hallconfig import (
    ADMIN_KID,
    BUZZER_PIN,
    CARDS,
    CATEGORIES,
    DEVICE,
    PRIORITY_PIN,
    SITE,
    UNLOCK_TIMEOUT_S,
    WINDOWS,
)
from hallsim.pins import PinBoard

if TYPE_CHECKING:
    from hallsim.demo import Demo

PRINTER_WORDS = ("ok", "paper-low", "paper-out", "cover-open", "offline")
CABLES = ("printer", "reader", "screen", "locks", "speaker")
WINDOW_ACTIONS = ("call", "recall", "skip", "finish", "pause", "hold", "bring_back")
WINDOW_EVENTS: dict[str, tuple[str, ...]] = {
    "call": ("ticket.called",),
    "recall": ("ticket.recalled",),
    "skip": ("ticket.skipped",),
    "finish": ("ticket.finished",),
    "pause": ("window.paused", "window.resumed"),
    "hold": ("ticket.held",),
    "bring_back": ("ticket.brought_back",),
}
NOTHING_SAID = {
    "call": "window {number}: call pressed, no ticket called: nobody is waiting (`hall-sim press A`)",
    "bring_back": "window {number}: bring-back pressed, nothing brought back: the window holds no ticket",
    "pause": "window {number}: 暂停/恢复 pressed, no change seen",
}
LEVELS = {"5": "非常满意", "4": "满意", "3": "基本满意", "2": "不满意", "1": "非常不满意"}
EVENT_WAIT_S = 3.0  # a key's event reaches the fake central in well under a second


@dataclass(frozen=True)
class VerbSpec:
    name: str
    usage: str
    help: str


VERBS = [
    VerbSpec("press", "press [priority] A", "press the ticket key of category A (after the priority key)"),
    VerbSpec("call", "call WINDOW", "a staff key at window WINDOW: call the next ticket"),
    VerbSpec("recall", "recall WINDOW", "call the window's ticket again"),
    VerbSpec("skip", "skip WINDOW", "the called worker did not come (过号)"),
    VerbSpec("finish", "finish WINDOW", "the window's service is done (办结): the rating keypad waits"),
    VerbSpec("pause", "pause WINDOW", "the window stops taking calls (暂停服务)"),
    VerbSpec("resume", "resume WINDOW", "the window takes calls again (恢复服务)"),
    VerbSpec(
        "transfer", "transfer WINDOW CATEGORY|WINDOW", "send the window's ticket on (转移, a signed command)"
    ),
    VerbSpec(
        "bring-back", "bring-back WINDOW", "call the window's held ticket again, ahead of the queue (回呼)"
    ),
    VerbSpec("rate", "rate WINDOW LEVEL", "the worker presses rating key LEVEL: 5 非常满意 .. 1 非常不满意"),
    VerbSpec(
        "hold",
        "hold WINDOW | hold KEY",
        "hold WINDOW: set the window's ticket aside (挂起); hold KEY (A, priority, call 1, ...): hold a key"
        " down to try the stuck-key alarm",
    ),
    VerbSpec("release", "release [KEY]", "let go of a held key (all of them without KEY)"),
    VerbSpec("tap", "tap CARD", "hold a card at the locker's reader (a sample name from sim.json or a UID)"),
    VerbSpec("select", "select N", "press compartment N's select button (选择键), then tap within 15 s"),
    VerbSpec("door", "door N open|close", "open or close compartment N's door"),
    VerbSpec("force", "force N", "force compartment N's door open (without unlocking)"),
    VerbSpec("printer", "printer " + "|".join(PRINTER_WORDS), "the printer's paper and cover state"),
    VerbSpec("screen", "screen --png FILE [--enlarged]", "save what the LED screen shows"),
    VerbSpec(
        "job", "job [--title T] [--headcount N] [--FIELD VALUE ...]", "the fake central publishes a job"
    ),
    VerbSpec("unplug", "unplug " + "|".join(CABLES), "pull the device's cable"),
    VerbSpec("plug", "plug " + "|".join(CABLES), "plug it back in"),
    VerbSpec("status", "status", "what the simulator sees (JSON): outputs, devices, last ticket, central"),
    VerbSpec("stop", "stop", "stop the demo"),
]
SPECS = {spec.name: spec for spec in VERBS}


def job_fields(args: list[str]) -> dict[str, Any]:
    """``--FIELD VALUE`` pairs of ``hall-sim job``; a value that is JSON (``2``, ``false``,
    ``{"amount": 200, "unit": "day"}``) is taken as such, anything else as text."""
    fields: dict[str, Any] = {}
    words = list(args)
    while words:
        key = words.pop(0)
        if not key.startswith("--") or not words:
            raise ControlError(f"expected --FIELD VALUE pairs, got {key!r}")
        value = words.pop(0)
        try:
            fields[key[2:].replace("-", "_")] = json.loads(value)
        except ValueError:
            fields[key[2:].replace("-", "_")] = value
    return fields


def _suggest(word: str, names: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), names, n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def card_uid(word: str) -> str:
    """A sample card's UID, or the UID typed (10 hex digits, as an RDM6300 reads it)."""
    card = CARDS.get(word.lower())
    if card is not None:
        return str(card["uid"])
    try:
        if len(bytes.fromhex(word)) == 5:
            return word.upper()
    except ValueError:
        pass
    raise ControlError(
        f"no sample card {word!r};{_suggest(word, list(CARDS))} the sample cards are {', '.join(CARDS)},"
        " or give a card UID of 10 hex digits (e.g. 67003B51C6)"
    )


def _keys() -> dict[str, int]:
    """Every key of the queue by the words that name it: A, priority, call 1, ..."""
    keys = {code: pin for code, _name, pin in CATEGORIES}
    keys["priority"] = PRIORITY_PIN
    for window in WINDOWS:
        for action in WINDOW_ACTIONS:
            keys[f"{action} {window['number']}"] = window[f"{action}_pin"]
        for level in LEVELS:
            keys[f"rate {window['number']} {level}"] = window[f"rate{level}_pin"]
    return keys


def _key_name(words: list[str]) -> str:
    keys = _keys()
    name = " ".join(words)
    name = name.upper() if name.upper() in keys else name.lower()
    if name not in keys:
        raise ControlError(f"which key? one of {', '.join(keys)}.{_suggest(name, list(keys))}".rstrip("."))
    return name


class HallVerbs:
    """The verbs, carried out on ``demo``'s pin board and devices."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.held: dict[str, int] = {}  # key name -> pin, held down by `hold`
        self._shut_at: dict[int, float] = {}  # compartment -> monotonic time its door was last shut

    def table(self) -> dict[str, Verb]:
        handlers: dict[str, Callable[[list[str]], Any]] = {
            "press": self.press,
            "call": lambda a: self.window(a, "call"),
            "recall": lambda a: self.window(a, "recall"),
            "skip": lambda a: self.window(a, "skip"),
            "finish": lambda a: self.window(a, "finish"),
            "pause": lambda a: self.pause(a, paused=True),
            "resume": lambda a: self.pause(a, paused=False),
            "transfer": self.transfer,
            "bring-back": lambda a: self.window(a, "bring_back"),
            "rate": self.rate,
            "hold": self.hold,
            "release": self.release,
            "tap": self.tap,
            "select": self.select,
            "door": self.door,
            "force": self.force,
            "printer": self.printer,
            "screen": self.screen,
            "job": self.job,
            "unplug": lambda a: self.cable(a, plugged=False),
            "plug": lambda a: self.cable(a, plugged=True),
            "status": self.status,
            "stop": self.stop,
        }
        return {spec.name: Verb(handlers[spec.name], spec.usage, spec.help) for spec in VERBS}

    @property
    def board(self) -> PinBoard:
        if self.demo.board is None:
            raise ControlError("the pin board is not running")
        return self.demo.board

    # -- the queue's keys ---------------------------------------------------------------

    def press(self, args: list[str]) -> str:
        priority = bool(args) and args[0] == "priority"
        codes = args[1:] if priority else args
        pins = {code: pin for code, _name, pin in CATEGORIES}
        if priority and not codes:  # the worker walks away: the prompt shows, nothing is issued
            self.board.click(PRIORITY_PIN)
            return f"pressed priority (GPIO {PRIORITY_PIN}): a service button within 10 s: a priority ticket"
        if len(codes) != 1 or codes[0].upper() not in pins:
            raise ControlError(f"which category? one of {', '.join(pins)}")
        code = codes[0].upper()
        if priority:
            self.board.click(PRIORITY_PIN)
        self.board.click(pins[code])
        return f"pressed {'priority, then ' if priority else ''}{code} (GPIO {pins[code]})"

    def window(self, args: list[str], action: str) -> str:
        number = self._window_number(args, 1, f"{action} WINDOW")
        pin = int(self._window(number)[f"{action}_pin"])
        if self.demo.devices.central is None:
            self.board.click(pin)
            return (
                f"window {number}: {action} (GPIO {pin}); which ticket is not known without the fake central"
            )
        event = self._press_for_event(pin, number, WINDOW_EVENTS[action])
        if event is None and action == "call" and self._paused(number):
            return f"window {number}: call pressed, not called: the window is paused (`resume {number}`)"
        if event is None:
            said = NOTHING_SAID.get(action, "window {number}: {action} pressed, nothing to {action}: {why}")
            return said.format(number=number, action=action, why="the window has no called ticket")
        return self._window_said(number, event)

    def pause(self, args: list[str], paused: bool) -> str:
        """暂停/恢复 is one key: press it only when the window is not already so."""
        number = self._window_number(args, 1, "pause WINDOW" if paused else "resume WINDOW")
        if self._paused(number) == paused:
            return f"window {number} is already {'paused' if paused else 'serving'}"
        return self.window(args, "pause")

    def rate(self, args: list[str]) -> str:
        number = self._window_number(args, 2, "rate WINDOW LEVEL")
        if args[1] not in LEVELS:
            raise ControlError(f"which level? 5 非常满意 .. 1 非常不满意, not {args[1]!r}")
        pin = int(self._window(number)[f"rate{args[1]}_pin"])
        event = self._press_for_event(pin, number, ("ticket.rated",))
        if event is None:
            return (
                f"window {number}: rating key {args[1]} ({LEVELS[args[1]]}, GPIO {pin}) pressed; no rating"
                " recorded: no finished ticket waits for one (ignored and counted in status)"
            )
        return self._window_said(number, event)

    def transfer(self, args: list[str]) -> str:
        """The window's current ticket to another category (a letter) or window (a number)."""
        number = self._window_number(args, 2, "transfer WINDOW CATEGORY|WINDOW")
        target = args[1]
        arguments: dict[str, Any] = {"window": number}
        if target.isdigit():
            arguments["to_window"] = int(target)
        else:
            arguments["category"] = target.upper()
        answer = self.command("queue.transfer", arguments)
        if not answer.get("ok"):
            error = answer.get("error") or {}
            return f"window {number}: transfer refused ({error.get('code')}): {error.get('message')}"
        result = answer.get("result") or {}
        return f"window {number} transferred {result.get('ticket')} to {target.upper()} (keeps its place)"

    def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        host, port = self.demo.broker_address()
        try:
            return send(host, port, SITE, DEVICE, self.demo.paths.admin_key, ADMIN_KID, name, args)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ControlError(f"{name}: {exc}") from None

    @staticmethod
    def _window(number: int) -> dict[str, Any]:
        return next(w for w in WINDOWS if w["number"] == number)

    @staticmethod
    def _window_number(args: list[str], count: int, usage: str) -> int:
        windows = [str(w["number"]) for w in WINDOWS]
        if args and args[0] not in windows:
            raise ControlError(f"which window? one of {', '.join(windows)}")
        if len(args) != count:
            raise ControlError(f"usage: hall-sim {usage}")
        return int(args[0])

    def _paused(self, number: int) -> bool | None:
        """The window's pause state by the events the fake central received (None: not known)."""
        central = self.demo.devices.central
        if central is None:
            return None
        states = [e["type"] == "window.paused" for e in central.events()
                  if e.get("type") in ("window.paused", "window.resumed")
                  and (e.get("data") or {}).get("window") == number]  # fmt: skip
        return states[-1] if states else False

    def _press_for_event(self, pin: int, number: int, event_types: tuple[str, ...]) -> dict[str, Any] | None:
        """Click ``pin`` and wait for the event it causes at window ``number`` (None: none came)."""
        central = self.demo.devices.central
        if central is None:
            self.board.click(pin)
            return None
        seen = {e.get("event_id") for e in central.events()}
        self.board.click(pin)
        deadline = time.monotonic() + EVENT_WAIT_S
        while time.monotonic() < deadline:
            for event in central.events():
                data = event.get("data") or {}
                if (
                    event.get("event_id") not in seen
                    and event.get("type") in event_types
                    and data.get("window") == number
                ):
                    return event
            threading.Event().wait(0.05)
        return None

    @staticmethod
    def _window_said(number: int, event: dict[str, Any]) -> str:
        data = event.get("data") or {}
        ticket = data.get("ticket")
        said = {
            "ticket.called": f"called {ticket} (waited {data.get('wait_s', 0):.0f} s)",
            "ticket.recalled": f"recalled {ticket} (recall {data.get('recalls')})",
            "ticket.skipped": f"skipped {ticket} (过号)",
            "ticket.finished": f"finished {ticket} (办结, served {data.get('service_s', 0):.0f} s)",
            "ticket.held": f"holds {ticket} aside (挂起)",
            "ticket.brought_back": f"brought back {ticket} (回呼)",
            "ticket.rated": f"rating of {ticket}: {data.get('level')} ({LEVELS.get(str(data.get('level')))})",
            "window.paused": "paused (暂停服务)",
            "window.resumed": "resumed (恢复服务)",
        }
        return f"window {number} {said.get(str(event.get('type')), event.get('type'))}"

    def hold(self, args: list[str]) -> str:
        if len(args) == 1 and args[0].isdigit():  # hold WINDOW: 挂起 the window's ticket
            return self.window(args, "hold")
        name = _key_name(args)
        pin = _keys()[name]
        self.board.press(pin)
        self.held[name] = pin
        return (
            f"holding {name} (GPIO {pin}) down: after queue.stuck_after_s (60 s) the daemon raises"
            f" alarm.key_stuck; `hall-sim release {name}` lets go"
        )

    def release(self, args: list[str]) -> str:
        names = [_key_name(args)] if args else list(self.held)
        if not names:
            return "no key is held"
        for name in names:
            self.board.release(_keys()[name])
            self.held.pop(name, None)
        return f"released {', '.join(names)}"

    # -- the locker -------------------------------------------------------------------

    def tap(self, args: list[str]) -> str:
        reader = self.demo.devices.reader
        if reader is None:
            raise ControlError("no card reader in this demo")
        if len(args) != 1:
            raise ControlError(f"which card? one of {', '.join(CARDS)}, or a UID of 10 hex digits")
        uid = card_uid(args[0])
        if not reader.plugged:
            raise ControlError("the card reader is unplugged: `hall-sim plug reader`")
        reader.tap(uid)
        return f"tapped {args[0].lower() if args[0].lower() in CARDS else 'a card'}"  # the UID is not echoed

    def _compartment(self, args: list[str], count: int, usage: str) -> dict[str, Any]:
        if len(args) != count:
            raise ControlError(usage)
        numbers = {str(c["number"]): c for c in self.demo.compartments}
        if args[0] not in numbers:
            raise ControlError(f"no compartment {args[0]}; they are {', '.join(numbers)}")
        return numbers[args[0]]

    def _unlocked(self, compartment: dict[str, Any]) -> bool:
        """A lock the daemon released (a GPIO pulse of lock_pulse_s, or a board's unlock command)
        stays released until its door has opened and shut again, or until
        locker.unlock_timeout_s has passed (it locks again)."""
        released = self._released_ago(compartment)
        if released is None:
            return False
        shut = time.monotonic() - self._shut_at.get(compartment["number"], float("-inf"))
        return released < min(UNLOCK_TIMEOUT_S, shut)

    def _released_ago(self, compartment: dict[str, Any]) -> float | None:
        """Seconds since the daemon last released this compartment's lock (None: never)."""
        locks = self.demo.devices.locks
        if locks is not None:
            times = [t for board, lock, t in locks.unlocks if (board, lock) == (0, compartment["lock"])]
            return time.monotonic() - times[-1] if times else None
        pulses = [change.received for change in self.board.changes(compartment["lock_pin"]) if change.state]
        return time.time() - pulses[-1] if pulses else None

    def _set_door(self, compartment: dict[str, Any], is_open: bool) -> None:
        locks = self.demo.devices.locks
        if locks is not None:
            locks.set_door(0, compartment["lock"], is_open)
        else:
            self.board.set_switch(compartment["door_pin"], closed=not is_open)
        if not is_open:
            self._shut_at[compartment["number"]] = time.monotonic()

    def _door_open(self, compartment: dict[str, Any]) -> bool:
        locks = self.demo.devices.locks
        if locks is not None:
            return locks.doors.get((0, compartment["lock"]), False)
        return bool(self.board.levels.get(compartment["door_pin"]))

    def select(self, args: list[str]) -> str:
        compartment = self._compartment(args, 1, "select N")
        self.board.click(compartment["select_pin"])
        return (
            f"pressed compartment {compartment['number']}'s select button (GPIO {compartment['select_pin']}):"
            " tap a card within 15 s (locker.select_s)"
        )

    def door(self, args: list[str]) -> str:
        if len(args) != 2 or args[1] not in ("open", "close"):
            raise ControlError("door N open|close")
        compartment = self._compartment(args[:1], 1, "door N open|close")
        number, tool = compartment["number"], compartment["tool_id"]
        if args[1] == "close":
            self._set_door(compartment, is_open=False)
            return f"compartment {number}: door closed"
        unlocked = self._unlocked(compartment)
        self._set_door(compartment, is_open=True)
        if unlocked:
            return f"compartment {number}: door opened ({tool} inside); then `hall-sim door {number} close`"
        return (
            f"compartment {number}: door opened while its lock was shut (nobody unlocked it, or it locked"
            " again after locker.unlock_timeout_s): the locker raises alarm.forced_open"
        )

    def force(self, args: list[str]) -> str:
        compartment = self._compartment(args, 1, "force N")
        number = compartment["number"]
        unlocked = self._unlocked(compartment)
        self._set_door(compartment, is_open=True)
        if unlocked:
            return f"compartment {number} was unlocked: its door opened normally, nothing was forced"
        return f"compartment {number} forced open without unlocking: the locker raises alarm.forced_open"

    def locker_view(self) -> dict[str, dict[str, str]]:
        """Per compartment, as a person at the locker would see it."""
        return {
            str(c["number"]): {
                "tool": c["tool_id"],
                "lock": "released" if self._unlocked(c) else "locked",
                "door": "open" if self._door_open(c) else "closed",
            }
            for c in self.demo.compartments
        }

    # -- devices --------------------------------------------------------------------------

    def printer(self, args: list[str]) -> str:
        printer = self.demo.devices.printer
        if printer is None:
            raise ControlError("no printer in this demo")
        if len(args) != 1 or args[0] not in PRINTER_WORDS:
            raise ControlError(f"printer state: one of {', '.join(PRINTER_WORDS)}")
        printer.set_status(args[0])
        return f"printer: {args[0]}"

    def cable(self, args: list[str], plugged: bool) -> str:
        devices = self.demo.devices
        by_name: dict[str, Device | None] = {
            "printer": devices.printer,
            "reader": devices.reader,
            "screen": devices.screen,
            "locks": devices.locks,
            "speaker": devices.speaker,
        }
        if len(args) != 1 or args[0] not in by_name:
            raise ControlError(f"which cable? one of {', '.join(CABLES)}")
        device = by_name[args[0]]
        if device is None:
            raise ControlError(f"no {args[0]} in this demo")
        if plugged:
            device.plug()
        else:
            device.unplug()
        return f"{args[0]} {'plugged in' if plugged else 'unplugged'}"

    def screen(self, args: list[str]) -> str:
        screen = self.demo.devices.screen
        if screen is None:
            raise ControlError("no screen in this demo")
        enlarged = "--enlarged" in args
        rest = [a for a in args if a != "--enlarged"]
        if len(rest) != 2 or rest[0] != "--png":
            raise ControlError("screen --png FILE [--enlarged]")
        control = self.demo.control
        assert control is not None and control.current is not None
        try:
            saved = screen.save_png(control.current.path(rest[1]), enlarged=enlarged)
        except RuntimeError as exc:
            raise ControlError(str(exc)) from None
        return f"saved {saved}"

    def job(self, args: list[str]) -> str:
        central = self.demo.devices.central
        if central is None:
            raise ControlError("no central platform in this demo (--no-central)")
        fields = job_fields(args)
        job_id = central.add_job(**fields)
        return f"published job {job_id}{' ' + str(fields['title']) if 'title' in fields else ''}"

    def status(self, _args: list[str]) -> dict[str, Any]:
        devices, daemon = self.demo.devices, self.demo.daemon
        printer, reader, screen, central = devices.printer, devices.reader, devices.screen, devices.central
        tickets = list(printer.tickets) if printer is not None else []
        return {
            "daemon": {"pid": daemon.pid, "running": daemon.running},
            "locker": self.locker_view(),
            "buzzer": "on" if self.board.output(BUZZER_PIN) else "off",
            "keys_held": sorted(self.held),
            "pins": self.board.snapshot(),
            "printer": None
            if printer is None
            else {
                "state": printer.state if printer.plugged else "unplugged",
                "tickets": len(tickets),
                "last_ticket": tickets[-1].text if tickets else None,
            },
            "reader": None if reader is None else ("plugged" if reader.plugged else "unplugged"),
            "lock_board": None
            if devices.locks is None
            else ("plugged" if devices.locks.plugged else "unplugged"),
            "lock_board_polls": None if devices.locks is None else devices.locks.status_replies,
            "screen": None
            if screen is None
            else {"frames": screen.frames_received, "plugged": screen.plugged},
            "speaker": None
            if devices.speaker is None
            else {**devices.speaker.report(), "plugged": devices.speaker.plugged},
            "central": central.report() if central is not None else None,
        }

    def stop(self, _args: list[str]) -> str:
        self.demo.stop_requested.set()
        return "stopping"
