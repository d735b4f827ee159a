"""``hall-edge``: the daemon and its local tools."""

from __future__ import annotations

import argparse
import importlib
import logging
import sqlite3
import sys
from collections.abc import Callable
from zoneinfo import ZoneInfo

from edge import __version__, logs
from edge.config import ConfigError, load, placeholder_problems
from edge.libc import one_malloc_arena
from edge.protocol import Parser
from edge.storage import StorageError

log = logging.getLogger("edge")

DEFAULT_CONFIG = "/etc/hall-edge/hall-edge.toml"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse(argv)
    if not getattr(args, "action", None):
        parser.print_help()
        return 2
    return args.action(args)


def _parser() -> Parser:
    parser = Parser(prog="hall-edge", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the controller daemon")
    run.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML file (default {DEFAULT_CONFIG})")
    run.set_defaults(action=cmd_run)

    check = sub.add_parser("check-config", help="validate a configuration file; exit 1 on any problem")
    check.add_argument("path", nargs="?", help="TOML file (the same as --config)")
    check.add_argument("--config", help=f"TOML file (default {DEFAULT_CONFIG})")
    check.add_argument(
        "--placeholders",
        choices=("fail", "warn"),
        default="fail",
        help="the example's placeholder site/device, broker and empty command keys: fail (default)"
        " or only warn (the installer, before the file is edited)",
    )
    check.set_defaults(action=cmd_check_config)

    ver = sub.add_parser("version", help="print the version")
    ver.set_defaults(action=lambda _args: print(__version__) or 0)

    inst = sub.add_parser("install", help="install or update the service on this Pi (idempotent)")
    inst.add_argument("--root", help="install into this folder instead of the running system")
    inst.add_argument("--source", help="source tree (default: the one this program runs from)")
    inst.add_argument(
        "--bundle", metavar="FILE", help="install the program from this release bundle (no network)"
    )
    inst.add_argument(
        "--no-venv",
        action="store_true",
        help="no virtualenv: the source on the system's Python and packages (images, tests)",
    )
    inst.set_defaults(action=_later("edge.install", "cmd_install"))
    uninst = sub.add_parser("uninstall", help="remove the service; configuration and data stay")
    uninst.add_argument("--root", help="uninstall from this folder instead of the running system")
    uninst.add_argument("--purge", action="store_true", help="also remove configuration, data and the user")
    uninst.set_defaults(action=_later("edge.install", "cmd_uninstall"))

    test = sub.add_parser("selftest", help="check every configured peripheral; exit 1 on any failure")
    test.add_argument("--config", default=DEFAULT_CONFIG, help=f"TOML file (default {DEFAULT_CONFIG})")
    test.add_argument("--print", action="store_true", help="also print a test ticket and show a test pattern")
    test.set_defaults(action=_later("edge.selftest", "cmd_selftest"))
    return parser


def _later(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """An action whose module is imported only when it runs: ``run`` and ``check-config`` start
    without loading the installer and the selftest (and all the selftest imports)."""

    def action(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)

    return action


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the configuration in force: the file with the remote changes over it."""
    from edge.layers import Layers

    if args.path and args.config and args.path != args.config:
        print(
            "hall-edge check-config: give the file once, as PATH or as --config PATH, not both",
            file=sys.stderr,
        )
        return 2
    path = args.config or args.path or DEFAULT_CONFIG
    try:
        layers = Layers.read(path)
        settings = layers.settings()
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    placeholders = placeholder_problems(settings)
    if placeholders and args.placeholders == "fail":
        print(ConfigError(path, placeholders).report(), file=sys.stderr)
        return 1
    for problem in placeholders:
        print(f"{path}: warning: {problem}", file=sys.stderr)
    remote = sorted(layers.sources().items())
    changed = [key for key, source in remote if source == str(layers.remote_path)]
    if changed:
        print(f"{path}: ok, with remote changes from {layers.remote_path}: {', '.join(changed)}")
    else:
        print(f"{path}: ok")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    one_malloc_arena()
    logs.setup("info")
    try:
        config = load(args.config)
    except ConfigError as exc:
        # One line per problem, each naming the file: journald shows them as they are.
        for problem in exc.errors:
            log.error("config %s: %s", exc.source, problem)
        return 1
    logs.setup(config.logging.level, ZoneInfo(config.time.zone))
    from edge.daemon import Daemon  # imported late: check-config must not need the drivers

    try:
        daemon = Daemon(config, args.config)
        daemon.catch_signals()  # a SIGTERM while the features start still ends in a clean stop
        daemon.start()
    except StorageError as exc:
        log.error("storage %s", exc)
        return 1
    except sqlite3.Error as exc:  # e.g. disk full or read-only while migrating
        log.error("storage %s: %s", config.storage.dir, exc)
        return 1
    try:
        daemon.run_until_signalled()
    finally:
        daemon.stop()
    return 0
