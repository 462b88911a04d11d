"""The compacted checkpoint topic: creation and restore of one source partition.

Record key ``<stream>:<partition>:<block>`` (docs/STREAMS.md; the district board's
open minutes use named blocks, streams/district.py); record partition = the
source partition, so one worker reads exactly the checkpoints of the partitions it owns.
Restore reads ``read_committed`` up to the partition's *high watermark*, not just to the
last stable offset (LSO): checkpoints of aborted transactions (a worker killed
mid-commit) are never seen, and none of this stream's committed checkpoints is missed.
The four streams share each checkpoint partition, so after a crash another stream's
transaction left open by the dead worker pins the LSO *before* this stream's newest
committed blocks until that stream's new runner fences it (or the transaction times
out); stopping at that LSO restored stale state, and the replay re-published alerts the
lost blocks had already committed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36
#: Compaction settings: roll segments often so the cleaner keeps restore reads short.
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "60000",
    "min.cleanable.dirty.ratio": "0.1",
    "max.message.bytes": str(8 << 20),
}


def checkpoint_key(stream: str, partition: int, block: int | str) -> bytes:
    """``<stream>:<partition>:<block>``: a device block (an integer) or a named record
    (the district board's ``minute:<district>:<minute>`` and ``aqi-category``)."""
    return f"{stream}:{partition}:{block}".encode()


async def ensure_checkpoint_topic(kafka: Mapping[str, Any], topic: str, partitions: int) -> None:
    """Create the compacted topic if missing (same partition count as the stream topics)."""
    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return
        response = await admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs=TOPIC_CONFIG)]
        )
        for error in response.topic_errors:
            if error[1] not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create checkpoint topic {topic!r}: code {error[1]}")
    finally:
        await admin.close()


def committed_reader(
    kafka: Mapping[str, Any], isolation: str = "read_committed"
) -> AIOKafkaConsumer:
    """A group-less ``read_committed`` consumer (records of aborted transactions skipped).

    ``kafka`` is :func:`ingest.kafka_client.kafka_client_kwargs` of the settings.
    """
    return AIOKafkaConsumer(
        **kafka,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )


async def read_checkpoints(
    kafka: Mapping[str, Any], topic: str, partition: int, stream: str
) -> dict[bytes, bytes]:
    """Latest committed record per key of ``stream`` in ``partition`` (key -> value).

    Call it after this stream's transactional producer started (``initTransactions``
    fenced the previous owner: every record of this stream is then committed or
    aborted). Reads up to the high watermark taken now: it waits while another
    stream's open transaction holds the last stable offset below it (see above).
    """
    tp = TopicPartition(topic, partition)
    end = await high_watermark(kafka, tp)
    consumer = committed_reader(kafka)
    await consumer.start()
    latest: dict[bytes, bytes] = {}
    prefix = f"{stream}:{partition}:".encode()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        waited = 0
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            if not batch:
                waited += 1
                if waited % 10 == 0:
                    log.warning(
                        "%s[%d]: checkpoint restore waits for an open transaction (%d s)",
                        stream,
                        partition,
                        waited,
                    )
            for record in batch.get(tp, []):
                if record.key is not None and record.key.startswith(prefix):
                    if record.value is None:
                        latest.pop(record.key, None)
                    else:
                        latest[record.key] = record.value
    finally:
        await consumer.stop()
    log.info("restored %d checkpoint blocks of %s[%d]", len(latest), stream, partition)
    return latest


async def high_watermark(kafka: Mapping[str, Any], tp: TopicPartition) -> int:
    """End offset of ``tp`` including records of open transactions (not the LSO)."""
    consumer = committed_reader(kafka, "read_uncommitted")
    await consumer.start()
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()
