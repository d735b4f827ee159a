"""The voice in-process: real core, espeak-ng's clips, the simulator's speaker on its socket, ALSA's aplay."""

from __future__ import annotations

import array
import contextlib
import json
import os
import shutil
import sqlite3
import wave
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hall_rig import Hall
from hallsim.speaker import SimSpeaker, read_index
from support import make_config, on_core, wait_for

from edge.clock import Clock
from edge.core import Core
from edge.messages import Announce
from edge.phrases import VOCABULARY, call_words, pause_words
from edge.settings import VolumeSettings
from edge.storage import Storage
from edge.voice.clips import CHIME_FILE, PREPARED_FILE, RATE, read_wav
from edge.voice.feature import VoiceFeature, volume_at

ALL_DAY = [{"at": "00:00", "percent": 100}]
SPEED = 40.0  # the simulated speaker sounds 40 times faster than real time: same samples, shorter test
CALL_PIN, RECALL_PIN, A_PIN = 16, 20, 5


class VoiceHall(Hall):
    """A hall with the voice (and the tickets feature, on conftest's MockFactory pins, when asked)
    and the simulated speaker it talks to."""

    def __init__(self, folder: Path, features: Any, overrides: dict[str, Any] | None, **options: Any) -> None:
        self.speaker = SimSpeaker(folder / "speaker.sock", folder / "speaker", speed=SPEED).start()
        self._speaker_on = True
        super().__init__(folder, features, overrides, **options)

    def stop(self) -> None:
        super().stop()
        if self._speaker_on:  # a hall made again in the same folder gets a speaker of its own
            self._speaker_on = False
            self.speaker.stop()

    @property
    def voice(self) -> VoiceFeature:
        return self.feature("voice")

    def status(self) -> dict[str, Any]:
        return self.on_core(self.voice.status)

    def ready(self) -> None:
        wait_for(lambda: self.status()["speaker"] == "ok", 30, "the clips made and the speaker found")

    def say(self, *announcements: Announce) -> None:
        """All at once on the core thread: the first starts playing, the rest wait behind it."""
        self.on_core(lambda: [self.core.dispatch(a) for a in announcements])

    def played(self) -> list[str]:
        return [entry["words"] for entry in read_index(self.speaker.folder)]

    def recorded(self, prefix: str) -> list[dict[str, Any]]:
        """The data of every recorded event whose type starts with ``prefix`` (from the database)."""
        with sqlite3.connect(Path(self.config.storage.dir) / "hall-edge.db") as conn:
            rows = conn.execute("SELECT type, payload FROM outbox ORDER BY seq").fetchall()
        return [json.loads(p)["data"] for t, p in rows if t.startswith(prefix)]


@pytest.fixture
def voice_hall(tmp_path, make_hall):
    """``voice_hall(voice overrides, tickets=False, folder="hall")``: conftest's ``make_hall`` with
    the voice, a simulated speaker and, with ``tickets``, one key and one window (number 3)."""

    def make(voice: dict[str, Any] | None = None, tickets: bool = False, folder: str = "hall") -> VoiceHall:
        where = tmp_path / folder
        where.mkdir(parents=True, exist_ok=True)
        speaker = {"socket": str(where / "speaker.sock"), "volume": ALL_DAY}
        overrides: dict[str, Any] = {"voice": {"enabled": True, **speaker, **(voice or {})}}
        if tickets:
            overrides["queue"] = {
                "enabled": True,
                "bounce_ms": 0,
                "categories": [{"code": "A", "name": "求职登记", "pin": A_PIN}],
                "windows": [{"number": 3, "call_pin": CALL_PIN, "recall_pin": RECALL_PIN, "skip_pin": 21}],
            }
        features = ["voice", "tickets"] if tickets else ["voice"]
        return make_hall(features, overrides, folder=where, rig=VoiceHall)

    return make


def samples(path: Path) -> array.array[int]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        return array.array("h", wav.readframes(wav.getnframes()))


def words(*ws: str) -> str:
    return " ".join(ws)


def test_a_call_key_is_announced_twice_after_a_chime_with_the_ticket_read_sign_by_sign(voice_hall, pins):
    hall = voice_hall(tickets=True)
    hall.ready()
    click = pins.pin(A_PIN)
    click.drive_low()
    click.drive_high()
    wait_for(lambda: hall.recorded("ticket.issued"), 5, "the ticket")
    call = pins.pin(CALL_PIN)
    call.drive_low()
    call.drive_high()
    wait_for(hall.played, 30, "the announcement")
    assert hall.played() == ["请 A 零 零 一 号 到 三 号 窗口 办理"]
    assert (hall.speaker.folder / "0001.txt").read_text(encoding="utf-8").strip() == hall.played()[0]
    sound = samples(hall.speaker.folder / "0001.wav")
    assert len(sound) / RATE > 0.9 + 2 * 3.0  # the chime (0.9 s), then the sentence (over 3 s) twice
    assert max(abs(v) for v in sound[: int(0.3 * RATE)]) > 5000  # it starts with the chime, not a word
    status = wait_for(lambda: (s := hall.status())["played"] == 1 and s, 10, "the speaker's answer")
    assert status["recent"][-1]["outcome"] == "played"


