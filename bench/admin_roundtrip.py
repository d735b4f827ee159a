"""Round trip of ``hall-admin send SITE/DEVICE status`` against a local broker: median and p99.

Starts a private mosquitto and ``hall-edge run`` (a separate process, all
peripherals off, plain MQTT), then measures in the same run:

- ``raw echo``: the plain alternative.  A paho client publishes QoS 1 to a
  topic; a second process (bare paho, no verification, no storage) answers
  on a reply topic; time from publish to answer.  The floor any MQTT
  request/response pays on this machine.
- ``admin send status``: ``edge.admin.send`` on one connected session, as
  hall-admin does it: build and sign the body (Ed25519), publish QoS 1 with
  an MQTT 5 response topic, the daemon verifies it, records the id in its
  replay cache (an fsync'd SQLite commit), runs ``status``, writes the
  ``audit.command`` event (another commit) and answers.
- ``hall-admin CLI``: the console script end to end (Python start, connect,
  send, print), fewer runs since each one starts a process.

Each set runs twice: against mosquitto as configured by default (Nagle's
algorithm on its sockets, ``set_tcp_nodelay false``), and with
``set_tcp_nodelay true`` (what EMQX does by default): small request/response
messages on loopback otherwise wait for delayed ACKs (~40 ms steps).

    .venv/bin/python bench/admin_roundtrip.py -n 300 --cli-n 20
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import rig
from hallsim.broker import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion

from edge import admin
from edge.protocol import set_nodelay


def report(label: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{label:<22} n={len(ms):<4} median {statistics.median(ms):7.2f} ms   "
        f"p99 {rig.percentile(ms, 0.99):7.2f} ms   min {min(ms):6.2f} ms   max {max(ms):7.2f} ms"
    )


# ---- the plain alternative: a bare paho echo in another process ------------------------


def echo_responder(port: int, topic: str, nodelay: bool) -> None:
    """Run as a child process: answer every request on topic/req on topic/res."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="echo-" + uuid.uuid4().hex[:6])

    def on_message(c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        c.publish(f"{topic}/res", message.payload, qos=1)

    def on_subscribe(c: mqtt.Client, *_a: object) -> None:
        if nodelay:
            set_nodelay(c.socket())
        print("ready", flush=True)

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", port)
    client.subscribe(f"{topic}/req", qos=1)
    client.loop_forever()


def raw_echo(port: int, runs: int, nodelay: bool) -> list[float]:
    topic = "bench/" + uuid.uuid4().hex[:8]
    child = subprocess.Popen(
        [sys.executable, __file__, "--echo-responder", str(port), topic, str(int(nodelay))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if child.stdout is None or child.stdout.readline().strip() != "ready":
            raise RuntimeError("echo responder did not start")
        answers: queue.Queue[bytes] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="req-" + uuid.uuid4().hex[:6])
        subscribed = threading.Event()
        client.on_message = lambda _c, _u, m: answers.put(m.payload)
        client.on_subscribe = lambda *_a: subscribed.set()
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.subscribe(f"{topic}/res", qos=1)
        subscribed.wait(5)
        if nodelay:
            set_nodelay(client.socket())
        times = []
        for i in range(runs):
            payload = f"ping {i}".encode()
            start = time.perf_counter()
            client.publish(f"{topic}/req", payload, qos=1)
            while answers.get(timeout=10) != payload:
                pass
            times.append(time.perf_counter() - start)
        client.disconnect()
        client.loop_stop()
        return times
    finally:
        child.terminate()
        child.wait(5)


# ---- the daemon and hall-admin ------------------------------------------------------------


def start_daemon(folder: Path, port: int, public_key: str) -> tuple[subprocess.Popen[bytes], Path]:
    tables = {"mqtt": {"port": port}, "commands": {"public_keys": {"bench": public_key}}}
    config = rig.write_config(folder, tables, site="bench", device="hall-01")
    process = subprocess.Popen(
        rig.daemon_command(config), stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    return process, config


def wait_online(port: int, timeout: float = 20.0) -> None:
    online = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="w-" + uuid.uuid4().hex[:6])

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        if message.payload and json.loads(message.payload).get("online"):
            online.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe("lgsc/v1/bench/hall-01/state", qos=1)
    client.loop_start()
    try:
        if not online.wait(timeout):
            raise RuntimeError("daemon did not come online")
    finally:
        client.disconnect()
        client.loop_stop()


def admin_sends(port: int, key_path: Path, runs: int) -> list[float]:
    settings = admin.AdminSettings(
        broker=admin.Broker(host="127.0.0.1", port=port, tls=False),
        signing=admin.Signing(key_file=str(key_path), kid="bench", issuer="bench"),
        timeout_s=10.0,
    )
    key = admin.load_private_key(str(key_path))
    session = admin.Session(settings.broker)
    times = []
    try:
        for _ in range(runs):
            start = time.perf_counter()
            outcome = admin.send(session, "bench/hall-01", "status", args={}, settings=settings, key=key)
            times.append(time.perf_counter() - start)
            if outcome.exit_code != admin.EXIT_OK:
                raise RuntimeError(f"status failed: {outcome.result}")
    finally:
        session.close()
    return times


def cli_sends(port: int, key_path: Path, runs: int) -> list[float]:
    script = Path(sys.executable).with_name("hall-admin")
    flags = ["--host", "127.0.0.1", "--port", str(port), "--no-tls", "--key", str(key_path)]
    flags += ["--kid", "bench", "--issuer", "bench", "--json"]
    empty = key_path.with_name("admin.toml")
    empty.write_text("")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [str(script), "send", "bench/hall-01", "status", "--config", str(empty), *flags],
            capture_output=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"hall-admin exited {done.returncode}: {done.stderr.decode()}")
    return times


class NoDelayMosquitto(Mosquitto):
    """The same private broker with TCP_NODELAY on its sockets."""

    def _conf(self) -> Path:
        conf = super()._conf()
        conf.write_text(conf.read_text() + "set_tcp_nodelay true\n")
        return conf


def measure(folder: Path, broker_class: type[Mosquitto], label: str, runs: int, cli_runs: int) -> None:
    with broker_class(folder / "broker") as broker:
        key_path = folder / "admin" / "bench.key"
        public = admin.generate_key(key_path)
        daemon, _config = start_daemon(folder, broker.port, public)
        try:
            wait_online(broker.port)
            admin_sends(broker.port, key_path, min(10, runs))  # warm up both sides
            print(f"-- {label}")
            nodelay = broker_class is NoDelayMosquitto
            report("raw paho echo", raw_echo(broker.port, runs, nodelay))
            report("admin send status", admin_sends(broker.port, key_path, runs))
            if cli_runs:
                report("hall-admin CLI status", cli_sends(broker.port, key_path, cli_runs))
        finally:
            rig.stop(daemon, 10)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--echo-responder":
        echo_responder(int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="round trips per in-process method")
    parser.add_argument("--cli-n", type=int, default=20, help="runs of the hall-admin console script")
    rig.add_daemon_options(parser)
    args = parser.parse_args()
    rig.apply_daemon_options(args, "round trips")
    print(f"machine: {os.cpu_count()} cores; mosquitto on loopback; QoS 1; daemon = hall-edge run (process)")
    variants = [
        (Mosquitto, "mosquitto defaults; raw echo clients with paho defaults (Nagle on)"),
        (NoDelayMosquitto, "mosquitto set_tcp_nodelay true; raw echo clients TCP_NODELAY too"),
    ]
    for index, (broker_class, label) in enumerate(variants):
        with tempfile.TemporaryDirectory(prefix="admin-bench-") as tmp:
            measure(Path(tmp), broker_class, label, args.n, args.cli_n if index == 1 else min(args.cli_n, 3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
