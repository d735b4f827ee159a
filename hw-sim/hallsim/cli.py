"""``hall-sim``: run the simulated hall, and act on a running one.

    hall-sim demo [--data DIR] [--broker mqtt://host:port] [--no-central] [--logs]
    hall-sim [--data DIR] VERB [ARGS...]      e.g. hall-sim press A, hall-sim tap worker

A verb goes to the control socket of the demo in the data folder (--data DIR,
else $HALLSIM_DATA, else the user's default folder).  ``hall-sim VERB --help``
answers here, without a demo.  Commands that run something of their own
(``demo``, and a simulator part's own ``main`` listed in ``COMMANDS``) are
started here instead.
"""

from __future__ import annotations

import difflib
import importlib
import json
import sys
from typing import Any

from hallsim.control import ControlError, default_data_dir, find_data_dir, load_sim, request
from hallsim.verbs import SPECS, VERBS

# Commands that run in this process: name -> "module:function" taking argv.
COMMANDS = {
    "demo": "hallsim.demo:main",
    "central": "hallsim.central:main",
}


def usage() -> str:
    lines = [
        "usage: hall-sim demo [--data DIR] [--broker mqtt://host:port] [--no-central] [--logs]",
        "       hall-sim central --help    (the fake central platform on its own)",
        "       hall-sim [--data DIR] VERB [ARGS...]    (hall-sim VERB --help: that verb)",
        "",
        f"verbs (act on the demo in --data DIR, $HALLSIM_DATA or {default_data_dir()}):",
    ]
    width = max(len(spec.usage) for spec in VERBS)
    lines += [f"  {spec.usage:<{width}}  {spec.help}" for spec in VERBS]
    return "\n".join(lines)


def verb_help(name: str) -> str | None:
    spec = SPECS.get(name)
    if spec is None:
        return None
    return f"usage: hall-sim [--data DIR] {spec.usage}\n\n{spec.help}"


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
    if not words:
        print(usage(), file=sys.stderr)
        return 2
    if words[0] not in SPECS:
        close = difflib.get_close_matches(words[0], list(SPECS), n=1)
        hint = f" did you mean {close[0]!r}?" if close else ""
        print(f"hall-sim: unknown verb {words[0]!r};{hint} `hall-sim --help` lists them", file=sys.stderr)
        return 2
    if "--help" in words[1:] or "-h" in words[1:]:
        print(verb_help(words[0]))
        return 0
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
