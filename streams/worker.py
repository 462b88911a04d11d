"""The stream worker: partition runners created on demand, timers, rebalances.

Kept apart from the Faust app object (streams/app.py) so the same logic serves
``faust -A streams.app worker``, ``cityhealth worker`` and the throughput measurement.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cityhealth.settings import Settings
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import STREAM_BASES, ensure_topics_async, topics_for
from streams.checkpoint import ensure_checkpoint_topic
from streams.clock import StreamClock
from streams.config import WorkerConfig
from streams.district import DistrictBoard
from streams.output import Databases, Output
from streams.processors import Services
from streams.runner import Ack, PartitionRunner, Stats, make_runner, write_until_acknowledged
from streams.sink import InfluxSink, SinkUnavailableError, make_sink

log = logging.getLogger(__name__)

CHECKPOINT_BASE = "checkpoints"
#: Seconds between retries of a runner start that failed on assignment (Kafka restarting,
#: a rebalance in progress): a partition with a stream not started writes no district row.
START_RETRY_S = 5.0


class StreamWorker:
    """Everything one worker process owns besides Faust itself."""

    def __init__(self, settings: Settings, config: WorkerConfig, app_id: str) -> None:
        self.settings = settings
        self.config = config
        self.app_id = app_id
        self.topics = topics_for(settings)
        self.checkpoint_topic = settings.topic_prefix + CHECKPOINT_BASE
        self.services = Services(
            config=config,
            dbs=Databases(settings.influx_db_sensitive, settings.influx_db_public),
            board=DistrictBoard(),
            clock=StreamClock(),
        )
        self.stats = Stats()
        self.runners: dict[tuple[str, int], PartitionRunner] = {}
        self.assigned: set[tuple[str, int]] = set()
        self._background: set[asyncio.Future[None]] = set()
        self._creating: dict[tuple[str, int], asyncio.Lock] = {}
        self._starting: set[tuple[str, int]] = set()  # starts in flight (background)
        self._retry_at: dict[tuple[str, int], float] = {}  # failed starts: next try
        self._stream_of_topic = {self.topics.stream(s): s for s in STREAM_BASES}
        self._board_sink: InfluxSink | None = None
        #: A flush's rows and a revocation never interleave: the old owner writes no row
        #: of a partition once it was revoked (the new owner's rows win).
        self._board_lock = asyncio.Lock()
        self._revoking = 0
        self._board_executor = ThreadPoolExecutor(1, thread_name_prefix="districts")
        self._board_out = Output(self.services.dbs)

    # -- start-up -----------------------------------------------------------------------
    async def prepare(self) -> None:
        """Topics (stream, alerts, compacted checkpoints) and InfluxDB databases exist."""
        s = self.settings
        await ensure_topics_async(kafka_client_kwargs(s), self.topics.all, s.kafka_partitions)
        await ensure_checkpoint_topic(
            kafka_client_kwargs(s), self.checkpoint_topic, s.kafka_partitions
        )
        sink = make_sink(s)
        try:
            await asyncio.get_running_loop().run_in_executor(None, sink.ensure_databases)
        finally:
            sink.close()

    # -- runners ------------------------------------------------------------------------
    def stream_of(self, topic: str) -> str | None:
        return self._stream_of_topic.get(topic)

    async def runner(
        self, stream: str, partition: int, *, if_assigned: bool = False
    ) -> PartitionRunner | None:
        """The started runner of a partition (restores its checkpoint on first use).

        ``if_assigned``: create it only while the partition is still assigned (an
        assignment's background start must not outlive a revocation).
        """
        key = (stream, partition)
        runner = self.runners.get(key)
        if runner is not None:
            return runner
        lock = self._creating.setdefault(key, asyncio.Lock())
        async with lock:
            runner = self.runners.get(key)
            if runner is None:
                if if_assigned and key not in self.assigned:
                    return None
                runner = make_runner(
                    stream,
                    partition,
                    services=self.services,
                    sink=make_sink(self.settings),
                    kafka=kafka_client_kwargs(self.settings),
                    transactional_id=f"{self.app_id}-{stream}-{partition}",
                    checkpoint_topic=self.checkpoint_topic,
                    alerts_topic=self.topics.alerts,
                    stats=self.stats,
                )
                await runner.start()
                self.runners[key] = runner
            return runner

    async def handle(
        self, topic: str, partition: int, payload: bytes, ack: Ack, event: Any
    ) -> None:
        stream = self.stream_of(topic)
        if stream is None:
            await ack(event)
            return
        runner = await self.runner(stream, partition)
        assert runner is not None
        await runner.handle(payload, ack, event)

    def assign(self, topic_partitions: set[tuple[str, int]]) -> None:
        """Start the runners of assigned partitions in the background: their state and
        timers (offline devices) are live even if no record ever arrives again."""
        for topic, partition in topic_partitions:
            stream = self.stream_of(topic)
            if stream is not None:
                self.assigned.add((stream, partition))
                self._start_in_background(stream, partition)

    def _start_in_background(self, stream: str, partition: int) -> None:
        self._starting.add((stream, partition))
        task = asyncio.ensure_future(self._start_assigned(stream, partition))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_assigned(self, stream: str, partition: int) -> None:
        key = (stream, partition)
        try:
            await self.runner(stream, partition, if_assigned=True)
            self._retry_at.pop(key, None)
        except Exception:  # retried from the timer (and by the partition's next record)
            self._retry_at[key] = time.monotonic() + START_RETRY_S
            log.exception(
                "cannot start %s[%d] on assignment; retrying in %.0f s",
                stream,
                partition,
                START_RETRY_S,
            )
        finally:
            self._starting.discard(key)

    def retry_failed_starts(self) -> int:
        """Start again, in the background, every assigned stream whose start failed and
        whose retry time came (a stream with no record to retry it would otherwise keep
        its partition's district rows unwritten for good); returns how many."""
        now = time.monotonic()
        due = [
            key
            for key, at in self._retry_at.items()
            if at <= now
            and key in self.assigned
            and key not in self.runners
            and key not in self._starting
        ]
        for stream, partition in due:
            self._start_in_background(stream, partition)
        for key in [k for k in self._retry_at if k not in self.assigned or k in self.runners]:
            del self._retry_at[key]
        return len(due)

    async def revoke(self, topic_partitions: set[tuple[str, int]]) -> None:
        """Drop the runners of revoked partitions (the next owner restores their state)."""
        self._revoking += 1  # a flush blocked on InfluxDB gives up its write
        try:
            await self._revoke(topic_partitions)
        finally:
            self._revoking -= 1

    async def _revoke(self, topic_partitions: set[tuple[str, int]]) -> None:
        async with self._board_lock:
            for topic, partition in topic_partitions:
                stream = self.stream_of(topic)
                if stream is None:
                    continue
                key = (stream, partition)
                self.assigned.discard(key)
                async with self._creating.setdefault(key, asyncio.Lock()):  # a start in flight
                    runner = self.runners.pop(key, None)
                if runner is not None:
                    await runner.close()  # drops its part of the district minutes

    # -- timers -------------------------------------------------------------------------
    async def tick(self) -> None:
        """Offline/inactivity checks in every runner, then the district minute rows."""
        self.retry_failed_starts()
        now = self.services.clock.now()
        if math.isfinite(now):  # no sensor time seen yet: nothing can be late
            for runner in list(self.runners.values()):
                await runner.tick(now)
        await self.flush_districts()
        if self.config.stats_json is not None:
            self._write_stats(self.config.stats_json)

    def _write_stats(self, path: Path) -> None:
        """Atomically replace ``path`` with the counters (a reader never sees half a file)."""
        data = {
            "time": time.time(),
            "partitions": len(self.runners),
            **self.stats.as_dict(),
            "district_late_rewrites": self.services.board.late_rewrites,
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    async def flush_districts(self) -> None:
        """Upsert the district rows of every partition whose streams are all started.

        A partition with an assigned stream still restoring is skipped (its row would
        lack that stream's part); the AQI category alerts are raised by the air
        stream's runners (streams/runner.py), so no alert goes out from here.
        """
        async with self._board_lock:
            loop = asyncio.get_running_loop()
            out = self._board_out
            skip = {p for key in self.assigned if key not in self.runners for p in key[1:]}
            flush = functools.partial(self.services.board.flush, skip=skip, categories=False)
            await loop.run_in_executor(self._board_executor, flush, out)
            if out.empty:
                return
            if self._board_sink is None:
                self._board_sink = make_sink(self.settings)
            sink = self._board_sink
            try:
                await loop.run_in_executor(
                    self._board_executor,
                    write_until_acknowledged,
                    sink,
                    out.bodies,
                    lambda: self._revoking > 0,
                )
            except SinkUnavailableError as exc:  # a revocation waits: write them next time
                log.warning("district rows not written (InfluxDB unavailable): %s", exc)
                self.services.board.unflush()
            finally:
                out.clear()

    async def stop(self) -> None:
        self._revoking += 1  # as a revocation of everything: a blocked flush gives up
        async with self._board_lock:  # no flush of half-closed partitions
            for runner in list(self.runners.values()):
                await runner.close()
            self.runners.clear()
