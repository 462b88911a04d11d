"""The bridge's MQTT v5 session: shared subscription, persistent session, manual acks.

Why each setting (MQTT 5.0, OASIS standard):

* ``$share/<group>/<prefix>city/#`` (§4.8.2): the broker hands each message to one member of
  the group, so several bridges split the load.
* ``clean_start=False`` + Session Expiry Interval (§3.1.2.4, §3.1.2.11.2) and a stable client
  id: the broker keeps the subscription and queues QoS 1 messages while the bridge is away,
  and re-sends unacknowledged ones, with their original packet ids, when it reconnects
  (§4.4). Mosquitto 2.0.11 does this for shared subscriptions too (tests/pipeline).
* ``manual_ack=True``: paho sends PUBACK only when the bridge calls :meth:`MqttSession.ack`,
  i.e. after Kafka acknowledged everything the message became.
* Receive Maximum (§3.1.2.11.3, §4.9): the broker keeps at most this many QoS 1 messages
  unacknowledged in flight to us — a hard bound on what the bridge holds in memory, and the
  backpressure when Kafka is slow.

Acks are fenced by a connection *epoch*: an ack for a message received on an earlier
connection is dropped, because after a reconnect the broker re-sends that message under the
same packet id, and a late ack could otherwise acknowledge a different message that reused
the id after the re-sent copy was acknowledged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.bridge.config import BridgeConfig
from ingest.bridge.stats import BridgeStats

log = logging.getLogger(__name__)


def subscription_filter(share_group: str, mqtt_prefix: str = "") -> str:
    """The shared-subscription filter the bridges of one group use."""
    if not share_group or any(c in share_group for c in "/+#"):
        raise ValueError(f"invalid MQTT share group {share_group!r}")
    return f"$share/{share_group}/{mqtt_prefix}city/#"


class MqttSession:
    """One persistent MQTT v5 session driven by paho's network thread.

    Parameters
    ----------
    config
        Client id, Receive Maximum, session expiry, keepalive.
    host, port, username, password
        The broker.
    topic_filter
        Usually :func:`subscription_filter`.
    on_message
        Called on paho's thread with ``(message, epoch)`` for every PUBLISH; must be cheap
        (the bridge only queues it).
    stats
        Connection counters are updated here.
    """

    def __init__(
        self,
        config: BridgeConfig,
        *,
        host: str,
        port: int,
        topic_filter: str,
        on_message: Callable[[mqtt.MQTTMessage, int], None],
        stats: BridgeStats,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._config = config
        self._host, self._port = host, port
        self._filter = topic_filter
        self._deliver = on_message
        self._stats = stats
        self._lock = threading.Lock()
        self._epoch = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if username is not None:
            client.username_pw_set(username, password)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (paho retries until the broker answers)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._config.session_expiry_s
        props.ReceiveMaximum = self._config.receive_maximum
        self._client.connect_async(
            self._host,
            self._port,
            keepalive=self._config.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block until the subscription is confirmed by the broker (or timeout)."""
        return self._subscribed.wait(timeout_s)

    def stop(self) -> None:
        """Send DISCONNECT after every queued PUBACK, keeping the session on the broker.

        The session (and the subscription) stays for ``session_expiry_s``: messages published
        while the bridge is down are queued for it, and messages received but not acked are
        re-sent on the next connection with the same client id.
        """
        with self._lock:
            self._epoch += 1  # no ack may slip in after the DISCONNECT
        self._client.disconnect()
        self._client.loop_stop()
        self._stats.mqtt_connected = False

    # --- acks -----------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The current connection epoch (messages carry the epoch they arrived in)."""
        return self._epoch

    def ack(self, mid: int, qos: int, epoch: int) -> bool:
        """PUBACK message ``mid`` if it arrived on the current connection; thread-safe.

        QoS 0 messages need no ack (and are lost on a crash: publishers must use QoS 1).
        """
        with self._lock:
            if epoch != self._epoch:
                return False
            if qos > 0:
                self._client.ack(mid, qos)
            return True

    # --- paho callbacks (paho's thread) ---------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT connection refused: %s", reason)
            return
        with self._lock:
            self._epoch += 1
        self._stats.connects += 1
        self._stats.session_present = bool(flags.session_present)
        self._stats.mqtt_connected = True
        self._connected.set()
        log.info(
            "MQTT connected to %s:%d as %s (session present: %s)",
            self._host,
            self._port,
            self._config.client_id,
            flags.session_present,
        )
        # Subscribing again on a present session only replaces it with the same options.
        client.subscribe(self._filter, qos=1)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            log.error("MQTT subscription to %s refused: %s", self._filter, reasons)
            return
        self._stats.subscribed = True
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._epoch += 1
        self._stats.mqtt_connected = False
        self._connected.clear()
        log.info("MQTT disconnected: %s", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._deliver(message, self._epoch)
