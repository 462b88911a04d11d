"""The MQTT -> Kafka ingest bridge (see docs/INGEST.md for the design and failure modes).

Two threads:

* paho's network thread reads PUBLISH packets and only appends them to an inbox deque;
* the bridge's asyncio thread drains the inbox in bulk — contract decode, pseudonymise,
  append to the per-(stream, partition) :class:`~ingest.batch.MicroBatcher` — and produces
  sealed records and dead letters with an idempotent ``acks=all`` producer.

Ack ordering: an MQTT message is acknowledged (PUBACK) only after Kafka acknowledged every
record holding one of its readings (or its dead letter). Until then the broker keeps it, so
a crash anywhere before that point means redelivery, never loss (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.batch import BatchLimits, MicroBatcher, SealedBatch, stream_for
from ingest.bridge.config import BridgeConfig
from ingest.bridge.producer import KafkaTarget, ReliableProducer
from ingest.bridge.session import MqttSession, subscription_filter
from ingest.bridge.stats import BridgeStats
from ingest.contract import ContractViolation, decode
from ingest.contract.errors import detail
from ingest.deadletter import encode_deadletter
from ingest.kafka_topics import topics_for
from ingest.pseudonym import pseudonymizer_from_settings

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

    from cityhealth.settings import Settings

log = logging.getLogger(__name__)

#: Messages decoded per event-loop turn, so Kafka acks and timers are not starved.
_DRAIN_CHUNK = 500


class _Message:
    """Bookkeeping of one MQTT message until it can be acknowledged."""

    __slots__ = ("epoch", "mid", "outstanding", "qos", "received")

    def __init__(self, mid: int, qos: int, epoch: int, received: float) -> None:
        self.mid = mid
        self.qos = qos
        self.epoch = epoch
        self.received = received
        self.outstanding = 0  # Kafka records still to be acknowledged


class Bridge:
    """One bridge instance: ``start()``, poll ``snapshot()``, ``stop()``.

    Parameters
    ----------
    settings
        Broker addresses, share group, topic prefix, partitions, pseudonym key.
    config
        Per-instance options (client id, bounds, batch limits).
    mqtt_prefix
        Topic prefix before ``city/`` (isolates tests and tenants on a shared broker).
    stats_path
        If set, :meth:`snapshot` is written there every ``stats_interval_s`` and at stop.
    """

    def __init__(
        self,
        settings: Settings,
        config: BridgeConfig,
        *,
        mqtt_prefix: str = "",
        stats_path: Path | None = None,
        stats_interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.config = config
        self.stats = BridgeStats(bridge_id=config.bridge_id)
        self._topics = topics_for(settings)
        self._mqtt_prefix = mqtt_prefix
        self._stats_path = stats_path
        self._stats_interval_s = stats_interval_s
        self._pseudonymise = pseudonymizer_from_settings(settings)
        self._batcher = MicroBatcher(
            settings.kafka_partitions,
            producer=config.bridge_id,
            limits=BatchLimits(
                max_count=config.batch_max_readings,
                max_bytes=config.batch_max_bytes,
                max_age_s=config.batch_max_age_s,
            ),
            clock=time.monotonic,  # the asyncio loop's clock too: timers line up
        )
        self._inbox: deque[tuple[mqtt.MQTTMessage, int]] = deque()
        self._wake_pending = False
        self._open: dict[_Message, None] = {}  # un-acked messages, oldest first
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._producer: ReliableProducer | None = None
        self._ticker: asyncio.Task[None] | None = None
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self._session = MqttSession(
            config,
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=password,
            topic_filter=subscription_filter(settings.mqtt_share_group, mqtt_prefix),
            on_message=self._on_mqtt_message,
            stats=self.stats,
        )

    # --- public API (any thread) ----------------------------------------------------------
    def start(self, *, wait_subscribed_s: float | None = 30.0) -> None:
        """Start the Kafka producer and the MQTT session.

        With ``wait_subscribed_s``, block until the broker confirmed the subscription
        (raises ``TimeoutError`` if it did not in time).
        """
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._producer = ReliableProducer(
                KafkaTarget(self.settings.kafka_bootstrap, self.config.client_id),
                self.stats,
                self.config.retry_backoff_s,
            )
            self._producer.start()
            self._ticker = self._loop.create_task(self._tick())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="ingest-bridge", daemon=True)
        self._thread.start()
        started.wait()
        self._session.start()
        if wait_subscribed_s is not None and not self._session.wait_subscribed(wait_subscribed_s):
            raise TimeoutError(
                f"MQTT broker {self.settings.mqtt_host}:{self.settings.mqtt_port} did not "
                f"confirm the subscription within {wait_subscribed_s} s"
            )

    def snapshot(self) -> dict[str, Any]:
        """Counters and gauges (see :class:`BridgeStats`) for display or JSON."""
        self._refresh_gauges()
        return self.stats.snapshot()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Graceful stop: stop reading, flush, wait for Kafka acks, ack MQTT, disconnect.

        Messages that arrive after the stop began are left unacknowledged: the broker keeps
        them in this client id's session and re-sends them when it reconnects. Returns
        ``True`` if everything read was acknowledged within ``timeout_s``.
        """
        if self._thread is None:
            return True
        timeout = self.config.shutdown_timeout_s if timeout_s is None else timeout_s
        done = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
        try:
            clean = done.result(timeout + 10.0)
        except TimeoutError:
            clean = False
        self._session.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)
        self._thread = None
        self._write_stats()
        return clean

    # --- paho thread ----------------------------------------------------------------------
    def _on_mqtt_message(self, message: mqtt.MQTTMessage, epoch: int) -> None:
        self._inbox.append((message, epoch))
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self._drain)

    # --- event-loop thread ----------------------------------------------------------------
    def _drain(self) -> None:
        self._wake_pending = False
        inbox = self._inbox
        for _ in range(min(len(inbox), _DRAIN_CHUNK)):
            message, epoch = inbox.popleft()
            self._process(message, epoch)
        if inbox and not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._drain)
        self._arm_timer()

    def _process(self, message: mqtt.MQTTMessage, epoch: int) -> None:
        self.stats.received += 1
        if self._closing:
            return  # not acked: re-sent to this session when it reconnects
        entry = _Message(message.mid, message.qos, epoch, time.monotonic())
        payload = message.payload
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "backslashreplace")
            self._dead_letter(entry, topic, payload, _bad_topic_error(topic))
            return
        try:
            decoded = decode(
                topic, payload, max_age_s=self.config.max_age_s, prefix=self._mqtt_prefix
            )
            stream_for(decoded.family, decoded.channel)
        except ContractViolation as exc:
            self._dead_letter(entry, topic, payload, exc.to_dict())
            return
        except Exception as exc:  # a decoder or routing bug must not stop the bridge
            log.exception("unexpected failure decoding a message on %s", topic)
            self._dead_letter(entry, topic, payload, _internal_error(topic, exc))
            return
        readings = decoded.readings()
        device = self._pseudonymise(decoded.family, decoded.device_id)
        entry.outstanding = len(readings)
        self._open[entry] = None
        append = self._batcher.append
        for i, reading in enumerate(readings):
            try:
                sealed = append(
                    reading,
                    device=device,
                    district=decoded.district,
                    family=decoded.family,
                    channel=decoded.channel,
                    token=entry,
                )
            except (KeyError, TypeError, ValueError) as exc:  # the contract should prevent it
                log.error("cannot batch reading %d of a message on %s: %s", i, topic, exc)
                entry.outstanding -= len(readings) - i
                if i == 0:
                    del self._open[entry]
                    self._dead_letter(entry, topic, payload, _internal_error(topic, exc))
                    return
                break
            if sealed is not None:
                self._produce(sealed)
        self.stats.valid += 1
        self.stats.readings += len(readings)

    def _dead_letter(
        self, entry: _Message, topic: str, payload: bytes | bytearray, error: dict[str, Any]
    ) -> None:
        entry.outstanding = 1
        self._open[entry] = None
        value = encode_deadletter(
            topic, payload, error, bridge=self.config.bridge_id, received_at=time.time()
        )
        rule = str(error.get("rule", "unknown"))
        self._spawn(self._send_dead_letter(entry, topic, value, rule))

    async def _send_dead_letter(self, entry: _Message, topic: str, value: bytes, rule: str) -> None:
        assert self._producer is not None
        key = topic.encode("utf-8", "backslashreplace")
        if not await self._producer.send(self._topics.deadletter, value, key=key, partition=None):
            return
        self.stats.dead_lettered += 1
        by_rule = self.stats.rejected_by_rule
        by_rule[rule] = by_rule.get(rule, 0) + 1
        self._release(entry)

    def _produce(self, sealed: SealedBatch) -> None:
        self._spawn(self._send_batch(sealed))

    async def _send_batch(self, sealed: SealedBatch) -> None:
        assert self._producer is not None
        topic = self._topics.stream(sealed.stream)
        # Explicit partition (murmur2 of the pseudonymous device id, as Kafka's default
        # partitioner would pick for that key); the record itself has no key.
        if not await self._producer.send(
            topic, sealed.payload, key=None, partition=sealed.partition
        ):
            return
        stats = self.stats
        stats.produced_batches += 1
        stats.produced_bytes += len(sealed.payload)
        by_stream = stats.readings_by_stream
        by_stream[sealed.stream] = by_stream.get(sealed.stream, 0) + sealed.count
        release = self._release
        for entry in sealed.tokens:
            release(entry)

    def _release(self, entry: _Message) -> None:
        """One Kafka record holding part of ``entry`` was acknowledged."""
        entry.outstanding -= 1
        if entry.outstanding == 0:
            self._open.pop(entry, None)
            if self._session.ack(entry.mid, entry.qos, entry.epoch):
                self.stats.acked += 1

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bridge task failed", exc_info=task.exception())

    def _arm_timer(self) -> None:
        """Make sure the oldest open buffer is sealed when it reaches ``max_age_s``."""
        if self._timer is not None:
            return
        deadline = self._batcher.next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for sealed in self._batcher.poll():
            self._produce(sealed)
        self._arm_timer()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._stats_interval_s)
            self._write_stats()

    def _refresh_gauges(self) -> None:
        self.stats.in_flight = len(self._open) + len(self._inbox)
        try:
            oldest = next(iter(self._open), None)
        except RuntimeError:  # resized while another thread polls: keep the last value
            return
        self.stats.oldest_unacked_age_s = (
            0.0 if oldest is None else (time.monotonic() - oldest.received)
        )

    def _write_stats(self) -> None:
        if self._stats_path is None:
            return
        self._refresh_gauges()
        try:
            self.stats.write_json(self._stats_path)
        except OSError as exc:
            log.warning("cannot write bridge stats to %s: %s", self._stats_path, exc)

    async def _shutdown(self, timeout_s: float) -> bool:
        # Finish what was already read; whatever arrives from now on stays un-acked.
        while self._inbox:
            message, epoch = self._inbox.popleft()
            self._process(message, epoch)
        self._closing = True
        for sealed in self._batcher.flush():
            self._produce(sealed)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        clean = not self._tasks
        if self._ticker is not None:
            self._ticker.cancel()
        assert self._producer is not None
        try:
            await asyncio.wait_for(self._producer.close(), timeout=10.0)
        except TimeoutError:
            log.warning("Kafka producer did not close in time")
        for task in list(self._tasks):
            task.cancel()
        return clean


def _bad_topic_error(topic: str) -> dict[str, Any]:
    violation = ContractViolation(
        [detail("topic", topic, "encoding", "topic is not valid UTF-8")], topic=topic
    )
    return violation.to_dict()


def _internal_error(topic: str, exc: Exception) -> dict[str, Any]:
    violation = ContractViolation(
        [detail("$", repr(exc), "internal", "no stream for this channel")], topic=topic
    )
    return violation.to_dict()
