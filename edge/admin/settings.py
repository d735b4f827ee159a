"""hall-admin's settings (``~/.config/hall-admin.toml`` with flags over it), exit codes, keys."""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.protocol import read_private_key

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_TIMEOUT = 4
EXIT_UNREACHABLE = 5
EXIT_LOCAL = 6

DEFAULT_CONFIG = "~/.config/hall-admin.toml"


class AdminError(Exception):
    """A failure with the exit code it maps to."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Broker:
    host: str = "localhost"
    port: int = 8883
    tls: bool = True
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    protocol: str = "mqttv5"


@dataclass(frozen=True)
class Signing:
    key_file: str = ""
    kid: str = ""
    issuer: str = ""


@dataclass(frozen=True)
class AdminSettings:
    broker: Broker = field(default_factory=Broker)
    signing: Signing = field(default_factory=Signing)
    timeout_s: float = 10.0
    lifetime_s: float = 300.0


def load_settings(path: str | None, args: argparse.Namespace) -> AdminSettings:
    """The config file (when there is one) with the command line's flags over it."""
    settings = AdminSettings()
    file = Path(os.path.expanduser(path or DEFAULT_CONFIG))
    if file.exists():
        try:
            doc = tomllib.loads(file.read_text(encoding="utf-8"))
            settings = AdminSettings(
                broker=Broker(**doc.get("broker", {})),
                signing=Signing(**doc.get("signing", {})),
                **doc.get("defaults", {}),
            )
        except (tomllib.TOMLDecodeError, TypeError, OSError, UnicodeDecodeError) as exc:
            raise AdminError(EXIT_LOCAL, f"{file}: {exc}") from None
    elif path:
        raise AdminError(EXIT_LOCAL, f"{file}: no such config file")
    return _with_flags(settings, args)


def _with_flags(settings: AdminSettings, args: argparse.Namespace) -> AdminSettings:
    broker_flags = {
        k: getattr(args, k, None)
        for k in ("host", "port", "tls", "ca_file", "cert_file", "username", "password_file", "protocol")
    }
    if getattr(args, "client_key", None):
        broker_flags["key_file"] = args.client_key
    signing_flags = {"key_file": getattr(args, "key", None), "kid": args.kid, "issuer": args.issuer}
    broker = replace(settings.broker, **{k: v for k, v in broker_flags.items() if v is not None})
    signing = replace(settings.signing, **{k: v for k, v in signing_flags.items() if v is not None})
    timeout = args.timeout if args.timeout is not None else settings.timeout_s
    return replace(settings, broker=broker, signing=signing, timeout_s=timeout)


def load_private_key(path: str) -> Ed25519PrivateKey:
    """The signing key (a private PEM file, mode 0600); a local problem otherwise."""
    try:
        return read_private_key(os.path.expanduser(path))
    except ValueError as exc:
        raise AdminError(EXIT_LOCAL, str(exc)) from None


def signing_key(settings: AdminSettings) -> Ed25519PrivateKey:
    if not (settings.signing.key_file and settings.signing.kid and settings.signing.issuer):
        raise AdminError(
            EXIT_LOCAL, "signing needs key_file, kid and issuer (config [signing] or --key/--kid/--issuer)"
        )
    return load_private_key(settings.signing.key_file)
