"""``hall-admin``: bureau IT's tool for signed remote commands and the fleet view.

    hall-admin keygen --kid it-2026a
    hall-admin send qinshui/hall-01 status
    hall-admin send qinshui/hall-01 display.message --arg text=今日下午停电 --arg seconds=3600
    hall-admin status [qinshui]
    hall-admin snapshot qinshui/hall-01 -o screen.png
    hall-admin events qinshui/hall-01 --follow
    hall-admin report qinshui/hall-01 --day 2026-11-30 [--csv]

Broker settings and the signing key come from ``~/.config/hall-admin.toml``
(or ``--config FILE``); flags override the file.  See docs/operator.md.

Exit codes (scripts may rely on them):
    0 ok
    1 the command ran on the device and failed (ok: false)
    2 usage error (bad flags or arguments)
    3 refused by the device (bad signature, expired, unknown command, ...)
    4 timed out: no result within --timeout
    5 broker unreachable (connection refused, TLS or login failed)
    6 local problem (key file, config file, output file)
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import queue
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from edge.admin.render import (
    event_line,
    find_png,
    fleet_rows,
    fleet_table,
    readable,
    report_csv,
    report_table,
)
from edge.admin.rollout import DEFAULT_WAIT_S, Rollout, rollout_table
from edge.admin.session import (
    LONG_RUNNING,
    Final,
    Outcome,
    Session,
    await_outcome,
    collect_states,
    send,
    split_device,
    waits_for_outcome,
    watch_outcome,
)
from edge.admin.settings import (
    DEFAULT_CONFIG,
    EXIT_FAILED,
    EXIT_LOCAL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    AdminError,
    load_settings,
    signing_key,
)
from edge.protocol import NAME_RE, Parser, Topics, escaped, generate_private_key, hash_password


def show(text: str, stream: TextIO | None = None) -> None:
    """Print what a device (or anyone on the broker) wrote, line by line, with control
    characters escaped: a result or an event never drives bureau IT's terminal."""
    print("\n".join(escaped(line) for line in text.split("\n")), file=stream or sys.stdout, flush=True)


