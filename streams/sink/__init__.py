"""InfluxDB sink: line protocol from columnar arrays, v1 and v2 back ends.

docs/DATA_MODEL.md lists the databases, retention policies and every measurement.
"""

from streams.sink.base import InfluxSink, as_body, quote_ident
from streams.sink.errors import (
    SinkError,
    SinkQueryError,
    SinkRejectedError,
    SinkUnavailableError,
)
from streams.sink.factory import make_sink
from streams.sink.lineprotocol import encode, encode_lines
from streams.sink.retention import PUBLIC, SENSITIVE, RetentionPolicy, retention_policies
from streams.sink.retry import RetryPolicy, RetryStats
from streams.sink.v1 import V1Sink
from streams.sink.v2 import V2Sink

__all__ = [
    "PUBLIC",
    "SENSITIVE",
    "InfluxSink",
    "RetentionPolicy",
    "RetryPolicy",
    "RetryStats",
    "SinkError",
    "SinkQueryError",
    "SinkRejectedError",
    "SinkUnavailableError",
    "V1Sink",
    "V2Sink",
    "as_body",
    "encode",
    "encode_lines",
    "make_sink",
    "quote_ident",
    "retention_policies",
]
