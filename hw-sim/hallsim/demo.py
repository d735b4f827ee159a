"""``hall-sim demo``: the whole hall on one machine with no hardware.

It starts, all under its data folder (``--data DIR``, ``$HALLSIM_DATA``, or
the user's default folder):

- a private mosquitto on a free loopback port (unless ``--broker``);
- the pin board (buttons, door switches, locks, buzzer), the ESC/POS printer
  and the RDM6300 card reader on ptys, and the screen that receives the
  daemon's frames;
- the fake central platform (unless ``--no-central``);
- the daemon itself, ``hall-edge run`` as a child process (``hallsim.supervise``),
  with the configuration ``hallsim.hallconfig`` generates.

It writes ``DIR/sim.json`` (what a script needs to drive the simulation),
serves the control socket that ``hall-sim press A`` and the other verbs
(``hallsim.verbs``) talk to, and runs until Ctrl-C, SIGTERM or ``hall-sim
stop``; then it stops the daemon first, then everything else it started.
A folder holds one demo at a time: a second one there is refused and told
how to reach the first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar
from urllib.parse import urlsplit

from hallsim import commander
from hallsim.broker import Mosquitto, free_port
from hallsim.central import Central
from hallsim.control import (
    SIM_JSON,
    ControlError,
    ControlServer,
    claim_data_dir,
    default_data_dir,
    find_data_dir,
    other_demo_note,
)
from hallsim.device import Part
from hallsim.hallconfig import (
    ADMIN_KID,
    CARD_KEY_ID,
    CONSOLE_ACCOUNTS,
    DEVICE,
    PLATFORM_KID,
    SITE,
    Paths,
    Ports,
    compartments,
    console_password_hash,
    daemon_config,
    make_keys,
    publish_samples,
    render_toml,
    sim_document,
    write_json,
)
from hallsim.lockboard import SimLockBoard
from hallsim.pins import PinBoard, daemon_env
from hallsim.printer import SimPrinter
from hallsim.rfid import SimReader
from hallsim.screen import SimScreen
from hallsim.speaker import SimSpeaker
from hallsim.supervise import START_LIMIT_BURST, START_LIMIT_S, DaemonProcess
from hallsim.verbs import HallVerbs

PartT = TypeVar("PartT", bound=Part)


def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(f"hall-sim: warning: {text}", file=sys.stderr, flush=True)


def _broker_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"--broker {url}: expected mqtt://host:port")
    return parts.hostname, parts.port or 1883


def _pad(text: str, width: int) -> str:
    """Left-justify for a terminal, where a Chinese character takes two columns."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - columns)


def _hall_sim_command(data: Path) -> str:
    """How to type hall-sim here: bare when on PATH, else the venv's script; with --data DIR
    when this demo is not in the default folder."""
    script = Path(sys.executable).with_name("hall-sim")
    found = shutil.which("hall-sim")
    if found and Path(found).resolve() == script.resolve():
        command = "hall-sim"
    else:
        relative = os.path.relpath(script, Path.cwd())
        command = relative if not relative.startswith("..") else str(script)
    return command if data == default_data_dir() else f"{command} --data {data}"


def _socket_dir(data: Path) -> Path:
    # A unix socket path may have at most 107 bytes: fall back to a short folder.
    if len(str(data / "control.sock").encode()) <= 100:
        return data
    return Path(tempfile.mkdtemp(prefix="hallsim-"))


@dataclass
class Devices:
    printer: SimPrinter | None = None
    reader: SimReader | None = None
    screen: SimScreen | None = None
    central: Central | None = None
    locks: SimLockBoard | None = None  # RS-485 lock board (--locks rs485)
    speaker: SimSpeaker | None = None  # the loudspeaker the daemon's voice plays into

    def ports(self) -> Ports:
        """The paths the daemon is configured with: stable links that survive a replug."""
        return Ports(
            printer=str(self.printer.link) if self.printer else "",
            reader=self.reader.port if self.reader else "",
            screen=self.screen.socket_path if self.screen else "",
            locks=self.locks.port if self.locks else "",
            speaker=self.speaker.socket_path if self.speaker else "",
        )


