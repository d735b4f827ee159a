"""hall-admin's settings (``~/.config/hall-admin.toml`` with flags over it), exit codes, keys."""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import tomllib
from dataclasses import field, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.protocol import read_private_key
from edge.records import record

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


@record
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


@record
class Signing:
    key_file: str = ""
    kid: str = ""
    issuer: str = ""


@record
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


KEY_FOLDER = "~/.config/hall-admin"  # where keygen writes private keys by default


def load_private_key(path: str) -> Ed25519PrivateKey:
    """The signing key (a private PEM file, mode 0600); a local problem otherwise."""
    full = os.path.expanduser(path)
    if _holds_public_key(full):
        raise AdminError(EXIT_LOCAL, f"signing key {path} holds a public key: {private_key_hint()}")
    if not os.path.lexists(full):
        raise AdminError(EXIT_LOCAL, f"signing key {path} does not exist: {private_key_hint()}")
    try:
        return read_private_key(full)
    except ValueError as exc:
        raise AdminError(EXIT_LOCAL, str(exc)) from None


def _holds_public_key(path: str) -> bool:
    """A PEM public key, or the base64 line keygen prints for the controllers' configuration."""
    try:
        text = Path(path).read_bytes()[:4096].decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    if "PUBLIC KEY-----" in text:
        return True
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def private_key_hint() -> str:
    """Where the private key is: keygen's folder and the keys found in it."""
    folder = Path(os.path.expanduser(KEY_FOLDER))
    found = sorted(str(p) for p in folder.glob("*.key")) if folder.is_dir() else []
    where = f"; found here: {', '.join(found)}" if found else ""
    return (
        "--key needs the private key file that keygen wrote "
        f"(by default {KEY_FOLDER}/KID.key on the machine that ran keygen{where}); "
        "the public key goes into the controllers' commands.public_keys"
    )


SIGNING_FIELDS = (
    ("key_file", "--key FILE", "the private key keygen wrote"),
    ("kid", "--kid KID", "its id on the controllers"),
    ("issuer", "--issuer NAME", "who sends, for the audit trail"),
)


def signing_key(settings: AdminSettings) -> Ed25519PrivateKey:
    missing = [
        (name, flag, what) for name, flag, what in SIGNING_FIELDS if not getattr(settings.signing, name)
    ]
    if missing:
        needs = ", ".join(f"{flag} ({what})" for _n, flag, what in missing)
        names = ", ".join(name for name, _f, _w in missing)
        raise AdminError(
            EXIT_LOCAL,
            f"signing needs {needs}: give it on the command line, or set {names} "
            f"under [signing] in {DEFAULT_CONFIG}",
        )
    return load_private_key(settings.signing.key_file)