def parse_arg(text: str) -> tuple[str, Any]:
    """k=v; v is JSON when it parses as JSON (90, true, {"a": 1}, "007"), else a plain string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise AdminError(EXIT_USAGE, f"--arg {text!r}: expected key=value")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def parse_args(texts: list[str]) -> dict[str, Any]:
    """Every ``--arg``; one given twice is a mistake (which one was meant?), not the last one."""
    found: dict[str, Any] = {}
    for text in texts:
        key, value = parse_arg(text)
        if key in found:
            raise AdminError(
                EXIT_USAGE, f"--arg {key} given twice ({found[key]!r}, then {value!r}): give it once"
            )
        found[key] = value
    return found


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse(argv)
    if not getattr(args, "action", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        code: int = args.action(args)
        return code
    except AdminError as exc:
        print(f"hall-admin: {exc.message}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--config", help=f"settings file (default {DEFAULT_CONFIG})")
    common.add_argument("--host", help="broker host")
    common.add_argument("--port", type=int, help="broker port")
    common.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None, help="TLS on/off")
    common.add_argument("--ca-file", dest="ca_file")
    common.add_argument("--cert-file", dest="cert_file", help="client certificate")
    common.add_argument("--client-key", dest="client_key", help="client certificate's private key")
    common.add_argument("--username")
    common.add_argument("--password-file", dest="password_file")
    common.add_argument("--protocol", choices=("mqttv5", "mqttv311"))
    common.add_argument("--key", help="signing key file (from keygen)")
    common.add_argument("--kid", help="the signing key's id, as configured on the devices")
    common.add_argument("--issuer", help="who sends the command (shown in the audit trail)")
    common.add_argument("--timeout", type=float, help="seconds to wait for a result (default 10)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    parser = Parser(
        prog="hall-admin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")

    keygen = sub.add_parser("keygen", parents=[common], help="make a signing key pair")
    keygen.add_argument("-o", "--out", help="private key file (default ~/.config/hall-admin/KID.key)")
    keygen.add_argument(
        "--release", action="store_true", help="a release key (signs update bundles), not a command key"
    )
    keygen.set_defaults(action=cmd_keygen)

    send_p = sub.add_parser("send", parents=[common], help="send a signed command and print its result")
    send_p.add_argument("target", metavar="SITE/DEVICE")
    send_p.add_argument("name", metavar="NAME", help="e.g. status, display.message, config.set")
    send_p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    _wait_flags(send_p)
    send_p.set_defaults(action=cmd_send)

    rollout = sub.add_parser(
        "rollout",
        parents=[common],
        help="update a site's or the fleet's controllers in waves, stopping at the first failure",
    )
    rollout.add_argument("site", nargs="?", help="one market only (default: every site)")
    rollout.add_argument(
        "--arg", action="append", default=[], metavar="KEY=VALUE", help="the update's arguments"
    )
    rollout.add_argument(
        "--fraction",
        type=float,
        default=0.25,
        help="the second wave: this share of the controllers left after the first one (default 0.25)",
    )
    rollout.add_argument("--states-wait", type=float, default=3.0, help="longest wait for retained states")
    _wait_flags(rollout, wait_flag=False)
    rollout.set_defaults(action=cmd_rollout)

    status = sub.add_parser("status", parents=[common], help="fleet view from the retained state topics")
    status.add_argument("site", nargs="?", help="one market only")
    status.add_argument("--wait", type=float, default=3.0, help="longest wait for retained states")
    status.set_defaults(action=cmd_status)

    snapshot = sub.add_parser("snapshot", parents=[common], help="save what the screen shows as PNG")
    snapshot.add_argument("target", metavar="SITE/DEVICE")
    snapshot.add_argument("-o", "--out", required=True, help="PNG file to write")
    snapshot.set_defaults(action=cmd_snapshot)

    events = sub.add_parser("events", parents=[common], help="print a controller's events as they come")
    events.add_argument("target", metavar="SITE/DEVICE")
    events.add_argument("--follow", action="store_true", help="keep printing until Ctrl-C")
    events.add_argument(
        "--wait",
        type=float,
        default=5.0,
        help="without --follow: listen this many seconds (default 5); only events sent meanwhile show",
    )
    events.set_defaults(action=cmd_events)

    report = sub.add_parser("report", parents=[common], help="a day's queue figures (signed queue.report)")
    report.add_argument("target", metavar="SITE/DEVICE")
    report.add_argument("--day", help="YYYY-MM-DD (default: the controller's current queue day)")
    report.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    report.set_defaults(action=cmd_report)

    account = sub.add_parser(
        "console-account",
        parents=[common],
        help="set a staff console account (the password never leaves here)",
    )
    account.add_argument("target", metavar="SITE/DEVICE")
    account.add_argument("id", help="login name, e.g. w1")
    account.add_argument("--name", required=True, help="shown on the pages, e.g. 一号窗口 张三")
    account.add_argument("--role", required=True, choices=("window", "locker", "supervisor"))
    account.add_argument("--windows", default="", help="a window account's windows, e.g. 1,2")
    account.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    account.set_defaults(action=cmd_console_account)

    release = sub.add_parser("release", help="build a signed release bundle (docs/releases.md)")
    release_verbs = release.add_subparsers(dest="release_command")
    build = release_verbs.add_parser("build", help="a bundle from this checkout, installable offline")
    build.add_argument("--out", required=True, metavar="DIR", help="folder for hall-edge-VERSION.tar")
    build.add_argument("--key", required=True, metavar="FILE", help="release key (keygen --release)")
    build.add_argument("--kid", help="the release key's id (default: the key file's name, e.g. rel-2026a)")
    build.add_argument(
        "--platform",
        action="append",
        metavar="MACHINE",
        help="aarch64, armv7l, x86_64 (repeatable; default: aarch64 and this machine's)",
    )
    build.add_argument("--source", default=".", metavar="DIR", help="the checkout (default: .)")
    build.add_argument("--version", help="build as this version instead of pyproject.toml's (test fleets)")
    build.add_argument("--min-replaces", default="0.1.0", help="oldest version it may replace (0.1.0)")
    build.add_argument("--find-links", metavar="DIR", help="dependency wheels from this folder, no index")
    build.set_defaults(action=cmd_release_build)
    return parser


def cmd_release_build(args: argparse.Namespace) -> int:
    from edge.admin.release import DEFAULT_PLATFORMS, BuildError, build_bundle, host_platform

    kid = args.kid or Path(args.key).stem
    if not NAME_RE.fullmatch(kid):
        raise AdminError(EXIT_USAGE, f"--kid {kid!r}: use 1-32 characters from a-z, 0-9 and -")
    platforms = args.platform or list(dict.fromkeys([*DEFAULT_PLATFORMS, host_platform()]))
    try:
        built = build_bundle(
            Path(args.source).resolve(), Path(args.out), args.key, kid, platforms,
            version=args.version, min_replaces=args.min_replaces, find_links=args.find_links,
        )  # fmt: skip
    except (BuildError, ValueError, OSError) as exc:
        raise AdminError(EXIT_LOCAL, f"release build: {exc}") from None
    size = built.path.stat().st_size
    print(f"{built.path}: hall-edge {built.version} for {', '.join(built.platforms)}, signed by {kid}")
    print(f"  {len(built.files)} files, {size / 1e6:.1f} MB, sha256 {sha256_file(built.path)}")
    return EXIT_OK


def sha256_file(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cmd_keygen(args: argparse.Namespace) -> int:
    kid = args.kid or f"{'rel' if args.release else 'it'}-{datetime.now().strftime('%Y%m%d')}"
    if not NAME_RE.fullmatch(kid):
        raise AdminError(EXIT_USAGE, f"--kid {kid!r}: use 1-32 characters from a-z, 0-9 and -")
    out = Path(os.path.expanduser(args.out or f"~/.config/hall-admin/{kid}.key"))
    try:
        public = generate_private_key(out)
    except FileExistsError:
        raise AdminError(EXIT_LOCAL, f"{out} exists; keygen never overwrites a key") from None
    except OSError as exc:
        raise AdminError(EXIT_LOCAL, f"{out}: {exc.strerror}") from None
    if args.json:
        print(json.dumps({"kid": kid, "public_key": public, "private_key_file": str(out)}))
        return EXIT_OK
    if args.release:
        print(f"private key: {out} (mode 0600; keep it on the build machine only)")
        print(f"public key:  {public}")
        print("add to [releases] in each controller's /etc/hall-edge/hall-edge.toml:")
        print(f'public_keys = {{ {kid} = "{public}" }}')
        print(f"sign bundles with it: hall-admin release build --out dist --key {out}")
        return EXIT_OK
    print(f"private key: {out} (mode 0600; keep it on this machine only)")
    print(f"public key:  {public}")
    print("add to [commands] in each controller's /etc/hall-edge/hall-edge.toml:")
    print(f'public_keys = {{ {kid} = "{public}" }}')
    print("or, on a running controller, signed with a key it already trusts (a rotation):")
    print(f"hall-admin send SITE/DEVICE keys.add --arg kid={kid} --arg public_key={public}")
    print("and to [signing] in ~/.config/hall-admin.toml:")
    print(f'key_file = "{out}"\nkid = "{kid}"')
    return EXIT_OK


def _wait_flags(parser: argparse.ArgumentParser, wait_flag: bool = True) -> None:
    if wait_flag:
        parser.add_argument(
            "--wait",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="update and config.set: wait for the outcome after the restart (default: wait)",
        )
    parser.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_S,
        help=f"longest wait for that outcome, seconds (default {DEFAULT_WAIT_S:g})",
    )


def run_send(args: argparse.Namespace, name: str, command_args: dict[str, Any]) -> Outcome:
    settings = load_settings(args.config, args)
    key = signing_key(settings)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        return send(session, args.target, name, args=command_args, settings=settings, key=key)
    finally:
        session.close()


def cmd_send(args: argparse.Namespace) -> int:
    split_device(args.target)  # a usage mistake is said before any key or broker problem
    command_args = parse_args(args.arg)
    waits = args.wait and args.name in LONG_RUNNING
    if not waits:
        outcome = run_send(args, args.name, command_args)
        return _print_outcome(args, outcome)
    settings = load_settings(args.config, args)
    key = signing_key(settings)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        watch_outcome(session, args.target, args.name)
        outcome = send(session, args.target, args.name, args=command_args, settings=settings, key=key)
        code = _print_outcome(args, outcome)
        if not waits_for_outcome(args.name, outcome.result):
            return code
        if not args.json:
            show(f"waiting for the outcome (up to {args.wait_timeout:g} s; --no-wait does not wait)")
        final = await_outcome(
            session, str(outcome.result.get("id")), args.name, time.monotonic() + args.wait_timeout
        )
    finally:
        session.close()
    if args.json:
        print(json.dumps({"outcome": final.word, "event": final.event}, ensure_ascii=False))
    else:
        show(final_line(args.name, args.target, final), None if final.exit_code == EXIT_OK else sys.stderr)
    return final.exit_code


def final_line(name: str, target: str, final: Final) -> str:
    data = final.data
    where = f"{final.word}  {name}  {target}  id {data.get('id')}  after {final.seconds:.0f} s"
    if name == "update":
        where += f"  {data.get('from_version')} -> {data.get('version')}"
    if final.word != "confirmed":
        where += f"\n  {data.get('reason')}: {data.get('detail', '')}".rstrip()
    return where


def _print_outcome(args: argparse.Namespace, outcome: Outcome) -> int:
    if args.json:
        print(json.dumps(outcome.result, ensure_ascii=False))
        return outcome.exit_code
    result = outcome.result
    millis = outcome.seconds * 1000
    if result.get("ok"):
        show(f"ok  {args.name}  {args.target}  id {result.get('id')}  {millis:.0f} ms")
        show("\n".join(readable(result.get("result") or {}, 1)))
    else:
        error = result.get("error") or {}
        word = "refused" if outcome.exit_code == EXIT_REFUSED else "failed"
        show(f"{word}  {args.name}  {args.target}  id {result.get('id')}  {millis:.0f} ms", sys.stderr)
        show(f"  {error.get('code')}: {error.get('message')}", sys.stderr)
    return outcome.exit_code


def cmd_rollout(args: argparse.Namespace) -> int:
    if args.site and not NAME_RE.fullmatch(args.site):
        raise AdminError(EXIT_USAGE, f"{args.site!r} is not a site name (1-32 of a-z, 0-9, -)")
    if not 0 < args.fraction <= 1:
        raise AdminError(EXIT_USAGE, f"--fraction {args.fraction:g}: give a share from 0 (not included) to 1")
    command_args = parse_args(args.arg)
    if not isinstance(command_args.get("version"), str):
        raise AdminError(
            EXIT_USAGE,
            "give the update's arguments: --arg url=... --arg sha256=... --arg size=N --arg version=X",
        )
    settings = load_settings(args.config, args)
    key = signing_key(settings)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        rollout = Rollout(
            session, settings, key, command_args, fraction=args.fraction, wait_s=args.wait_timeout
        )
        rollout.plan(collect_states(session, args.site, args.states_wait))
        if not rollout.rows:
            raise AdminError(EXIT_FAILED, f"no controller found{' at ' + args.site if args.site else ''}")
        code = rollout.run(lambda line: show(line) if not args.json else None)
    finally:
        session.close()
    show(json.dumps(rollout.rows, ensure_ascii=False) if args.json else rollout_table(rollout.rows))
    return code


def cmd_status(args: argparse.Namespace) -> int:
    if args.site and not NAME_RE.fullmatch(args.site):
        raise AdminError(
            EXIT_USAGE,
            f"{args.site!r} is not a site name: status takes a market's site such as qinshui "
            "(1-32 of a-z, 0-9, -), or nothing for every site",
        )
    settings = load_settings(args.config, args)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        rows = fleet_rows(collect_states(session, args.site, args.wait))
    finally:
        session.close()
    show(json.dumps(rows, ensure_ascii=False) if args.json else fleet_table(rows))
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    split_device(args.target)
    outcome = run_send(args, "display.snapshot", {})
    if outcome.exit_code != EXIT_OK:
        error = outcome.result.get("error") or {}
        show(f"hall-admin: snapshot {error.get('code')}: {error.get('message')}", sys.stderr)
        return outcome.exit_code
    png = find_png(outcome.result.get("result") or {})
    if png is None:
        raise AdminError(EXIT_FAILED, "the result holds no PNG image")
    try:
        Path(args.out).write_bytes(png)
    except OSError as exc:
        raise AdminError(EXIT_LOCAL, f"{args.out}: {exc.strerror}") from None
    print(f"{args.out}: {len(png)} bytes")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    if args.day is not None:
        try:
            datetime.strptime(args.day, "%Y-%m-%d")
        except ValueError:
            raise AdminError(EXIT_USAGE, f"--day {args.day!r}: expected YYYY-MM-DD") from None
    outcome = run_send(args, "queue.report", {"day": args.day} if args.day else {})
    if outcome.exit_code != EXIT_OK:
        error = outcome.result.get("error") or {}
        show(f"hall-admin: report {error.get('code')}: {error.get('message')}", sys.stderr)
        return outcome.exit_code
    report = outcome.result.get("result") or {}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        show(report_csv(report) if args.csv else report_table(report))
    return EXIT_OK


def cmd_console_account(args: argparse.Namespace) -> int:
    """console.account with the scrypt hash made here: no password travels or is stored."""
    split_device(args.target)
    try:
        windows = [int(w) for w in args.windows.split(",") if w.strip()]
    except ValueError:
        raise AdminError(EXIT_USAGE, f"--windows {args.windows!r}: expected numbers such as 1,2") from None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise AdminError(EXIT_USAGE, "the two passwords differ")
    if len(password) < 8:
        raise AdminError(EXIT_USAGE, "use a password of at least 8 characters")
    fields = {"action": "set", "id": args.id, "name": args.name, "role": args.role, "windows": windows}
    outcome = run_send(args, "console.account", {**fields, "password_hash": hash_password(password)})
    result = outcome.result
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    elif result.get("ok"):
        show(f"ok  console.account  {args.target}  {args.id} ({args.role})")
    else:
        error = result.get("error") or {}
        show(f"hall-admin: console-account {error.get('code')}: {error.get('message')}", sys.stderr)
    return outcome.exit_code


def cmd_events(args: argparse.Namespace) -> int:
    site, device = split_device(args.target)
    settings = load_settings(args.config, args)
    session = Session(settings.broker, timeout_s=min(settings.timeout_s, 10.0))
    try:
        session.subscribe(Topics(site, device).event("#"))
        deadline = None if args.follow else time.monotonic() + args.wait
        while deadline is None or time.monotonic() < deadline:
            left = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = session.messages.get(timeout=left)
            except queue.Empty:
                continue
            show(event_line(bytes(message.payload), args.json))
    finally:
        session.close()
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
