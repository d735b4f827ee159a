"""The wire contract ``lgsc/v1``: topics, ids, signed envelopes, commands, results.

Both ends import this module and nothing else of each other: the daemon
(``edge.link``, ``edge.commands``, ``edge.outbox``) and bureau IT's
``hall-admin`` (``edge.admin``), which imports no other part of the daemon
(a test checks it).  The schemas in docs/schemas/ describe the same payloads.

A signed envelope is ``{"body": "<JSON text>", "kid": "...", "sig": "<base64
Ed25519>"}``.  The signature covers the exact UTF-8 bytes of ``body`` (never a
re-serialised copy), so the body stays a string until the signature has been
checked.  ``sign`` and ``verify_envelope`` know nothing about what the body
says: commands use them, and so can any other signed payload.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from edge.records import record

# cryptography (its Rust extension and libcrypto: ~9 MiB resident) is imported where a key is
# first used, not at start: an idle hall that gets no signed message never loads it.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# ---- names and topics -------------------------------------------------------------

PREFIX = "lgsc/v1"
NAME_RE = re.compile(r"[a-z0-9-]{1,32}")  # a site, a device, a key id: one topic level each
SNAPSHOT_KINDS = ("jobs", "notices", "cards")

STATE_SCHEMA = "lgsc.state/1"
EVENT_SCHEMA = "lgsc.event/1"
RESULT_SCHEMA = "lgsc.result/1"
TELEMETRY_SCHEMA = "lgsc.telemetry/1"


class Topics:
    """Every topic of one controller (``site``/``device``), as docs/mqtt.md lists them."""

    def __init__(self, site: str, device: str) -> None:
        base = f"{PREFIX}/{site}"
        self.snapshots = {snapshot_topic(site, kind): kind for kind in SNAPSHOT_KINDS}
        self.device = f"{base}/{device}"
        self.cmd = f"{self.device}/cmd"
        self.result = f"{self.cmd}/result"
        self.state = f"{self.device}/state"
        self.telemetry = f"{self.device}/telemetry"
        self.events = f"{self.device}/events"

    def event(self, kind: str) -> str:
        return f"{self.events}/{kind}"

    def subscriptions(self) -> list[str]:
        return [*self.snapshots, self.cmd]


def snapshot_topic(site: str, kind: str) -> str:
    """A site's retained snapshot of ``kind`` (jobs, notices, cards), shared by its controllers."""
    return f"{PREFIX}/{site}/{kind}"


def state_topics(site: str | None) -> str:
    """The retained state of every controller of one site (or of all sites)."""
    return f"{PREFIX}/{site or '+'}/+/state"


_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(now_ms: int | None = None) -> str:
    """An event or command id: 48-bit millisecond time + 80 random bits, Crockford base32."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ULID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON, as every payload on the wire is written.

    Text that UTF-8 cannot hold (a lone surrogate that came in from outside) is written as a
    JSON escape instead of failing: an event or an answer is never lost over one character.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), default=default).encode("ascii")


class LoneSurrogate(ValueError):
    """JSON text that parses but holds an escape no UTF-8 encoder can write back."""


def loads_text(text: str) -> Any:
    """JSON text that can be written back as UTF-8: a lone surrogate (``"\\ud800"``) is refused.

    ``json.loads`` accepts such an escape and returns a str that no UTF-8 encoder takes, so
    it would fail later in the outbox or the result, after the command ran.  Raises ValueError
    (LoneSurrogate for that case).
    """
    value = json.loads(text)
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise LoneSurrogate("the JSON holds a lone surrogate (an unpaired \\ud800-\\udfff escape)") from None
    return value


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def escaped(text: str) -> str:
    """``text`` with control characters and lone surrogates written as escapes (``\\x1b``).

    For anything that came from outside and goes into a log line, an answer or an event:
    a terminal never sees a raw ESC or CR from a sender, and UTF-8 can always encode it.
    """
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


# ---- messages for people (here because hall-admin imports nothing else of the daemon) --------


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the closest of ``choices``, or "" when none is close.

    The one hint every message of the daemon, hall-edge and hall-admin gives for a misspelt
    name: a configuration key, a command or its argument, a verb, an option.  (hall-sim, which
    imports nothing of edge, has its own.)
    """
    import difflib  # only for a mistyped name: not in every process's memory

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_INVALID_CHOICE = re.compile(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)$")


