"""The one decoding entry point of the contract: :func:`decode`.

``decode(topic, payload)`` checks the topic grammar, recognises the encoding from the first
non-blank byte (``{`` native JSON object, ``[`` SenML pack, RFC 8428) and validates the
payload with the channel's model in a single parse (pydantic-core's JSON parser feeds the
validator directly). Every failure, whatever its cause, is a :class:`ContractViolation`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import ValidationError

from ingest.contract import senml
from ingest.contract.clock import DEFAULT_MAX_AGE_S
from ingest.contract.errors import ContractViolation, detail, unparsable
from ingest.contract.models import ContractModel, VitalsBatch
from ingest.contract.registry import SPECS, ChannelSpec
from ingest.contract.topics import TopicParts, parse_topic

Payload = bytes | bytearray | memoryview | str
_BLANK = frozenset(b" \t\r\n")
_LBRACE, _LBRACKET = ord("{"), ord("[")
_JSON_START = (_LBRACE, _LBRACKET)
#: Largest accepted payload in bytes (UTF-8 characters count as their encoded size).
#: The largest valid message, a full vitals batch as a SenML pack, is about 1.1 MB
#: compact and 1.6 MB indented; anything far above is refused before any parsing.
MAX_PAYLOAD_BYTES = 4 << 20


@dataclass(slots=True)  # not frozen: a frozen dataclass __init__ costs ~1 us per message
class Decoded:
    """A validated message.

    Attributes
    ----------
    district, family, device_id, channel
        Parsed from the topic (the topic is authoritative for identity).
    model
        The validated payload: one reading, or a :class:`VitalsBatch` for batched vitals.
    encoding
        ``"json"`` (native object) or ``"senml"`` (RFC 8428 pack).
    """

    district: str
    family: str
    device_id: str
    channel: str
    model: ContractModel
    encoding: Literal["json", "senml"]

    @property
    def is_batch(self) -> bool:
        """Whether :attr:`model` holds several readings (columnar batched form)."""
        return isinstance(self.model, VitalsBatch)

    def readings(self) -> list[ContractModel]:
        """One model per reading (expands batched forms; no re-validation)."""
        if isinstance(self.model, VitalsBatch):
            return list(self.model.readings())
        return [self.model]


def decode(
    topic: str,
    payload: Payload,
    *,
    now: float | None = None,
    max_age_s: float | None = DEFAULT_MAX_AGE_S,
    prefix: str = "",
) -> Decoded:
    """Decode and validate one MQTT message against the device contract.

    Parameters
    ----------
    topic
        MQTT topic, ``{prefix}city/{district}/{family}/{device_id}/{channel}``.
    payload
        Raw message bytes (UTF-8 JSON: a native object or a SenML pack).
    now
        Reference time for the timestamp rules (default: ``time.time()``). SenML relative
        times (RFC 8428 section 4.5.3) are resolved against it too.
    max_age_s
        Oldest accepted reading age in seconds; ``None`` disables the limit (replay).
    prefix
        Topic prefix before ``city/`` (tests and tenants on a shared broker).

    Returns
    -------
    Decoded
        Topic parts and the validated model.

    Raises
    ------
    ContractViolation
        For every way the message can break the contract; never anything else. Payloads
        above :data:`MAX_PAYLOAD_BYTES` are refused unparsed (rule ``too_large``).
    """
    try:
        parts, spec = _route(topic, prefix)
        _check_size(payload)
        context = {"now": time.time() if now is None else now, "max_age_s": max_age_s}
        first = _first_char(payload)
        encoding: Literal["json", "senml"]
        if first == _LBRACE:
            model, encoding = _native(spec, payload, context), "json"
        elif first == _LBRACKET:
            model, encoding = senml.decode_pack(spec, payload, context), "senml"
        else:
            raise _not_json_container(payload, first)
    except ContractViolation as exc:
        exc.topic = topic
        raise
    except Exception as exc:  # pragma: no cover - defence in depth: never crash the bridge
        raise ContractViolation(
            [detail("$", repr(exc), "internal", f"decoder failed: {type(exc).__name__}")],
            topic=topic,
        ) from exc
    return Decoded(parts.district, parts.family, parts.device_id, parts.channel, model, encoding)


@lru_cache(maxsize=1 << 17)
def _route(topic: str, prefix: str) -> tuple[TopicParts, ChannelSpec]:
    """Parse a topic once: devices publish on the same few topics over and over.

    Violations raise and are not cached (every call builds its own exception).
    """
    parts = parse_topic(topic, prefix=prefix)
    return parts, SPECS[(parts.family, parts.channel)]


def _check_size(payload: Payload) -> None:
    """Rule ``too_large``: refuse hostile or broken payloads before parsing them."""
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if isinstance(payload, str) and size <= MAX_PAYLOAD_BYTES < 4 * size:
        size = len(payload.encode("utf-8", "surrogatepass"))  # only near the limit
    if size > MAX_PAYLOAD_BYTES:
        raise ContractViolation.single(
            "$", size, "too_large", f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}"
        )


def _first_char(payload: Payload) -> int:
    """First non-blank byte (as an int), or -1 for an empty/blank payload."""
    if isinstance(payload, bytes | bytearray) and payload and payload[0] in _JSON_START:
        return payload[0]
    if isinstance(payload, str):
        stripped = payload.lstrip()
        return ord(stripped[0]) if stripped else -1
    for b in bytes(payload) if isinstance(payload, memoryview) else payload:
        if b not in _BLANK:
            return int(b)
    return -1


def _native(spec: ChannelSpec, payload: Payload, context: dict[str, Any]) -> ContractModel:
    data = payload.tobytes() if isinstance(payload, memoryview) else payload
    try:
        return spec.model.model_validate_json(data, context=context)
    except ValidationError as exc:
        if spec.batch_model is not None and _looks_batched(exc):
            try:
                return spec.batch_model.model_validate_json(data, context=context)
            except ValidationError as batch_exc:
                raise ContractViolation.from_validation_error(batch_exc) from None
        raise _classify(exc, data) from None


def _looks_batched(exc: ValidationError) -> bool:
    """A single-reading parse failed because ``ts`` is a list: try the batched form."""
    return any(e["loc"] == ("ts",) and isinstance(e.get("input"), list) for e in exc.errors())


def _classify(exc: ValidationError, data: bytes | bytearray | str) -> ContractViolation:
    """Turn a JSON-level failure into ``encoding``/``json``; model failures map as usual."""
    errors = exc.errors(include_url=False)
    if errors and errors[0]["type"] == "json_invalid":
        return unparsable(data, errors[0]["msg"])
    return ContractViolation.from_validation_error(exc)


def _not_json_container(payload: Payload, first: int) -> ContractViolation:
    if first < 0:
        return ContractViolation.single("$", "", "empty", "payload is empty")
    raw = payload if isinstance(payload, str) else bytes(payload)
    exc = unparsable(raw, "")
    if exc.rule == "encoding":
        return exc
    return ContractViolation.single(
        "$", raw, "payload_shape", "payload must be a JSON object (native) or array (SenML)"
    )