def test_announcements_play_one_at_a_time_in_order_and_a_waiting_recall_is_not_queued_twice(voice_hall):
    hall = voice_hall()
    hall.ready()
    hall.say(
        Announce(call_words("A001", 1), key="ticket:A001"),
        Announce(call_words("A002", 2), key="ticket:A002"),
        Announce(pause_words(3)),
        Announce(call_words("A002", 2), key="ticket:A002"),  # recall while its call still waits
        Announce(call_words("B001", 1), key="ticket:B001"),
    )
    wait_for(lambda: len(hall.played()) == 4, 30, "four announcements")
    assert hall.played() == [
        words(*call_words("A001", 1)),
        words(*call_words("A002", 2)),
        "三 号 窗口 暂停服务",
        words(*call_words("B001", 1)),
    ]
    assert not any(entry["overlapped"] for entry in read_index(hall.speaker.folder))
    status = wait_for(lambda: (s := hall.status())["played"] == 4 and s, 10, "the speaker's answers")
    assert (status["played"], status["merged"], status["waiting"]) == (4, 1, 0)


def test_a_full_queue_drops_the_oldest_waiting_announcement_and_counts_it(voice_hall):
    hall = voice_hall({"queue_max": 2})
    hall.ready()
    hall.say(*(Announce(call_words(f"A00{n}", 1), key=f"ticket:A00{n}") for n in range(1, 6)))
    wait_for(lambda: len(hall.played()) == 3, 30, "three announcements")
    assert [entry.split()[4] for entry in hall.played()] == [
        "一",
        "四",
        "五",
    ]  # A001 playing; A004, A005 kept
    status = wait_for(lambda: (s := hall.status())["played"] == 3 and s, 10, "the speaker's answers")
    assert status["dropped"] == 2
    assert [r["outcome"] for r in status["recent"]][:2] == ["dropped", "dropped"]


def test_outside_opening_hours_nothing_is_said(voice_hall):
    hall = voice_hall({"volume": [{"at": "00:00", "percent": 0}]})
    hall.ready()
    hall.say(Announce(call_words("A001", 1)))
    status = hall.status()
    assert (status["silenced"], status["waiting"], status["playing"]) == (1, 0, None)
    assert hall.played() == []


def test_volume_follows_the_time_of_day() -> None:
    periods = (VolumeSettings("07:00", 80), VolumeSettings("12:00", 50), VolumeSettings("21:00", 0))
    at = {hhmm: volume_at(periods, datetime(2026, 3, 2, *map(int, hhmm.split(":")))) for hhmm in
          ("06:59", "07:00", "11:59", "12:30", "20:59", "21:00", "23:59")}  # fmt: skip
    assert at == {"06:59": 0, "07:00": 80, "11:59": 80, "12:30": 50, "20:59": 50, "21:00": 0, "23:59": 0}
    assert volume_at((), datetime(2026, 3, 2, 3, 0)) == 100


def test_half_volume_is_half_as_loud(voice_hall):
    loud = voice_hall(folder="loud")
    quiet = voice_hall({"volume": [{"at": "00:00", "percent": 50}]}, folder="quiet")
    for hall in (loud, quiet):
        hall.ready()
        hall.say(Announce(call_words("A001", 1)))
        wait_for(lambda hall=hall: hall.played(), 30, "the announcement")
    peak_loud = max(abs(v) for v in samples(loud.speaker.folder / "0001.wav"))
    peak_quiet = max(abs(v) for v in samples(quiet.speaker.folder / "0001.wav"))
    assert abs(peak_quiet - peak_loud / 2) <= 2


def write_tone(path: Path, seconds: float, rate: int = 44100, channels: int = 2) -> None:
    import math

    frames = array.array("h")
    for n in range(int(seconds * rate)):
        frames.extend([int(12000 * math.sin(2 * math.pi * 440 * n / rate))] * channels)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames.tobytes())


