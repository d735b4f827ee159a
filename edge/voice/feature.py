"""The voice: announcements said through the hall's speaker, one at a time, in order.

Features post ``edge.messages.Announce(words, key, repeat)``.  The core
thread keeps the waiting announcements (a bounded deque: when it is full the
oldest waiting one is dropped and counted) and hands one at a time to the
player thread, which joins the clips (chime, then the words, ``repeat``
times) and plays them; when the speaker says it has played, the player posts
``Played`` and the core hands over the next.  An announcement whose key is
already waiting replaces the waiting one in its place (a recall while the
call has not been said yet is said once, at the call's turn).

Volume follows the time of day (``[[voice.volume]]``); at 0 % (outside
opening hours) nothing is said and the announcement is counted as silenced.
The clips are made and read on the player thread at start, so the core is
never held up; announcements wait meanwhile.  A speaker that cannot play
(no sound card, aplay missing, the simulator's speaker gone) raises one
``alarm.speaker`` and the hall carries on; the next sound that plays clears
it.  Recorded clips that are missing or unreadable fall back to the default
voice with one ``alarm.voice_clips``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.speaker import AlsaSpeaker, SocketSpeaker, Speaker, SpeakerError
from edge.core import Core
from edge.libc import give_back_freed_memory
from edge.messages import Announce
from edge.phrases import VOCABULARY, unknown_words
from edge.records import record
from edge.settings import Settings, VolumeSettings
from edge.voice.clips import CHIME_FILE, RATE, ClipSet, chime, prepare, scale, silence

log = logging.getLogger(__name__)

WORD_GAP_S = 0.06  # between two words of a sentence
REPEAT_GAP_S = 0.7  # between two sayings of the sentence
AFTER_CHIME_S = 0.25
RECENT = 10  # announcements kept for status
BACKGROUND_NICE = 10  # the clips made at start: after the start itself, the keys and the screen
MIGRATIONS = [
    """
    CREATE TABLE voice_alarm (
        name TEXT PRIMARY KEY,  -- 'speaker' | 'voice_clips'
        detail TEXT NOT NULL    -- what was raised: the same again after a restart is not news
    )
    """,
]


@record
class Turn:
    """One announcement handed to the player: what to say, how often, how loud."""

    number: int
    words: tuple[str, ...]
    repeat: int
    percent: int
    asked_at: float  # monotonic, when the Announce was taken by the core


@record
class Played:
    """The player finished a turn (``error``: the speaker's fault word and message, if it failed)."""

    turn: Turn
    started_at: float
    ended_at: float
    error: tuple[str, str] | None = None


@record
class ClipsReady:
    """The player has the clips (the problems finding them, for the alarm)."""

    recorded: int
    missing: tuple[str, ...]
    unreadable: tuple[str, ...]
    unavailable: tuple[str, ...]


@record
class SpeakerChecked:
    """The player's probe of the speaker at start (``error`` as in Played)."""

    error: tuple[str, str] | None


_STOP = None


class VoiceFeature:
    name = "voice"

    def __init__(self, config: Settings, speaker: Speaker | None = None) -> None:
        self.voice = config.voice
        self.cache_dir = Path(config.storage.dir) / "voice" / "default"
        self.speaker = speaker or make_speaker(config)
        self.core: Core  # set by start()
        self.waiting: deque[Turn] = deque()
        self.keys: dict[int, str] = {}  # turn number -> key, for the waiting turns that have one
        self.playing: Turn | None = None
        self.ready = False  # clips read
        self.numbers = 0
        self.counts = {"played": 0, "dropped": 0, "merged": 0, "silenced": 0, "failed": 0, "refused": 0}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.clips_found = ClipsReady(0, (), (), ())
        self.speaker_fault: str | None = None
        self.open_alarms: dict[str, str] = {}  # name -> detail, as in voice_alarm
        self._turns: queue.SimpleQueue[Turn | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.clips = ClipSet()

    # -- life cycle ------------------------------------------------------

    def start(self, core: Core) -> None:
        self.core = core
        core.storage.migrate("voice", MIGRATIONS)
        self.open_alarms = dict(core.storage.execute("SELECT name, detail FROM voice_alarm").fetchall())
        self.speaker_fault = self.open_alarms.get("speaker")
        core.subscribe(Announce, self.announce)
        core.subscribe(Played, self._on_played)
        core.subscribe(ClipsReady, self._on_clips_ready)
        core.subscribe(SpeakerChecked, lambda checked: self._speaker_state(*(checked.error or ("ok", ""))))
        core.register_status("voice", self.status)
        core.set_component("speaker", "starting")
        self._thread = threading.Thread(target=self._player, name="voice", daemon=True)
        # Once the core runs (READY follows at once): the clips' work must not slow the start.
        core.call_soon(self._thread.start)

    def stop(self) -> None:
        if self._thread is not None and self._thread.ident is not None:
            self._turns.put(_STOP)
            # A sound being played is not waited for: the daemon's stop stays under 2 s.
            self._thread.join(timeout=0.5)

    # -- core thread -----------------------------------------------------

    def announce(self, message: Announce) -> None:
        bad = unknown_words(message.words)
        repeat = self.voice.repeat if message.repeat is None else message.repeat
        if bad or not message.words or not 1 <= repeat <= 10:
            self.counts["refused"] += 1
            log.warning("announcement refused: words %s (unknown %s), repeat %r", message.words, bad, repeat)
            return
        percent = volume_at(self.voice.volume, self.core.clock.now())
        self.numbers += 1
        turn = Turn(self.numbers, message.words, repeat, percent, time.monotonic())
        if percent == 0:
            self.counts["silenced"] += 1
            self._remember(turn, "silenced")
            return
        if message.key is not None and self._replace_waiting(message.key, turn):
            return
        if len(self.waiting) >= self.voice.queue_max:
            dropped = self.waiting.popleft()
            self.keys.pop(dropped.number, None)
            self.counts["dropped"] += 1
            self._remember(dropped, "dropped")
            log.warning("voice queue full: dropped %s", " ".join(dropped.words))
        self.waiting.append(turn)
        if message.key is not None:
            self.keys[turn.number] = message.key
        self._next()

    def _replace_waiting(self, key: str, turn: Turn) -> bool:
        for index, waiting in enumerate(self.waiting):
            if self.keys.get(waiting.number) == key:
                # Same place in the line, the newest words (a transfer may have changed the window).
                replacement = Turn(waiting.number, turn.words, turn.repeat, turn.percent, waiting.asked_at)
                self.waiting[index] = replacement
                self.counts["merged"] += 1
                return True
        return False

    def _next(self) -> None:
        if self.playing is not None or not self.ready or not self.waiting:
            return
        turn = self.waiting.popleft()
        self.keys.pop(turn.number, None)
        self.playing = turn
        self._turns.put(turn)

    def _on_played(self, played: Played) -> None:
        self.playing = None
        if played.error is None:
            self.counts["played"] += 1
            self._remember(played.turn, "played", played.started_at - played.turn.asked_at)
            self._speaker_state("ok", "")
        else:
            self.counts["failed"] += 1
            self._remember(played.turn, "failed")
            self._speaker_state(*played.error)
        self._next()

    def _speaker_state(self, word: str, message: str) -> None:
        """One alarm when the speaker starts failing, one when it plays again."""
        if word == "ok":
            if self.speaker_fault is not None:
                self._alarm("speaker", None, {"state": "ok", "previous": self.speaker_fault})
                self.speaker_fault = None
        elif self.speaker_fault is None:
            log.warning("speaker: %s (%s); the hall carries on without the voice", word, message)
            self._alarm("speaker", word, {"state": word, "reason": message[:200]})
            self.speaker_fault = word
        self.core.set_component("speaker", word)

    def _alarm(self, name: str, detail: str | None, data: dict[str, Any]) -> None:
        """``alarm.<name>`` raised (``detail``) or cleared (None), once: kept in SQLite, so a
        restart with the same trouble says nothing new."""
        if self.open_alarms.get(name) == detail:
            return
        with self.core.storage.transaction() as db:
            if detail is None:
                db.execute("DELETE FROM voice_alarm WHERE name = ?", (name,))
            else:
                db.execute("INSERT OR REPLACE INTO voice_alarm (name, detail) VALUES (?, ?)", (name, detail))
            self.core.emit(f"alarm.{name}", data)
        if detail is None:
            self.open_alarms.pop(name, None)
        else:
            self.open_alarms[name] = detail

    def _on_clips_ready(self, ready: ClipsReady) -> None:
        self.ready = True
        self.clips_found = ready
        trouble = ready.missing or ready.unreadable or ready.unavailable
        if not trouble:
            self._alarm("voice_clips", None, {"state": "ok", "clips_dir": self.voice.clips_dir})
        else:
            log.warning(
                "voice clips: recorded %d, missing %s, unreadable %s; words with no clip at all: %s",
                ready.recorded,
                ready.missing,
                ready.unreadable,
                ready.unavailable,
            )
            facts = {
                "state": "no_clips" if ready.unavailable else "fallback",
                "clips_dir": self.voice.clips_dir,
                "recorded": ready.recorded,
                "missing": list(ready.missing),
                "unreadable": list(ready.unreadable),
                "unavailable": list(ready.unavailable),
            }
            self._alarm("voice_clips", json.dumps(facts, sort_keys=True, ensure_ascii=False), facts)
        self.core.set_component("speaker", "ok" if self.speaker_fault is None else self.speaker_fault)
        self._next()

    def _remember(self, turn: Turn, outcome: str, delay_s: float | None = None) -> None:
        entry: dict[str, Any] = {"n": turn.number, "words": " ".join(turn.words), "outcome": outcome}
        if delay_s is not None:
            entry["delay_ms"] = round(delay_s * 1000)
        self.recent.append(entry)

    def status(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker_fault or ("ok" if self.ready else "starting"),
            "waiting": len(self.waiting),
            "playing": " ".join(self.playing.words) if self.playing else None,
            "volume": volume_at(self.voice.volume, self.core.clock.now()),
            **self.counts,
            "clips": {
                "recorded": self.clips_found.recorded,
                "missing": len(self.clips_found.missing),
                "unreadable": list(self.clips_found.unreadable),
                "unavailable": list(self.clips_found.unavailable),
            },
            "recent": list(self.recent),
        }

    # -- player thread ---------------------------------------------------

    def _player(self) -> None:
        # The clips are made on a thread of their own, in the background: the first start runs
        # espeak-ng 45 times (~0.5 s of CPU), each start reads and trims 45 WAVs, and on a slow
        # Pi that must not hold back READY or the keys; the player itself stays at full priority.
        preparing = threading.Thread(target=self._prepare, name="voice-clips", daemon=True)
        preparing.start()
        preparing.join()
        clips = self.clips
        self.core.post(
            ClipsReady(
                len(clips.recorded), tuple(clips.missing), tuple(clips.unreadable), tuple(clips.unavailable)
            )
        )
        self.core.post(SpeakerChecked(_fault(self.speaker.check)))
        while (turn := self._turns.get()) is not _STOP:
            started = time.monotonic()
            error = _fault(lambda: self._play(turn))
            self.core.post(Played(turn, started, time.monotonic(), error))

    def _prepare(self) -> None:
        in_the_background()
        try:
            self.clips = prepare(VOCABULARY, self.cache_dir, self.voice.clips_dir)
            give_back_freed_memory()  # the WAVs read to make the clips file
        except Exception:  # a bug here must not leave the queue waiting for ever: chime only
            log.exception("voice: the clips could not be prepared")
            self.clips = ClipSet(unavailable=list(VOCABULARY))
            self.clips.keep({CHIME_FILE: chime()}, self.cache_dir)

    def _play(self, turn: Turn) -> None:
        pieces = (scale(piece, turn.percent) for piece in sentence(self.clips, turn))
        self.speaker.play(pieces, turn.words, duration_s(self.clips, turn))


def in_the_background() -> None:
    """Lower the calling thread's priority, and so that of the programs it starts (Linux nices
    each thread on its own); raising it again would need a privilege, so use a thread for it."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def _fault(action: Callable[[], None]) -> tuple[str, str] | None:
    """Run a speaker action; its fault word and message, or None when it worked."""
    try:
        action()
        return None
    except SpeakerError as exc:
        return (exc.word, exc.message)
    except Exception as exc:  # the player must outlive any one sound
        log.exception("voice: the speaker failed")
        return ("failed", type(exc).__name__)


def sentence(clips: ClipSet, turn: Turn) -> Iterator[bytes]:
    """The chime, then the words ``repeat`` times, as chunks: the first is ready at once."""
    yield clips.pcm(CHIME_FILE) or b""
    yield silence(AFTER_CHIME_S)
    gap = silence(WORD_GAP_S)
    for saying in range(turn.repeat):
        if saying:
            yield silence(REPEAT_GAP_S)
        for word in turn.words:
            clip = clips.pcm(word)
            if clip is not None:  # a word with no clip at all is left out (alarm.voice_clips said so)
                yield clip
                yield gap


def duration_s(clips: ClipSet, turn: Turn) -> float:
    return sum(len(chunk) for chunk in sentence(clips, turn)) / (2 * RATE)


def volume_at(periods: tuple[VolumeSettings, ...], now: datetime) -> int:
    """The percent in force at ``now``: the period with the latest ``at`` not after it (wrapping
    round from yesterday's last); 100 when no periods are set."""
    if not periods:
        return 100
    clock = now.strftime("%H:%M")
    ordered = sorted(periods, key=lambda p: p.at)
    current = ordered[-1]
    for period in ordered:
        if period.at <= clock:
            current = period
    return current.percent


def make_speaker(config: Settings) -> Speaker:
    voice = config.voice
    if voice.socket:
        return SocketSpeaker(voice.socket, RATE)
    return AlsaSpeaker(voice.alsa_device, RATE)