class Parser(argparse.ArgumentParser):
    """argparse for hall-edge and hall-admin: a mistake says what was expected and what to try.

    One line naming the mistake (a misspelt verb, option or choice gets a did-you-mean), then
    ``try: PROG VERB --help`` for the verb it was meant for, exit 2.  argparse alone prints the
    usage block (a dozen lines for ``hall-admin send``) and, for an unknown option, the top-level
    usage instead of the verb's.
    """

    def parse(self, argv: list[str] | None) -> argparse.Namespace:
        """``parse_args``, except that left-over words are reported by the verb they follow."""
        words = sys.argv[1:] if argv is None else argv
        if words and words[0].startswith("-") and words[0] not in ("-h", "--help") and self._verbs():
            self.error(f"{words[0]} goes after the verb: {self.prog} VERB {words[0]} ...")
        parsed, extras = self.parse_known_args(words)
        if extras:
            self._verb_parser(parsed).error(_unexpected(extras[0], self._verb_parser(parsed)))
        return parsed

    def _verbs(self) -> dict[str, argparse.ArgumentParser]:
        action = self._verb_action()
        return dict(action.choices) if action is not None else {}

    def _verb_action(self) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
        return next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)), None)

    def _verb_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The parser of the verb given (``add_subparsers(dest=...)``), else this one."""
        action = self._verb_action()
        verb = getattr(parsed, action.dest, None) if action is not None else None
        return self._verbs().get(verb or "", self)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {_plain(message)}\ntry: {self.prog} --help\n")


def _plain(message: str) -> str:
    invalid = _INVALID_CHOICE.match(message)
    if invalid is None:
        return message
    where, word, choices = invalid.groups()
    names = [c.strip().strip("'") for c in choices.split(",")]
    hint = did_you_mean(word, names)
    if where.startswith("-"):
        return f"{where} {word!r} is not one of {', '.join(names)}{hint}"
    return f"no verb {word!r}{hint}; the verbs are {', '.join(names)}"


def _unexpected(word: str, parser: argparse.ArgumentParser) -> str:
    if word.startswith("-"):
        option = word.partition("=")[0]
        return f"unknown option {option}{did_you_mean(option, parser._option_string_actions)}"
    return f"unexpected argument {word!r}"


# ---- keys ---------------------------------------------------------------------------


def secret_file_problem(path: str) -> str | None:
    """Why a secret file (signing key, password, card key) cannot be used, or None if it can."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        return (
            f"is readable by group or others (mode {mode:04o}); "
            f"a secret file must be private: chmod 600 {path}"
        )
    if not os.access(path, os.R_OK):
        return "cannot be read by this user"
    return None


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The form a public key takes in the configuration: base64 of its raw 32 bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class VerifyKey(Protocol):
    """What checking a signature needs of a public key (Ed25519PublicKey, PublicKey)."""

    def verify(self, signature: bytes, data: bytes) -> None: ...


