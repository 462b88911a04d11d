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

The client runs on the bridge's asyncio event loop (paho's external-loop callbacks), not
on a thread of its own: the bridge's work then never competes with a paho thread for the
interpreter lock, which would otherwise stall socket reads behind CPU work. It is paho's
``Client`` with a bulk receive path and batched PUBACKs (:mod:`ingest.bridge.paho_bulk`):
plain QoS 1 PUBLISHes reach the bridge as batches, one per socket read, and the PUBACKs
of one loop turn leave in one write.

Reading can be paused (:meth:`MqttSession.pause_reading`): Mosquitto 2.0.11 was seen to
send more unacknowledged messages than the Receive Maximum once acknowledgements flow
(docs/INGEST.md), so the bridge enforces its window itself by leaving the socket unread
(TCP backpressure) until enough PUBACKs went out.

Acks are fenced by a connection *epoch*: an ack for a message received on an earlier
connection is dropped, because after a reconnect the broker re-sends that message under the
same packet id, and a late ack could otherwise acknowledge a different message that reused
the id after the re-sent copy was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.bridge.config import BridgeConfig
from ingest.bridge.paho_bulk import BulkClient, Publish
from ingest.bridge.stats import BridgeStats

log = logging.getLogger(__name__)

_MIN_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 10.0
_PUBACK_GRACE_S = 0.3


def subscription_filter(share_group: str, mqtt_prefix: str = "") -> str:
    """The shared-subscription filter the bridges of one group use."""
    if not share_group or any(c in share_group for c in "/+#"):
        raise ValueError(f"invalid MQTT share group {share_group!r}")
    return f"$share/{share_group}/{mqtt_prefix}city/#"


def namespace_share_group(share_group: str, topic_prefix: str) -> str:
    """The share group of the bridges that feed the Kafka namespace ``topic_prefix``.

    The broker hands each message to one member of a group (MQTT 5.0 §4.8.2), offline
    persistent sessions included. Bridges that write to different topic prefixes must
    therefore not share a group. Otherwise the stopped session of another namespace (an
    earlier run on the same broker, say) keeps taking its share of the messages into a
    queue that nobody reads. The default namespace (no prefix) keeps the group as it is.
    """
    return f"{topic_prefix}{share_group}"


