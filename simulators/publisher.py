"""Publishers the simulation runner writes to: MQTT v5 QoS 1 (lean or paho) and null.

* :class:`MqttPublisher` (= :class:`~simulators.mqtt_client.LeanPublisher`) is what
  ``cityhealth simulate`` uses: a pipelined single-socket MQTT 5.0 client that encodes a
  whole tick into one ``sendall`` and parses PUBACKs in bulk (docs/SIMULATORS.md,
  "Publisher").
* :class:`PahoPublisher` is the paho-mqtt 2.x reference with the same interface, kept for
  comparison (``cityhealth bench simulate``) and as a fallback.
* :class:`NullPublisher` counts messages without a broker (``--dry-run``).

paho details that decide its throughput: with ``max_inflight_messages > 0`` paho walks *all*
outstanding messages on every PUBACK (``_update_inflight``), which is quadratic under load,
so :class:`PahoPublisher` sets it to 0 and bounds the messages awaiting their PUBACK itself
(``window``), waiting only when the window is full -- never per message.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simulators.mqtt_client import LeanPublisher, PublishError
from simulators.mqtt_wire import reason_name

#: The publisher ``cityhealth simulate`` uses.
MqttPublisher = LeanPublisher


class PahoPublisher:
    """paho-mqtt QoS 1 publisher with a bounded window of unacknowledged messages.

    Parameters
    ----------
    host, port
        Broker address (``cityhealth.settings``: ``CITYHEALTH_MQTT_HOST`` / ``_PORT``).
    window
        Most messages awaiting a PUBACK before :meth:`publish` waits.
    username, password
        Optional credentials.
    client_id
        MQTT client id (random by default).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        window: int = 2000,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.window = host, port, window
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.failed_by_reason: Counter[str] = Counter()
        self._connected = threading.Event()
        self._connect_rc: object = None
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"cityhealth-sim-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        c.max_inflight_messages_set(0)
        c.max_queued_messages_set(window * 4)
        if username:
            c.username_pw_set(username, password)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        self.client = c
        try:
            c.connect(host, port, keepalive=30)
        except OSError as exc:
            raise PublishError(f"cannot connect to MQTT broker {host}:{port}: {exc}") from None
        c.loop_start()
        if not self._connected.wait(connect_timeout) or self._connect_rc != 0:
            c.loop_stop()
            raise PublishError(
                f"MQTT broker {host}:{port} did not accept the connection ({self._connect_rc})"
            )

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connect_rc = reason_code.value if hasattr(reason_code, "value") else reason_code
        self._connected.set()

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        # runs in paho's loop thread; only this thread writes these counters
        self.acked += 1
        if reason_code.is_failure:
            self.failed += 1
            self.failed_by_reason[reason_name(int(reason_code.value))] += 1

    def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """Publish every ``(topic, payload)`` with QoS 1, in order; returns how many."""
        publish = self.client.publish
        window = self.window
        n = 0
        for topic, payload in messages:
            if self.sent - self.acked >= window:
                self._wait_window()
            info = publish(topic, payload, qos=1)
            # NO_CONN: paho keeps the message and sends it after the automatic reconnect
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                self._retry(topic, payload, info.rc)
            elif info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                raise PublishError(f"publish failed: {mqtt.error_string(info.rc)}")
            self.sent += 1
            n += 1
        return n

    def _wait_window(self) -> None:
        deadline = time.monotonic() + 60.0
        while self.sent - self.acked >= self.window:
            if time.monotonic() > deadline:
                raise PublishError(
                    f"no PUBACK from {self.host}:{self.port} for 60 s "
                    f"({self.sent - self.acked} messages unacknowledged)"
                )
            time.sleep(0.0005)

    def _retry(self, topic: str, payload: bytes, rc: MQTTErrorCode) -> None:
        """paho's queue is full (not accepted): wait for PUBACKs, then try again."""
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            time.sleep(0.01)
            info = self.client.publish(topic, payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                return
            rc = info.rc
        raise PublishError(f"publish to {self.host}:{self.port} failed: {mqtt.error_string(rc)}")

    @property
    def outstanding(self) -> int:
        """Messages published but not yet acknowledged."""
        return self.sent - self.acked

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every published message was acknowledged; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self) -> None:
        """Disconnect cleanly and stop the network thread."""
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


class NullPublisher:
    """Counts messages without a broker (``--dry-run`` and generator benchmarks)."""

    def __init__(self, keep: bool = False) -> None:
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.failed_by_reason: Counter[str] = Counter()
        self.kept: list[tuple[str, bytes]] | None = [] if keep else None

    def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> int:
        msgs = list(messages)
        if self.kept is not None:
            self.kept.extend(msgs)
        self.sent += len(msgs)
        self.acked = self.sent
        return len(msgs)

    @property
    def outstanding(self) -> int:
        return 0

    def flush(self, timeout: float = 0.0) -> bool:
        return True

    def close(self) -> None:
        return None


__all__ = ["LeanPublisher", "MqttPublisher", "NullPublisher", "PahoPublisher", "PublishError"]
