"""The demo's speaker twin: each call the daemon says is kept as speaker/NNNN.wav + .txt, shown by status."""

from __future__ import annotations

import signal
import wave

from support import run_bench, wait_for
from test_sim_demo import ok, running_sim, sim_status, start_demo


def test_the_demo_keeps_each_announcement_as_played_and_status_shows_the_last(tmp_path):
    data = tmp_path / "data"
    demo = start_demo(data, "--speaker-speed", "20", "--no-central")
    try:
        sim = running_sim(data, demo)
        assert sim["speaker"] == str(data / "speaker")
        ok("press", "A", data=data)
        wait_for(lambda: sim_status(data)["printer"]["tickets"], 60, "a ticket")
        ok("call", "1", data=data)
        speaker = wait_for(lambda: (s := sim_status(data)["speaker"])["played"] and s, 30, "the announcement")
        assert speaker["overlaps"] == 0
        assert speaker["last"][0].startswith("0001 请 A 零 零 一 号 到 一 号 窗口 办理 (")
        said = (data / "speaker" / "0001.txt").read_text(encoding="utf-8").strip()
        assert said == "请 A 零 零 一 号 到 一 号 窗口 办理"
        with wave.open(str(data / "speaker" / "0001.wav"), "rb") as wav:
            assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
            assert wav.getnframes() / wav.getframerate() > 5  # the chime and the sentence twice

        # The speaker's cable pulled: the hall still calls, and the daemon raises one alarm.
        assert ok("unplug", "speaker", data=data).strip() == "speaker unplugged"
        ok("press", "A", data=data)
        ok("call", "1", data=data)
        ok("recall", "1", data=data)
        log = data / "daemon.log"
        wait_for(lambda: "event type=alarm.speaker" in log.read_text(), 20, "the speaker alarm")
        wait_for(lambda: log.read_text().count("event type=ticket.recalled") == 1, 20, "the recall")
        ok("plug", "speaker", data=data)
        ok("recall", "1", data=data)
        wait_for(lambda: sim_status(data)["speaker"]["played"] == 2, 30, "said again once plugged")
        assert sim_status(data)["speaker"]["last"][-1].startswith("0002 请 A 零 零 二 号")
        wait_for(lambda: log.read_text().count("event type=alarm.speaker") == 2, 20, "raised, then ok")
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(15) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_voice_bench_smoke():
    """bench/voice_bench.py with a few calls and a short burst: it runs and counts from the speaker."""
    out = run_bench("voice_bench.py", "--calls", "4", "--burst", "6", "--within", "3", "--speed", "20")
    assert "p99" in out
    assert "played 6, lost 0, in order yes, overlaps 0" in out
