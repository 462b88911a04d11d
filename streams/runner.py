"""Processing of one source partition: batches in, InfluxDB + checkpoint + alerts, then acks.

The commit protocol (docs/STREAMS.md), per partition and in this order:

1. every batch is processed in the partition's own thread (kernels and line-protocol
   encoding release the event loop); its bodies and alerts accumulate;
2. *commit step* (an alert is pending, ``checkpoint_interval_s`` passed, or
   ``checkpoint_max_batches`` batches): the step's alerts are published at once, in a
   Kafka transaction with the partition's *alerts-ahead* record (streams/ahead.py);
   then the checkpoint records of every device block changed since the last step are
   exported (the state now covers exactly the step's batches) and the accumulated
   bodies go to the writer thread, which writes them to InfluxDB and waits for the
   acknowledgement (retrying while InfluxDB is down); processing of the next batches
   goes on meanwhile;
3. once InfluxDB acknowledged: in **one Kafka transaction** (transactional id per source
   partition) the step's checkpoint records, and the alerts-ahead record without the
   step's alerts;
4. only then ack the step's events to Faust, which commits their offsets. Steps publish
   in order (each waits for the previous one's publication before its transaction), at
   most :data:`MAX_STEPS` are in flight. A new step is cut without waiting for the
   previous one's transaction.

Between commit steps, *write steps* hand the rows processed since the last cut to the
writer every ``write_interval_s`` (no checkpoint, no acks; the next commit step acks
their events after their write): checkpoints are the costly part of a step, rows should
not wait for them.

So a committed offset never runs ahead of a checkpoint (the state covers every
committed batch), and an alert never waits for InfluxDB: a restarted owner that replays
a step whose alerts went out ahead of its checkpoint withholds them (their keys are in
the alerts-ahead record), so none is published twice. The partition's open district
minutes (streams/district.py) travel in the checkpoint transaction as records of their
own, and the air stream raises its districts' AQI category changes in its commit step,
so both resume exactly after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import AIOKafkaProducer

from ingest.batch import BatchFormatError, decode
from streams import ahead
from streams.checkpoint import checkpoint_key, read_checkpoints
from streams.district import STATION_STREAM, BoardRecordError
from streams.output import Output
from streams.processors import PROCESSORS, Processor, Services
from streams.sink import InfluxSink, SinkRejectedError, SinkUnavailableError
from streams.sink._lines import count_lines
from streams.sink.base import split_body
from streams.state import CheckpointError

log = logging.getLogger(__name__)

Ack = Callable[[Any], Awaitable[Any]]

#: Steps (commit and write steps) cut but not yet published, at most: bounds memory while
#: InfluxDB is slow or down. Each holds at most ``write_interval_s`` of rows, so this is
#: also how long InfluxDB may stall (a cache snapshot under load takes 1-5 s here) before
#: processing, and with it every alert of the partition, waits for it.
MAX_STEPS = 8


def write_until_acknowledged(
    sink: InfluxSink, bodies: dict[str, list[bytes]], stop: Callable[[], bool]
) -> int:
    """Write every body; keep retrying while InfluxDB is unavailable (no loss).

    A body InfluxDB *refuses* (4xx, e.g. a field type conflict) would be refused again:
    it is logged and dropped. Returns the points refused that way (:func:`refused_points`).
    Bodies are cut here into the requests the sink would send (``max_body_bytes``), so
    each refusal is counted against the one request it concerns: the sink writes the
    other requests of a body and raises only the first refusal.
    """
    refused = 0
    for database, parts in bodies.items():
        for chunk in split_body(b"\n".join(parts), sink.max_body_bytes):
            while True:
                try:
                    sink.write(database, chunk, give_up=stop)
                    break
                except SinkUnavailableError as exc:
                    if stop():
                        raise
                    log.warning("InfluxDB unavailable, retrying: %s", exc)
                    time.sleep(1.0)
                except SinkRejectedError as exc:
                    n = refused_points(exc, chunk)
                    refused += n
                    log.error("InfluxDB refused %d points for %s: %s", n, database, exc)
                    break
    return refused


def write_output(sink: InfluxSink, out: Output, stop: Callable[[], bool]) -> tuple[int, int]:
    """Encode a commit step's rows (:meth:`Output.encode`) and write them like
    :func:`write_until_acknowledged`; returns ``(points, refused points)``, rows that
    could not be encoded counted as refused. Runs in the writer thread: the encoding
    overlaps the processing of the next batches."""
    out.encode()
    refused = write_until_acknowledged(sink, out.bodies, stop)
    return out.points, refused + out.unencoded


_DROPPED = re.compile(r"dropped=(\d+)")


def refused_points(exc: SinkRejectedError, chunk: bytes) -> int:
    """Points of one refused request that InfluxDB did not store.

    A *partial write* stored the valid points: InfluxDB 1.x counts the points it dropped
    (field type conflicts, beyond retention) as ``dropped=N`` and lists each unparsable
    line as ``unable to parse``. When a request has both kinds, the server names only the
    dropped points, so the count is then a lower bound. Any other refusal (parse errors
    only, unknown database, auth) stored nothing: every line of the request counts.
    """
    if not exc.partial_write:
        return count_lines(chunk)
    found = _DROPPED.search(exc.message)
    return (int(found.group(1)) if found else 0) + exc.message.count("unable to parse")


class Stats:
    """Counters of one worker process (``--stats-json``; the live display reads them)."""

    def __init__(self) -> None:
        self.batches = 0
        self.readings = 0
        self.bad_batches = 0
        self.points = 0
        self.refused_points = 0
        self.alerts = 0
        self.commits = 0
        self.writes = 0  # write steps (rows only) between commit steps
        self.restored_blocks = 0
        self.withheld_alerts = 0  # raised again by a replay, published before it

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class PartitionRunner:
    """State, thread and transactional producer of one ``(stream, partition)``."""

    def __init__(
        self,
        stream: str,
        partition: int,
        services: Services,
        sink: InfluxSink,
        kafka: Mapping[str, Any],
        transactional_id: str,
        checkpoint_topic: str,
        alerts_topic: str,
        stats: Stats,
    ) -> None:
        self.stream = stream
        self.partition = partition
        self.services = services
        self.config = services.config
        #: This stream's and partition's handle on the worker's district board.
        self.board = services.board.view(stream, partition)
        self.processor: Processor = PROCESSORS[stream](replace(services, board=self.board))
        self.sink = sink
        self.kafka = kafka  # kafka_client_kwargs(settings): address and SASL credentials
        self.checkpoint_topic = checkpoint_topic
        self.alerts_topic = alerts_topic
        self.stats = stats
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"{stream}-{partition}")
        #: InfluxDB writes of a commit step overlap the processing of the next batches.
        self.writer = ThreadPoolExecutor(1, thread_name_prefix=f"{stream}-{partition}-influx")
        self._steps: list[asyncio.Future[None]] = []  # cut, not yet published, in order
        self._cuts = 0  # commit steps cut so far: names a step in the alerts-ahead set
        self.offset = -1  # newest source offset processed (alerts-ahead entries)
        self.ahead = ahead.AlertsAhead()
        #: one transaction at a time on the producer: a cut's alert transaction and a
        #: published step's checkpoint transaction run from different tasks
        self._transaction = asyncio.Lock()
        self.lock = asyncio.Lock()
        self.out = Output(services.dbs)
        self.pending: list[tuple[Ack, Any]] = []
        self.batches_since = 0
        self.last_commit = time.monotonic()
        self.last_write = time.monotonic()  # rows last handed to the writer (any step)
        self.last_flush = time.monotonic()  # open aggregate periods last upserted
        self.unflushed = False  # batches processed since (their open periods changed)
        self.closed = False
        self.producer = AIOKafkaProducer(
            **kafka,
            transactional_id=transactional_id,
            enable_idempotence=True,
            acks="all",
            max_request_size=8 << 20,
            # aiokafka's default 16 KiB batch holds one ~13 KB checkpoint block, so each
            # block went out as a produce request of its own, and the broker's cost is per
            # request (docs/INGEST.md). 1 MiB stays within the broker's default
            # message.max.bytes, which the alerts topic keeps.
            max_batch_size=1 << 20,
            linger_ms=0,
        )

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def start(self) -> None:
        """Fence a previous owner (aborts its open transaction), then restore state."""
        await self.producer.start()
        records = await read_checkpoints(
            self.kafka, self.checkpoint_topic, self.partition, self.stream
        )
        prefix = len(checkpoint_key(self.stream, self.partition, ""))
        blocks: list[tuple[str, bytes]] = []
        minutes: list[tuple[str, bytes]] = []
        for key, value in records.items():
            name = key[prefix:].decode()
            if name == ahead.BLOCK:
                self._restore_ahead(value)
            else:
                (blocks if name.isdigit() else minutes).append((name, value))
        restored = await self._run(self._import, [v for _, v in blocks], minutes)
        self.stats.restored_blocks += restored
        # The restored state may hold open aggregate periods that the previous owner
        # changed but never upserted (it flushes every aggregate_interval_s only; their
        # marks travel in the checkpoint): flush them like processed batches, or a
        # partition that gets no new record would never write them.
        self.unflushed = restored > 0

    def _restore_ahead(self, payload: bytes) -> None:
        try:
            self.ahead.restore(payload, time.time())
        except ValueError as exc:  # publish the replay's alerts again rather than none
            log.error("%s[%d]: %s", self.stream, self.partition, exc)
        if self.ahead.restored:
            log.info(
                "%s[%d]: %d alert(s) published ahead of the last checkpoint are withheld "
                "when the replay raises them again",
                self.stream,
                self.partition,
                len(self.ahead.restored),
            )

    def _import(self, payloads: list[bytes], minutes: list[tuple[str, bytes]]) -> int:
        for payload in payloads:
            try:
                self.processor.state.import_block(payload)
            except CheckpointError as exc:  # skip a bad block: its devices re-learn
                log.error("%s[%d]: %s", self.stream, self.partition, exc)
        for name, payload in minutes:  # open district minutes: written at the next flush
            try:
                self.board.import_record(name, payload)
            except BoardRecordError as exc:  # skip: that minute restarts from what comes
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
            self.offset = max(self.offset, _offset(event))
            self.batches_since += 1
            if self._due():
                await self._commit()
            elif self._write_due():
                await self._write()

    async def _write(self) -> None:
        """A write step; for the air stream first its districts' AQI category changes,
        which, being alerts, make it a commit step (decided at the write cadence, as at
        the 1-s commit steps before, not only every ``checkpoint_interval_s``)."""
        if self.stream == STATION_STREAM:
            await self._run(self.board.category_alerts, self.out)
            if self.out.alerts:
                await self._commit()
                return
        await self._cut_write()

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
        self.unflushed = True

    def _flush_due(self) -> bool:
        """Open aggregate periods changed and ``aggregate_interval_s`` passed since they
        were last upserted."""
        return self.unflushed and (
            time.monotonic() - self.last_flush >= self.config.aggregate_interval_s
        )

    def _due(self) -> bool:
        return bool(
            self.out.alerts
            or self.batches_since >= self.config.checkpoint_max_batches
            or time.monotonic() - self.last_commit >= self.config.checkpoint_interval_s
        )

    def _write_due(self) -> bool:
        """Rows are queued and ``write_interval_s`` passed since rows were last written."""
        return (not self.out.empty) and (
            time.monotonic() - self.last_write >= self.config.write_interval_s
        )

    # -- timers ----------------------------------------------------------------------------
    async def tick(self, now: float) -> None:
        """Timer work (offline, inactivity), then a commit if anything is waiting."""
        async with self.lock:
            if self.closed:
                return
            await self._run(self.processor.tick, now, self.out)
            if (
                self.out.alerts
                or (self.pending and self._due())
                or self._flush_due()
                or self.board.has_tombstones()  # of forgotten minutes: commit them soon
            ):
                await self._commit()
            elif self._write_due():
                await self._write()
            elif self._steps and self._steps[0].done():
                await self._reap()  # surfaces a failed publication

    # -- commit step -----------------------------------------------------------------------
    async def _commit(self) -> None:
        """Cut a commit step: its alerts are published now, its bodies go to the writer
        thread while processing goes on.

        The state is exported *now* (it covers exactly the step's batches); the step's
        checkpoint transaction and acks run once InfluxDB acknowledged its bodies and the
        previous step is published (:meth:`_publish`).
        """
        await self._reap()
        out = self.out
        if self._flush_due():
            await self._run(self.processor.flush, out)
            self.last_flush = time.monotonic()
            self.unflushed = False
        if self.stream == STATION_STREAM:
            await self._run(self.board.category_alerts, out)
        self._cuts += 1
        if out.alerts:
            await self._publish_alerts(out)
        if len(self._steps) >= MAX_STEPS:
            await self._steps[0]  # bounded: the oldest step published (or raises)
            await self._reap()
        out.mirror_alerts()
        records = await self._run(self._records)
        written = asyncio.get_running_loop().run_in_executor(
            self.writer, write_output, self.sink, out, lambda: self.closed
        )
        previous = self._steps[-1] if self._steps else None
        acked = max((_offset(e) for _, e in self.pending), default=-1)
        step = _Step(written, records, self._cuts, self.pending, acked)
        self._steps.append(asyncio.ensure_future(self._publish(step, previous)))
        self.out = Output(self.services.dbs)
        self.pending = []
        self.batches_since = 0
        self.last_commit = self.last_write = time.monotonic()

    async def _cut_write(self) -> None:
        """Cut a *write step*: the rows queued since the last cut go to the writer thread
        now, without a checkpoint, alerts or acks (their events stay pending for the next
        commit step, which acks them only after this write and its own are acknowledged:
        steps publish in order). A crash before that step replays the records from the
        last checkpoint and writes the same points again (idempotent). So rows reach
        InfluxDB every ``write_interval_s`` while checkpoints, the costly part, are cut
        every ``checkpoint_interval_s``; and a commit step cut for an alert carries at
        most ``write_interval_s`` of rows, which keeps its write short.
        """
        await self._reap()
        if len(self._steps) >= MAX_STEPS:
            await self._steps[0]
            await self._reap()
        written = asyncio.get_running_loop().run_in_executor(
            self.writer, write_output, self.sink, self.out, lambda: self.closed
        )
        previous = self._steps[-1] if self._steps else None
        step = _Step(written, [], 0, [], -1, commit=False)
        self._steps.append(asyncio.ensure_future(self._publish(step, previous)))
        self.out = Output(self.services.dbs)
        self.last_write = time.monotonic()

    def _records(self) -> list[tuple[bytes, bytes | None]]:
        """The step's checkpoint records: changed device blocks, then the district
        minutes changed (or forgotten: ``None``, a tombstone) since the last step."""
        key = checkpoint_key
        s, p = self.stream, self.partition
        records: list[tuple[bytes, bytes | None]] = [
            (key(s, p, block), data) for block, data in self.processor.state.take_dirty()
        ]
        records += [(key(s, p, name), data) for name, data in self.board.take_records()]
        return records

    async def _reap(self) -> None:
        """Forget published steps (raises the failure of one that failed)."""
        while self._steps and self._steps[0].done():
            self._steps.pop(0).result()

    async def _publish_alerts(self, out: Output) -> None:
        """Publish a commit step's alerts now, ahead of its checkpoint: in one transaction
        with the alerts-ahead record that lets a restarted owner withhold them when its
        replay of the step raises them again (streams/ahead.py). Alerts already published
        (restored entries) are not sent again."""
        async with self._transaction:
            now = time.time()
            for alert in out.alerts:
                alert.emitted_ts = now
            fresh, after = self.ahead.take(out.alerts, self._cuts, now, self.offset)
            if fresh:
                async with self.producer.transaction():
                    for alert in fresh:
                        await self.producer.send(
                            self.alerts_topic, alert.to_json(), key=alert.subject.encode()
                        )
                    await self._send_ahead_record(after)
            # adopted only now: an aborted transaction published nothing, and the next
            # cut (same Output, its alerts still queued) must send them then
            self.ahead = after
            withheld = len(out.alerts) - len(fresh)
            if withheld:
                self.stats.withheld_alerts += withheld
                log.info(
                    "%s[%d]: withheld %d alert(s) published before the restart",
                    self.stream,
                    self.partition,
                    withheld,
                )
        self.stats.alerts += len(fresh)

    async def _send_ahead_record(self, alerts_ahead: ahead.AlertsAhead) -> None:
        await self.producer.send(
            self.checkpoint_topic,
            alerts_ahead.record(),
            key=checkpoint_key(self.stream, self.partition, ahead.BLOCK),
            partition=self.partition,
        )

    async def _publish(self, step: _Step, previous: asyncio.Future[None] | None) -> None:
        points, refused = await step.written  # InfluxDB acknowledged the step's points
        if previous is not None:
            await asyncio.shield(previous)  # in order; a failed step fails the later ones
        async with self._transaction:
            # the step's alerts went out at its cut: this checkpoint covers them now
            after = (
                self.ahead.checkpointed(step.cut, time.time(), step.acked) if step.commit else None
            )
            if step.records or after is not None:
                async with self.producer.transaction():
                    for key, data in step.records:
                        await self.producer.send(
                            self.checkpoint_topic, data, key=key, partition=self.partition
                        )
                    if after is not None:
                        await self._send_ahead_record(after)
            if after is not None:
                self.ahead = after
        for ack, event in step.events:
            await ack(event)
        self.stats.points += points
        self.stats.refused_points += refused
        if step.commit:
            self.stats.commits += 1
        else:
            self.stats.writes += 1

    async def drain(self) -> None:
        """Wait until every step cut so far is published (raises the first failure)."""
        while self._steps:
            await self._steps[0]
            await self._reap()

    async def close(self) -> None:
        """Stop after the current step; un-acked events are left for the next owner."""
        self.closed = True
        try:
            async with self.lock:
                self.pending = []
                steps, self._steps = self._steps, []
                results = await asyncio.gather(*steps, return_exceptions=True)
                failed = [r for r in results if isinstance(r, BaseException)]
                if failed:
                    log.warning(
                        "%s[%d]: %d last step(s) not published: %s",
                        self.stream,
                        self.partition,
                        len(failed),
                        failed[0],
                    )
                await self.producer.stop()
            self.executor.shutdown(wait=True)
            self.writer.shutdown(wait=True)
        finally:
            # even after a failed stop: a revoked partition's minutes must not be written
            # by this worker any more (the next owner restores and replays them)
            self.board.drop()


@dataclass
class _Step:
    """A commit step between its cut and its publication."""

    written: asyncio.Future[tuple[int, int]]  # (points, refused points)
    records: list[tuple[bytes, bytes | None]]  # (checkpoint key, value; None: tombstone)
    cut: int  # commit step number (alerts-ahead entries); 0 for a write step
    events: list[tuple[Ack, Any]]
    acked: int  # newest source offset among ``events`` (-1: none known)
    commit: bool = True  # False: a write step (rows only, no checkpoint, no acks)


def _offset(event: Any) -> int:
    """Source offset of a Faust event (-1 for anything else, e.g. tests' plain events)."""
    offset = getattr(getattr(event, "message", None), "offset", None)
    return offset if isinstance(offset, int) else -1


def make_runner(stream: str, partition: int, **kwargs: Any) -> PartitionRunner:
    """A runner (not started); kwargs as :class:`PartitionRunner`."""
    if stream not in PROCESSORS:
        raise KeyError(f"no processor for stream {stream!r}")
    return PartitionRunner(stream, partition, **kwargs)
