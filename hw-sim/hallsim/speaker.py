"""The simulated loudspeaker: plays what the daemon's voice sends and keeps each sound as played.

The daemon (``voice.socket = "<socket>"``) connects once per announcement
to a unix stream socket and sends, as docs/voice.md describes: one JSON line
``{"format": "S16_LE", "rate": 22050, "channels": 1, "words": [...]}``, the
PCM, then end of stream; a connection that sends nothing is the daemon's
probe.  ``SimSpeaker`` takes the samples no faster than a sound card would
(``speed`` times real time: 1.0 for people, more for benchmarks), and once
the last sample has "sounded" writes ``speaker/NNNN.wav`` and
``speaker/NNNN.txt`` (its words) under the data folder, appends a line to
``speaker/index.jsonl`` (times, samples, whether it overlapped another) and
answers ``{"played": N}``.  Written from that format, independently of the
daemon's code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import wave
from collections import deque
from pathlib import Path
from typing import Any

from hallsim.listener import UnixListener

log = logging.getLogger(__name__)

INDEX = "index.jsonl"
CHUNK = 4096


class SimSpeaker:
    def __init__(self, socket_path: str | Path, folder: str | Path, speed: float = 1.0) -> None:
        self.socket_path = str(socket_path)
        self.folder = Path(folder)
        self.speed = speed
        self.played = 0
        self.overlaps = 0  # sounds that began while another was still sounding
        self.probes = 0
        self.bad = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=10)
        self._sounding = 0
        self._number = 0
        self._lock = threading.Lock()
        self._listener = UnixListener(self.socket_path, self._sound, "sim-speaker", backlog=16)

    def start(self) -> SimSpeaker:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._number = max((int(p.stem) for p in self.folder.glob("*.wav") if p.stem.isdigit()), default=0)
        # One thread per sound, as a card mixing two streams would: an overlap is seen, not hidden.
        self._listener.start()
        return self

    def stop(self) -> None:
        self._listener.stop()

    def unplug(self) -> None:
        """The speaker's cable is pulled: the daemon cannot connect (a sound in hand plays out)."""
        self._listener.stop()

    def plug(self) -> None:
        self._listener.start()

    @property
    def plugged(self) -> bool:
        return self._listener.listening

    def __enter__(self) -> SimSpeaker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _sound(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            reader = conn.makefile("rb")
            try:
                line = reader.readline()
                if not line:
                    self.probes += 1
                    return
                header = json.loads(line)
                rate, words = int(header["rate"]), [str(w) for w in header["words"]]
                if header.get("format") != "S16_LE" or header.get("channels") != 1 or rate <= 0:
                    raise ValueError(f"unsupported format {header}")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.bad += 1
                log.warning("sim speaker: bad stream: %s", exc)
                return
            entry = self._play(reader, rate, words)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"played": entry["n"]}).encode() + b"\n")

    def _play(self, reader: Any, rate: int, words: list[str]) -> dict[str, Any]:
        with self._lock:
            self._sounding += 1
            overlapped = self._sounding > 1
            self.overlaps += overlapped
        pcm = bytearray()
        first_sample_at: float | None = None
        started = time.monotonic()
        try:
            while chunk := reader.read1(CHUNK):
                if first_sample_at is None:
                    first_sample_at = time.monotonic()
                    started = first_sample_at
                pcm += chunk
                ahead = len(pcm) / (2 * rate * self.speed) - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # a card takes samples no faster than it sounds them
        except OSError as exc:
            log.warning("sim speaker: stream cut: %s", exc)
        ended = time.monotonic()
        with self._lock:
            self._sounding -= 1
            self._number += 1
            number = self._number
        entry = {
            "n": number,
            "words": " ".join(words),
            "samples": len(pcm) // 2,
            "seconds": round(len(pcm) / (2 * rate), 3),
            "first_sample_at": first_sample_at,  # time.monotonic(): the same clock in every process
            "ended_at": ended,
            "overlapped": overlapped,
            "wall": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self._save(number, bytes(pcm), rate, words, entry)
        return entry

    def _save(self, number: int, pcm: bytes, rate: int, words: list[str], entry: dict[str, Any]) -> None:
        stem = self.folder / f"{number:04d}"
        with wave.open(str(stem.with_suffix(".wav")), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            wav.writeframes(pcm)
        stem.with_suffix(".txt").write_text(" ".join(words) + "\n", encoding="utf-8")
        with self._lock, (self.folder / INDEX).open("a", encoding="utf-8") as index:
            index.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self.played += 1
            self.recent.append(entry)

    def report(self, last: int = 5) -> dict[str, Any]:
        """For ``hall-sim status``: counts and the last few sounds, newest last."""
        with self._lock:
            recent = list(self.recent)[-last:]
        return {
            "played": self.played,
            "overlaps": self.overlaps,
            "folder": str(self.folder),
            "last": [f"{e['n']:04d} {e['words']} ({e['seconds']} s)" for e in recent],
        }


def read_index(folder: str | Path) -> list[dict[str, Any]]:
    """Every sound the speaker played, in the order they ended (for tests and benchmarks)."""
    path = Path(folder) / INDEX
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]
