"""Signed release bundles: what one is, and whether a given file is a good one.

A bundle is one plain tar file ``hall-edge-VERSION.tar`` (the wheels inside are
compressed already) holding exactly:

- ``manifest.json``: ``{"schema": "hall-edge.release/1", "version": "0.2.0",
  "min_replaces": "0.1.0", "built_at": "2026-12-01T00:00:00+00:00",
  "python": "3.11", "platforms": ["aarch64", "armv7l", "x86_64"],
  "files": {"wheels/NAME.whl": {"sha256": HEX, "size": N}, ...}}``;
- ``manifest.sig``: ``{"kid": "rel-2026a", "alg": "ed25519", "sig": BASE64}``,
  the Ed25519 signature of the exact bytes of manifest.json by a *release*
  key (``releases.public_keys`` in the configuration, never a command key);
- every file the manifest lists (``wheels/*.whl``, ``wheels/*.tar.gz`` for a
  source distribution), and nothing else.

``read_bundle`` checks all of that before anything in the bundle is used, and
only reads: it never unpacks.  ``copy_member`` is the one way to take a file
out of a bundle (edge/releases.py uses it): by a name the signed manifest
lists, into a folder the caller names, hashed again on the way, so a bundle
swapped after ``read_bundle`` cannot slip anything in either.  A hostile tar
(absolute names, ``..``, links, devices, the same name twice) is refused whole
as ``malformed_bundle``; nothing of it is ever written.

This module is pure: no configuration, no logging, no I/O but reading the
bundle (and the one file ``copy_member`` writes).  docs/releases.md describes
the format for bureau IT.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from edge.protocol import Envelope, VerifyKey, check_signature, escaped, signature_b64
from edge.records import record

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SCHEMA = "hall-edge.release/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
ALGORITHM = "ed25519"
MAX_MANIFEST_BYTES = 1 << 20  # a manifest lists a few dozen files: 1 MiB is far beyond any real one
CHUNK = 1 << 16

# Why a bundle is refused: the ``reason`` of ReleaseRefused (and of update.failed events).
REFUSAL_REASONS = (
    "malformed_bundle",  # not a tar, or a member that is not a plain file with a plain name
    "unknown_release_key",  # manifest.sig names a kid that releases.public_keys lacks
    "bad_signature",  # the signature does not verify over manifest.json
    "tampered_file",  # a file's size or sha256 differs from the manifest, or a file is missing/extra
)

_FILE_NAME = re.compile(r"wheels/[A-Za-z0-9][A-Za-z0-9._+-]*\.(whl|tar\.gz)")
_VERSION = re.compile(
    r"(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev(\d+))?(?:\+([a-z0-9]+(?:\.[a-z0-9]+)*))?"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ReleaseRefused(Exception):
    """The bundle is not used; ``reason`` is one of REFUSAL_REASONS, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@record
class FileEntry:
    sha256: str
    size: int


@record
class Manifest:
    """A verified manifest: every field checked, ``raw`` the exact bytes the signature covers."""

    version: str
    min_replaces: str
    built_at: str
    python: str
    platforms: tuple[str, ...]
    files: Mapping[str, FileEntry]
    kid: str
    raw: bytes
    signed: bool = True  # False only from read_bundle(..., unsigned_ok=True) with an unknown kid

    @property
    def wheels(self) -> list[str]:
        """The listed file names, sorted (``wheels/...``)."""
        return sorted(self.files)

    def size(self) -> int:
        """Bytes of all listed files: what unpacking needs before the venv is built."""
        return sum(entry.size for entry in self.files.values())


# ---- versions ---------------------------------------------------------------------------------


