"""Structured contract violations.

Every way a message can break the contract (topic shape, bytes, JSON, SenML structure, types,
bounds, time and window rules) ends as one :class:`ContractViolation` carrying a list of
:class:`ErrorDetail` dicts ``{"field", "value", "rule", "message"}``. The ingest bridge puts
:meth:`ContractViolation.to_dict` on the dead-letter topic, so everything in it is JSON-safe.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, TypedDict

from pydantic import ValidationError

#: Longest string kept in an error's ``value`` (payloads can be large and hostile).
_MAX_STR = 200
#: Most list/dict items kept in an error's ``value``.
_MAX_ITEMS = 8
_MAX_DEPTH = 3

#: pydantic error types -> contract rule names (documented in docs/GATEWAYS.md).
_RULES: dict[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "finite_number": "finite",
    "greater_than_equal": "min",
    "greater_than": "min",
    "less_than_equal": "max",
    "less_than": "max",
    "too_short": "min_length",
    "too_long": "max_length",
    "string_pattern_mismatch": "pattern",
    "literal_error": "literal",
    "json_invalid": "json",
    "json_type": "json",
    "recursion_loop": "json",
}


class ErrorDetail(TypedDict):
    """One broken rule: where (``field``), what was sent (``value``), which ``rule``, why."""

    field: str
    value: Any
    rule: str
    message: str


def json_safe(value: Any, depth: int = 0) -> Any:
    """Return a bounded, JSON-serialisable rendering of an offending value.

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; long
    strings, lists and dicts are truncated; anything else becomes its truncated ``repr``.
    """
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            return str(value)[:_MAX_STR]
        if isinstance(value, str) and len(value) > _MAX_STR:
            return value[:_MAX_STR] + "..."
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray | memoryview):
        return json_safe(bytes(value[: _MAX_STR + 1]).decode("utf-8", "backslashreplace"), depth)
    if depth >= _MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, list | tuple):
        items = [json_safe(v, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"... ({len(value)} items)")
        return items
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= _MAX_ITEMS:
                out["..."] = f"({len(value)} keys)"
                break
            out[str(k)[:_MAX_STR]] = json_safe(v, depth + 1)
        return out
    return json_safe(repr(value), depth)


def detail(field: str, value: Any, rule: str, message: str) -> ErrorDetail:
    """Build one JSON-safe :class:`ErrorDetail`."""
    return {"field": field, "value": json_safe(value), "rule": rule, "message": message}


def field_path(loc: Iterable[int | str]) -> str:
    """Render a pydantic ``loc`` as ``a.b[3]`` (``$`` for the payload itself)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "$"


def rule_name(error_type: str) -> str:
    """Map a pydantic error type to the contract's rule name."""
    rule = _RULES.get(error_type)
    if rule is not None:
        return rule
    if error_type.endswith("_type") or error_type.endswith("_parsing"):
        return "type"
    return error_type


class ContractViolation(Exception):  # noqa: N818 - the contract's public name
    """A message that breaks the device contract.

    Parameters
    ----------
    errors
        One :class:`ErrorDetail` per broken rule (at least one).
    topic
        The MQTT topic the message arrived on, when known.
    """

    def __init__(self, errors: list[ErrorDetail], *, topic: str | None = None) -> None:
        if not errors:
            errors = [detail("$", None, "unknown", "contract violation without detail")]
        self.errors = errors
        self.topic = topic
        first = errors[0]
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first['rule']} at {first['field']}: {first['message']}{more}")

    @property
    def rule(self) -> str:
        """The rule of the first error (a convenient single reason for counters)."""
        return self.errors[0]["rule"]

    @property
    def rules(self) -> list[str]:
        """Every broken rule, in order."""
        return [e["rule"] for e in self.errors]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe ``{"topic", "rule", "errors": [...]}`` for the dead-letter record."""
        return {"topic": self.topic, "rule": self.rule, "errors": list(self.errors)}

    def to_json(self) -> str:
        """:meth:`to_dict` serialised as strict JSON."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def single(
        cls, field: str, value: Any, rule: str, message: str, *, topic: str | None = None
    ) -> ContractViolation:
        """A violation with exactly one error."""
        return cls([detail(field, value, rule, message)], topic=topic)

    @classmethod
    def from_validation_error(
        cls, exc: ValidationError, *, topic: str | None = None, prefix: str = ""
    ) -> ContractViolation:
        """Convert a pydantic :class:`~pydantic.ValidationError` into contract errors.

        Custom rules raised by the models put ``field`` and ``value`` in the error context,
        because model-level checks (window lengths, monotonic time) have no single ``loc``.
        """
        out: list[ErrorDetail] = []
        for err in exc.errors(include_url=False):
            ctx = err.get("ctx") or {}
            path = ctx["field"] if "field" in ctx else field_path(err["loc"])
            value = ctx["value"] if "value" in ctx else err.get("input")
            if prefix:
                path = f"{prefix}.{path}" if path != "$" else prefix
            out.append(detail(path, value, rule_name(err["type"]), err["msg"]))
        return cls(out, topic=topic)


def unparsable(data: bytes | bytearray | str, reason: str) -> ContractViolation:
    """Violation for a payload the JSON parser rejected: ``encoding`` if it is not UTF-8
    (RFC 8259 section 8.1 requires UTF-8), else ``json`` with the parser's ``reason``."""
    if not isinstance(data, str):
        try:
            bytes(data).decode("utf-8")
        except UnicodeDecodeError as ude:
            return ContractViolation.single(
                "$",
                bytes(data[max(0, ude.start - 16) : ude.end + 16]),
                "encoding",
                f"payload is not valid UTF-8 at byte {ude.start}",
            )
    return ContractViolation.single("$", data, "json", f"invalid JSON: {reason}")