class PublicKey:
    """A raw 32-byte Ed25519 public key, made a cryptography key at its first ``verify``."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self.raw = raw
        self._key: Ed25519PublicKey | None = None

    def verify(self, signature: bytes, data: bytes) -> None:
        """As Ed25519PublicKey.verify: InvalidSignature when it does not match."""
        if self._key is None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            self._key = Ed25519PublicKey.from_public_bytes(self.raw)
        self._key.verify(signature, data)


def load_public_keys(configured: Mapping[str, str]) -> tuple[dict[str, VerifyKey], list[str]]:
    """The usable keys by kid, and a problem line for each configured key that is not one."""
    keys: dict[str, VerifyKey] = {}
    problems = []
    for kid, text in configured.items():
        try:
            keys[kid] = PublicKey(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError, TypeError):
            problems.append(f"{kid}: not a base64 raw 32-byte Ed25519 public key")
    return keys, problems


def generate_private_key(path: Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) and return its public key, base64.

    Raises FileExistsError rather than overwrite a key that devices may already trust.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    return public_key_b64(key)


def read_private_key(path: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file only this user can read; ValueError says why not."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    problem = secret_file_problem(path)
    if problem:
        raise ValueError(f"signing key {path} {problem}")
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"signing key {path} is not an Ed25519 key")
    return key


# ---- signed envelopes ------------------------------------------------------------------

# Refusals before the signature was checked: nothing in such a message is trusted.
UNAUTHENTICATED = ("too_large", "not_json", "malformed", "unknown_kid", "bad_signature")


@record
class Refusal:
    """Why a signed payload is not acted on; ``reason`` is one of REFUSAL_REASONS.

    ``id`` and ``name`` are the command's when known; for an unauthenticated refusal the id
    is only what the sender claimed, already passed through ``escaped``.
    """

    reason: str
    message: str
    id: str | None = None
    name: str | None = None


@record
class Envelope:
    body: str
    kid: str
    sig: str


def sign(body: str | bytes, key: Ed25519PrivateKey, kid: str) -> bytes:
    """The envelope payload: the signature covers exactly the UTF-8 bytes of ``body``."""
    body_bytes = body.encode("utf-8") if isinstance(body, str) else body
    return dumps({"body": body_bytes.decode("utf-8"), "kid": kid, "sig": signature_b64(body_bytes, key)})


def signature_b64(data: bytes, key: Ed25519PrivateKey) -> str:
    """The Ed25519 signature of exactly ``data``, base64: an envelope's ``sig``, a release's too."""
    return base64.b64encode(key.sign(data)).decode()


def open_envelope(payload: bytes, max_body_bytes: int) -> Envelope | Refusal:
    """The envelope's three strings, unverified; or why the payload is not an envelope."""
    # JSON escapes make the envelope at most ~6x the body; anything bigger is refused unread.
    if len(payload) > 6 * max_body_bytes + 4096:
        return Refusal("too_large", f"payload of {len(payload)} bytes is over the limit")
    try:
        envelope = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        return Refusal("not_json", "the payload is not UTF-8 JSON")
    if not isinstance(envelope, dict):
        return Refusal("malformed", "the payload is not a JSON object")
    body, kid, sig = envelope.get("body"), envelope.get("kid"), envelope.get("sig")
    if not (isinstance(body, str) and isinstance(kid, str) and isinstance(sig, str)):
        return Refusal("malformed", "the envelope needs string fields body, kid and sig")
    if _UNPAIRED.search(body + kid + sig):
        return Refusal("malformed", "the envelope holds a lone surrogate (an unpaired \\ud800 escape)")
    size = len(body.encode("utf-8"))
    if size > max_body_bytes:
        return Refusal("too_large", f"body of {size} bytes is over {max_body_bytes}", claimed_id(body))
    return Envelope(body, kid, sig)


_UNPAIRED = re.compile(r"[\ud800-\udfff]")


def check_signature(envelope: Envelope, keys: Mapping[str, VerifyKey]) -> Refusal | None:
    """None when ``envelope.sig`` is the signature of its body by the key named ``kid``."""
    from cryptography.exceptions import InvalidSignature  # loaded with the first signed message

    key = keys.get(envelope.kid)
    if key is None:
        # The kid is whatever the sender wrote: only its escaped start goes into a log or answer.
        return Refusal("unknown_kid", f"no public key {escaped(envelope.kid[:MAX_ID_CHARS])!r} is configured")
    try:
        key.verify(base64.b64decode(envelope.sig, validate=True), envelope.body.encode("utf-8"))
    except (binascii.Error, ValueError, InvalidSignature):
        return Refusal("bad_signature", f"the signature does not verify with key {envelope.kid!r}")
    return None


def verify_envelope(payload: bytes, keys: Mapping[str, VerifyKey], max_body_bytes: int) -> Envelope | Refusal:
    """The envelope whose body the named key signed, or why not (no side effects)."""
    envelope = open_envelope(payload, max_body_bytes)
    if isinstance(envelope, Refusal):
        return envelope
    return check_signature(envelope, keys) or envelope


# ---- commands ----------------------------------------------------------------------------

MAX_LIFETIME = timedelta(minutes=15)
CLOCK_SKEW = timedelta(seconds=60)  # a command may arrive this long before its issued_at
MAX_ID_CHARS = 128