def version_key(version: str) -> tuple[Any, ...]:
    """A sort key for ``1.2.3``, ``1.2.3rc1``, ``1.2.3.post1``, ``1.2.3.dev2`` (a PEP 440 subset).

    A local label (``0.1.0+src.1a2b3c4d``: a release the installer built from a checkout) does
    not order: ``0.1.0+src.x`` is the same version as ``0.1.0``.

    ValueError for anything else: a version we cannot order is never compared by accident.
    """
    found = _VERSION.fullmatch(version)
    if found is None:
        raise ValueError(f"{version!r} is not a version like 0.2.0 or 0.2.0rc1")
    release_text, pre_kind, pre_number, post, dev, _local = found.groups()
    release = [int(part) for part in release_text.split(".")]
    while len(release) > 1 and release[-1] == 0:  # 0.2 == 0.2.0
        release.pop()
    # A final release sorts after its pre-releases; a .dev before everything else of its kind.
    pre = (("a", "b", "rc").index(pre_kind), int(pre_number)) if pre_kind else (3, 0)
    if dev and not pre_kind and not post:
        pre = (-1, 0)  # 1.0.dev1 comes before 1.0a1, as in PEP 440
    return (tuple(release), pre, int(post) if post else -1, int(dev) if dev else 1 << 62)


def compare_versions(a: str, b: str) -> int:
    """-1 when ``a`` is older than ``b``, 0 when the same, 1 when newer (ValueError: not a version)."""
    key_a, key_b = version_key(a), version_key(b)
    return (key_a > key_b) - (key_a < key_b)


# ---- reading a bundle --------------------------------------------------------------------------


def read_bundle(
    path: str | Path, trusted_keys: Mapping[str, VerifyKey], *, unsigned_ok: bool = False
) -> Manifest:
    """The verified manifest of the bundle at ``path``; ReleaseRefused says why it is not one.

    ``trusted_keys``: the release keys by kid (``protocol.load_public_keys`` of
    ``releases.public_keys``).  Checked in this order, so the first failing
    check names the refusal: the tar's members (names and kinds), the
    signature, the manifest's fields, then every file's size and sha256.

    ``unsigned_ok``: only for the installer run by root on a bundle root
    carried to the Pi, before any release key is configured: a kid that is not
    trusted is let through (``Manifest.signed`` False), everything else is
    checked.  A bad signature by a trusted key is refused all the same.  The
    ``update`` command never sets it.
    """
    with _open_tar(path) as tar:
        members = _plain_members(tar)
        raw = _read_member(tar, members, MANIFEST, MAX_MANIFEST_BYTES)
        signature = _read_member(tar, members, SIGNATURE, 64 * 1024)
        signed = True
        try:
            kid = _check_signature(raw, signature, trusted_keys)
        except ReleaseRefused as refused:
            if not (unsigned_ok and refused.reason == "unknown_release_key"):
                raise
            kid, signed = str(json.loads(signature)["kid"]), False
        manifest = _parse_manifest(raw, kid, signed)
        listed = set(manifest.files)
        present = set(members) - {MANIFEST, SIGNATURE}
        if present - listed:
            extra = sorted(present - listed)[0]
            raise ReleaseRefused("tampered_file", f"{extra} is in the bundle but not in the signed manifest")
        if listed - present:
            missing = sorted(listed - present)[0]
            raise ReleaseRefused("tampered_file", f"{missing} is in the manifest but not in the bundle")
        for name in manifest.wheels:
            with _extracted(tar, members[name]) as stream:
                _check_file(name, stream, manifest.files[name], None)
    return manifest


def copy_member(path: str | Path, manifest: Manifest, name: str, folder: Path) -> Path:
    """Write the listed file ``name`` of the bundle into ``folder`` (its base name); its path.

    The bytes are hashed as they are written: a file that no longer matches the
    manifest (the bundle was replaced since ``read_bundle``) is removed again
    and refused as ``tampered_file``.
    """
    if name not in manifest.files:
        raise ReleaseRefused("tampered_file", f"{name} is not in the signed manifest")
    target = folder / PurePosixPath(name).name
    with _open_tar(path) as tar:
        members = _plain_members(tar)
        if name not in members:
            raise ReleaseRefused("tampered_file", f"{name} is in the manifest but not in the bundle")
        with _extracted(tar, members[name]) as stream, target.open("xb") as out:
            try:
                _check_file(name, stream, manifest.files[name], out)
            except ReleaseRefused:
                out.close()
                target.unlink()
                raise
    return target


