"""Watch the pipeline's Kafka side during ``cityhealth up``: alerts, dead letters, lag.

A background thread runs one asyncio loop with

* a consumer *without* a consumer group, assigned every partition of the alerts and
  dead-letter topics and positioned at their end when the watch starts, so it sees exactly
  the records produced during this run (even on long-lived topics);
* an admin client that polls the worker group's committed offsets and the stream topics'
  end offsets once a second: ``lag = end - committed`` per topic, summed over partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)


@dataclass
class WatchState:
    """What the watch has seen so far (copied out under the watch's lock)."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_types: Counter[str] = field(default_factory=Counter)
    undecodable_alerts: int = 0
    dead_letters: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    dead_letter_digests: set[str] = field(default_factory=set)
    lag: dict[str, int | None] = field(default_factory=dict)
    group_state: str = "unknown"


def dead_letter_reason(value: bytes) -> tuple[str, str]:
    """The first broken contract rule named by a dead-letter record (``?`` if unreadable),
    and a digest of its MQTT topic and payload (to recognise a re-delivered message)."""
    digest = hashlib.blake2b(value, digest_size=16).hexdigest()
    try:
        record = json.loads(value)
        digest = hashlib.blake2b(
            f"{record.get('mqtt_topic')}\0{record.get('payload')}".encode(), digest_size=16
        ).hexdigest()
        error = record.get("error") or {}
        rule = error.get("rule") or (error.get("errors") or [{}])[0].get("rule")
    except (ValueError, AttributeError, IndexError, TypeError):
        return "?", digest
    return (str(rule) if rule else "?"), digest


class KafkaWatch:
    """Counts alerts and dead letters of this run and measures the worker group's lag.

    Parameters
    ----------
    kafka
        :func:`ingest.kafka_client.kafka_client_kwargs` of the settings.
    alerts_topic, deadletter_topic
        Topics read from their end at :meth:`start`.
    stream_topics
        Topics whose consumer lag is measured.
    group_id
        The worker's consumer group (lag is ``None`` per topic until it committed).
    """

    def __init__(
        self,
        kafka: Mapping[str, Any],
        alerts_topic: str,
        deadletter_topic: str,
        stream_topics: Sequence[str],
        group_id: str,
    ) -> None:
        self.kafka = kafka
        self.alerts_topic, self.deadletter_topic = alerts_topic, deadletter_topic
        self.stream_topics = list(stream_topics)
        self.group_id = group_id
        self._state = WatchState(lag=dict.fromkeys(self.stream_topics))
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kafka-watch", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._parts: list[TopicPartition] = []
        self._stream_parts: list[TopicPartition] = []

    # -- life cycle -----------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> None:
        """Connect and take the start offsets; returns once records of this run are seen."""
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"Kafka watch not ready after {timeout_s} s")
        if self._error is not None:
            raise RuntimeError(f"Kafka watch failed: {self._error}") from self._error

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=15.0)

    def snapshot(self) -> WatchState:
        """A copy of the counters (alerts list shared read-only: it only grows)."""
        with self._lock:
            s = self._state
            return WatchState(
                alerts=list(s.alerts),
                alert_types=Counter(s.alert_types),
                undecodable_alerts=s.undecodable_alerts,
                dead_letters=s.dead_letters,
                dead_letter_reasons=Counter(s.dead_letter_reasons),
                dead_letter_digests=set(s.dead_letter_digests),
                lag=dict(s.lag),
                group_state=s.group_state,
            )

    def catch_up(self, timeout_s: float = 30.0) -> bool:
        """Wait until every alert/dead letter produced so far was consumed."""
        future = asyncio.run_coroutine_threadsafe(self._catch_up(), self._loop)
        try:
            future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            return False
        return True

    def refresh_lag(self, timeout_s: float = 15.0) -> dict[str, int | None]:
        """Measure the lag now; the last measured value if Kafka does not answer in time."""
        future = asyncio.run_coroutine_threadsafe(self._poll_lag(), self._loop)
        try:
            future.result(timeout_s)
        except Exception as exc:  # a broker hiccup: the next call measures again
            future.cancel()
            log.warning("consumer lag not measured: %s", exc)
        return self.snapshot().lag

    # -- thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported through start() or the display
            self._error = exc
            self._ready.set()
            log.exception("Kafka watch stopped")
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._admin = AIOKafkaAdminClient(**self.kafka)
        await self._admin.start()
        # read_committed: the worker publishes alerts in Kafka transactions, and
        # a worker killed mid-transaction leaves aborted copies that no consumer may count
        # (docs/STREAMS.md). Dead letters are plain produces, visible either way.
        self._consumer = AIOKafkaConsumer(
            **self.kafka,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await self._consumer.start()
        try:
            self._parts = await self._partitions([self.alerts_topic, self.deadletter_topic])
            self._stream_parts = await self._partitions(self.stream_topics)
            ends = await self._consumer.end_offsets(self._parts)
            self._consumer.assign(self._parts)
            for tp in self._parts:
                self._consumer.seek(tp, ends[tp])
            self._ready.set()
            lag_task = asyncio.create_task(self._lag_loop())
            try:
                while not self._stop.is_set():
                    batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
                    self._absorb(batches)
            finally:
                lag_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lag_task
        finally:
            await self._consumer.stop()
            await self._admin.close()

    async def _partitions(self, topics: list[str]) -> list[TopicPartition]:
        assert self._admin is not None
        described = await self._admin.describe_topics(topics)
        missing = [d["topic"] for d in described if d["error_code"] != 0]
        if missing:
            raise RuntimeError(f"Kafka topics missing: {missing}")
        return [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            for p in sorted(d["partitions"], key=lambda p: p["partition"])
        ]

    def _absorb(self, batches: dict[TopicPartition, list[Any]]) -> None:
        with self._lock:
            s = self._state
            for tp, records in batches.items():
                if tp.topic == self.alerts_topic:
                    for rec in records:
                        try:
                            alert = json.loads(rec.value)
                        except (ValueError, TypeError):
                            alert = None
                        if not isinstance(alert, dict):
                            s.undecodable_alerts += 1
                            continue
                        alert["kafka_ts"] = rec.timestamp / 1000.0
                        s.alerts.append(alert)
                        if alert.get("end") is None:  # a clear record is no new alert
                            s.alert_types[str(alert.get("type"))] += 1
                else:
                    s.dead_letters += len(records)
                    for rec in records:
                        reason, digest = dead_letter_reason(rec.value)
                        s.dead_letter_reasons[reason] += 1
                        s.dead_letter_digests.add(digest)

    async def _catch_up(self) -> None:
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._parts)
        while True:
            positions = [await self._consumer.position(tp) for tp in self._parts]
            if all(pos >= ends[tp] for pos, tp in zip(positions, self._parts, strict=True)):
                return
            await asyncio.sleep(0.1)

    async def _lag_loop(self) -> None:
        while True:
            try:
                await self._poll_lag()
            except Exception as exc:  # a broker hiccup must not end the watch
                log.debug("lag poll failed: %s", exc)
            await asyncio.sleep(1.0)

    async def _poll_lag(self) -> None:
        assert self._admin is not None and self._consumer is not None
        committed = await self._admin.list_consumer_group_offsets(
            self.group_id, partitions=self._stream_parts
        )
        ends = await self._consumer.end_offsets(self._stream_parts)
        lag: dict[str, int | None] = dict.fromkeys(self.stream_topics, 0)
        for tp in self._stream_parts:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None else -1
            if offset < 0:
                # Nothing committed: everything written so far is still to be processed.
                offset = 0
            current = lag[tp.topic]
            lag[tp.topic] = (current or 0) + max(ends[tp] - offset, 0)
        described = await self._admin.describe_consumer_groups([self.group_id])
        state = _group_state(described)
        with self._lock:
            self._state.lag = lag
            self._state.group_state = state


def _group_state(described: list[Any]) -> str:
    """``Stable``, ``PreparingRebalance``, ``Empty``, ``Dead``... from DescribeGroups."""
    try:
        groups = described[0].groups
        return str(groups[0][2])
    except (IndexError, AttributeError, TypeError):
        return "unknown"
