"""JSON Schema export (draft 2020-12) of every channel's native payload.

One schema per ``{family}.{channel}`` (plus ``senml/pack.json`` for the SenML record
structure, in a sub-folder so ``DIR/*.json`` is exactly one file per channel).
Field metadata carries the UCUM ``unit``, ``senml_unit`` and, for vital signs, the ``loinc``
code. Rules that depend on the receiving clock or compare array elements (time limits,
monotonic times, equal lengths, rate consistency) cannot be expressed in JSON Schema; they are
listed under ``x-rules`` and enforced by :func:`ingest.contract.decode`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from ingest.contract.registry import SPECS, ChannelSpec
from ingest.contract.senml import _PACK

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:cityhealth:contract:"

_RULES_TIME = "ts_future/ts_past: timestamps within [now - max_age_s, now + 300 s]"
_EXTRA_RULES: dict[str, list[str]] = {
    "Vitals": [_RULES_TIME],
    "VitalsBatch": [
        _RULES_TIME,
        "length_mismatch: every column has one value per ts",
        "monotonic: ts strictly increasing",
        "no_measurement: every row has at least one non-null measurement",
    ],
    "AccelWindow": [
        _RULES_TIME + " (window start and end)",
        "length_mismatch: x, y, z (and t) have equal lengths",
        "monotonic: t strictly increasing",
        "window_duration: at most 60 s",
        "window_rate: with t, the mean rate lies within 20-120 Hz",
    ],
}


def channel_schema(spec: ChannelSpec) -> dict[str, Any]:
    """The JSON Schema of one channel's native payload (single and batched forms)."""
    if spec.batch_model is None:
        schema = spec.model.model_json_schema(mode="validation")
        names = [spec.model.__name__]
    else:
        both: Any = spec.model | spec.batch_model
        schema = TypeAdapter(both).json_schema(mode="validation")
        schema["oneOf"] = schema.pop("anyOf")  # the forms differ in the type of ts
        names = [spec.model.__name__, spec.batch_model.__name__]
    rules = [r for name in names for r in _EXTRA_RULES.get(name, [_RULES_TIME])]
    return {
        "$schema": DRAFT,
        "$id": f"{ID_BASE}{spec.key}",
        **schema,
        "title": f"{spec.family}/{spec.channel}",
        "description": (
            f"Native JSON payload on city/{{district}}/{spec.family}/{{device_id}}/"
            f"{spec.channel} (MQTT v5, QoS 1): {' or '.join(names)}"
        ),
        "x-topic": f"city/{{district}}/{spec.family}/{{device_id}}/{spec.channel}",
        "x-rules": list(dict.fromkeys(rules)),
    }


def senml_schema() -> dict[str, Any]:
    """The JSON Schema of the SenML pack structure accepted on every channel."""
    schema = _PACK.json_schema(mode="validation")
    return {
        "$schema": DRAFT,
        "$id": f"{ID_BASE}senml.pack",
        "title": "SenML JSON pack (RFC 8428)",
        "description": "Accepted on every channel; record names and units: docs/GATEWAYS.md",
        **schema,
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    """Relative file path -> schema: ``{family}.{channel}.json`` and ``senml/pack.json``."""
    out = {f"{spec.key}.json": channel_schema(spec) for spec in SPECS.values()}
    out["senml/pack.json"] = senml_schema()
    return out


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every schema under ``out_dir`` (created if missing); return the paths."""
    paths = []
    for name, schema in all_schemas().items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