def _open_tar(path: str | Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")  # plain tar only: no decompressor runs on untrusted input
    except (tarfile.TarError, EOFError) as exc:
        raise ReleaseRefused("malformed_bundle", f"not a plain tar file ({exc})") from None
    except OSError as exc:
        raise ReleaseRefused("malformed_bundle", f"cannot be read ({exc.strerror or exc})") from None


def _plain_members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Every member by name; refused unless each is a regular file (or a folder) with a plain name."""
    found: dict[str, tarfile.TarInfo] = {}
    try:
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ReleaseRefused("malformed_bundle", f"the tar is damaged ({exc})") from None
    for member in members:
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or "\\" in name or "\x00" in name or not parts:
            raise ReleaseRefused("malformed_bundle", f"member {name!r} has an absolute or parent path")
        if member.isdir():
            continue  # `tar cf` writes folder entries; nothing is made of them
        if not member.isreg():
            raise ReleaseRefused("malformed_bundle", f"member {name!r} is a link or a device, not a file")
        clean = PurePosixPath(*parts).as_posix()
        if clean not in (MANIFEST, SIGNATURE) and not _FILE_NAME.fullmatch(clean):
            raise ReleaseRefused("malformed_bundle", f"member {name!r} is not manifest.*, wheels/*.whl")
        if clean in found:
            raise ReleaseRefused("malformed_bundle", f"member {clean!r} is in the tar twice")
        found[clean] = member
    return found


def _read_member(
    tar: tarfile.TarFile, members: Mapping[str, tarfile.TarInfo], name: str, limit: int
) -> bytes:
    member = members.get(name)
    if member is None:
        raise ReleaseRefused("malformed_bundle", f"{name} is missing")
    if member.size > limit:
        raise ReleaseRefused("malformed_bundle", f"{name} is {member.size} bytes, over {limit}")
    with _extracted(tar, member) as stream:
        return stream.read(limit + 1)


class _extracted:
    """``tar.extractfile`` as a context manager that turns a damaged tar into a refusal."""

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.tar = tar
        self.member = member
        self.stream: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        try:
            self.stream = self.tar.extractfile(self.member)
        except (tarfile.TarError, OSError) as exc:
            raise ReleaseRefused("malformed_bundle", f"{self.member.name}: {exc}") from None
        if self.stream is None:
            raise ReleaseRefused("malformed_bundle", f"{self.member.name} is not a file")
        return self.stream

    def __exit__(self, *_exc: object) -> None:
        if self.stream is not None:
            self.stream.close()


def _chunks(stream: IO[bytes], name: str) -> Iterator[bytes]:
    while True:
        try:
            chunk = stream.read(CHUNK)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ReleaseRefused("malformed_bundle", f"{name}: the tar ends early ({exc})") from None
        if not chunk:
            return
        yield chunk


def _check_file(name: str, stream: IO[bytes], entry: FileEntry, out: IO[bytes] | None) -> None:
    digest = hashlib.sha256()
    size = 0
    for chunk in _chunks(stream, name):
        size += len(chunk)
        if size > entry.size:
            break
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    if size != entry.size:
        raise ReleaseRefused("tampered_file", f"{name} is not {entry.size} bytes as the manifest says")
    if digest.hexdigest() != entry.sha256:
        raise ReleaseRefused("tampered_file", f"{name}: its sha256 differs from the manifest's")


def _check_signature(raw: bytes, signature: bytes, trusted_keys: Mapping[str, VerifyKey]) -> str:
    try:
        sig = json.loads(signature.decode("utf-8"))
        text = raw.decode("utf-8")
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ReleaseRefused("malformed_bundle", "manifest.json or manifest.sig is not UTF-8 JSON") from None
    if not isinstance(sig, dict) or not all(isinstance(sig.get(k), str) for k in ("kid", "alg", "sig")):
        raise ReleaseRefused("malformed_bundle", "manifest.sig needs string fields kid, alg and sig")
    if sig["alg"] != ALGORITHM:
        raise ReleaseRefused("malformed_bundle", f"manifest.sig: alg {sig['alg'][:32]!r} is not ed25519")
    if sig["kid"] not in trusted_keys:  # decided before cryptography loads: a bare Pi's first
        # install runs on the system's Python, which may lack it (python3-cryptography)
        raise ReleaseRefused(
            "unknown_release_key",
            f"no public key {escaped(sig['kid'][:64])!r} is configured in releases.public_keys"
            " (the bundle's signer)",
        )
    # The same check as a signed command's: the signature covers the exact bytes of the text.
    refusal = check_signature(Envelope(text, sig["kid"], sig["sig"]), trusted_keys)
    if refusal is None:
        return str(sig["kid"])
    if refusal.reason == "unknown_kid":
        raise ReleaseRefused(
            "unknown_release_key", f"{refusal.message} in releases.public_keys (the bundle's signer)"
        )
    raise ReleaseRefused("bad_signature", refusal.message)


def _parse_manifest(raw: bytes, kid: str, signed: bool) -> Manifest:
    """The signed manifest's fields; malformed_bundle when one is missing or of the wrong kind."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ReleaseRefused("malformed_bundle", "manifest.json is not JSON") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ReleaseRefused("malformed_bundle", f"manifest.json is not a {SCHEMA} manifest")
    strings = ("version", "min_replaces", "built_at", "python")
    for key in strings:
        if not isinstance(data.get(key), str):
            raise ReleaseRefused("malformed_bundle", f"manifest.json: {key} must be a string")
    for key in ("version", "min_replaces"):
        try:
            version_key(data[key])
        except ValueError as exc:
            raise ReleaseRefused("malformed_bundle", f"manifest.json: {key}: {exc}") from None
    platforms = data.get("platforms")
    if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
        raise ReleaseRefused("malformed_bundle", "manifest.json: platforms must be a list of strings")
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise ReleaseRefused("malformed_bundle", "manifest.json: files must list the bundle's files")
    entries: dict[str, FileEntry] = {}
    for name, entry in files.items():
        if not _FILE_NAME.fullmatch(name):
            raise ReleaseRefused("malformed_bundle", f"manifest.json: {name[:80]!r} is not wheels/NAME.whl")
        sha, size = (entry.get("sha256"), entry.get("size")) if isinstance(entry, dict) else (None, None)
        if not (isinstance(sha, str) and _SHA256.fullmatch(sha) and type(size) is int and size >= 0):
            raise ReleaseRefused("malformed_bundle", f"manifest.json: {name} needs sha256 (hex) and size")
        entries[name] = FileEntry(sha, size)
    return Manifest(
        version=data["version"],
        min_replaces=data["min_replaces"],
        built_at=data["built_at"],
        python=data["python"],
        platforms=tuple(platforms),
        files=entries,
        kid=kid,
        raw=raw,
        signed=signed,
    )


def manifest_bytes(
    *,
    version: str,
    min_replaces: str,
    built_at: str,
    python: str,
    platforms: list[str],
    files: Mapping[str, FileEntry],
) -> bytes:
    """manifest.json as ``hall-admin release build`` writes it (sorted keys, one line per file)."""
    document = {
        "schema": SCHEMA,
        "version": version,
        "min_replaces": min_replaces,
        "built_at": built_at,
        "python": python,
        "platforms": platforms,
        "files": {name: {"sha256": e.sha256, "size": e.size} for name, e in sorted(files.items())},
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")


def signature_bytes(raw: bytes, key: Ed25519PrivateKey, kid: str) -> bytes:
    """manifest.sig for the manifest bytes ``raw``, signed with the release key ``kid``."""
    document = {"kid": kid, "alg": ALGORITHM, "sig": signature_b64(raw, key)}
    return (json.dumps(document, sort_keys=True) + "\n").encode("utf-8")
