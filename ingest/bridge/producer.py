"""Kafka side of the bridge: an idempotent ``acks=all`` producer that retries until acked.

``acks="all"`` makes Kafka acknowledge a record only once every in-sync replica has it;
``enable_idempotence=True`` lets the producer retry internally without duplicating records
(KIP-98). A send that still fails (Kafka down longer than ``request_timeout_ms``) is retried
here with backoff for as long as the bridge runs: the MQTT messages behind it stay
unacknowledged, so nothing is lost even if the bridge dies meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.bridge.stats import BridgeStats

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class KafkaTarget:
    """Where to produce: ``kafka`` is :func:`ingest.kafka_client.kafka_client_kwargs`."""

    kafka: Mapping[str, Any]
    client_id: str
    request_timeout_ms: int = 15_000
    max_request_size: int = 1 << 20

    @property
    def bootstrap(self) -> str:
        return str(self.kafka["bootstrap_servers"])


class ReliableProducer:
    """An :class:`AIOKafkaProducer` that (re)starts and (re)sends until it succeeds or closes.

    Must be used from one asyncio event loop.
    """

    def __init__(self, target: KafkaTarget, stats: BridgeStats, backoff_s: float) -> None:
        self._target = target
        self._stats = stats
        self._backoff_s = backoff_s
        self._producer: AIOKafkaProducer | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._start_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start connecting in the background (Kafka may not be up yet)."""
        self._start_task = asyncio.ensure_future(self._start_loop())

    async def _start_loop(self) -> None:
        backoff = self._backoff_s
        while not self._closing:
            producer = AIOKafkaProducer(
                **self._target.kafka,
                client_id=self._target.client_id,
                acks="all",
                enable_idempotence=True,
                # Records are our own micro-batches: no lingering, room for a whole record.
                linger_ms=0,
                max_batch_size=self._target.max_request_size,
                max_request_size=self._target.max_request_size,
                request_timeout_ms=self._target.request_timeout_ms,
            )
            try:
                await producer.start()
            except KafkaError as exc:
                self._stats.kafka_errors += 1
                log.warning("Kafka not reachable at %s (%s); retrying", self._target.bootstrap, exc)
                await producer.stop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            self._producer = producer
            self._stats.kafka_ready = True
            self._ready.set()
            log.info("Kafka producer connected to %s", self._target.bootstrap)
            return

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None, partition: int | None
    ) -> bool:
        """Produce one record and wait for Kafka's acknowledgement, retrying failures.

        Returns ``False`` only if the producer closed before the record was acknowledged.
        """
        backoff = self._backoff_s
        while True:
            if self._producer is None:
                waiter = asyncio.ensure_future(self._ready.wait())
                await asyncio.wait([waiter], timeout=1.0)
                waiter.cancel()
                if self._closing and self._producer is None:
                    return False
                continue
            try:
                future = await self._producer.send(topic, value, key=key, partition=partition)
                await future
                return True
            except KafkaError as exc:
                self._stats.kafka_errors += 1
                if self._closing:
                    return False
                log.warning("Kafka send to %s failed (%s); retrying", topic, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def close(self) -> None:
        """Stop the producer; sends still retrying give up (their MQTT messages stay un-acked)."""
        self._closing = True
        if self._start_task is not None:
            self._start_task.cancel()
        if self._producer is not None:
            await self._producer.stop()
        self._stats.kafka_ready = False
