"""The voice's clips: one WAV per word, made once with espeak-ng or recorded by the bureau.

Default clips are made with espeak-ng's Mandarin voice (``cmn-latn-pinyin``,
fed each word's tone-numbered pinyin: Debian's ``cmn`` dictionary reads most
hanzi as English letters) into ``<storage.dir>/voice/default/`` the first
time they are needed, and kept: ``made.json`` there records the pinyin each
was made from, so a changed word is made again and nothing else.  A folder
of recorded clips (``voice.clips_dir``) with the same file names overrides
them word by word.  Every clip is read into memory once, as 16-bit mono PCM
at ``RATE`` Hz, with its leading and trailing silence cut so that joined
words sound like a sentence.  Only that full-level copy is kept (45 words:
about 0.9 MiB); volume is applied to each piece of an announcement as it is
handed to the speaker (a word: ~10,000 samples, scaled in ~2 ms at full
speed, while the speaker spends ~0.4 s playing the piece before), so the
first sample waits only for the chime's scaling.  Copies kept per volume in
use cost the idle daemon 2.8 MiB with the default volume table.
"""

from __future__ import annotations

import array
import contextlib
import json
import logging
import math
import os
import subprocess
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from edge.phrases import Clip

log = logging.getLogger(__name__)

RATE = 22050  # espeak-ng's own rate: its clips need no conversion
CHIME_FILE = "chime"
ESPEAK_VOICE = "cmn-latn-pinyin"
ESPEAK_WORDS_PER_MINUTE = "150"  # a little slower than espeak's 175: a hall echoes
SILENCE_LEVEL = 300  # |sample| at or below this is silence when trimming (about -40 dB)
KEEP_SILENCE_S = 0.02  # left at each end of a trimmed clip
MADE_FILE = "made.json"
PREPARED_FILE = "clips.pcm"  # every clip, trimmed, at full level: what is played


class ClipError(Exception):
    """A clip file that cannot be used (missing, not a WAV, not 16-bit, empty)."""


class ClipMissing(ClipError):
    """No such clip file."""


@dataclass
class ClipSet:
    """The clips in force (word -> PCM at full level), with what went wrong finding them.

    The PCM of all of them is one file in the clip cache (``PREPARED_FILE``), read a piece at a
    time as it is played: the kernel's page cache holds it while memory is plentiful and may drop
    it when not, where the daemon's own heap could give nothing back.  Where that file cannot be
    written (a full disk), the PCM stays in memory instead.
    """

    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # word -> (offset, bytes)
    recorded: list[str] = field(default_factory=list)  # words said in the bureau's recorded voice
    missing: list[str] = field(default_factory=list)  # recorded clip files not in the folder
    unreadable: list[str] = field(default_factory=list)  # recorded clips that could not be used, and why
    unavailable: list[str] = field(default_factory=list)  # words with no clip at all (skipped when said)
    _file: BinaryIO | None = None
    _memory: bytes = b""

    @property
    def words(self) -> set[str]:
        """The words that have a clip (the chime is not a word)."""
        return set(self.spans) - {CHIME_FILE}

    def pcm(self, word: str) -> bytes | None:
        """A word's clip at full level (the chime under ``CHIME_FILE``); None if it has none."""
        span = self.spans.get(word)
        if span is None:
            return None
        offset, size = span
        if self._file is None:
            return self._memory[offset : offset + size]
        return os.pread(self._file.fileno(), size, offset)

    def keep(self, pieces: Mapping[str, bytes], cache_dir: Path) -> None:
        """Make ``pieces`` the clips: in the cache's PCM file (written only if it differs)."""
        blob = b"".join(pieces.values())
        offset = 0
        for word, pcm in pieces.items():
            self.spans[word] = (offset, len(pcm))
            offset += len(pcm)
        try:
            self._file = _prepared_file(cache_dir / PREPARED_FILE, blob)
        except OSError as exc:
            log.warning("voice clips kept in memory: %s cannot be written (%s)", PREPARED_FILE, exc)
            self._memory = blob


def _prepared_file(path: Path, blob: bytes) -> BinaryIO:
    """``path`` holding ``blob``, open for reading; rewritten only when it holds something else."""
    with contextlib.suppress(OSError):
        if path.stat().st_size == len(blob) and path.read_bytes() == blob:
            return path.open("rb")  # a restart: the SD card is not written
    partial = path.with_suffix(".partial")
    partial.write_bytes(blob)
    os.replace(partial, path)  # a cache: a torn file after a power cut differs, so is made again
    return path.open("rb")


def prepare(
    vocabulary: Mapping[str, Clip], cache_dir: Path, clips_dir: str, espeak: str = "espeak-ng"
) -> ClipSet:
    """Find, make where needed, and read every clip of the vocabulary (slow the first time)."""
    made = make_defaults(vocabulary, cache_dir, espeak)
    found = ClipSet()
    pieces: dict[str, bytes] = {}
    recorded_dir = Path(clips_dir) if clips_dir else None
    if recorded_dir is not None and not recorded_dir.is_dir():
        found.unreadable.append(f"{recorded_dir}: no such folder")
        recorded_dir = None
    for word, clip in {**vocabulary, CHIME_FILE: Clip(CHIME_FILE, "")}.items():
        pcm = None
        if recorded_dir is not None:
            try:
                pcm = read_wav(recorded_dir / f"{clip.file}.wav")
                found.recorded.append(word)
            except ClipMissing:
                found.missing.append(f"{clip.file}.wav")
            except ClipError as exc:
                found.unreadable.append(f"{clip.file}.wav: {exc}")
        if pcm is None:
            pcm = _default(word, made, cache_dir / f"{clip.file}.wav")
        if pcm:
            pieces[word] = pcm
        else:
            found.unavailable.append(word)
    found.keep(pieces, cache_dir)
    return found


