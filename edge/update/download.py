"""Fetch a release bundle: HTTPS (plain HTTP only from a named LAN mirror), size cap, resume.

Runs on the updater's worker thread, never on the core thread.  The bytes go to
``<folder>/<sha256>.part`` first: an interruption (a dropped connection, a
restart) keeps what arrived, and the next attempt asks only for the rest
(``Range: bytes=N-``).  A server that ignores the range answers 200 and the
file starts over.  More bytes than the signed size is a refusal, never a
bigger file.  Only a file whose SHA-256 is the signed one is renamed to its
final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import threading
import urllib.error
from pathlib import Path
from urllib.parse import urlsplit

from edge.records import record

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
ATTEMPTS = 5  # connections per download; each one resumes where the last stopped
BACKOFF_S = (1.0, 2.0, 5.0, 10.0)


class DownloadRefused(Exception):
    """The bundle is not to be used (``reason`` is the ``update.refused`` reason)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class DownloadFailed(Exception):
    """The bundle could not be fetched (network, server, disk): ``update.failed``, try again later."""


@record
class Source:
    """Where a bundle comes from and what it must be (all from the signed command)."""

    url: str
    sha256: str
    size: int


def check_url(url: str, http_hosts: tuple[str, ...]) -> None:
    """HTTPS anywhere; plain HTTP only from a host named in ``update.allow_http_hosts``."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and parts.hostname in http_hosts:
        return
    if parts.scheme == "http" and parts.hostname:
        raise DownloadRefused(
            "insecure_url",
            f"plain HTTP from {parts.hostname} is not allowed; use HTTPS, or name this LAN mirror in"
            " update.allow_http_hosts on site",
        )
    raise DownloadRefused("insecure_url", f"{url!r}: expected an https:// URL")


def fetch(
    source: Source,
    folder: Path,
    *,
    timeout_s: float,
    ca_file: str = "",
    cancel: threading.Event | None = None,
) -> Path:
    """Download to ``folder`` and return the verified file; raises DownloadRefused / DownloadFailed."""
    part = folder / f"{source.sha256}.part"
    final = folder / f"{source.sha256}.tar"
    if final.exists() and _sha256(final) == source.sha256:
        return final
    context = ssl.create_default_context(cafile=ca_file or None)
    last_error = ""
    for attempt in range(ATTEMPTS):
        if cancel is not None and cancel.is_set():
            raise DownloadFailed("stopped: the controller is shutting down")
        try:
            _one_attempt(source, part, timeout_s, context, cancel)
            break
        except DownloadRefused:
            part.unlink(missing_ok=True)  # more than signed: nothing of it is worth resuming
            raise
        except (OSError, urllib.error.URLError, TimeoutError) as exc:
            if (
                isinstance(exc, urllib.error.HTTPError)
                and 400 <= exc.code < 500
                and exc.code not in (408, 429)
            ):
                raise DownloadFailed(f"{source.url}: {_describe(exc)}") from None  # asking again: the same
            last_error = _describe(exc)
            log.warning("update download attempt %d failed: %s", attempt + 1, last_error)
            if attempt + 1 < ATTEMPTS and cancel is not None:
                cancel.wait(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    else:
        raise DownloadFailed(f"{ATTEMPTS} attempts failed; last: {last_error}")
    digest = _sha256(part)
    if digest != source.sha256:
        part.unlink()
        raise DownloadRefused(
            "wrong_hash", f"the file's SHA-256 is {digest}, the command says {source.sha256}"
        )
    os.replace(part, final)
    return final


def _one_attempt(
    source: Source,
    part: Path,
    timeout_s: float,
    context: ssl.SSLContext,
    cancel: threading.Event | None,
) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > source.size:
        part.unlink()
        have = 0
    if have == source.size:
        return
    # Loaded here, on the worker's first download: an idle controller carries no HTTP client
    # (urllib.request and http.client: about 0.4 MiB of its memory, bench/memory_map.py).
    import urllib.request

    request = urllib.request.Request(source.url, headers={"User-Agent": "hall-edge-updater"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    # urllib's timeout bounds the connection and every single read.
    with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
        if have and response.status != 206:  # the server sends the whole file: start over
            have = 0
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and have + int(declared) > source.size:
            raise DownloadRefused(
                "too_large", f"the server offers {have + int(declared)} bytes, the command says {source.size}"
            )
        with open(part, "ab" if have else "wb") as out:
            while True:
                if cancel is not None and cancel.is_set():
                    raise DownloadFailed("stopped: the controller is shutting down")
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                have += len(chunk)
                if have > source.size:
                    raise DownloadRefused(
                        "too_large", f"the server sent more than the {source.size} bytes signed"
                    )
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    if have < source.size:
        raise ConnectionError(f"the connection ended after {have} of {source.size} bytes")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