def test_recorded_clips_override_the_default_voice_and_bad_ones_fall_back_with_one_alarm(
    voice_hall, tmp_path
):
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    write_tone(recorded / "qing.wav", 1.0)  # a bureau's recording: 44.1 kHz stereo, converted on reading
    (recorded / "hao.wav").write_bytes(b"this is not a wav file")
    hall = voice_hall({"clips_dir": str(recorded)})
    hall.ready()
    clips = hall.status()["clips"]
    assert (clips["recorded"], clips["unavailable"]) == (1, [])
    assert clips["unreadable"] == ["hao.wav: unreadable (file does not start with RIFF id)"]
    alarms = hall.recorded("alarm.voice_clips")
    assert len(alarms) == 1 and alarms[0]["state"] == "fallback" and "dao.wav" in alarms[0]["missing"]
    hall.say(Announce(("请", "号")), Announce(("请", "号")))
    wait_for(lambda: len(hall.played()) == 2, 30, "both")
    assert hall.played() == ["请 号", "请 号"]  # 号 in the default voice: nothing left out
    assert len(hall.recorded("alarm.voice_clips")) == 1
    hall.stop()  # a restart with the same clips is no news: the alarm is not raised again
    again = voice_hall({"clips_dir": str(recorded)})
    again.ready()
    assert len(again.recorded("alarm.voice_clips")) == 1
    (recorded / "hao.wav").unlink()
    again.stop()  # one clip fewer: that is news
    third = voice_hall({"clips_dir": str(recorded)})
    third.ready()
    alarms = third.recorded("alarm.voice_clips")
    assert len(alarms) == 2 and "hao.wav" in alarms[1]["missing"] and alarms[1]["unreadable"] == []
    tone = read_wav(recorded / "qing.wav")
    assert abs(len(tone) / 2 / RATE - 1.0) < 0.05  # the recording kept its length through the conversion


def test_without_a_sound_card_the_hall_keeps_calling_and_alarms_once(voice_hall, pins):
    no_card = {"socket": "", "alsa_device": "hall_edge_no_such_card"}  # aplay, on a card this machine lacks
    hall = voice_hall(no_card, tickets=True)
    wait_for(lambda: hall.core.components.get("speaker") == "no_device", 30, "the speaker probe")
    for pin in (A_PIN, A_PIN, CALL_PIN, RECALL_PIN, CALL_PIN):
        pins.pin(pin).drive_low()
        pins.pin(pin).drive_high()
    wait_for(lambda: hall.status()["failed"] == 3, 30, "three announcements tried")
    assert len(hall.recorded("ticket.called")) == 2 and len(hall.recorded("ticket.recalled")) == 1
    assert len(hall.recorded("alarm.speaker")) == 1
    assert hall.status()["speaker"] == "no_device"


def test_a_restart_still_without_a_sound_card_raises_no_second_alarm(voice_hall):
    no_card = {"socket": "", "alsa_device": "hall_edge_no_such_card"}
    for _start in range(2):
        hall = voice_hall(no_card)
        hall.say(Announce(call_words("A001", 1)))
        # The probe is reported before the sound that follows it fails.
        wait_for(lambda hall=hall: hall.status()["failed"] == 1, 30, "the announcement tried")
        assert hall.status()["speaker"] == "no_device"
        assert len(hall.recorded("alarm.speaker")) == 1
        hall.stop()


def test_an_announcement_with_a_word_outside_the_vocabulary_is_refused_not_said(voice_hall):
    hall = voice_hall()
    hall.ready()
    hall.say(Announce(("请", "hello")), Announce(("请",), repeat=0), Announce(("请",), repeat=1))
    wait_for(hall.played, 30, "the good one")
    assert hall.played() == ["请"]
    assert hall.status()["refused"] == 2


def test_the_self_test_finds_a_missing_sound_card_and_passes_the_simulators_speaker(tmp_path):
    from edge.selftest import FAIL, PASS, SKIP, check_speaker

    assert check_speaker(make_config(tmp_path)).result == SKIP
    missing = check_speaker(
        make_config(tmp_path, {"voice": {"enabled": True, "alsa_device": "hall_edge_none"}})
    )
    assert missing.result == FAIL and "aplay -L" in missing.todo
    with SimSpeaker(tmp_path / "s.sock", tmp_path / "speaker"):
        there = check_speaker(
            make_config(tmp_path, {"voice": {"enabled": True, "socket": str(tmp_path / "s.sock")}})
        )
    assert there.result == PASS
    assert read_index(tmp_path / "speaker") == []  # the probe is not a sound


