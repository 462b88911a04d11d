"""The compacted checkpoint topic: creation and restore of one source partition.

Record key ``<stream>:<partition>:<block>`` (docs/STREAMS.md); record partition = the
source partition, so one worker reads exactly the checkpoints of the partitions it owns.
Restore reads ``read_committed`` up to the last stable offset: checkpoints of aborted
transactions (a worker killed mid-commit) are never seen.
"""

from __future__ import annotations

import logging

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


def checkpoint_key(stream: str, partition: int, block: int) -> bytes:
    return f"{stream}:{partition}:{block}".encode()


async def ensure_checkpoint_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create the compacted topic if missing (same partition count as the stream topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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


def committed_reader(bootstrap: str) -> AIOKafkaConsumer:
    """A group-less ``read_committed`` consumer (records of aborted transactions skipped)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        fetch_max_bytes=64 << 20,
        max_partition_fetch_bytes=16 << 20,
    )


async def read_checkpoints(
    bootstrap: str, topic: str, partition: int, stream: str
) -> dict[bytes, bytes]:
    """Latest committed record per key of ``stream`` in ``partition`` (key -> value)."""
    tp = TopicPartition(topic, partition)
    consumer = committed_reader(bootstrap)
    await consumer.start()
    latest: dict[bytes, bytes] = {}
    prefix = f"{stream}:{partition}:".encode()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
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