class MqttSession:
    """One persistent MQTT v5 session driven by an asyncio event loop.

    Parameters
    ----------
    config
        Client id, Receive Maximum, session expiry, keepalive.
    loop
        The event loop that runs the session; every method except :meth:`wait_subscribed`
        must be called on it.
    host, port, username, password
        The broker.
    topic_filter
        Usually :func:`subscription_filter`.
    on_messages
        Called with ``(publishes, epoch)`` for every batch of received PUBLISHes, each a
        ``(topic bytes, payload, packet id, QoS)`` tuple, in the order of the wire.
    stats
        Connection counters are updated here.
    """

    def __init__(
        self,
        config: BridgeConfig,
        *,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        topic_filter: str,
        on_messages: Callable[[list[Publish], int], None],
        stats: BridgeStats,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._config = config
        self._loop = loop
        self._host, self._port = host, port
        self._filter = topic_filter
        self._deliver = on_messages
        self._stats = stats
        self._epoch = 0
        self._acks: list[int] = []  # packet ids to PUBACK at the end of this loop turn
        self._acks_scheduled = False
        self._paused = False
        self._read_scheduled = False
        self._stopping = False
        self._backoff_s = _MIN_BACKOFF_S
        self._retry: asyncio.TimerHandle | None = None
        self._misc: asyncio.TimerHandle | None = None
        self._closed: asyncio.Future[None] | None = None
        self._subscribed = threading.Event()
        client = BulkClient(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
            on_publishes=self._on_publishes,
        )
        if username is not None:
            client.username_pw_set(username, password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._client = client

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (retrying with backoff while the broker is unreachable)."""
        self._misc = self._loop.call_later(1.0, self._housekeeping)
        self._connect()

    def wait_subscribed(self, timeout_s: float) -> bool:
        """Block (any thread but the loop's) until the broker confirmed the subscription."""
        return self._subscribed.wait(timeout_s)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Send DISCONNECT after every queued PUBACK, keeping the session on the broker.

        The session (and the subscription) stays for ``session_expiry_s``: messages published
        while the bridge is down are queued for it, and messages received but not acked are
        re-sent on the next connection with the same client id.
        """
        self._stopping = True
        self._flush_acks()  # the PUBACKs already granted go out before the DISCONNECT
        self._epoch += 1  # no ack may slip in after the DISCONNECT
        for handle in (self._retry, self._misc):
            if handle is not None:
                handle.cancel()
        if self._client.is_connected():
            # Mosquitto 2.0.11 was seen to drop PUBACKs that reach it just before a
            # DISCONNECT (their messages then come back as duplicates): give them a moment.
            await asyncio.sleep(_PUBACK_GRACE_S)
            self._closed = self._loop.create_future()
            self._client.disconnect()
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), timeout_s)
            except TimeoutError:
                log.warning("MQTT DISCONNECT not confirmed within %.1f s", timeout_s)
        sock = self._client.socket()
        if sock is not None:
            self._on_socket_close(self._client, None, sock)
        self._stats.mqtt_connected = False

    def _connect(self) -> None:
        self._retry = None
        if self._stopping:
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._config.session_expiry_s
        props.ReceiveMaximum = self._config.receive_maximum
        try:
            self._client.connect(
                self._host,
                self._port,
                keepalive=self._config.keepalive_s,
                clean_start=False,
                properties=props,
            )
        except OSError as exc:
            log.warning("MQTT broker %s:%d unreachable (%s)", self._host, self._port, exc)
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self._stopping or self._retry is not None:
            return
        self._retry = self._loop.call_later(self._backoff_s, self._connect)
        self._backoff_s = min(2 * self._backoff_s, _MAX_BACKOFF_S)

    def _housekeeping(self) -> None:
        """Keepalive pings and dead-connection detection (paho's ``loop_misc``)."""
        if self._paused:
            # Unread bytes wait in the socket because *we* stopped reading: the broker's
            # PINGRESP is behind them, so its silence says nothing about the connection.
            self._client.mark_alive()
        self._client.loop_misc()
        self._misc = self._loop.call_later(1.0, self._housekeeping)

    # --- acks -----------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The current connection epoch (messages carry the epoch they arrived in)."""
        return self._epoch

    def ack(self, mid: int, qos: int, epoch: int) -> bool:
        """PUBACK message ``mid`` if it arrived on the current connection.

        The PUBACKs granted during one turn of the event loop leave together, at its end.
        QoS 0 messages need no ack (and are lost on a crash: publishers must use QoS 1).
        """
        if epoch != self._epoch:
            return False
        if qos > 0:
            self._acks.append(mid)
            if not self._acks_scheduled:
                self._acks_scheduled = True
                self._loop.call_soon(self._flush_acks)
        return True

    def _flush_acks(self) -> None:
        self._acks_scheduled = False
        acks, self._acks = self._acks, []
        self._client.ack_many(acks)

    # --- flow control ---------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        """Whether reading is paused (:meth:`pause_reading`)."""
        return self._paused

    def pause_reading(self) -> None:
        """Stop reading the socket: the broker's sends then wait (TCP backpressure)."""
        if self._paused:
            return
        self._paused = True
        sock = self._client.socket()
        if sock is not None:
            self._loop.remove_reader(sock)

    def resume_reading(self) -> None:
        """Read the socket again (and at once: data may have waited all along)."""
        if not self._paused:
            return
        self._paused = False
        sock = self._client.socket()
        if sock is not None:
            self._loop.add_reader(sock, self._on_readable)
            self._schedule_read()

    def _schedule_read(self) -> None:
        if not self._read_scheduled:
            self._read_scheduled = True
            self._loop.call_soon(self._on_scheduled_read)

    def _on_scheduled_read(self) -> None:
        self._read_scheduled = False
        if not self._paused:
            self._on_readable()

    # --- socket plumbing (paho's external-loop interface) ---------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if not self._paused:
            self._loop.add_reader(sock, self._on_readable)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, client.loop_write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _on_readable(self) -> None:
        # One call reads what the socket holds (up to BulkClient's max_read) and hands every
        # complete PUBLISH of it over in batches.
        client = self._client
        if client.loop_read() == mqtt.MQTT_ERR_SUCCESS and client.read_more and not self._paused:
            self._schedule_read()  # stopped at max_read: more may wait (decrypted TLS too)

    # --- paho callbacks (on the loop) -----------------------------------------------------
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
        self._epoch += 1
        self._acks.clear()  # granted on the old connection: its packet ids are void now
        self._backoff_s = _MIN_BACKOFF_S
        self._stats.connects += 1
        self._stats.session_present = bool(flags.session_present)
        self._stats.mqtt_connected = True
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
        self._epoch += 1
        self._acks.clear()
        self._stats.mqtt_connected = False
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._stopping:
            return
        log.warning("MQTT connection lost (%s); reconnecting", reason)
        self._schedule_reconnect()

    def _on_publishes(self, publishes: list[Publish]) -> None:
        self._deliver(publishes, self._epoch)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # What paho handled itself (a PUBLISH with properties, say), in its place.
        self._deliver([(message._topic, message.payload, message.mid, message.qos)], self._epoch)
