"""Read Kafka topics from the beginning up to their current end (tests, benchmarks, counts).

Not a streaming consumer: it assigns every partition (no consumer group, nothing committed),
takes the end offsets at call time and returns once every partition reached them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def read_to_end_async(
    kafka: Mapping[str, Any], topics: Iterable[str], *, timeout_s: float = 30.0
) -> dict[str, list[Any]]:
    """Every record now in ``topics``, per topic, in partition/offset order.

    ``kafka`` is :func:`ingest.kafka_client.kafka_client_kwargs` of the settings.

    Raises
    ------
    TimeoutError
        If the end offsets were not reached within ``timeout_s``.
    """
    names = list(topics)
    partitions = await _partitions(kafka, names)
    out: dict[str, list[Any]] = {t: [] for t in names}
    if not partitions:
        return out
    consumer = AIOKafkaConsumer(
        **kafka,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        pending = {tp for tp in partitions if end[tp] > 0}
        async with asyncio.timeout(timeout_s):
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=500)
                for tp, records in batches.items():
                    out[tp.topic].extend(r for r in records if r.offset < end[tp])
                for tp in list(pending):
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
        return out
    finally:
        await consumer.stop()


async def _partitions(kafka: Mapping[str, Any], names: list[str]) -> list[TopicPartition]:
    """Every partition of the existing topics among ``names``."""
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d["error_code"] == 0
        for p in sorted(d["partitions"], key=lambda p: p["partition"])
    ]


def read_to_end(
    kafka: Mapping[str, Any], topics: Iterable[str], *, timeout_s: float = 30.0
) -> dict[str, list[Any]]:
    """Synchronous :func:`read_to_end_async` (not from inside a running event loop)."""
    return asyncio.run(read_to_end_async(kafka, topics, timeout_s=timeout_s))
