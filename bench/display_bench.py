"""LED screen figures: new-job latency, frame render time, CPU while rotating.

Measured in one run, on this machine:

- ``latency broker->frame``: a paho client publishes a jobs snapshot signed
  with the platform key (QoS 1, retained) with one job more to a private mosquitto; the daemon's link
  (edge.link) receives and validates it and posts ``SnapshotUpdated``; the
  display renders the new job's page (marked 新) and shows it on the luma
  dummy device, whose frame mirror sends it to ``hallsim.screen.SimScreen``.
  Time from just before ``publish`` to the moment SimScreen has the frame.
- ``latency core->frame``: the same from ``SnapshotUpdated`` posted on the
  core's queue (no broker, no link): the display's own share.
- ``render``: drawing a job page (``Renderer.art``) and composing one frame of
  a scrolling page.
- ``cpu``: process CPU time over wall time while the screen rotates through
  ten jobs (some scroll), for our feature (a frame is rendered and sent only
  when it changes) against the plain alternative (re-render the page and
  send every frame at a fixed rate, the scroll rate), on luma's dummy device
  and on a real luma ``max7219`` over luma's ``noop`` serial interface (all
  the byte packing, no SPI bus).

    .venv/bin/python bench/display_bench.py -n 200 --cpu-seconds 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from hallsim.broker import Mosquitto
from hallsim.screen import SimScreen
from luma.core.interface.serial import noop
from luma.led_matrix.device import max7219
from PIL import Image
from rig import add_daemon_options, cpu_fraction_label, daemon_cpu, percentile, use_cpu_fraction, wait_until
from rig import make_config as minimal_config
from support import signed_snapshot

from edge.clock import Clock
from edge.core import Core
from edge.display.content import read_jobs
from edge.display.feature import DisplayFeature
from edge.messages import SnapshotUpdated
from edge.storage import Storage

SITE = "bench"
ALL_DAY = {"open_from": "00:00", "open_until": "00:00", "night_from": "00:00", "night_until": "00:00"}


def make_config(folder: Path, port: int = 1, **display: Any) -> Any:
    """The daemon's configuration for the bench: plain MQTT, display on the dummy device."""
    tables = {
        "mqtt": {"port": port},
        "display": {"enabled": True, "device": "dummy", **ALL_DAY, **display},
        "snapshots": {"unsigned": "accept"},  # this bench's platform does not sign (signing: test_snapshots)
    }
    return minimal_config(folder, tables, site=SITE, device="hall-01")


def job(i: int, **extra: Any) -> dict:
    return {
        "id": f"J-{i:05d}",
        "title": "瓦工",
        "headcount": 3,
        "wage": {"amount": 100 + i % 900, "unit": "day"},
        "location": "北关",
        "expires_at": "2099-01-01T00:00:00+08:00",
        "verified": True,
        **extra,
    }


def snapshot(entries: list[dict], generated: datetime) -> dict:
    return {"schema": "lgsc.jobs/1", "generated_at": generated.isoformat(), "jobs": entries}


def summary(values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"n={len(ms)} p50={percentile(ms, 0.5):.2f} ms p99={percentile(ms, 0.99):.2f} ms "
        f"mean={statistics.fmean(ms):.2f} ms max={max(ms):.2f} ms"
    )


