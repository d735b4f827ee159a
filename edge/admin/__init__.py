"""``hall-admin``: bureau IT's tool for signed remote commands and the fleet view.

- ``settings``: the settings file and flags, exit codes, the signing key;
- ``session``: one MQTT session, ``send`` (sign, publish, wait for the result), fleet states;
- ``render``: results, the fleet table and events as text;
- ``cli``: the command line (``main``, the ``hall-admin`` entry point).

Of the daemon it imports only the wire contract, ``edge.protocol`` (a test checks it).
"""

from __future__ import annotations

from edge.admin.cli import main, parse_arg
from edge.admin.session import Outcome, Session, send
from edge.admin.settings import (
    EXIT_FAILED,
    EXIT_LOCAL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    AdminError,
    AdminSettings,
    Broker,
    Signing,
    load_private_key,
)
from edge.protocol import generate_private_key as generate_key
from edge.protocol import public_key_b64

__all__ = [
    "EXIT_FAILED",
    "EXIT_LOCAL",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "AdminError",
    "AdminSettings",
    "Broker",
    "Outcome",
    "Session",
    "Signing",
    "generate_key",
    "load_private_key",
    "main",
    "parse_arg",
    "public_key_b64",
    "send",
]
