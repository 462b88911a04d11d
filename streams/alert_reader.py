"""Read the alerts topic as a consumer must: ``read_committed``.

Alerts are published in Kafka transactions of the worker (at a commit step's cut, with
its alerts-ahead record, docs/STREAMS.md); a worker killed mid-transaction leaves
records that the broker marks aborted. Only a ``read_committed`` consumer skips them,
so every alert consumer (tests, the ``up`` summary, caregivers' notifiers) should read
like this.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiokafka import TopicPartition

from streams.checkpoint import committed_reader


async def read_alerts_async(
    kafka: Mapping[str, Any], topic: str, *, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Every committed alert now in ``topic`` (JSON-decoded), partition by partition."""
    consumer = committed_reader(kafka)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return out
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)  # the last stable offset under read_committed
        await consumer.seek_to_beginning(*tps)
        async with asyncio.timeout(timeout_s):
            for tp in tps:
                while await consumer.position(tp) < end[tp]:
                    records = (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
                    out.extend(json.loads(r.value) for r in records if r.offset < end[tp])
        return out
    finally:
        await consumer.stop()


def read_alerts(
    kafka: Mapping[str, Any], topic: str, *, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Synchronous :func:`read_alerts_async` (not from inside a running event loop)."""
    return asyncio.run(read_alerts_async(kafka, topic, timeout_s=timeout_s))
