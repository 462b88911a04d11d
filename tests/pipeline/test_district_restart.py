"""A partition's open district minute survives a restart (or rebalance) of its worker.

The first owner processes and commits the first half of a minute (vitals of some
wearables, accelerometer windows of others), writes its district rows and goes; the next
owner (same group: same transactional ids and checkpoints) restores the partition and
processes the rest of the minute. The stored row must hold the whole minute: every
device online and every reading, not only what the second owner saw. (Without the
minute's checkpoint records the second owner would write its part over the first's, and
would not even count again the devices already counted in that minute: their counted
minute is restored with their state.)

In-process :class:`streams.worker.StreamWorker` objects on the real stack stand for the
two worker processes, as in tests/pipeline/test_worker_handover.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cityhealth.settings import Settings
from streams.config import WorkerConfig
from streams.synthetic import motion_batches, vitals_batches
from streams.worker import StreamWorker
from tests.pipeline.test_worker_support import by_partition, query, worker_settings

T0 = (time.time() // 3600 - 1) * 3600  # on a minute
DISTRICT = "dr"
DEVICES = by_partition([f"p-dr{i:03d}" for i in range(12)])[0]
EARLY, LATE = DEVICES[: len(DEVICES) // 2], DEVICES  # LATE includes EARLY


def halves() -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
    """First and second half of minute T0 // 60, per stream."""
    first = {
        "vitals": vitals_batches(EARLY, T0, 30, per_batch=50, district=DISTRICT),
        "motion": motion_batches(EARLY[:2], T0, 30, district=DISTRICT),
    }
    second = {
        "vitals": vitals_batches(LATE, T0 + 30, 30, per_batch=50, district=DISTRICT, seed=1),
        "motion": motion_batches(LATE[-2:], T0 + 30, 30, district=DISTRICT),
    }
    return first, second


async def own(s: Settings, batches: dict[str, list[bytes]]) -> int:
    """Take partition 0 of the streams, process and commit ``batches``, write the
    district rows, hand the partitions back; returns the checkpoint blocks restored."""
    worker = StreamWorker(s, WorkerConfig(checkpoint_interval_s=0.0), "district-restart")
    await worker.prepare()

    async def ack(event: Any) -> None:
        pass

    for stream, payloads in batches.items():
        runner = await worker.runner(stream, 0)
        assert runner is not None
        for i, payload in enumerate(payloads):
            await runner.handle(payload, ack, i)
        await runner.drain()
    await worker.flush_districts()
    await worker.revoke({(worker.topics.stream(stream), 0) for stream in batches})
    await worker.stop()
    return worker.stats.restored_blocks


def row(s: Settings) -> tuple[int, dict[str, int]]:
    """Devices online of the minute (summed across partitions) and readings per channel."""
    pub = s.influx_db_public
    where = f"WHERE district = '{DISTRICT}' AND time = {int(T0) * 10**9}"
    online = query(s, pub, f'SELECT sum("devices_online") FROM "district" {where}')
    readings = query(
        s, pub, f'SELECT sum("readings") FROM "district_stream" {where} GROUP BY "channel"'
    )
    return (
        int(online[0]["values"][0][1]) if online else 0,
        {x["tags"]["channel"]: int(x["values"][0][1]) for x in readings},
    )


def test_next_owner_resumes_the_minute_counts(stack: Any) -> None:
    s = worker_settings(stack.settings)
    first, second = halves()
    asyncio.run(own(s, first))
    assert row(s) == (len(EARLY), {"vitals": len(EARLY) * 30, "accel_window": 2 * 30})
    assert asyncio.run(own(s, second)) > 0
    devices = set(EARLY) | set(LATE)
    vitals = (len(EARLY) + len(LATE)) * 30
    assert row(s) == (len(devices), {"vitals": vitals, "accel_window": 4 * 30})