def _default(word: str, made: set[str], path: Path) -> bytes | None:
    if word == CHIME_FILE:
        return chime()
    if word not in made:
        return None
    try:
        return read_wav(path)
    except ClipError as exc:
        log.warning("default clip %s: %s", path, exc)
        return None


def make_defaults(vocabulary: Mapping[str, Clip], cache_dir: Path, espeak: str = "espeak-ng") -> set[str]:
    """Make the missing default clips with espeak-ng; the words that have one afterwards."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("voice clip cache %s: %s", cache_dir, exc)
        return set()
    made_from = _read_made(cache_dir)
    have: set[str] = set()
    for word, clip in vocabulary.items():
        path = cache_dir / f"{clip.file}.wav"
        if made_from.get(clip.file) == clip.pinyin and path.is_file():
            have.add(word)
            continue
        if _espeak(espeak, clip.pinyin, path):
            made_from[clip.file] = clip.pinyin
            have.add(word)
    _write_made(cache_dir, made_from)
    return have


def _espeak(espeak: str, pinyin: str, path: Path) -> bool:
    partial = path.with_suffix(".partial")
    command = [espeak, "-v", ESPEAK_VOICE, "-s", ESPEAK_WORDS_PER_MINUTE, "-w", str(partial), pinyin]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=30)
        os.replace(partial, path)  # a half-made clip never takes a word's name
        return True
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("espeak-ng could not make %s: %s", path.name, exc)
        partial.unlink(missing_ok=True)
        return False


def _read_made(cache_dir: Path) -> dict[str, str]:
    try:
        made = json.loads((cache_dir / MADE_FILE).read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in made.items()} if isinstance(made, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_made(cache_dir: Path, made_from: dict[str, str]) -> None:
    try:
        temporary = cache_dir / (MADE_FILE + ".partial")
        temporary.write_text(json.dumps(made_from, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(temporary, cache_dir / MADE_FILE)
    except OSError as exc:
        log.warning("voice clip cache %s: %s", cache_dir, exc)


# ---- PCM -------------------------------------------------------------------


def read_wav(path: Path) -> bytes:
    """A WAV file as trimmed 16-bit mono PCM at RATE Hz; raises ClipError."""
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise ClipMissing("missing") from None
    except (OSError, EOFError, wave.Error) as exc:
        raise ClipError(f"unreadable ({exc})") from None
    if width != 2:
        raise ClipError(f"{8 * width}-bit samples; 16-bit PCM needed")
    samples = array.array("h", raw)  # WAV is little-endian, as the Pi and PCs are
    if channels > 1:
        frames = range(0, len(samples), channels)
        samples = array.array("h", (sum(samples[i : i + channels]) // channels for i in frames))
    if rate != RATE:
        samples = resample(samples, rate, RATE)
    samples = trim(samples)
    if not samples:
        raise ClipError("silent or empty")
    return samples.tobytes()


def trim(samples: array.array[int]) -> array.array[int]:
    """Cut the silence before and after the sound, keeping KEEP_SILENCE_S at each end."""
    first = next((i for i, v in enumerate(samples) if abs(v) > SILENCE_LEVEL), None)
    if first is None:
        return array.array("h")
    last = next(i for i in range(len(samples) - 1, -1, -1) if abs(samples[i]) > SILENCE_LEVEL)
    keep = int(KEEP_SILENCE_S * RATE)
    return samples[max(0, first - keep) : last + keep + 1]


def resample(samples: array.array[int], rate: int, to_rate: int) -> array.array[int]:
    """Linear interpolation: enough for speech going to a hall's loudspeaker."""
    if not samples or rate <= 0:
        return array.array("h")
    count = max(1, round(len(samples) * to_rate / rate))
    step = rate / to_rate
    last = len(samples) - 1
    out = array.array("h", bytes(2 * count))
    for n in range(count):
        position = n * step
        i = min(int(position), last)
        j = min(i + 1, last)
        fraction = position - i
        out[n] = int(samples[i] + (samples[j] - samples[i]) * fraction)
    return out


def scale(pcm: bytes, percent: int) -> bytes:
    """16-bit PCM at ``percent`` of its level."""
    if percent >= 100 or not pcm.strip(b"\0"):  # silence stays silence, at no cost
        return pcm
    if percent <= 0:
        return bytes(len(pcm))
    samples = array.array("h", pcm)
    factor = percent / 100
    return array.array("h", (int(v * factor) for v in samples)).tobytes()


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * RATE))


def chime() -> bytes:
    """The default chime: a two-note 叮咚 (E6 then C6), each dying away, at half level."""
    notes = ((1318.5, 0.35), (1046.5, 0.55))
    samples = array.array("h")
    for frequency, seconds in notes:
        count = int(seconds * RATE)
        for n in range(count):
            decay = math.exp(-4.0 * n / count)
            samples.append(int(16000 * decay * math.sin(2 * math.pi * frequency * n / RATE)))
    return samples.tobytes()


def write_wav(path: Path, pcm: bytes) -> None:
    """16-bit mono PCM at RATE as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
