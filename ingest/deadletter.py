"""Dead-letter records: what the bridge publishes for a message it could not accept.

One JSON object per rejected MQTT message (UTF-8, Kafka key = the MQTT topic)::

    {"version": 1,
     "bridge": "<bridge id>",
     "received_at": 1795249992.125,          # bridge wall clock, seconds since the epoch
     "mqtt_topic": "city/north/wearable/w-17/vitals",
     "payload": "{\\"ts\\": ...}",            # the raw payload ...
     "payload_encoding": "utf-8",            # ... as text, or "base64" if not UTF-8
     "payload_size": 123,                    # bytes of the original payload
     "payload_truncated": false,             # only the first MAX_PAYLOAD_BYTES are kept
     "error": {"topic": ..., "rule": ..., "errors": [{"field", "value", "rule", "message"}]}}

``error`` is :meth:`ingest.contract.ContractViolation.to_dict`. The raw payload is kept
because it is what an operator needs to fix a gateway; dead letters therefore may hold raw
identifiers and belong with the sensitive data (retention, access).
"""

from __future__ import annotations

import base64
import json
from typing import Any

DEADLETTER_VERSION = 1
#: Longest raw payload kept (Kafka's default record limit is 1 MiB; JSON/base64 grows it).
MAX_PAYLOAD_BYTES = 256 * 1024


def encode_deadletter(
    mqtt_topic: str,
    payload: bytes | bytearray,
    error: dict[str, Any],
    *,
    bridge: str,
    received_at: float,
) -> bytes:
    """Serialise one dead-letter record (see the module docstring for the shape)."""
    kept = payload[:MAX_PAYLOAD_BYTES]
    try:
        text, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    record = {
        "version": DEADLETTER_VERSION,
        "bridge": bridge,
        "received_at": received_at,
        "mqtt_topic": mqtt_topic,
        "payload": text,
        "payload_encoding": encoding,
        "payload_size": len(payload),
        "payload_truncated": len(payload) > MAX_PAYLOAD_BYTES,
        "error": error,
    }
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()


def decode_deadletter(value: bytes) -> dict[str, Any]:
    """Parse a dead-letter record; adds ``raw`` (the kept payload bytes).

    Raises
    ------
    ValueError
        If ``value`` is not a dead-letter record of a known version.
    """
    record = json.loads(value)
    if not isinstance(record, dict) or record.get("version") != DEADLETTER_VERSION:
        raise ValueError("not a version-1 dead-letter record")
    text = record["payload"]
    if record["payload_encoding"] == "base64":
        record["raw"] = base64.b64decode(text)
    else:
        record["raw"] = text.encode("utf-8")
    return record
