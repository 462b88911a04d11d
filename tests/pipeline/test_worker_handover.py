"""A partition handed to a new owner (rebalance, restart) with no record left to process.

Open aggregate periods are upserted every ``aggregate_interval_s``, not at every commit
step, so a revoked owner may leave an open period that it changed but never wrote; the
checkpoint carries it. The new owner must write it even if the partition never gets
another record (regression: ``test_worker_crash.py::test_rebalance_to_a_second_worker``
waited forever for the last second of activity of the partition that moved).

In-process :class:`streams.worker.StreamWorker` objects on the real stack stand for the
two worker processes (same ``app_id``: the same transactional ids and checkpoints).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cityhealth.settings import Settings
from streams.config import WorkerConfig
from streams.synthetic import motion_batches
from streams.worker import StreamWorker
from tests.pipeline.test_worker_support import by_partition, count, worker_settings

T0 = (time.time() // 3600 - 1) * 3600
SECONDS = 20
DEVICES = by_partition([f"p-ho{i:03d}" for i in range(8)])[0]


def activity(s: Settings) -> int:
    return count(s, s.influx_db_sensitive, "activity", "samples")


async def first_owner(s: Settings, events: list[Any]) -> None:
    """Process and commit every batch, never upserting an open period; then revoke."""
    config = WorkerConfig(checkpoint_interval_s=0.0, aggregate_interval_s=3600.0)
    worker = StreamWorker(s, config, "handover")
    await worker.prepare()

    async def ack(event: Any) -> None:
        events.append(event)

    runner = await worker.runner("motion", 0)
    assert runner is not None
    batches = motion_batches(DEVICES, T0, SECONDS)
    for i, payload in enumerate(batches):
        await runner.handle(payload, ack, i)
    await runner.drain()
    assert events == list(range(len(batches)))  # every batch committed
    await worker.revoke({(worker.topics.stream("motion"), 0)})
    await worker.stop()


async def second_owner(s: Settings) -> int:
    """Take the partition over and run its timer once; returns the blocks restored."""
    worker = StreamWorker(s, WorkerConfig(aggregate_interval_s=0.0), "handover")
    runner = await worker.runner("motion", 0)
    assert runner is not None
    await runner.tick(T0 + SECONDS)  # sensor time of the last samples: nobody offline
    await runner.drain()
    await worker.stop()
    return worker.stats.restored_blocks


def test_new_owner_writes_the_open_periods_it_restored(stack: Any) -> None:
    s = worker_settings(stack.settings)
    assert DEVICES
    events: list[Any] = []
    asyncio.run(first_owner(s, events))
    # each device's last second is still open: changed, checkpointed, never written
    assert activity(s) == len(DEVICES) * (SECONDS - 1)
    assert asyncio.run(second_owner(s)) > 0
    assert activity(s) == len(DEVICES) * SECONDS
