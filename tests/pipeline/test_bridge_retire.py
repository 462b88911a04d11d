"""``end_session`` discards a departed bridge's session and its queue (real Mosquitto)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cityhealth.settings import Settings
from ingest.bridge.retire import end_session
from ingest.bridge.session import subscription_filter
from ingest.mqtt_auth import mqtt_credentials
from tests.pipeline.test_bridge_support import mqtt_prefix, publish, unique, wait_for

pytestmark = pytest.mark.stack


class PersistentSubscriber:
    """A bridge-like MQTT v5 session: clean_start=False, an hour of session expiry, QoS 1."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.received: list[str] = []
        self.session_present: bool | None = None
        self.connected = threading.Event()
        self.subscribed = threading.Event()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.session_present = bool(flags.session_present)
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.received.append(message.topic)

    def connect(self, subscribe_to: str | None = None) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(*mqtt_credentials(self.settings, "bridge"))
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = lambda *args: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.connected.clear()
        client.connect(
            self.settings.mqtt_host, self.settings.mqtt_port, clean_start=False, properties=props
        )
        client.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        if subscribe_to is not None:
            client.subscribe(subscribe_to, qos=1)
            assert self.subscribed.wait(10), "no SUBACK"
        return client


def _leave_a_session_with_queued_messages(settings: Settings, n: int) -> PersistentSubscriber:
    prefix = mqtt_prefix(settings)
    sub = PersistentSubscriber(settings, unique("retire"))
    client = sub.connect(subscription_filter(unique("retiregroup"), prefix))
    client.disconnect()
    client.loop_stop()
    # Published while the subscriber is away: the broker queues them for its session.
    topic = f"{prefix}city/d1/wearable/{unique('w')}/status"
    assert publish(settings, [(topic, b'{"ts": 1, "battery": 50}')] * n) == n
    return sub


def test_a_kept_session_gets_its_queued_messages(settings: Settings) -> None:
    # The control: without end_session the same steps deliver the queue on reconnection.
    sub = _leave_a_session_with_queued_messages(settings, 5)
    client = sub.connect()
    try:
        assert sub.session_present is True
        wait_for(lambda: len(sub.received) >= 5, 20, "the 5 queued messages")
    finally:
        client.disconnect()
        client.loop_stop()
        assert end_session(settings, sub.client_id)


def test_end_session_drops_subscription_and_queue(settings: Settings) -> None:
    sub = _leave_a_session_with_queued_messages(settings, 5)
    assert end_session(settings, sub.client_id) is True
    client = sub.connect()
    try:
        assert sub.session_present is False
        # No subscription survived either: of two messages published in order, only the
        # second (to a topic subscribed to now) arrives.
        prefix = mqtt_prefix(settings)
        sentinel = f"{prefix}city/d1/eldercare/{unique('e')}/panic"
        sub.subscribed.clear()
        client.subscribe(sentinel, qos=1)
        assert sub.subscribed.wait(10), "no SUBACK"
        stray = f"{prefix}city/d1/wearable/{unique('w')}/status"
        publish(settings, [(stray, b"{}"), (sentinel, b"{}")])
        wait_for(lambda: sentinel in sub.received, 20, "the sentinel message")
        assert sub.received == [sentinel]
    finally:
        client.disconnect()
        end_session(settings, sub.client_id)


def test_end_session_on_an_unreachable_broker_is_false(settings: Settings) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = settings.model_copy(update={"mqtt_port": sock.getsockname()[1]})
    assert end_session(closed, unique("nobody"), timeout_s=2) is False
