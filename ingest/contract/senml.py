"""SenML JSON packs (RFC 8428) <-> native contract payloads.

Decoding resolves base fields (section 4.5.1: ``bn`` + ``n``, ``bt`` + ``t``, ``bu``,
``bv`` + ``v``), relative times (section 4.5.3: a resolved time below 2**28 is relative to
``now``) and rejects unknown must-understand labels (names ending in ``_``, section 4.4).
Each record's name (the resolved name after its last ``:`` or ``/``, so ``bn`` may carry a
device URN such as ``urn:dev:mac:0024befffe804ff1:``) is a native field name; vital signs may
also be named by LOINC code (``8867-4``). Units must be the field's SenML unit (see
:data:`ingest.contract.quantities.SENML_UNITS`) or a listed alternative, converted by a scale
factor; a record without a unit is taken in the field's unit.

Layouts per channel:

* single-reading channels: one record per field, all at the same time (= ``ts``);
* ``vitals``: the same, and records at several times decode to a :class:`VitalsBatch`;
* ``accel``/``pendant``: one ``x``, ``y`` and ``z`` record per sample time; an optional
  ``rate_hz`` record (unit ``Hz``) restores the ``t0`` + ``rate_hz`` form, otherwise the
  window decodes to per-sample times ``t``.

The pack is converted to a native dict and validated by the same model as native JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from ingest.contract.errors import ContractViolation, ErrorDetail, detail
from ingest.contract.models import (
    AccelWindow,
    ContractModel,
    DeviceStatus,
    DoorContact,
    Occupancy,
    PanicButton,
    RoomMotion,
    Vitals,
    VitalsBatch,
)
from ingest.contract.models.airq import AirQuality
from ingest.contract.quantities import LOINC_FIELDS, QUANTITIES, VITAL_FIELDS
from ingest.contract.registry import ChannelSpec

#: RFC 8428 section 4.5.3: resolved times below 2**28 s are relative to "now".
RELATIVE_TIME_LIMIT = 2.0**28
#: Labels we read; other labels not ending in "_" are ignored (section 4.4).
_KNOWN = frozenset(
    {"bn", "bt", "bu", "bv", "bver", "bs", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
)
#: Most records accepted in one pack (600 samples x 3 axes + rate).
MAX_RECORDS = 1901
#: Allowed deviation (s) of sample times from t0 + i / rate_hz when a rate record is present.
RATE_TIME_TOLERANCE = 1e-4
_AXES = ("x", "y", "z")

#: Value kind per native field: "v" number, "vb" boolean, "vs" string.
_KIND: dict[type[ContractModel], dict[str, str]] = {
    Vitals: {name: "v" for name in VITAL_FIELDS},
    DeviceStatus: {"battery": "v"},
    AirQuality: {
        name: "v"
        for name in (
            "lat",
            "lon",
            "pm25",
            "pm10",
            "o3",
            "no2",
            "so2",
            "co",
            "temperature",
            "humidity",
        )
    },
    RoomMotion: {"room": "vs", "motion": "vb"},
    DoorContact: {"door": "vs", "open": "vb"},
    Occupancy: {"occupied": "vb"},
    PanicButton: {"pressed": "vb"},
    AccelWindow: {"x": "v", "y": "v", "z": "v", "rate_hz": "v"},
}


class _Record:
    """One resolved SenML record."""

    __slots__ = ("index", "name", "time", "unit", "value")

    def __init__(self, index: int, name: str, time: float, unit: str | None, value: Any):
        self.index, self.name, self.time, self.unit, self.value = index, name, time, unit, value


# --------------------------------------------------------------------------- decoding


def decode_pack(spec: ChannelSpec, payload: Any, context: dict[str, Any]) -> ContractModel:
    """Decode a SenML JSON pack into the channel's validated model.

    Raises
    ------
    ContractViolation
        Rules ``json``/``encoding``, ``senml_pack``, ``senml_label``, ``senml_name``,
        ``senml_unit``, ``senml_value``, ``senml_time``, ``senml_duplicate``, ``type``,
        ``finite`` and every model rule.
    """
    pack = _parse(payload)
    records = _resolve(pack, context["now"])
    native = _to_native(spec, records)
    model = spec.batch_model if isinstance(native.get("ts"), list) else spec.model
    assert model is not None
    try:
        return model.model_validate(native, context=context)
    except ValidationError as exc:
        raise ContractViolation.from_validation_error(exc) from None


def _parse(payload: Any) -> list[Any]:
    data = payload.tobytes() if isinstance(payload, memoryview) else payload
    try:
        pack = from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        if isinstance(data, bytes | bytearray):
            try:
                bytes(data).decode("utf-8")
            except UnicodeDecodeError as ude:
                raise ContractViolation.single(
                    "$",
                    bytes(data[max(0, ude.start - 16) : ude.end + 16]),
                    "encoding",
                    f"payload is not valid UTF-8 at byte {ude.start}",
                ) from None
        raise ContractViolation.single("$", data, "json", f"invalid JSON: {exc}") from None
    if not isinstance(pack, list) or not pack:
        raise ContractViolation.single("$", pack, "senml_pack", "a SenML pack is a non-empty array")
    if len(pack) > MAX_RECORDS:
        raise ContractViolation.single(
            "$", len(pack), "senml_pack", f"a pack holds at most {MAX_RECORDS} records"
        )
    return pack


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _resolve(pack: list[Any], now: float) -> list[_Record]:
    """Apply base fields and relative times (RFC 8428 sections 4.5.1-4.5.3)."""
    errors: list[ErrorDetail] = []
    out: list[_Record] = []
    bn, bt, bu, bv = "", 0.0, None, 0.0
    for i, rec in enumerate(pack):
        where = f"[{i}]"
        if not isinstance(rec, dict):
            errors.append(detail(where, rec, "senml_pack", "each SenML record is a JSON object"))
            continue
        bad = False
        for key, val in rec.items():
            if key not in _KNOWN:
                if key.endswith("_"):
                    errors.append(
                        detail(
                            f"{where}.{key}",
                            val,
                            "senml_label",
                            f"unknown must-understand label {key!r}",
                        )
                    )
                    bad = True
                continue
            want = _label_type(key)
            ok = (
                _number(val)
                if want == "number"
                else isinstance(val, str)
                if want == "string"
                else isinstance(val, bool)
            )
            if not ok:
                errors.append(detail(f"{where}.{key}", val, "type", f"{key} must be a {want}"))
                bad = True
            elif want == "number" and not math.isfinite(val):
                errors.append(detail(f"{where}.{key}", val, "finite", f"{key} must be finite"))
                bad = True
        if bad:
            continue
        bn = rec.get("bn", bn)
        bt = float(rec.get("bt", bt))
        bu = rec.get("bu", bu)
        bv = float(rec.get("bv", bv))
        kinds = [k for k in ("v", "vs", "vb", "vd") if k in rec]
        if len(kinds) != 1:
            errors.append(
                detail(where, rec, "senml_value", "a record needs exactly one of v, vs, vb, vd")
            )
            continue
        value = rec[kinds[0]]
        if kinds[0] == "v":
            value = value + bv
        time = bt + float(rec.get("t", 0.0))
        if not math.isfinite(time):
            errors.append(detail(f"{where}.t", time, "finite", "resolved time must be finite"))
            continue
        if time < RELATIVE_TIME_LIMIT:
            time = now + time
        name = bn + rec.get("n", "")
        cut = max(name.rfind(":"), name.rfind("/"))
        out.append(_Record(i, name[cut + 1 :], time, rec.get("u", bu), (kinds[0], value)))
    if errors:
        raise ContractViolation(errors)
    return out


def _label_type(key: str) -> str:
    if key in ("bn", "bu", "n", "u", "vs", "vd"):
        return "string"
    if key == "vb":
        return "boolean"
    return "number"


def _field_value(model: type[ContractModel], rec: _Record) -> tuple[str, Any]:
    """Map a record to ``(native field, value)``: name, value kind and unit checks."""
    kinds = _KIND[model]
    name = LOINC_FIELDS.get(rec.name, rec.name) if model is Vitals else rec.name
    where = f"[{rec.index}]"
    if name not in kinds:
        raise ContractViolation.single(
            f"{where}.n",
            rec.name,
            "senml_name",
            f"unknown record name; expected one of {', '.join(sorted(kinds))}",
        )
    kind, value = rec.value
    if kind != kinds[name]:
        raise ContractViolation.single(
            f"{where}.{kind}", value, "senml_value", f"{name} must be sent as {kinds[name]}"
        )
    if kind != "v":
        if rec.unit is not None:
            raise ContractViolation.single(
                f"{where}.u", rec.unit, "senml_unit", f"{name} has no unit"
            )
        return name, value
    q = QUANTITIES["accel" if name in _AXES else name]
    if rec.unit is not None and rec.unit != q.senml_unit:
        scale = q.senml_scale.get(rec.unit)
        if scale is None:
            allowed = ", ".join([q.senml_unit, *q.senml_scale])
            raise ContractViolation.single(
                f"{where}.u", rec.unit, "senml_unit", f"{name} unit must be one of {allowed}"
            )
        value = value * scale
    if q.integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    return name, value


def _to_native(spec: ChannelSpec, records: list[_Record]) -> dict[str, Any]:
    if spec.model is AccelWindow:
        return _window(records)
    by_time: dict[float, dict[str, Any]] = {}
    for rec in records:
        name, value = _field_value(spec.model, rec)
        row = by_time.setdefault(rec.time, {})
        if name in row:
            raise ContractViolation.single(
                f"[{rec.index}].n", rec.name, "senml_duplicate", f"{name} twice at one time"
            )
        row[name] = value
    if len(by_time) == 1:
        ((ts, row),) = by_time.items()
        return {"ts": ts, **row}
    if spec.batch_model is None:
        raise ContractViolation.single(
            "[*].t",
            sorted(by_time)[:8],
            "senml_time",
            f"all records of a {spec.channel} pack must share one time",
        )
    times = sorted(by_time)
    names = [n for n in VITAL_FIELDS if any(n in row for row in by_time.values())]
    batch: dict[str, Any] = {"ts": times}
    for n in names:
        batch[n] = [by_time[t].get(n) for t in times]
    return batch


def _window(records: list[_Record]) -> dict[str, Any]:
    rate: float | None = None
    samples: dict[float, dict[str, float]] = {}
    for rec in records:
        name, value = _field_value(AccelWindow, rec)
        if name == "rate_hz":
            if rate is not None:
                raise ContractViolation.single(
                    f"[{rec.index}].n", name, "senml_duplicate", "rate_hz twice"
                )
            rate = value
            continue
        row = samples.setdefault(rec.time, {})
        if name in row:
            raise ContractViolation.single(
                f"[{rec.index}].n", name, "senml_duplicate", f"{name} twice at time {rec.time}"
            )
        row[name] = value
    times = sorted(samples)
    for t in times:
        missing = [a for a in _AXES if a not in samples[t]]
        if missing:
            raise ContractViolation.single(
                "[*].n",
                t,
                "senml_duplicate" if not missing else "senml_axes",
                f"sample at time {t} lacks {', '.join(missing)}",
            )
    axes = {a: [samples[t][a] for t in times] for a in _AXES}
    if not times:
        raise ContractViolation.single("$", None, "senml_axes", "window has no samples")
    if rate is None:
        return {"t": times, **axes}
    if _number(rate) and rate > 0:
        t0 = times[0]
        for i, t in enumerate(times):
            if abs(t - (t0 + i / rate)) > RATE_TIME_TOLERANCE:
                raise ContractViolation.single(
                    f"[*].t (sample {i})",
                    t,
                    "senml_time",
                    f"sample {i} is not at t0 + {i}/rate_hz",
                )
    return {"t0": times[0], "rate_hz": rate, **axes}


# --------------------------------------------------------------------------- encoding


def to_senml(
    model: ContractModel, *, base_name: str | None = None, use_loinc: bool = False
) -> list[dict[str, Any]]:
    """Encode a validated model as a SenML pack (list of records, RFC 8428).

    Parameters
    ----------
    model
        Any contract model instance.
    base_name
        Optional ``bn`` for the first record (e.g. ``"urn:dev:ow:10e2073a01080063:"``); it
        should end with ``:`` or ``/`` so names stay separable.
    use_loinc
        Name vital-sign records by LOINC code instead of field name.

    Returns
    -------
    list of dict
        The pack; times are ``bt`` plus relative ``t``, exactly reproducible on decode.
    """
    if isinstance(model, AccelWindow):
        pack = _encode_window(model)
    elif isinstance(model, VitalsBatch):
        pack = _encode_rows(
            model.ts,
            [(n, getattr(model, n)) for n in VITAL_FIELDS if getattr(model, n) is not None],
            use_loinc,
        )
    else:
        values = [
            (n, [getattr(model, n)]) for n in _KIND[type(model)] if getattr(model, n) is not None
        ]
        pack = _encode_rows([model.ts], values, use_loinc)  # type: ignore[attr-defined]
    if base_name is not None:
        pack[0] = {"bn": base_name, **pack[0]}
    return pack


def to_senml_json(model: ContractModel, **kwargs: Any) -> bytes:
    """:func:`to_senml` serialised as compact UTF-8 JSON (an MQTT payload)."""
    return json.dumps(to_senml(model, **kwargs), separators=(",", ":"), allow_nan=False).encode()


def _record(name: str, value: Any, use_loinc: bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"n": name, "vb": value}
    if isinstance(value, str):
        return {"n": name, "vs": value}
    q = QUANTITIES[name]
    label = q.loinc if use_loinc and q.loinc else name
    return {"n": label, "u": q.senml_unit, "v": value}


def _encode_rows(
    ts: Sequence[float], columns: list[tuple[str, Any]], use_loinc: bool
) -> list[dict[str, Any]]:
    pack: list[dict[str, Any]] = []
    t0 = ts[0]
    for i, t in enumerate(ts):
        for name, col in columns:
            value = col[i]
            if value is None:
                continue
            rec = _record(name, value, use_loinc)
            if t != t0:
                rec["t"] = t - t0  # exact: Sterbenz lemma for nearby times, bt + t == ts
            pack.append(rec)
    pack[0] = {"bt": t0, **pack[0]}
    return pack


def _encode_window(w: AccelWindow) -> list[dict[str, Any]]:
    pack: list[dict[str, Any]] = []
    if w.t is None:
        t0, rate = w.t0, w.rate_hz
        assert t0 is not None and rate is not None
        pack.append({"bt": t0, "bu": "m/s2", "n": "rate_hz", "u": "Hz", "v": rate})
        offsets = [i / rate for i in range(w.n)]
    else:
        t0 = w.t[0]
        pack.append({"bt": t0, "bu": "m/s2", "n": "x", "v": w.x[0]})
        pack.extend([{"n": "y", "v": w.y[0]}, {"n": "z", "v": w.z[0]}])
        offsets = [t - t0 for t in w.t]
    start = 1 if w.t is not None else 0
    for i in range(start, w.n):
        dt = offsets[i]
        for axis, col in (("x", w.x), ("y", w.y), ("z", w.z)):
            rec: dict[str, Any] = {"n": axis, "v": col[i]}
            if dt:
                rec["t"] = dt
            pack.append(rec)
    return pack