@contextlib.contextmanager
def voice_on_a_core(tmp_path: Path) -> Iterator[tuple[Core, VoiceFeature]]:
    """The voice feature on a running core, playing through ALSA's null device all day."""
    config = make_config(tmp_path, {"voice": {"enabled": True, "alsa_device": "null", "volume": ALL_DAY}})
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock(config.time.zone, "synced"))
    voice = VoiceFeature(config)
    voice.start(core)
    core.start()
    try:
        yield core, voice
    finally:
        core.stop()
        voice.stop()
        storage.close()


def test_through_aplay_an_announcement_is_played_and_the_speaker_is_ok(tmp_path):
    """ALSA's own null device takes the samples as a card would (without pacing): aplay's path works."""
    with voice_on_a_core(tmp_path) as (core, voice):
        wait_for(lambda: core.components.get("speaker") == "ok", 30, "the speaker probe")
        core.post(Announce(call_words("A001", 1)))
        wait_for(lambda: on_core(core, voice.status)["played"] == 1, 30, "played through aplay")
        assert on_core(core, voice.status)["failed"] == 0


def test_the_default_clips_are_made_once_and_a_deleted_one_is_made_again(tmp_path):
    from edge.phrases import VOCABULARY
    from edge.voice.clips import prepare

    cache = tmp_path / "voice" / "default"
    first = prepare(VOCABULARY, cache, "")
    assert first.unavailable == [] and first.words == set(VOCABULARY)
    made = {path.name: path.stat().st_mtime_ns for path in cache.glob("*.wav")}
    assert len(made) == len(VOCABULARY)
    (cache / "qing.wav").unlink()
    again = prepare(VOCABULARY, cache, "")
    assert [again.pcm(word) for word in VOCABULARY] == [first.pcm(word) for word in VOCABULARY]  # same voice
    remade = {path.name: path.stat().st_mtime_ns for path in cache.glob("*.wav")}
    assert [name for name in made if remade[name] != made[name]] == ["qing.wav"]


def test_the_clips_are_read_from_one_cache_file_written_once_not_at_every_start(tmp_path):
    from edge.phrases import VOCABULARY
    from edge.voice.clips import prepare

    cache = tmp_path / "voice" / "default"
    first = prepare(VOCABULARY, cache, "")
    written = (cache / PREPARED_FILE).stat().st_mtime_ns
    again = prepare(VOCABULARY, cache, "")  # a restart
    assert (cache / PREPARED_FILE).stat().st_mtime_ns == written
    said = first.pcm("请")
    assert again.pcm("请") == said and len(said or b"") > RATE // 10
    (cache / PREPARED_FILE).write_bytes(b"torn by a power cut")
    mended = prepare(VOCABULARY, cache, "")
    assert mended.pcm("请") == said


def test_on_a_disk_that_cannot_take_the_cache_file_the_clips_stay_in_memory_and_play(tmp_path):
    from edge.phrases import VOCABULARY
    from edge.voice.clips import prepare

    made = prepare(VOCABULARY, tmp_path / "made", "")  # the WAVs made while there was room
    cache = tmp_path / "made"
    (cache / PREPARED_FILE).unlink()
    (cache / (PREPARED_FILE.split(".")[0] + ".partial")).mkdir()  # the write of the file fails
    kept = prepare(VOCABULARY, cache, "")
    assert not (cache / PREPARED_FILE).exists()
    assert kept.words == set(VOCABULARY) and kept.pcm("请") == made.pcm("请")


def test_without_espeak_ng_and_recordings_the_words_are_unavailable_and_the_chime_stays(tmp_path):
    from edge.phrases import VOCABULARY
    from edge.voice.clips import prepare

    found = prepare(VOCABULARY, tmp_path / "cache", "", espeak=str(tmp_path / "no-espeak-ng"))
    assert sorted(found.unavailable) == sorted(VOCABULARY)
    assert found.words == set() and len(found.pcm(CHIME_FILE) or b"") > 0


def test_the_clips_are_made_in_the_background_and_the_player_keeps_full_priority(tmp_path, monkeypatch):
    """On a slow Pi the first start's 45 runs of espeak-ng must not hold back READY or the keys."""
    real = shutil.which("espeak-ng")
    assert real is not None
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "espeak-ng").write_text(f'#!/bin/sh\nnice >> "{tmp_path}/nice.log"\nexec {real} "$@"\n')
    (tools / "espeak-ng").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    with voice_on_a_core(tmp_path) as (_core, voice):
        wait_for(lambda: voice.ready, 60, "the clips made and read")
        player_nice = os.getpriority(os.PRIO_PROCESS, voice._thread.native_id)
    made_at = (tmp_path / "nice.log").read_text().split()
    assert len(made_at) == len(VOCABULARY) and set(made_at) == {"10"}
    assert player_nice == os.getpriority(os.PRIO_PROCESS, 0)  # the player: as the daemon
