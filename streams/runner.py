"""Processing of one source partition: batches in, InfluxDB + checkpoint + alerts, then acks.

The commit protocol (docs/STREAMS.md), per partition and in this order:

1. every batch is processed in the partition's own thread (kernels and line-protocol
   encoding release the event loop); its bodies and alerts accumulate;
2. *commit step* (an alert is pending, ``checkpoint_interval_s`` passed, or
   ``checkpoint_max_batches`` batches): write the accumulated bodies to InfluxDB and wait
   for the acknowledgement (retrying while InfluxDB is down);
3. in **one Kafka transaction** (transactional id per source partition): the checkpoint
   records of every device block changed since the last step, and the alerts;
4. only then ack the events to Faust, which commits their offsets.

So a committed offset never runs ahead of a checkpoint (the state covers every
committed batch), and alerts are published exactly when the state that raised them is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaProducer

from ingest.batch import BatchFormatError, decode
from streams.checkpoint import checkpoint_key, read_checkpoints
from streams.output import Output
from streams.processors import PROCESSORS, Processor, Services
from streams.sink import InfluxSink, SinkRejectedError, SinkUnavailableError
from streams.state import CheckpointError

log = logging.getLogger(__name__)

Ack = Callable[[Any], Awaitable[Any]]


def write_until_acknowledged(
    sink: InfluxSink, bodies: dict[str, list[bytes]], stop: Callable[[], bool]
) -> int:
    """Write every body; keep retrying while InfluxDB is unavailable (no loss).

    A body InfluxDB *refuses* (4xx, e.g. a field type conflict) would be refused again:
    it is logged and dropped. Returns the points refused that way.
    """
    refused = 0
    for database, parts in bodies.items():
        body = b"\n".join(parts)
        while True:
            try:
                sink.write(database, body)
                break
            except SinkUnavailableError as exc:
                if stop():
                    raise
                log.warning("InfluxDB unavailable, retrying: %s", exc)
                time.sleep(1.0)
            except SinkRejectedError as exc:
                refused += body.count(b"\n") + 1
                log.error("InfluxDB refused %d bytes for %s: %s", len(body), database, exc)
                break
    return refused


class Stats:
    """Counters of one worker process (tests and the live display read them)."""

    def __init__(self) -> None:
        self.batches = 0
        self.readings = 0
        self.bad_batches = 0
        self.points = 0
        self.refused_points = 0
        self.alerts = 0
        self.commits = 0
        self.restored_blocks = 0


class PartitionRunner:
    """State, thread and transactional producer of one ``(stream, partition)``."""

    def __init__(
        self,
        stream: str,
        partition: int,
        services: Services,
        sink: InfluxSink,
        bootstrap: str,
        transactional_id: str,
        checkpoint_topic: str,
        alerts_topic: str,
        stats: Stats,
    ) -> None:
        self.stream = stream
        self.partition = partition
        self.services = services
        self.config = services.config
        self.processor: Processor = PROCESSORS[stream](services)
        self.sink = sink
        self.bootstrap = bootstrap
        self.checkpoint_topic = checkpoint_topic
        self.alerts_topic = alerts_topic
        self.stats = stats
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"{stream}-{partition}")
        self.lock = asyncio.Lock()
        self.out = Output(services.dbs)
        self.pending: list[tuple[Ack, Any]] = []
        self.batches_since = 0
        self.last_commit = time.monotonic()
        self.closed = False
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=transactional_id,
            enable_idempotence=True,
            acks="all",
            max_request_size=8 << 20,
            linger_ms=0,
        )

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def start(self) -> None:
        """Fence a previous owner (aborts its open transaction), then restore state."""
        await self.producer.start()
        records = await read_checkpoints(
            self.bootstrap, self.checkpoint_topic, self.partition, self.stream
        )
        restored = await self._run(self._import, list(records.values()))
        self.stats.restored_blocks += restored

    def _import(self, payloads: list[bytes]) -> int:
        for payload in payloads:
            try:
                self.processor.state.import_block(payload)
            except CheckpointError as exc:  # skip a bad block: its devices re-learn
                log.error("%s[%d]: %s", self.stream, self.partition, exc)
        self.processor.state.dirty.clear()
        self.processor.restored()
        return len(payloads)

    # -- batches ---------------------------------------------------------------------------
    async def handle(self, payload: bytes, ack: Ack, event: Any) -> None:
        """Process one record; commit when due."""
        async with self.lock:
            await self._run(self._process, payload)
            self.pending.append((ack, event))
            self.batches_since += 1
            if self._due():
                await self._commit()

    def _process(self, payload: bytes) -> None:
        try:
            batch = decode(payload)
        except BatchFormatError as exc:
            self.stats.bad_batches += 1
            log.error("%s[%d]: skipping a bad batch: %s", self.stream, self.partition, exc)
            return
        try:
            readings = self.processor.process(batch, self.out)
        except (ValueError, IndexError, KeyError) as exc:  # valid format, impossible content
            self.stats.bad_batches += 1
            log.exception("%s[%d]: batch not processed: %s", self.stream, self.partition, exc)
            return
        self.stats.batches += 1
        self.stats.readings += readings

    def _due(self) -> bool:
        return bool(
            self.out.alerts
            or self.batches_since >= self.config.checkpoint_max_batches
            or time.monotonic() - self.last_commit >= self.config.checkpoint_interval_s
        )

    # -- timers ----------------------------------------------------------------------------
    async def tick(self, now: float) -> None:
        """Timer work (offline, inactivity), then a commit if anything is waiting."""
        async with self.lock:
            if self.closed:
                return
            await self._run(self.processor.tick, now, self.out)
            if self.out.alerts or (self.pending and self._due()):
                await self._commit()

    # -- commit step -----------------------------------------------------------------------
    async def _commit(self) -> None:
        out = self.out
        await self._run(self.processor.flush, out)
        now = time.time()
        for alert in out.alerts:
            alert.emitted_ts = now
        out.mirror_alerts()
        refused = await self._run(
            write_until_acknowledged, self.sink, out.bodies, lambda: self.closed
        )
        records = await self._run(self.processor.state.take_dirty)
        alerts = out.alerts
        async with self.producer.transaction():
            for block, data in records:
                key = checkpoint_key(self.stream, self.partition, block)
                await self.producer.send(
                    self.checkpoint_topic, data, key=key, partition=self.partition
                )
            for alert in alerts:
                await self.producer.send(
                    self.alerts_topic, alert.to_json(), key=alert.subject.encode()
                )
        for ack, event in self.pending:
            await ack(event)
        self.stats.points += out.points
        self.stats.refused_points += refused
        self.stats.alerts += len(alerts)
        self.stats.commits += 1
        self.pending = []
        self.batches_since = 0
        self.last_commit = time.monotonic()
        out.clear()

    async def close(self) -> None:
        """Stop after the current step; un-acked events are left for the next owner."""
        self.closed = True
        async with self.lock:
            self.pending = []
            await self.producer.stop()
        self.executor.shutdown(wait=True)


def make_runner(stream: str, partition: int, **kwargs: Any) -> PartitionRunner:
    """A runner (not started); kwargs as :class:`PartitionRunner`."""
    if stream not in PROCESSORS:
        raise KeyError(f"no processor for stream {stream!r}")
    return PartitionRunner(stream, partition, **kwargs)
