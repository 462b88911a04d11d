"""Columnar micro-batch records between the ingest bridge and the stream workers.

See docs/BATCH_FORMAT.md for the wire layout.
"""

from ingest.batch.builder import BatchLimits, MicroBatcher, SealedBatch, field_of, kafka_partition
from ingest.batch.codec import (
    FORMAT_VERSION,
    BatchFormatError,
    ColumnarBatch,
    DictColumn,
    Ragged,
    decode,
    encode,
)
from ingest.batch.schema import CHANNEL_STREAMS, STREAMS, StreamSchema, stream_for

__all__ = [
    "CHANNEL_STREAMS",
    "FORMAT_VERSION",
    "STREAMS",
    "BatchFormatError",
    "BatchLimits",
    "ColumnarBatch",
    "DictColumn",
    "MicroBatcher",
    "Ragged",
    "SealedBatch",
    "StreamSchema",
    "decode",
    "encode",
    "field_of",
    "kafka_partition",
    "stream_for",
]
