"""Outbox drain rate against a local mosquitto, beside a plain paho QoS 1 loop, in one run.

- ``plain paho``: one paho client publishes N messages of the same size as
  our events, QoS 1, ``max_inflight_messages`` = the link's window, and
  waits for every PUBACK. No storage: the ceiling for Python + paho here.
- ``outbox drain``: N events already recorded in the SQLite outbox (as after
  an outage); the link (edge.link, the real feature on a real core) starts,
  connects, publishes them in seq order with its in-flight window and
  deletes each batch of acknowledged rows (fsync'd commits). Timed from the
  link's start to an empty outbox (connect time included).
- ``live``: events emitted one by one (each its own fsync'd commit, as a hall
  records them) while the link is connected; timed to an empty outbox.

    .venv/bin/python bench/outbox_drain.py --events 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import rig
from hallsim.broker import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion

from edge.clock import Clock
from edge.core import Core
from edge.link.feature import LinkFeature
from edge.storage import Storage

DATA = {"ticket": "A023", "category": "A", "priority": False, "waiting_ahead": 3}


def plain_paho(port: int, count: int, payload: bytes, inflight: int) -> float:
    """Seconds to publish ``count`` QoS 1 messages and have every PUBACK."""
    done = threading.Event()
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked == count:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-plain", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(inflight)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    for _ in range(count):
        client.publish("lgsc/v1/bench/plain/events/ticket", payload, qos=1)
    done.wait(300)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def config_for(folder: Path, port: int, inflight: int) -> object:
    return rig.make_config(
        folder,
        {
            # No pacing: this measures how fast the drain can go (the fleet paces it).
            # Nobody subscribes here: mosquitto answers PUBACK 0x10, which the link would keep.
            "mqtt": {
                "port": port,
                "max_inflight": inflight,
                "flush_rate_per_s": 0.0,
                "retry_no_subscribers": False,
            },
            "storage": {"dir": str(folder), "outbox_max_events": 10000000, "outbox_max_bytes": 10000000000},
        },
        site="bench",
        device="hall-01",
    )


def outbox_drain(folder: Path, port: int, count: int, inflight: int) -> tuple[float, int]:
    """Seconds from link start to an empty outbox for ``count`` recorded events; payload size."""
    config = config_for(folder, port, inflight)
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock(config.time.zone, "synced"))
    with storage.transaction():
        for _ in range(count):
            event = core.outbox.append("ticket.issued", DATA)
    link = LinkFeature(config)
    started = time.perf_counter()
    with rig.daemon_cpu():  # the link's threads on --cpu-fraction, mosquitto not
        link.start(core)
        core.start()
    rig.wait_until(lambda: core.outbox.depth() == 0, 300, nap=0.001, what="an empty outbox")
    elapsed = time.perf_counter() - started
    core.stop()
    link.stop()
    storage.close()
    return elapsed, len(event.payload)


def live(folder: Path, port: int, count: int, inflight: int) -> float:
    config = config_for(folder, port, inflight)
    storage = Storage(config.storage.dir)
    core = Core(config, storage, Clock(config.time.zone, "synced"))
    link = LinkFeature(config)
    with rig.daemon_cpu():
        link.start(core)
        core.start()
    rig.wait_until(lambda: link.online, 300, nap=0.001, what="the link online")
    done = threading.Event()
    started = time.perf_counter()

    def emit_all() -> None:
        for _ in range(count):
            core.emit("ticket.issued", DATA)
        done.set()

    core.call_soon(emit_all)
    rig.wait_until(lambda: done.is_set() and core.outbox.depth() == 0, 300, nap=0.001, what="the drain")
    elapsed = time.perf_counter() - started
    core.stop()
    link.stop()
    storage.close()
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--live-events", type=int, default=2000)
    parser.add_argument("--inflight", type=int, default=100, help="mqtt.max_inflight (the default)")
    parser.add_argument("--rounds", type=int, default=3, help="alternate the two this often; medians")
    rig.add_daemon_options(parser)
    args = parser.parse_args(argv)
    rig.apply_daemon_options(args, "outbox drain")
    drains, plains, lives = [], [], []
    with tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp:
        folder = Path(tmp)
        with Mosquitto(folder / "broker", persistence=False) as broker:
            # Alternated rounds: a shared machine's load hits both alike.
            for round_ in range(args.rounds):
                drain_s, size = outbox_drain(
                    folder / f"drain{round_}", broker.port, args.events, args.inflight
                )
                drains.append(drain_s)
                plains.append(plain_paho(broker.port, args.events, b"x" * size, args.inflight))
                lives.append(live(folder / f"live{round_}", broker.port, args.live_events, args.inflight))
    drain_s, plain_s, live_s = (statistics.median(v) for v in (drains, plains, lives))
    figures = {
        "events": args.events,
        "rounds": args.rounds,
        "payload_bytes": size,
        "plain_paho_per_s": round(args.events / plain_s),
        "outbox_drain_per_s": round(args.events / drain_s),
        "drain_vs_plain": round(plain_s / drain_s, 3),
        "live_emit_and_publish_per_s": round(args.live_events / live_s),
    }
    print(f"medians of {args.rounds} alternated rounds")
    print(f"plain paho QoS1 loop : {figures['plain_paho_per_s']:>8} msg/s  ({args.events} x {size} B)")
    print(f"outbox drain (link)  : {figures['outbox_drain_per_s']:>8} events/s")
    print(f"drain / plain        : {figures['drain_vs_plain'] * 100:>7.1f} %")
    print(
        f"live emit+publish    : {figures['live_emit_and_publish_per_s']:>8} events/s (one commit per event)"
    )
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
