"""The MQTT -> Kafka ingest bridge (see docs/INGEST.md for the design and failure modes).

One asyncio event loop on its own thread does all the I/O: paho's MQTT socket (external
loop mode, bulk reads), the Kafka producer and the pipes from the decoder processes. It
numbers each received message with a token and hands them in chunks to the decode stage
(contract, pseudonyms, columnar batches, dead letters) — in decoder processes by default,
inline with ``decoders=0`` — and produces what comes back with an idempotent ``acks=all``
producer.

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

from ingest.batch import BatchLimits, SealedBatch
from ingest.bridge.config import BridgeConfig
from ingest.bridge.paho_bulk import Publish
from ingest.bridge.producer import KafkaTarget, ReliableProducer
from ingest.bridge.session import MqttSession, namespace_share_group, subscription_filter
from ingest.bridge.stage import DeadLetter, DecodeStage, RawMessage, StageConfig, StageOutput
from ingest.bridge.stats import BridgeStats
from ingest.bridge.workers import DecoderPool
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import topics_for
from ingest.mqtt_auth import mqtt_credentials

if TYPE_CHECKING:
    from cityhealth.settings import Settings

log = logging.getLogger(__name__)

#: Messages handed to the stage per chunk (bounds how long one loop turn takes inline).
_CHUNK = 500
#: Reading resumes once the unacknowledged messages fell to this share of the window.
_RESUME_SHARE = 0.9


class _Message:
    """Bookkeeping of one MQTT message until it can be acknowledged."""

    __slots__ = ("epoch", "mid", "outstanding", "qos", "received")

    def __init__(self, mid: int, qos: int, epoch: int, received: float) -> None:
        self.mid = mid
        self.qos = qos
        self.epoch = epoch
        self.received = received
        self.outstanding = 0  # Kafka records still to be acknowledged


def _take(queue: deque[RawMessage], n: int) -> list[RawMessage]:
    """The first ``n`` items of ``queue`` (fewer if it is shorter), removed from it."""
    return [queue.popleft() for _ in range(min(n, len(queue)))]


class Bridge:
    """One bridge instance: ``start()``, poll ``snapshot()``, ``stop()``.

    Parameters
    ----------
    settings
        Broker addresses, share group, topic prefix, partitions, pseudonym key.
    config
        Per-instance options (client id, bounds, batch limits, decoder processes).
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
        self._stats_path = stats_path
        self._stats_interval_s = stats_interval_s
        stage_config = StageConfig(
            bridge_id=config.bridge_id,
            mqtt_prefix=mqtt_prefix,
            max_age_s=config.max_age_s,
            limits=BatchLimits(
                max_count=config.batch_max_readings,
                max_bytes=config.batch_max_bytes,
                max_age_s=config.batch_max_age_s,
            ),
        )
        # In-process stage, or decoder processes (built in start(), before any thread).
        self._stage: DecodeStage | None = None
        self._pool: DecoderPool | None = None
        if config.decoders == 0:
            self._stage = DecodeStage(settings, stage_config)
        else:
            self._pool = DecoderPool(config.decoders, settings, stage_config, self._on_decoder)
        self._inbox: deque[RawMessage] = deque()  # admitted, not yet handed to the stage
        self._wake_pending = False
        self._window = config.receive_maximum
        self._resume_below = int(_RESUME_SHARE * config.receive_maximum)
        self._open: dict[int, _Message] = {}  # un-acked messages by token, oldest first
        self._next_token = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._flushed = 0
        self._all_flushed: asyncio.Event | None = None
        self.failed: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._producer: ReliableProducer | None = None
        self._ticker: asyncio.Task[None] | None = None
        username, password = mqtt_credentials(settings, "bridge")
        self._session = MqttSession(
            config,
            loop=self._loop,
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=username,
            password=password,
            topic_filter=subscription_filter(
                namespace_share_group(settings.mqtt_share_group, settings.topic_prefix),
                mqtt_prefix,
            ),
            on_messages=self._on_mqtt_messages,
            stats=self.stats,
        )

    # --- public API (any thread) ----------------------------------------------------------
    def start(self, *, wait_subscribed_s: float | None = 30.0) -> None:
        """Start the decoders, the Kafka producer and the MQTT session.

        With ``wait_subscribed_s``, block until the broker confirmed the subscription
        (raises ``TimeoutError`` if it did not in time).
        """
        if self._pool is not None:
            self._pool.start()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._all_flushed = asyncio.Event()
            self._producer = ReliableProducer(
                KafkaTarget(kafka_client_kwargs(self.settings), self.config.client_id),
                self.stats,
                self.config.retry_backoff_s,
            )
            self._producer.start()
            if self._pool is not None:
                self._loop.run_until_complete(self._pool.attach(self._loop))
            self._session.start()
            self._ticker = self._loop.create_task(self._tick())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="ingest-bridge", daemon=True)
        self._thread.start()
        started.wait()
        if wait_subscribed_s is not None and not self._session.wait_subscribed(wait_subscribed_s):
            raise TimeoutError(
                f"MQTT broker {self.settings.mqtt_host}:{self.settings.mqtt_port} did not "
                f"confirm the subscription within {wait_subscribed_s} s"
            )

    @property
    def decoder_pids(self) -> list[int]:
        """Process ids of the decoder processes (empty with ``decoders=0``)."""
        return self._pool.pids if self._pool is not None else []

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
            clean = done.result(timeout + 30.0)
        except TimeoutError:
            clean = False
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)
        self._thread = None
        if self._pool is not None:
            self._pool.stop()
        self._write_stats()
        return clean and self.failed is None

    # --- event-loop thread ----------------------------------------------------------------
    def _on_mqtt_messages(self, publishes: list[Publish], epoch: int) -> None:
        """Number and track one batch of received messages (all of them, unless closing)."""
        stats = self.stats
        if not stats.received:
            stats.first_received_at = time.time()
        stats.received += len(publishes)
        if self._closing:
            return  # not acked: re-sent to this session when it reconnects
        now = time.monotonic()
        token = self._next_token
        opened = self._open
        inbox = self._inbox
        for topic, payload, mid, qos in publishes:
            opened[token] = _Message(mid, qos, epoch, now)
            inbox.append((token, topic, payload))
            token += 1
        self._next_token = token
        if len(opened) > self._window and not self._session.paused:
            # The broker sent more than our Receive Maximum: hold the rest in its queue.
            self._session.pause_reading()
            stats.read_pauses += 1
        # Decoding waits until the socket read was split: one hand-over per loop turn.
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._drain)

    def _on_decoder(self, index: int, kind: str, output: StageOutput | None) -> None:
        if kind == "died":
            # Its buffered readings are gone; their MQTT messages are un-acked, so the broker
            # re-sends them after a restart. Carrying on would leave them stuck until then.
            self.failed = f"decoder process {index} died"
            self._closing = True
            if self._all_flushed is not None:
                self._all_flushed.set()  # a stop in progress must not wait for it
            return
        if output is not None:
            self._apply(output)
        if kind == "flushed":
            self._flushed += 1
            assert self._pool is not None and self._all_flushed is not None
            if self._flushed == self._pool.size:
                self._all_flushed.set()

    def _drain(self) -> None:
        self._wake_pending = False
        inbox = self._inbox
        if self._pool is not None:
            while inbox:  # a pipe write per chunk; the decoders do the work
                self._pool.submit(_take(inbox, _CHUNK))
        elif inbox:
            assert self._stage is not None
            self._apply(self._stage.process(_take(inbox, _CHUNK)))
        if inbox and not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon(self._drain)
        self._arm_timer()

    def _apply(self, output: StageOutput) -> None:
        """Account for a stage output and produce what it sealed."""
        opened = self._open
        readings = 0
        for token, count in output.accepted:
            opened[token].outstanding += count
            readings += count
            if count == 0:
                self._ack(token)
        self.stats.valid += len(output.accepted)
        self.stats.readings += readings
        for letter in output.rejected:
            opened[letter.token].outstanding += 1
            self._spawn(self._send_dead_letter(letter))
        for sealed in output.sealed:
            self._spawn(self._send_batch(sealed))

    async def _send_dead_letter(self, letter: DeadLetter) -> None:
        assert self._producer is not None
        topic = self._topics.deadletter
        if not await self._producer.send(topic, letter.value, key=letter.key, partition=None):
            return
        self.stats.dead_lettered += 1
        by_rule = self.stats.rejected_by_rule
        by_rule[letter.rule] = by_rule.get(letter.rule, 0) + 1
        self._release(letter.token)

    async def _send_batch(self, sealed: SealedBatch) -> None:
        assert self._producer is not None
        topic = self._topics.stream(sealed.stream)
        # Explicit partition (murmur2 of the pseudonymous device id, or of the district for
        # air stations, as Kafka's default partitioner would pick for that key); the
        # record itself has no key.
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
        for token in sealed.tokens:
            release(token)

    def _release(self, token: int) -> None:
        """One Kafka record holding part of message ``token`` was acknowledged."""
        entry = self._open[token]
        entry.outstanding -= 1
        if entry.outstanding == 0:
            self._ack(token)

    def _ack(self, token: int) -> None:
        opened = self._open
        entry = opened.pop(token)
        session = self._session
        if session.ack(entry.mid, entry.qos, entry.epoch):
            self.stats.acked += 1
            self.stats.last_acked_at = time.time()
        if session.paused and len(opened) <= self._resume_below:
            session.resume_reading()

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bridge task failed", exc_info=task.exception())

    def _arm_timer(self) -> None:
        """In-process stage: seal the oldest buffer when it reaches ``max_age_s``."""
        if self._timer is not None or self._stage is None:
            return
        deadline = self._stage.next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        assert self._stage is not None
        self._apply(self._stage.poll())
        self._arm_timer()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._stats_interval_s)
            self._write_stats()

    def _refresh_gauges(self) -> None:
        self.stats.in_flight = len(self._open)  # the inbox's messages are open already
        try:
            oldest = next(iter(self._open.values()), None)
        except RuntimeError:  # resized while another thread polls: keep the last value
            return
        age = 0.0 if oldest is None else time.monotonic() - oldest.received
        self.stats.oldest_unacked_age_s = age

    def _write_stats(self) -> None:
        if self._stats_path is None:
            return
        self._refresh_gauges()
        try:
            self.stats.write_json(self._stats_path)
        except OSError as exc:
            log.warning("cannot write bridge stats to %s: %s", self._stats_path, exc)

    async def _shutdown(self, timeout_s: float) -> bool:
        deadline = self._loop.time() + timeout_s
        # Finish what was already read; whatever arrives from now on stays un-acked.
        while self._inbox:
            self._drain()
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stage is not None:
            self._apply(self._stage.flush())
        elif self._pool is not None and self.failed is None:
            assert self._all_flushed is not None
            self._pool.request_flush()
            try:
                await asyncio.wait_for(self._all_flushed.wait(), timeout_s)
            except TimeoutError:
                log.warning("decoders did not flush in %.1f s", timeout_s)
        remaining = max(0.0, deadline - self._loop.time())
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=remaining or 0.001)
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
        await self._session.stop()
        if self._pool is not None:
            self._pool.close_inputs()
            await asyncio.sleep(0)  # let the transports write the exit sentinel
        return clean