class FrameClock:
    """Times the arrival at SimScreen of the first frame after a mark."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mark = 0.0
        self._arrived: float | None = None
        self._event = threading.Event()

    def arm(self) -> float:
        with self._lock:
            self._arrived = None
            self._event.clear()
            self._mark = time.monotonic()
            return self._mark

    def on_frame(self, _image: Image.Image, received: float) -> None:
        with self._lock:
            if self._arrived is None and received >= self._mark:
                self._arrived = received
                self._event.set()

    def wait(self, timeout: float = 5.0) -> float:
        if not self._event.wait(timeout):
            raise RuntimeError("no frame within the deadline")
        return self._arrived or 0.0


class Rig:
    """Core + (optionally) the link + the display on the dummy device mirrored to SimScreen."""

    def __init__(self, folder: Path, port: int | None, display: dict[str, Any]) -> None:
        self.clock_mark = FrameClock()
        self.screen = SimScreen(folder / "screen.sock", on_frame=self.clock_mark.on_frame).start()
        mirror = str(folder / "screen.sock")
        self.config = make_config(folder, port or 1, frame_mirror=mirror, **display)
        with daemon_cpu():  # the daemon's threads on --cpu-fraction; the simulated screen not
            self.storage = Storage(self.config.storage.dir)
            self.core = Core(self.config, self.storage, Clock(self.config.time.zone, self.config.time.clock))
            self.link = None
            if port is not None:
                from edge.link.feature import LinkFeature

                self.link = LinkFeature(self.config)
                self.link.start(self.core)
            self.display = DisplayFeature(self.config)
            self.display.start(self.core)
            self.core.start()

    def stop(self) -> None:
        self.core.stop()
        self.display.stop()
        if self.link is not None:
            self.link.stop()
        self.storage.close()
        self.screen.stop()


def is_new_job_page(rig: Rig, job_id: str) -> bool:
    page = rig.display.rotation.page
    return page is not None and page.key == job_id and page.lines[0].badges == ("新",)


def latency_core(trials: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), None, {"page_seconds": 120})
        try:
            entries: list[dict] = [job(0)]
            rig.core.post(
                SnapshotUpdated(
                    "jobs", snapshot(entries, datetime.now().astimezone()), datetime.now().astimezone()
                )
            )
            settled(rig, job(0)["id"])
            samples = []
            for i in range(1, trials + 1):
                entries = [*entries[-20:], job(i)]
                message = SnapshotUpdated(
                    "jobs",
                    snapshot(entries, datetime.now().astimezone()),
                    datetime.now().astimezone(),
                    new_ids=frozenset({job(i)["id"]}),
                )
                start = rig.clock_mark.arm()
                rig.core.post(message)
                samples.append(rig.clock_mark.wait() - start)
                if not is_new_job_page(rig, job(i)["id"]):
                    raise RuntimeError(f"trial {i}: not the new job page: {rig.display.rotation.page}")
            return samples
        finally:
            rig.stop()


def latency_broker(trials: int) -> list[float] | None:
    try:
        import edge.link  # noqa: F401  the link feature (MQTT) may not exist in this checkout yet
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        rig = Rig(Path(tmp), broker.port, {"page_seconds": 120})
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-central")
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        topic = f"lgsc/v1/{SITE}/jobs"
        generated = datetime.now().astimezone().astimezone().replace(microsecond=0)
        try:
            wait_until(lambda: rig.link.online, 10)
            entries: list[dict] = [job(0)]
            publisher.publish(
                topic, signed_snapshot(snapshot(entries, generated), SITE), qos=1, retain=True
            ).wait_for_publish()
            settled(rig, job(0)["id"])  # the first snapshot ever: nothing in it is "new"
            samples = []
            for i in range(1, trials + 1):
                entries = [*entries[-20:], job(i)]
                # signed before the clock starts: the platform signs, not the hall
                payload = signed_snapshot(snapshot(entries, generated + timedelta(seconds=i)), SITE)
                start = rig.clock_mark.arm()
                publisher.publish(topic, payload, qos=1, retain=True)
                samples.append(rig.clock_mark.wait() - start)
                if not is_new_job_page(rig, job(i)["id"]):
                    raise RuntimeError(
                        f"trial {i}: the frame was not the new job's page: {rig.display.rotation.page}"
                    )
            return samples
        finally:
            publisher.loop_stop()
            publisher.disconnect()
            rig.stop()


QUIET_S = 0.3


def settled(rig: Rig, job_id: str) -> None:
    """The job's page is on the screen and every frame sent has reached SimScreen."""

    def done() -> bool:
        page = rig.display.rotation.page
        sent = rig.display.frames_sent
        return page is not None and page.key == job_id and rig.screen.frames_received == sent

    # ... and stays so for a moment: a late redraw of the same page (the link coming online
    # clears the stale marker) would otherwise be taken for the first trial's frame.
    wait_until(done)
    while not _quiet(rig, QUIET_S) or not done():
        wait_until(done)


def _quiet(rig: Rig, seconds: float) -> bool:
    """No frame is sent for ``seconds``."""
    sent = rig.display.frames_sent
    quiet_until = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= quiet_until or rig.display.frames_sent != sent)
    return rig.display.frames_sent == sent


# ---- render time ----------------------------------------------------------------


def unstarted_feature(folder: Path) -> DisplayFeature:
    """The display's renderer and layouts, as the daemon configures them (not started)."""
    return DisplayFeature(make_config(folder))


UNBREAKABLE = "Nanshan-Park-East-Gate-Building-7"  # no break point, wider than 128 px: its row scrolls