REFUSAL_REASONS = (
    "too_large",
    "not_json",
    "malformed",
    "unknown_kid",
    "bad_signature",
    "wrong_device",
    "lifetime_too_long",
    "not_yet_valid",
    "expired",
    "replayed",
    "unknown_command",
    "bad_arguments",
)
RATE_LIMITED = "rate_limited"  # the reason of a refusals summary event, not an answer code


def command_body(
    device: str,
    name: str,
    args: dict[str, Any],
    *,
    issuer: str,
    lifetime_s: float,
    now: datetime | None = None,
    response_topic: str | None = None,
) -> str:
    """The body text to sign: a fresh id, the sender's time with its offset.

    ``response_topic``: where, besides cmd/result, the device may also answer (MQTT 5).  It
    is inside the signature, so a captured command cannot be redirected elsewhere.
    """
    issued = (now or datetime.now().astimezone()).astimezone().replace(microsecond=0)
    body: dict[str, Any] = {
        "id": "c-" + new_ulid(),
        "name": name,
        "device": device,
        "issued_at": issued.isoformat(),
        "expires_at": (issued + timedelta(seconds=lifetime_s)).isoformat(),
        "issuer": issuer,
        "args": args,
    }
    if response_topic is not None:
        body["response_topic"] = response_topic
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def claimed_id(body_text: str) -> str | None:
    """The id a body claims, escaped, before anything about it is trusted (to name a refusal)."""
    try:
        body = json.loads(body_text)
    except (ValueError, RecursionError):
        return None
    claimed = body.get("id") if isinstance(body, dict) else None
    if not isinstance(claimed, str) or not 0 < len(claimed) <= MAX_ID_CHARS:
        return None
    return escaped(claimed)


def usable_response_topic(topic: str) -> bool:
    """A response topic a device may publish to: no wildcard, not $SYS-like, within MQTT limits."""
    return bool(topic) and not topic.startswith("$") and "+" not in topic and "#" not in topic


def result_payload(command_id: str | None, result: dict[str, Any]) -> bytes:
    return dumps({"schema": RESULT_SCHEMA, "id": command_id, "ok": True, "result": result}, default=str)


def error_payload(command_id: str | None, code: str, message: str) -> bytes:
    error = {"code": code, "message": message}
    return dumps({"schema": RESULT_SCHEMA, "id": command_id, "ok": False, "error": error})


# ---- MQTT transport -------------------------------------------------------------------------


def set_nodelay(sock: object) -> None:
    """Send small packets at once: a command result is two publishes back to back (and
    hall-admin's request waits for its answer), and Nagle's algorithm would hold the second
    until the broker's delayed ACK (~40 ms; bench/admin_roundtrip.py shows it).  ``sock`` is
    paho's ``client.socket()``: None when not connected; a TLS socket is a socket too."""
    if not isinstance(sock, socket.socket):
        return
    # Only latency is at stake: a socket that refuses the option is used as it is.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# ---- staff console passwords (console.account; `hall-admin console-account` makes them) ----------
# scrypt (memory-hard, in the standard library through OpenSSL): n=2^14, r=8 takes 16 MiB and
# ~50 ms on a desktop core, ~0.3 s on a Pi 3's; a guess from a stolen database costs as much.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (salt and hash base64): what ``console.account`` stores."""
    salt = salt if salt is not None else os.urandom(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes] | str:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return "not scrypt$N$r$p$salt$hash"
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return "N, r, p must be numbers and salt, hash base64"
    if n < 2**14 or n > 2**17 or n & (n - 1) or not 1 <= r <= 16 or not 1 <= p <= 4:
        return "N must be a power of 2 from 16384 to 131072, r 1-16 and p 1-4"
    if len(salt) < 16 or len(digest) != 32:
        return "the salt must have 16 bytes or more and the hash 32"
    return n, r, p, salt, digest


def password_hash_problem(stored: object) -> str | None:
    """Why ``stored`` is not a usable password hash, or None."""
    if not isinstance(stored, str) or len(stored) > 300:
        return "not a password hash (made by hall-admin console-account)"
    parsed = _parse_hash(stored)
    return parsed if isinstance(parsed, str) else None


def check_password(password: str, stored: str) -> bool:
    parsed = _parse_hash(stored)
    if isinstance(parsed, str):
        return False
    n, r, p, salt, digest = parsed
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)
