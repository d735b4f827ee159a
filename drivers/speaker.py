"""Sound out: PCM played through ALSA (``aplay``) or into the simulator's speaker socket.

Bytes only, no hall rules.  ``play(chunks, words)`` blocks until the sound
has been played (aplay drains the card before it exits; the simulator's
speaker answers once it has played the stream), so a caller that plays one
sound after another never overlaps two.  The chunks are handed to the output
as they come: the first one sounds while the later ones are still being
joined.

Why aplay and not a Python ALSA binding: aplay ships with alsa-utils on every
Raspberry Pi OS image and is maintained with ALSA itself; the bindings on
PyPI (pyalsaaudio, simpleaudio, sounddevice) need a compiler or PortAudio on
the Pi, and a crash in one takes the daemon down, while a failing aplay is
one process that exits with a message.  Starting it costs a few
milliseconds per announcement, which the latency budget allows.

Format: signed 16-bit little-endian mono (``S16_LE``) at ``rate`` Hz.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

SAMPLE_FORMAT = "S16_LE"
SAMPLE_BYTES = 2
PROBE_SAMPLES = 256
DRAIN_MARGIN_S = 10.0  # beyond the sound's own length, before a stuck output is given up


class SpeakerError(Exception):
    """The sound could not be played; ``word`` is ``no_device`` (nothing to play on) or ``failed``."""

    def __init__(self, word: str, message: str) -> None:
        super().__init__(message)
        self.word = word
        self.message = message


class Speaker(Protocol):
    def play(self, chunks: Iterable[bytes], words: Sequence[str], seconds: float) -> None:
        """Play the PCM chunks (``seconds`` long in all), return once played; raises SpeakerError."""

    def check(self) -> None:
        """Whether there is something to play on (at start, before any call); raises SpeakerError."""


class AlsaSpeaker:
    """``aplay`` on an ALSA device (``default``, ``plughw:1,0``, ...), one process per sound."""

    def __init__(self, device: str, rate: int, aplay: str = "aplay") -> None:
        self.command = [
            aplay,
            "-q",
            "-D",
            device,
            "-t",
            "raw",
            "-f",
            SAMPLE_FORMAT,
            "-r",
            str(rate),
            "-c",
            "1",
        ]

    def check(self) -> None:
        self.play([bytes(2 * PROBE_SAMPLES)], (), 0.0)  # a few ms of silence: the card opens or not

    def play(self, chunks: Iterable[bytes], words: Sequence[str], seconds: float) -> None:
        try:
            process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:  # aplay not installed (alsa-utils)
            raise SpeakerError("no_device", f"{self.command[0]}: {exc.strerror}") from None
        assert process.stdin is not None and process.stderr is not None  # both are pipes
        # A card that stops taking samples would block the writes for ever: past the sound's
        # length and a margin aplay is killed, which ends the writes and the wait below.
        deadline = threading.Timer(seconds + DRAIN_MARGIN_S, process.kill)
        deadline.start()
        try:
            for chunk in chunks:
                process.stdin.write(chunk)
                process.stdin.flush()
            process.stdin.close()
        except BrokenPipeError:
            pass  # aplay gave up (no card) or was killed: its exit code and message say why
        finally:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            code = process.wait()
            deadline.cancel()
            message = _last_line(process.stderr.read())
            process.stderr.close()
        if code == -signal.SIGKILL:
            raise SpeakerError("failed", "aplay did not finish playing in time")
        if code != 0:
            no_device = "audio open error" in message or "cannot find card" in message
            raise SpeakerError("no_device" if no_device else "failed", message or f"aplay exited {code}")


class SocketSpeaker:
    """The simulator's speaker: a unix stream socket, one connection per sound (docs/voice.md).

    Sent: one JSON line ``{"format": "S16_LE", "rate": 22050, "channels": 1, "words": [...]}``,
    then the PCM, then end of stream; the speaker answers one JSON line once it has played it.
    """

    def __init__(self, path: str, rate: int) -> None:
        self.path = path
        self.rate = rate

    def check(self) -> None:
        """Connect and hang up at once: the speaker takes a connection that sends nothing as a probe."""
        self._connect().close()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(DRAIN_MARGIN_S)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise SpeakerError("no_device", f"speaker socket {self.path}: {exc.strerror}") from None
        return sock

    def play(self, chunks: Iterable[bytes], words: Sequence[str], seconds: float) -> None:
        sock = self._connect()
        try:
            header = {"format": SAMPLE_FORMAT, "rate": self.rate, "channels": 1, "words": list(words)}
            try:
                sock.sendall(json.dumps(header, ensure_ascii=False).encode() + b"\n")
                for chunk in chunks:
                    sock.sendall(chunk)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(seconds + DRAIN_MARGIN_S)
                answer = sock.makefile("rb").readline()
            except OSError as exc:
                raise SpeakerError("failed", f"speaker socket {self.path}: {exc}") from None
            if not answer:
                raise SpeakerError("failed", "the speaker closed without saying it played")
        finally:
            sock.close()


def _last_line(raw: bytes) -> str:
    lines = raw.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""
