"""The test broker itself: private, on a free port, restartable."""

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from support import wait_for


def test_broker_round_trip(broker):
    received = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="smoke")
    client.on_message = lambda _c, _u, msg: received.append(msg.payload)
    client.connect("127.0.0.1", broker.port)
    client.subscribe("smoke/#", qos=1)
    client.loop_start()
    try:
        wait_for(client.is_connected, what="connect")
        client.publish("smoke/x", b"hello", qos=1).wait_for_publish(5)
        wait_for(lambda: received, what="message back")
        assert received == [b"hello"]
    finally:
        client.loop_stop()
        client.disconnect()
