"""Staff console: button press -> LED frame showing the call, and the daemon's RSS with it.

The simulated hall of ``bench/screen_burst.py`` (``hall-sim demo``'s parts, the daemon as a child
process, every frame it shows recorded).  Each round a worker takes a ticket (the A key on the
simulated pins), then window 1's console account sends the HTTP POST the 呼叫下一位 button
sends (``POST /window/1/call`` with the session cookie and CSRF token, as the browser does);
the time is from sending that POST to the first frame whose top rows are that ticket's call.

    .venv/bin/python bench/console_bench.py --rounds 60
    .venv/bin/python bench/console_bench.py --rounds 60 --cpu-fraction 0.125

    .venv/bin/python bench/console_bench.py --rss

Goals (issue 15): p99 <= 300 ms, <= 600 ms with the daemon on 1/8 of a core.  RSS: the daemon
with the console on and one live page (event stream) open; ``--rss`` compares the same daemon
configuration with the console off and on (one client logged in, its live page open): <= +15 MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from rig import percentile, rss_kib, wait_until
from screen_burst import Hall
from slowcpu import Throttle

SETTLE_S = 10.0
RSS_GOAL_MIB = 15  # issue 15: what the console with one open page may add to the daemon


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--cpu-fraction", type=float, default=None, metavar="F")
    parser.add_argument(
        "--rss", action="store_true", help="only: daemon RSS, console off vs on with one live page open"
    )
    args = parser.parse_args()
    if args.rss:
        return rss_off_on()
    with tempfile.TemporaryDirectory(prefix="console-bench-") as folder:
        hall = Hall(Path(folder))
        try:
            return run(hall, args.rounds, args.cpu_fraction)
        finally:
            hall.stop()


def run(hall: Hall, rounds: int, fraction: float | None) -> int:
    from console_support import Client  # tests/: the console tests' HTTP client (on the path via rig)
    from hallsim.hallconfig import CONSOLE_ACCOUNTS

    hall.ready()
    client = Client(f"http://127.0.0.1:{hall.demo.console_port}/")
    account = CONSOLE_ACCOUNTS[0]  # w1, window 1
    wait_until(
        lambda: client.login(account["user"], account["password"]).status == 303, 60, 0.5, "w1's login"
    )
    client.get("/window/1")
    stream = client.stream("/events?view=window/1")  # one tablet with its live page open
    stream.next_event()
    pid = hall.demo.daemon.pid
    assert pid is not None
    throttle = Throttle(pid, fraction) if fraction else contextlib.nullcontext()
    latencies: list[float] = []
    with throttle:
        for number in range(1, rounds + 1):
            ticket = f"A{number:03d}"
            expected = hall.call(ticket, 1)
            hall.key("A")
            time.sleep(0.6)  # the ticket is issued and the key released: the call is measured alone
            sent = time.monotonic()
            message = client.act("/window/1/call")
            if ticket not in message:
                print(f"round {number}: {message!r}", file=sys.stderr)
                continue

            def shown(since: float = sent, top: bytes = expected) -> list[float]:
                return [at for at, row in hall.recorder.since(since) if row == top]

            wait_until(shown, 10, 0.01, f"{ticket}'s call on the screen")
            latencies.append((shown()[0] - sent) * 1000)
            client.act("/window/1/finish")
    rss = rss_kib(pid) / 1024
    stream.close()
    where = f"daemon on {fraction:g} of a core" if fraction else "full speed"
    print(f"| console, {where} | rounds | p50 ms | p99 ms | max ms | daemon RSS MiB (console on, 1 page) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| POST /window/1/call -> LED frame | {len(latencies)} | {percentile(latencies, 0.5):.0f}"
        f" | {percentile(latencies, 0.99):.0f} | {max(latencies):.0f} | {rss:.1f} |"
    )
    return 0


def rss_off_on(settle_s: float = SETTLE_S) -> int:
    """The demo hall's daemon, the same configuration but for ``console.enabled``: with the console
    on, one browser-like client logged in as w1 with window 1's live page (its event stream) open;
    then the daemon restarted with the console off.  RSS ``settle_s`` after each is ready."""
    from console_support import Client  # tests/: the console tests' HTTP client (on the path via rig)
    from hallsim.hallconfig import CONSOLE_ACCOUNTS

    with tempfile.TemporaryDirectory(prefix="console-rss-") as folder:
        hall = Hall(Path(folder))
        try:
            hall.ready()
            time.sleep(settle_s)
            on_idle = daemon_rss_mib(hall)  # what the login (scrypt) and the open page add after this
            client = Client(f"http://127.0.0.1:{hall.demo.console_port}/")
            account = CONSOLE_ACCOUNTS[0]  # w1, window 1
            wait_until(
                lambda: client.login(account["user"], account["password"]).status == 303,
                60,
                0.5,
                "w1's login",
            )
            client.get("/window/1")
            stream = client.stream("/events?view=window/1")
            try:
                stream.next_event()
                time.sleep(settle_s)
                on = daemon_rss_mib(hall)
            finally:
                stream.close()
            hall.demo.daemon.stop()
            console_enabled(hall.demo.paths.config, False)
            hall.demo.daemon.start()  # waits for its ready line
            hall.ready()
            time.sleep(settle_s)
            off = daemon_rss_mib(hall)
        finally:
            hall.stop()
    print(f"| demo hall daemon, {settle_s:g} s after ready | RSS MiB |")
    print("|---|---|")
    print(f"| console off | {off:.1f} |")
    print(f"| console on, nobody logged in yet | {on_idle:.1f} |")
    print(f"| console on, w1 logged in, window 1 live page (event stream) open | {on:.1f} |")
    print(f"| difference (goal <= {RSS_GOAL_MIB} MiB) | {on - off:+.1f} |")
    return 0 if on - off <= RSS_GOAL_MIB else 1


def daemon_rss_mib(hall: Hall) -> float:
    pid = hall.demo.daemon.pid
    assert pid is not None
    return rss_kib(pid) / 1024


def console_enabled(config: Path, enabled: bool) -> None:
    """Set ``enabled`` in the config's [console] table, every other line as it was."""
    lines, table = config.read_text(encoding="utf-8").splitlines(), ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            table = line.strip()
        elif table == "[console]" and line.split("=")[0].strip() == "enabled":
            lines[i] = f"enabled = {'true' if enabled else 'false'}"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