def render_times(n: int, folder: Path) -> tuple[list[float], list[float]]:
    rotation = unstarted_feature(folder)
    long = job(1, location=UNBREAKABLE, contact="13812345678")
    cards, _ = read_jobs({"jobs": [long]}, Clock().zone)
    arts, frames = [], []
    for i in range(n):
        parts = rotation.layouts.job(cards[0], new=bool(i % 2))
        page = next(p for p in parts if any(line.text == UNBREAKABLE for line in p.lines))  # it scrolls
        page = type(page)(page.kind, page.lines, key=f"{i}")  # a fresh page: no cache
        t0 = time.perf_counter()
        art = rotation.renderer.art(page)
        t1 = time.perf_counter()
        art.frame(1.0 + (i % 200) / 32)
        t2 = time.perf_counter()
        arts.append(t1 - t0)
        frames.append(t2 - t1)
    return arts, frames


# ---- CPU while rotating ---------------------------------------------------------


def rotation_jobs(scrolling: bool) -> list[dict]:
    entries = []
    for i in range(10):
        extra = {"urgent": i < 2}
        if scrolling and i % 2:
            extra.update(location=UNBREAKABLE, contact="13812345678")
        entries.append(job(i, **extra))
    return entries


def cpu_ours(device: Any, seconds: float, scrolling: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(Path(tmp), page_seconds=3.0)
        storage = Storage(config.storage.dir)
        core = Core(config, storage, Clock(config.time.zone, config.time.clock))
        feature = DisplayFeature(config, device=device)
        feature.start(core)
        core.start()
        now = datetime.now().astimezone()
        core.post(SnapshotUpdated("jobs", snapshot(rotation_jobs(scrolling), now), now))
        wait_until(lambda: feature.rotation.jobs)
        cpu0, wall0 = time.process_time(), time.monotonic()
        frames0 = feature.frames_sent
        threading.Event().wait(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        frames = feature.frames_sent - frames0
        core.stop()
        feature.stop()
        storage.close()
        return cpu / wall * 100, frames


def cpu_plain(
    device: Any, seconds: float, scrolling: bool, folder: Path, fps: float = 32.0
) -> tuple[float, int]:
    """The plain way: every 1/fps s, draw the current page from scratch and send the frame."""
    rotation = unstarted_feature(folder)
    cards, _ = read_jobs({"jobs": rotation_jobs(scrolling)}, Clock().zone)
    cpu0, wall0 = time.process_time(), time.monotonic()
    frames, tick = 0, 1 / fps
    next_at = wall0
    while time.monotonic() - wall0 < seconds:
        elapsed = time.monotonic() - wall0
        card = cards[int(elapsed // 3.0) % len(cards)]
        art = rotation.renderer.art(rotation.layouts.job(card)[0])  # the first part: the plain way to page
        device.display(art.frame(elapsed % 3.0))
        frames += 1
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return cpu / wall * 100, frames


def devices() -> dict[str, Callable[[], Any]]:
    from luma.core.device import dummy

    return {
        "dummy": lambda: dummy(width=128, height=32, mode="1"),
        "max7219+noop": lambda: max7219(noop(), width=128, height=32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--trials", type=int, default=200)
    parser.add_argument("--render-n", type=int, default=500)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--latency-only", action="store_true", help="only the two latencies")
    add_daemon_options(parser, in_process=True)
    args = parser.parse_args()
    use_cpu_fraction(args.cpu_fraction)
    print(f"display bench: {cpu_fraction_label()}")

    broker = latency_broker(args.trials)
    if broker is None:
        print("latency broker->frame: skipped (edge.link not present)")
    else:
        print(
            f"latency broker->frame (publish -> new job frame at SimScreen, via edge.link): {summary(broker)}"
        )
    core = latency_core(args.trials)
    print(f"latency core->frame (SnapshotUpdated posted -> frame at SimScreen): {summary(core)}")
    if args.latency_only:
        return

    with tempfile.TemporaryDirectory() as tmp:
        arts, frames = render_times(args.render_n, Path(tmp))
    print(f"render job page (Renderer.art, 128x32 Unifont): {summary(arts)}")
    print(f"compose one scrolling frame (PageArt.frame): {summary(frames)}")

    for scrolling in (False, True):
        kind = "with scrolling lines" if scrolling else "static pages"
        for name, make in devices().items():
            ours, ours_frames = cpu_ours(make(), args.cpu_seconds, scrolling)
            with tempfile.TemporaryDirectory() as tmp:
                plain, plain_frames = cpu_plain(make(), args.cpu_seconds, scrolling, Path(tmp))
            print(
                f"cpu rotating ({kind}, {name}, {args.cpu_seconds:g} s): ours {ours:.2f}% of a core "
                f"({ours_frames} frames) vs plain re-render at 32 fps {plain:.2f}% ({plain_frames} frames)"
            )


if __name__ == "__main__":
    main()
