"""The link against a real mosquitto: birth/will, outbox drain, commands in, results out, telemetry."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from link_support import SubackHolder, Watcher, start_link, unique_site
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import make_config, wait_for

from edge.messages import CommandReceived, LinkStatus


@pytest.fixture
def site():
    return unique_site()


@pytest.fixture
def watcher(broker, site):
    w = Watcher(broker.port, site)
    yield w
    w.close()


def test_birth_on_connect_then_events_in_seq_order(tmp_path, make_hall, broker, site, watcher):
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(LinkStatus,))
    try:
        wait_for(lambda: watcher.on("/hall-01/state"), what="birth")
        birth = watcher.on("/hall-01/state")[-1]
        assert birth["online"] is True and birth["schema"] == "lgsc.state/1"
        assert birth["version"] and birth["started_at"]
        assert rig.seen[LinkStatus] == [LinkStatus(True)]
        for n in range(30):
            rig.emit("ticket.issued", {"ticket": f"A{n:03d}", "category": "A", "priority": False})
        wait_for(lambda: len(watcher.events()) == 30, what="30 events")
        seqs = [e["seq"] for e in watcher.events()]
        assert seqs == sorted(seqs) and len(set(seqs)) == 30
        assert all(m.topic.endswith("/events/ticket") for m in watcher.messages if "/events/" in m.topic)
        wait_for(lambda: rig.on_core(rig.core.outbox.depth) == 0, what="outbox emptied by PUBACKs")
        rows = rig.on_core(lambda: rig.storage.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        assert rows == 0
        status = rig.on_core(rig.core.status)["link"]
        assert status["online"] is True and status["outbox_depth"] == 0
    finally:
        rig.stop()


def test_the_hall_is_online_only_once_the_broker_has_its_subscriptions(tmp_path, make_hall, broker, site):
    """On a first, clean session a command the platform sends as soon as it sees the hall's birth
    must find the hall's subscription: so the hall is online (birth, backlog, status) from the
    SUBACK, not the CONNACK.  The relay holds the SUBACK back for 2 s unless the hall publishes."""
    relay = SubackHolder(broker.port, hold_s=2.0)
    rig = start_link(make_hall, tmp_path, relay.port, site, watch=(LinkStatus,))
    try:
        wait_for(lambda: "hall PUBLISH" in relay.order, 15, "the hall's first publish")
        order = relay.order
        assert order.index("broker SUBACK") < order.index("hall PUBLISH"), order
        assert rig.seen[LinkStatus] == [LinkStatus(True)]
    finally:
        rig.stop()
        relay.close()


def test_component_change_republishes_birth_and_stop_says_offline(tmp_path, make_hall, broker, site, watcher):
    rig = start_link(make_hall, tmp_path, broker.port, site)
    wait_for(lambda: watcher.on("/hall-01/state"), what="birth")
    rig.on_core(lambda: rig.core.set_component("printer", "paper_out"))
    wait_for(
        lambda: watcher.on("/hall-01/state")[-1].get("components") == {"printer": "paper_out"},
        what="birth with the printer fault",
    )
    started = time.monotonic()
    rig.stop()
    assert time.monotonic() - started < 1.5
    wait_for(lambda: watcher.on("/hall-01/state")[-1] == {"schema": "lgsc.state/1", "online": False})
    # Retained: a platform that subscribes later sees offline too.
    late = Watcher(broker.port, site)
    try:
        wait_for(lambda: late.on("/hall-01/state"), what="retained state")
        assert late.on("/hall-01/state")[-1]["online"] is False
    finally:
        late.close()


def test_events_recorded_during_a_broker_outage_arrive_in_order(tmp_path, make_hall, own_broker, site):
    rig = start_link(make_hall, tmp_path, own_broker.port, site, reconnect_cap_s=1.0, watch=(LinkStatus,))
    watcher = Watcher(own_broker.port, site)  # persistent session: it misses nothing over the restart
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        rig.emit("rental.denied", {"reason": "unknown_card"})
        wait_for(lambda: len(watcher.events()) == 1)
        # Its PUBACK handled and the row deleted (batched, up to 50 ms later) before the outage.
        wait_for(lambda: rig.on_core(rig.core.outbox.depth) == 0, what="first event acknowledged")
        own_broker.stop()
        wait_for(lambda: not rig.feature("link").online, what="offline")
        for _ in range(20):
            rig.emit("rental.denied", {"reason": "limit"})
        assert rig.on_core(rig.core.outbox.depth) == 20
        own_broker.start()
        wait_for(lambda: rig.feature("link").online, what="online again")
        wait_for(lambda: rig.on_core(rig.core.outbox.depth) == 0, what="backlog drained")
        wait_for(lambda: len({e["seq"] for e in watcher.events()}) == 21, what="backlog at the platform")
        seqs = [e["seq"] for e in watcher.events()]
        assert sorted(set(seqs)) == list(range(1, 22)) and seqs == sorted(seqs)
        assert [s.online for s in rig.seen[LinkStatus]] == [True, False, True]
        assert rig.feature("link").connection.reconnects >= 1
    finally:
        watcher.close()
        rig.stop()


def test_commands_sent_while_away_arrive_on_return(tmp_path, make_hall, own_broker, site):
    """Persistent session: QoS 1 commands published while the controller is down are kept."""
    rig = start_link(make_hall, tmp_path, own_broker.port, site, watch=(CommandReceived,))
    wait_for(lambda: rig.feature("link").online, what="online")
    rig.stop()
    sender = Watcher(own_broker.port, site)
    try:
        sender.publish(f"lgsc/v1/{site}/hall-01/cmd", b'{"body":"x","kid":"k","sig":"s"}')
        rig = start_link(make_hall, tmp_path, own_broker.port, site, watch=(CommandReceived,))
        wait_for(lambda: rig.seen[CommandReceived], what="queued command delivered")
        assert rig.seen[CommandReceived][0].payload == b'{"body":"x","kid":"k","sig":"s"}'
    finally:
        sender.close()
        rig.stop()


def test_command_with_response_topic_is_answered_there(tmp_path, make_hall, broker, site, watcher):
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(CommandReceived,))
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"lgsc/v1/{site}/replies/7"
        props.CorrelationData = b"corr-7"
        watcher.publish(f"lgsc/v1/{site}/hall-01/cmd", b"{}", properties=props)
        wait_for(lambda: rig.seen[CommandReceived], what="command")
        command = rig.seen[CommandReceived][0]
        assert command.response_topic == f"lgsc/v1/{site}/replies/7"
        assert command.correlation_data == b"corr-7"
        result = json.dumps({"schema": "lgsc.result/1", "id": "c-1", "ok": True, "result": {}}).encode()
        rig.on_core(
            lambda: rig.feature("link").publish_result(
                result, command.response_topic, command.correlation_data
            )
        )
        wait_for(lambda: watcher.on("/cmd/result") and watcher.on("/replies/7"), what="both results")
        reply = next(m for m in watcher.messages if m.topic.endswith("/replies/7"))
        assert reply.properties.CorrelationData == b"corr-7"
        # A wildcard response topic is refused, the result topic still gets it.
        rig.on_core(lambda: rig.feature("link").publish_result(result, "lgsc/#", b"x"))
        wait_for(lambda: len(watcher.on("/cmd/result")) == 2)
    finally:
        rig.stop()


def test_oversized_command_is_an_invalid_payload_event(tmp_path, make_hall, broker, site, watcher):
    rig = start_link(make_hall, tmp_path, broker.port, site, watch=(CommandReceived,), max_payload_bytes=1024)
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        watcher.publish(f"lgsc/v1/{site}/hall-01/cmd", b"x" * 2000)
        wait_for(watcher.events, what="error event")
        event = watcher.events()[0]
        assert event["type"] == "error.invalid_payload"
        assert event["data"]["topic"].endswith("/cmd") and "2000 bytes" in event["data"]["reason"]
        assert rig.seen[CommandReceived] == []
    finally:
        rig.stop()


def test_telemetry_has_the_contract_fields(tmp_path, make_hall, broker, site, watcher):
    rig = start_link(make_hall, tmp_path, broker.port, site, telemetry_interval_s=1.0)
    try:
        wait_for(lambda: watcher.on("/telemetry"), what="telemetry")
        reading = watcher.on("/telemetry")[0]
        for name in (
            "uptime_s",
            "cpu_temp_c",
            "load1",
            "mem_used_mb",
            "disk_free_mb",
            "outbox_depth",
            "mqtt_reconnects",
            "clock",
        ):
            assert name in reading
        assert reading["clock"] == "synced" and reading["schema"] == "lgsc.telemetry/1"
        telemetry = next(m for m in watcher.messages if m.topic.endswith("/telemetry"))
        assert telemetry.qos == 0
    finally:
        rig.stop()


def test_mqtt_311_works_too(tmp_path, make_hall, broker, site):
    watcher = Watcher(broker.port, site, protocol=mqtt.MQTTv311)
    rig = start_link(make_hall, tmp_path, broker.port, site, protocol="mqttv311")
    try:
        wait_for(lambda: watcher.on("/hall-01/state"), what="birth over 3.1.1")
        rig.emit("audit.config_changed", {"keys": ["display.brightness"]})
        wait_for(watcher.events, what="event over 3.1.1")
    finally:
        rig.stop()
        watcher.close()


def test_unreachable_broker_does_not_block_start_or_stop(tmp_path, make_hall):
    rig = start_link(make_hall, tmp_path, 1, unique_site(), reconnect_cap_s=1.0)
    rig.emit("alarm.disk_low", {"free_mb": 10})
    assert rig.on_core(rig.core.outbox.depth) == 1
    started = time.monotonic()
    rig.stop()
    assert time.monotonic() - started < 1.5


def test_a_backlog_is_sent_at_the_flush_rate_not_all_at_once(tmp_path, make_hall, own_broker, site):
    """300 events recorded offline, mqtt.flush_rate_per_s = 100: the first second's worth goes
    at once, the other 200 over at least 2 s (a province's halls back together do not pour
    their backlogs into the broker and the platform's queue in the same moment)."""
    rig = start_link(make_hall, tmp_path, own_broker.port, site, reconnect_cap_s=1.0, flush_rate_per_s=100.0)
    watcher = Watcher(own_broker.port, site)
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        own_broker.stop()
        wait_for(lambda: not rig.feature("link").online, what="offline")
        rig.on_core(lambda: [rig.core.emit("rental.denied", {"reason": "limit"}) for _ in range(300)])
        back = time.monotonic()
        own_broker.start()
        wait_for(lambda: len({e["seq"] for e in watcher.events()}) == 300, 30, "the backlog delivered")
        assert time.monotonic() - back >= 1.9
        assert sorted({e["seq"] for e in watcher.events()}) == list(range(1, 301))
    finally:
        watcher.close()
        rig.stop()


def test_the_link_reconnects_when_paho_ends_its_thread_during_loop_stop(
    tmp_path, make_hall, own_broker, site
):
    """paho 2.2's network thread clears its handle as it ends, and a loop_stop() in that moment
    raises AttributeError. That ended the link's own thread: the hall never came back (1 of
    1,000 controllers at a broker restart in bench/fleet.py). Here paho's loop_stop raises
    what it raises in that race, once, after doing its work."""
    rig = start_link(make_hall, tmp_path, own_broker.port, site, reconnect_cap_s=1.0)
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        client = rig.feature("link").connection.client
        paho_loop_stop = client.loop_stop
        raised = []

        def loop_stop_in_the_race():
            result = paho_loop_stop()
            if not raised:
                raised.append(True)
                raise AttributeError("'NoneType' object has no attribute 'join'")
            return result

        client.loop_stop = loop_stop_in_the_race
        own_broker.restart()
        wait_for(lambda: raised and rig.feature("link").online, what="online again after the race")
        assert rig.feature("link").connection.reconnects >= 1
    finally:
        rig.stop()


def test_backoff_is_full_jitter_capped_and_resets_after_a_good_connection():
    from edge.link.connection import Backoff

    ceilings = []
    backoff = Backoff(cap_s=4.0, base_s=0.5, reset_after_s=30, rng=lambda: 1.0)
    for _ in range(6):
        ceilings.append(backoff.next_delay())
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.after_connection(5) == 4.0  # a short connection: keep backing off
    assert backoff.after_connection(31) == 4.0  # a good one: spread over min(cap, 10 s)
    assert backoff.next_delay() == 4.0
    jittered = Backoff(cap_s=60.0)
    delays = [jittered.next_delay() for _ in range(200)]
    assert all(0 <= d <= 60 for d in delays) and len(set(delays)) > 150  # spread, not lockstep


def test_a_broker_restart_does_not_bring_every_hall_back_in_the_same_second():
    """Every hall's good connection ends at the same moment when the broker restarts; their
    first retries spread over 10 s (with 0.5 s * 2^0, as before, all came within 0.5 s), and
    the backoff goes on above that window."""
    from edge.link.connection import Backoff

    first_retries = [Backoff(cap_s=60.0).after_connection(3600) for _ in range(1000)]
    per_second = [sum(1 for d in first_retries if s <= d < s + 1) for s in range(10)]
    assert max(first_retries) <= 10.0 and max(per_second) < 200  # ~100 a second, not 1,000
    assert min(per_second) > 50
    highest = Backoff(cap_s=60.0, rng=lambda: 1.0)
    assert highest.after_connection(3600) == 10.0
    assert highest.next_delay() == 16.0  # then 0.5 s * 2^5: the next step above the window
    assert Backoff(cap_s=1.0, rng=lambda: 1.0).after_connection(3600) == 1.0  # never over the cap


def test_daemon_with_the_link_stops_within_two_seconds(tmp_path, broker, site, watcher):
    from edge.daemon import Daemon

    config = make_config(
        tmp_path,
        {"mqtt": {"host": "127.0.0.1", "port": broker.port, "tls": False}},
        site=site,
        device="hall-01",
    )
    daemon = Daemon(config)
    daemon.start()
    try:
        wait_for(lambda: daemon.core.link is not None and daemon.core.link.online, what="daemon online")
        wait_for(lambda: watcher.on("/hall-01/state"), what="birth")
    finally:
        started = time.monotonic()
        daemon.stop()
        stopped_in = time.monotonic() - started
    assert stopped_in < 2.0
    wait_for(lambda: watcher.on("/hall-01/state")[-1]["online"] is False, what="offline state")


def test_events_recorded_offline_go_out_in_order_after_a_restart(tmp_path, make_hall, broker, site, watcher):
    offline = start_link(make_hall, tmp_path, 1, site)
    for n in range(5):
        offline.emit("ticket.skipped", {"ticket": f"B{n:03d}"})
    offline.stop()
    rig = start_link(make_hall, tmp_path, broker.port, site)
    try:
        wait_for(lambda: len(watcher.events()) == 5, what="the five events after the restart")
        assert [e["data"]["ticket"] for e in watcher.events()] == [f"B{n:03d}" for n in range(5)]
        assert [e["seq"] for e in watcher.events()] == [1, 2, 3, 4, 5]
    finally:
        rig.stop()


def test_storage_cap_from_the_configuration(tmp_path, make_hall, broker, site, watcher):
    rig = start_link(make_hall, tmp_path, 1, site, storage_overrides={"outbox_max_events": 100})
    for _ in range(150):
        rig.emit("error.invalid_payload", {"topic": "t", "reason": "r"})
    rig.emit("rental.denied", {"reason": "banned"})
    assert rig.on_core(rig.core.outbox.depth) == 100
    assert rig.on_core(rig.core.status)["link"]["outbox_dropped"] == 52
    rig.stop()
    rig = start_link(make_hall, tmp_path, broker.port, site, storage_overrides={"outbox_max_events": 100})
    try:
        wait_for(lambda: len(watcher.events()) == 100, what="what the cap kept")
        types = [e["type"] for e in watcher.events()]
        assert types.count("alarm.outbox_full") == 1 and types[-1] == "rental.denied"
        alarm = next(e for e in watcher.events() if e["type"] == "alarm.outbox_full")
        assert alarm["data"]["max_events"] == 100
    finally:
        rig.stop()


def test_resync_republishes_the_birth_and_asks_for_the_snapshots_again(
    tmp_path, make_hall, broker, site, watcher
):
    rig = start_link(make_hall, tmp_path, broker.port, site)
    try:
        wait_for(lambda: watcher.on("/hall-01/state"), what="birth")
        births = len(watcher.on("/hall-01/state"))
        rig.on_core(rig.feature("link").resync)
        wait_for(lambda: len(watcher.on("/hall-01/state")) == births + 1, what="birth again")
        assert rig.feature("link").online
    finally:
        rig.stop()


def test_a_callback_that_raises_does_not_end_the_network_thread(tmp_path, broker, site):
    """A callback's exception would end paho's network thread: the link reconnects, it does not end."""
    from edge.link.connection import Connection, Routes

    config = make_config(tmp_path, {"mqtt": {"host": "127.0.0.1", "port": broker.port, "tls": False}})
    topic = f"lgsc/v1/{site}/hall-01/cmd"
    received: list[bytes] = []
    connected = []

    def message(msg: mqtt.MQTTMessage) -> None:
        received.append(bytes(msg.payload))
        if len(received) == 1:
            raise RuntimeError("a surprise in a route")
        connection.ack(msg.mid, msg.qos, connection.generation)

    routes = Routes(
        connected=connected.append, disconnected=lambda _r: None, message=message, published=lambda *_a: None
    )
    connection = Connection(config.mqtt, f"lgsc-{site}-hall-01", [topic], (f"{topic}/x", b""), routes)
    connection.start()
    try:
        wait_for(lambda: connected, 5, "connected")
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        sender.publish(topic, b"first", qos=1).wait_for_publish(5)
        wait_for(lambda: len(connected) >= 2, 10, "a reconnect after the surprise")
        sender.publish(topic, b"second", qos=1).wait_for_publish(5)
        wait_for(lambda: b"second" in received, 10, "the next message")
        assert received[0] == b"first" and b"first" in received[1:]  # delivered again: never acked
        sender.disconnect()
        sender.loop_stop()
    finally:
        connection.stop(None)


def test_an_event_nobody_was_subscribed_for_is_kept_and_reaches_the_platform_later(
    tmp_path, make_hall, own_broker, site
):
    """ejabberd after its restart (and mosquitto with no platform session) answers PUBACK 0x10
    "no matching subscribers", a success code: the event went to nobody. It stays in the
    outbox and is sent again until the platform has subscribed (own_broker: the session
    broker has the contract recorder subscribed to everything)."""
    rig = start_link(make_hall, tmp_path, own_broker.port, site)
    watcher: Watcher | None = None
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        rig.emit("rental.denied", {"reason": "unknown_card"})
        wait_for(lambda: rig.feature("link").drain.unheard >= 1, what="a PUBACK 0x10")
        assert rig.on_core(rig.core.outbox.depth) == 1
        watcher = Watcher(own_broker.port, site)
        wait_for(watcher.events, 30, "the kept event at the platform")
        assert watcher.events()[0]["type"] == "rental.denied"
        # The birth went to nobody as well: published again, so the platform hears it live.
        wait_for(
            lambda: [m for m in watcher.messages if m.topic.endswith("/state") and not m.retain],
            30,
            "a live birth",
        )
        wait_for(lambda: rig.on_core(rig.core.outbox.depth) == 0, what="the row deleted once delivered")
    finally:
        if watcher:
            watcher.close()
        rig.stop()


def test_with_retry_no_subscribers_off_an_unheard_event_is_deleted(tmp_path, make_hall, own_broker, site):
    rig = start_link(make_hall, tmp_path, own_broker.port, site, retry_no_subscribers=False)
    try:
        wait_for(lambda: rig.feature("link").online, what="online")
        rig.emit("rental.denied", {"reason": "unknown_card"})
        wait_for(lambda: rig.on_core(rig.core.outbox.depth) == 0, what="the row deleted on PUBACK 0x10")
        assert rig.feature("link").drain.unheard == 0
    finally:
        rig.stop()