class Demo:
    def __init__(
        self,
        data: str | Path | None = None,
        broker: str | None = None,
        central: bool = True,
        echo_logs: bool = False,
        locks: str = "gpio",
        *,
        speaker_speed: float = 1.0,
        tied_to_parent: bool = False,
    ) -> None:
        self.data = find_data_dir(str(data) if data else None)
        self.paths = Paths(self.data, _socket_dir(self.data))
        self.broker_url = broker
        self.rs485 = locks == "rs485"
        self.speaker_speed = speaker_speed
        self.compartments = compartments(self.rs485)
        self.with_central = central
        self.devices = Devices()
        self.mosquitto: Mosquitto | None = None
        self.board: PinBoard | None = None
        self.control: ControlServer | None = None
        # tied_to_parent: the daemon and mosquitto get SIGTERM when this process dies, even by
        # SIGKILL; only for a demo whose main thread starts them (main(), not chaos.py's threads).
        self.tied_to_parent = tied_to_parent
        self.daemon = DaemonProcess(
            self.paths.config,
            self.paths.daemon_log,
            daemon_env(self.paths.sock("pins.sock")),
            echo_logs,
            tied_to_parent=tied_to_parent,
        )
        self.verbs = HallVerbs(self)
        self.stop_requested = threading.Event()
        self._lock_fd: int | None = None
        self._broker = ""
        self._started: list[Part] = []  # stopped in reverse order
        self.console_port = 0

    # -- start ------------------------------------------------------------------

    def start(self) -> None:
        self._lock_fd = claim_data_dir(self.data)
        (self.data / "state").mkdir(exist_ok=True)
        (self.data / "dev").mkdir(exist_ok=True)
        host, port = self._start_broker()
        self._broker = f"mqtt://{host}:{port}"
        self.board = self._started_part(PinBoard(self.paths.sock("pins.sock")))
        dev = self.data / "dev"
        if self.rs485:  # its doors start shut
            self.devices.locks = self._started_part(SimLockBoard(link=dev / "hall-locks"))
        else:
            for compartment in self.compartments:
                self.board.set_switch(compartment["door_pin"], closed=True)  # doors start shut
        self.devices.printer = self._started_part(
            SimPrinter(self.data / "printer", link=dev / "hall-printer")
        )
        self.devices.reader = self._started_part(SimReader("rdm6300", link=dev / "hall-rfid"))
        self.devices.screen = self._started_part(SimScreen(self.paths.sock("screen.sock")))
        self.devices.speaker = self._started_part(
            SimSpeaker(self.paths.sock("speaker.sock"), self.data / "speaker", self.speaker_speed)
        )
        public_key = make_keys(self.paths)
        self.console_port = free_port()
        ports = self.devices.ports()
        config = daemon_config(self.paths, host, port, public_key, ports, console_port=self.console_port)
        self.paths.config.write_text(render_toml(config), encoding="utf-8")
        self._write_sim("starting")
        if self.with_central:
            self.devices.central = self._started_part(
                Central(host, port, SITE, DEVICE, self.data / "central", card_key=self.paths.card_key,
                        key_id=CARD_KEY_ID, signing_key=self.paths.platform_key, signing_kid=PLATFORM_KID)
            )  # fmt: skip
            try:
                publish_samples(self.devices.central)
            except Exception as exc:  # noqa: BLE001 - an empty hall is still a demo
                _warn(f"the fake central could not publish the samples: {exc}")
        self.control = self._started_part(ControlServer(self.paths.sock("control.sock"), self.verbs.table()))
        self.daemon.start()
        self._write_sim("running")
        threading.Thread(target=self._set_console_accounts, name="console-accounts", daemon=True).start()

    def _set_console_accounts(self) -> None:
        """The sample accounts, by the signed console.account as bureau IT sets them (retried
        until the daemon is online)."""
        host, port = self.broker_address()
        for account in CONSOLE_ACCOUNTS:
            secret = console_password_hash(account["password"])
            args = {"action": "set", "id": account["user"], "name": account["name"], "role": account["role"],
                    "windows": account["windows"], "password_hash": secret}  # fmt: skip
            for _ in range(30):
                if self.stop_requested.is_set():
                    return
                try:
                    answer = commander.send(host, port, SITE, DEVICE, self.paths.admin_key, ADMIN_KID,
                                            "console.account", args, timeout_s=5.0)  # fmt: skip
                except (OSError, TimeoutError):
                    continue
                if not answer.get("ok"):
                    _warn(f"console account {account['user']}: {answer.get('error')}")
                break

    def _started_part(self, part: PartT) -> PartT:
        part.start()
        self._started.append(part)
        return part

    def broker_address(self) -> tuple[str, int]:
        """The broker the daemon talks to (for the verbs that send signed commands)."""
        if not self._broker:
            raise ControlError("the broker is not running")
        return _broker_address(self._broker)

    def _start_broker(self) -> tuple[str, int]:
        if self.broker_url:
            return _broker_address(self.broker_url)
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise RuntimeError("mosquitto is not installed: run `bash scripts/setup.sh`, or pass --broker")
        broker = Mosquitto(self.data / "broker", own_session=True, tied_to_parent=self.tied_to_parent)
        self.mosquitto = self._started_part(broker)
        return "127.0.0.1", self.mosquitto.port

    def _write_sim(self, state: str) -> None:
        document = sim_document(
            self.paths,
            broker=self._broker,
            state=state,
            daemon_pid=self.daemon.pid,
            ports=self.devices.ports(),
            central=self.devices.central is not None,
            console_port=self.console_port,
        )
        write_json(self.data / SIM_JSON, document)

    # -- run and stop -----------------------------------------------------------------

    def wait(self) -> int:
        """Until SIGTERM/SIGINT or ``stop``: 0.

        A daemon that exits on its own (the ``restart`` command, a crash, kill -9) is started
        again, as systemd's Restart=always would; a start that systemd's start limit
        would refuse gives up with 1 instead.
        """
        while not self.stop_requested.wait(0.5):
            code = self.daemon.exited()
            if code is None:
                continue
            _say(f"hall-sim demo: the daemon exited ({code}); starting it again")
            try:
                if not self.daemon.restart():
                    _warn(self.daemon.failure())
                    _warn(
                        f"more than {START_LIMIT_BURST} daemon starts within {START_LIMIT_S:g} s: the demo"
                        " stops, as systemd's start limit would stop the service"
                    )
                    return 1
            except RuntimeError as exc:
                _warn(str(exc))
                return 1
            self._write_sim("running")
        return 0

    def stop(self) -> None:
        """Daemon first (SIGTERM, as systemd would), then everything else this demo started."""
        said = self.daemon.stop()
        if said:
            _say(f"hall-sim demo: {said}")
        for part in reversed(self._started):
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest whatever one part does
                _warn(f"{type(part).__name__} did not stop cleanly: {exc}")
        self._started.clear()
        if self.paths.sockets != self.data:
            shutil.rmtree(self.paths.sockets, ignore_errors=True)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self._write_sim("stopped")
            os.close(self._lock_fd)  # the folder is free for the next demo
            self._lock_fd = None

    def banner(self) -> str:
        d = self.devices
        me = _hall_sim_command(self.data)
        parts = [
            f"  broker      {self._broker}",
            f"  daemon      hall-edge run, pid {self.daemon.pid or '-'}",
            f"  daemon log  {self.paths.daemon_log}",
            f"  central     {'fake central platform' if d.central else 'not running'}",
            f"  printer     {d.ports().printer}",
            f"  card reader RDM6300 on {d.ports().reader}",
            "  screen      frames mirrored to the simulator",
            f"  speaker     announcements kept in {self.data / 'speaker'}",
            f"  locks       {f'RS-485 board on {d.ports().locks}' if d.locks else 'GPIO, door switches'}",
            "  buttons, select buttons and buzzer on the simulated GPIO pins",
            f"  console     http://127.0.0.1:{self.console_port}/  (staff pages; accounts in sim.json)",
            *(f"              {a['user']} / {a['password']}  ({a['role']})" for a in CONSOLE_ACCOUNTS),
        ]
        tries = (
            (f"{me} press A", "take a ticket for 求职登记"),
            (f"{me} call 1", "window 1 calls the next ticket"),
            (f"{me} tap worker", "a worker taps a card at the tool locker"),
            (f"{me} door 1 open", "takes the hammer out, then: door 1 close"),
            (f"{me} job --title 木工", "a new job on the screen"),
            (f"{me} screen --png screen.png --enlarged", ""),
            (f"{me} status", "what the simulator sees"),
            (f"{me} --help", "every verb"),
        )
        return "\n".join(
            [
                f"hall-sim demo is running: {SITE}/{DEVICE}, data in {self.data}",
                *parts,
                "",
                "Try, in another terminal:",
                *(f"  {_pad(command, 40)}# {why}" if why else f"  {command}" for command, why in tries),
                "Ctrl-C stops everything.",
            ]
        )


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="hall-sim demo", description="run the whole hall in simulation")
    parser.add_argument(
        "--data",
        help=f"folder for everything the demo makes (default: $HALLSIM_DATA, else {default_data_dir()})",
    )
    parser.add_argument("--broker", help="use this broker (mqtt://host:port) instead of a private mosquitto")
    parser.add_argument("--no-central", action="store_true", help="leave out the fake central platform")
    parser.add_argument("--logs", action="store_true", help="also show the daemon's log lines here")
    parser.add_argument(
        "--locks",
        choices=("gpio", "rs485"),
        default="gpio",
        help="the locker's locks: GPIO relays and door switches (default), or an RS-485 lock board",
    )
    parser.add_argument(
        "--speaker-speed", type=float, default=1.0, help="the simulated speaker's speed, x real time"
    )
    args = parser.parse_args(argv)

    demo = Demo(
        args.data,
        args.broker,
        central=not args.no_central,
        echo_logs=args.logs,
        locks=args.locks,
        speaker_speed=args.speaker_speed,
        tied_to_parent=True,
    )

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        demo.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        demo.start()
    except ControlError as exc:  # another demo has this folder: leave it alone
        print(f"hall-sim demo: {exc}", file=sys.stderr, flush=True)
        return 1
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"hall-sim demo: {exc}", file=sys.stderr, flush=True)
        demo.stop()
        return 1
    _say(demo.banner())
    note = other_demo_note(demo.data)
    if note:
        _say(f"hall-sim demo: note: {note}")
    try:
        code = demo.wait()
    finally:
        _say("hall-sim demo: stopping")
        demo.stop()
    _say("hall-sim demo: stopped")
    return code
