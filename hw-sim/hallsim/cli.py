"""``hall-sim``: run the simulated hall, and act on a running one.

    hall-sim demo [--data DIR] [--broker mqtt://host:port] [--no-central] [--logs]
    hall-sim [--data DIR] VERB [ARGS...]      e.g. hall-sim press A, hall-sim tap worker

A verb goes to the running demo's control socket (found from --data DIR,
$HALLSIM_DATA, or the most recent demo).  Commands that run something of
their own (``demo``, and a simulator part's own ``main`` listed in
``COMMANDS``) are started here instead.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from hallsim.control import ControlError, find_data_dir, load_sim, request

# Commands that run in this process: name -> "module:function" taking argv.
COMMANDS = {
    "demo": "hallsim.demo:main",
    "central": "hallsim.central:main",
}


def usage() -> str:
    from hallsim.demo import VERB_USAGE

    lines = [
        "usage: hall-sim demo [--data DIR] [--broker mqtt://host:port] [--no-central] [--logs]",
        "       hall-sim central --help    (the fake central platform on its own)",
        "       hall-sim [--data DIR] VERB [ARGS...]",
        "",
        "verbs (act on the running demo):",
    ]
    width = max(len(verb) for verb, _ in VERB_USAGE)
    lines += [f"  {verb:<{width}}  {text}" for verb, text in VERB_USAGE]
    return "\n".join(lines)


def _split_data(argv: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--data DIR`` (or --data=DIR) out of the words, wherever it is."""
    data, rest, words = None, [], list(argv)
    while words:
        word = words.pop(0)
        if word == "--data" and words:
            data = words.pop(0)
        elif word.startswith("--data="):
            data = word.split("=", 1)[1]
        else:
            rest.append(word)
    return data, rest


def _show(result: Any) -> None:
    if isinstance(result, str):
        print(result)
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in COMMANDS:
        module, function = COMMANDS[argv[0]].split(":")
        try:
            entry = getattr(importlib.import_module(module), function)
        except (ModuleNotFoundError, AttributeError):
            print(f"hall-sim {argv[0]}: not available in this version", file=sys.stderr)
            return 2
        return int(entry(argv[1:]) or 0)
    data, words = _split_data(argv)
    try:
        sim = load_sim(find_data_dir(data))
        response = request(sim["control"], words[0], words[1:])
    except ControlError as exc:
        print(f"hall-sim: {exc}", file=sys.stderr)
        return 1
    if not response.get("ok"):
        print(f"hall-sim {words[0]}: {response.get('error')}", file=sys.stderr)
        return 1
    try:
        _show(response.get("result"))
    except BrokenPipeError:  # `hall-sim status | head`: the reader left, nothing more to say
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
