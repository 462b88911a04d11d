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

The record list is parsed and type-checked in one pass by pydantic-core, converted to a
native dict and validated by the same model as native JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from ingest.contract.errors import ContractViolation, unparsable
from ingest.contract.models import (
    AccelWindow,
    AirQuality,
    ContractModel,
    DeviceStatus,
    DoorContact,
    Occupancy,
    PanicButton,
    RoomMotion,
    Vitals,
    VitalsBatch,
)
from ingest.contract.models.accel import MAX_SAMPLES
from ingest.contract.models.wearable import MAX_BATCH_ROWS
from ingest.contract.quantities import AIR_FIELDS, LOINC_FIELDS, QUANTITIES, VITAL_FIELDS, Quantity
from ingest.contract.registry import ChannelSpec

#: The SenML version this reader implements (RFC 8428; ``bver`` defaults to it).
SENML_VERSION = 10
#: RFC 8428 section 4.5.3: resolved times below 2**28 s are relative to "now".
RELATIVE_TIME_LIMIT = 2.0**28
#: Labels defined by RFC 8428 (others not ending in "_" are ignored, section 4.4).
_KNOWN = frozenset(
    {"bn", "bt", "bu", "bv", "bver", "bs", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
)
_VALUE_LABELS = ("v", "vs", "vb", "vd")
_AXES = ("x", "y", "z")
#: Most records accepted in one pack: a full vitals batch (one record per row and vital),
#: which :func:`to_senml` produces, and more than an accel window (600 x 3 axes + rate).
MAX_RECORDS = max(MAX_BATCH_ROWS * len(VITAL_FIELDS), MAX_SAMPLES * len(_AXES) + 1)
#: Allowed deviation (s) of sample times from t0 + i / rate_hz when a rate record is present.
RATE_TIME_TOLERANCE = 1e-4


@with_config(ConfigDict(strict=True, extra="allow", allow_inf_nan=False))
class SenMLRecord(TypedDict, total=False):
    """One SenML record (RFC 8428 section 4, JSON labels of table 1)."""

    bn: str
    bt: float
    bu: str
    bv: float
    bver: int
    bs: float
    n: str
    u: str
    v: float
    vs: str
    vb: bool
    vd: str
    s: float
    t: float
    ut: float


_PACK: TypeAdapter[list[SenMLRecord]] = TypeAdapter(
    Annotated[list[SenMLRecord], Field(min_length=1, max_length=MAX_RECORDS)]
)

#: Per model: native field -> (SenML value label, quantity for numbers).
_FIELDS: dict[type[ContractModel], dict[str, tuple[str, Quantity | None]]] = {
    Vitals: {n: ("v", QUANTITIES[n]) for n in VITAL_FIELDS},
    DeviceStatus: {"battery": ("v", QUANTITIES["battery"])},
    AirQuality: {n: ("v", QUANTITIES[n]) for n in ("lat", "lon", *AIR_FIELDS)},
    RoomMotion: {"room": ("vs", None), "motion": ("vb", None)},
    DoorContact: {"door": ("vs", None), "open": ("vb", None)},
    Occupancy: {"occupied": ("vb", None)},
    PanicButton: {"pressed": ("vb", None)},
    AccelWindow: {
        **{a: ("v", QUANTITIES["accel"]) for a in _AXES},
        "rate_hz": ("v", QUANTITIES["rate_hz"]),
    },
}


# --------------------------------------------------------------------------- decoding


def decode_pack(spec: ChannelSpec, payload: Any, context: dict[str, Any]) -> ContractModel:
    """Decode a SenML JSON pack into the channel's validated model.

    Raises
    ------
    ContractViolation
        Rules ``json``/``encoding``, ``senml_pack``, ``senml_label``, ``senml_name``,
        ``senml_unit``, ``senml_value``, ``senml_time``, ``senml_duplicate``,
        ``senml_axes``, ``type``, ``finite`` and every model rule.
    """
    data = payload.tobytes() if isinstance(payload, memoryview) else payload
    # One pass in pydantic-core parses the pack and checks every label's type (faster than
    # json.loads plus Python checks); the loop below then only resolves and maps.
    try:
        pack = _PACK.validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise unparsable(data, first["msg"]) from None
        violation = ContractViolation.from_validation_error(exc)
        for err in violation.errors:
            if err["rule"] in ("min_length", "max_length") and err["field"] == "$":
                err["rule"] = "senml_pack"
            elif err["rule"] == "type" and err["field"].count(".") == 0:
                err["rule"] = "senml_pack"  # the pack or a record is not the right container
        raise violation from None
    rows = _resolve(pack, context["now"])
    fields = _FIELDS[spec.model]
    native = _window(rows, fields) if spec.model is AccelWindow else _reading(spec, rows, fields)
    model = spec.batch_model if isinstance(native.get("ts"), list) else spec.model
    assert model is not None
    try:
        return model.model_validate(native, context=context)
    except ValidationError as exc:
        raise ContractViolation.from_validation_error(exc) from None


#: A resolved record: (index, name, time, unit, value label, value).
_Resolved = tuple[int, str, float, str | None, str, Any]


def _resolve(pack: list[SenMLRecord], now: float) -> list[_Resolved]:
    """Apply base fields and relative times (RFC 8428 sections 4.5.1-4.5.3).

    Written for speed (a 50-sample window is 150 records): membership tests instead of
    per-record set algebra, and the common record shape (``n``, ``v``, optional ``t``/``u``)
    takes the shortest path.
    """
    out: list[_Resolved] = []
    append = out.append
    bn, bt, bu, bv = "", 0.0, None, 0.0
    only_known = _KNOWN.issuperset
    for i, rec in enumerate(pack):
        if not only_known(rec):
            _check_labels(i, rec)
        if "bver" in rec and rec["bver"] > SENML_VERSION:
            # RFC 8428 section 4.4: a reader MUST NOT use a pack of a newer version.
            raise ContractViolation.single(
                f"[{i}].bver", rec["bver"], "senml_version", f"bver above {SENML_VERSION}"
            )
        if "bn" in rec:
            bn = rec["bn"]
        if "bt" in rec:
            bt = rec["bt"]
        if "bu" in rec:
            bu = rec["bu"]
        if "bv" in rec:
            bv = rec["bv"]
        if "v" in rec and "vs" not in rec and "vb" not in rec and "vd" not in rec:
            label, value = "v", rec["v"]
            if bv:
                value = value + bv
        else:
            label, value = _other_value(i, rec)
        time = bt + rec["t"] if "t" in rec else bt
        if time < RELATIVE_TIME_LIMIT:
            time = now + time
        name = bn + rec["n"] if "n" in rec else bn
        if ":" in name or "/" in name:
            name = name[max(name.rfind(":"), name.rfind("/")) + 1 :]
        append((i, name, time, rec.get("u", bu), label, value))
    return out


def _check_labels(i: int, rec: SenMLRecord) -> None:
    """Reject unknown must-understand labels (ending in ``_``, RFC 8428 section 4.4)."""
    for key in rec.keys() - _KNOWN:
        if key.endswith("_"):
            raise ContractViolation.single(
                f"[{i}].{key}",
                rec[key],  # type: ignore[literal-required]
                "senml_label",
                f"unknown must-understand label {key!r}",
            )


def _other_value(i: int, rec: SenMLRecord) -> tuple[str, Any]:
    """The value of a record without a lone ``v``: exactly one of ``vs``, ``vb``, ``vd``."""
    labels = [k for k in _VALUE_LABELS if k in rec]
    if len(labels) != 1:
        raise ContractViolation.single(
            f"[{i}]", rec, "senml_value", "a record needs exactly one of v, vs, vb, vd"
        )
    return labels[0], rec[labels[0]]  # type: ignore[literal-required]


def _field_value(
    fields: dict[str, tuple[str, Quantity | None]], rec: _Resolved, loinc: bool
) -> tuple[str, Any]:
    """Map a record to ``(native field, value)``: name, value label and unit checks."""
    i, raw_name, _, unit, label, value = rec
    name = LOINC_FIELDS.get(raw_name, raw_name) if loinc else raw_name
    spec = fields.get(name)
    if spec is None:
        raise ContractViolation.single(
            f"[{i}].n",
            raw_name,
            "senml_name",
            f"unknown record name; expected one of {', '.join(sorted(fields))}",
        )
    want, q = spec
    if label != want:
        raise ContractViolation.single(
            f"[{i}].{label}", value, "senml_value", f"{name} must be sent as {want}"
        )
    if q is None:
        if unit is not None:
            raise ContractViolation.single(f"[{i}].u", unit, "senml_unit", f"{name} has no unit")
        return name, value
    if unit is not None and unit != q.senml_unit:
        scale = q.senml_scale.get(unit)
        if scale is None:
            allowed = ", ".join([q.senml_unit, *q.senml_scale])
            raise ContractViolation.single(
                f"[{i}].u", unit, "senml_unit", f"{name} unit must be one of {allowed}"
            )
        value = value * scale
    if q.integer and isinstance(value, float) and value.is_integer():
        value = int(value)
    return name, value


def _reading(
    spec: ChannelSpec, rows: list[_Resolved], fields: dict[str, tuple[str, Quantity | None]]
) -> dict[str, Any]:
    loinc = spec.model is Vitals
    by_time: dict[float, dict[str, Any]] = {}
    for rec in rows:
        name, value = _field_value(fields, rec, loinc)
        row = by_time.setdefault(rec[2], {})
        if name in row:
            raise ContractViolation.single(
                f"[{rec[0]}].n", rec[1], "senml_duplicate", f"{name} twice at one time"
            )
        row[name] = value
    if len(by_time) == 1:
        ((ts, row),) = by_time.items()
        return {"ts": ts, **row}
    times = sorted(by_time)
    if spec.batch_model is None:
        raise ContractViolation.single(
            "[*].t", times, "senml_time", f"all records of a {spec.channel} pack share one time"
        )
    names = [n for n in VITAL_FIELDS if any(n in row for row in by_time.values())]
    batch: dict[str, Any] = {"ts": times}
    for n in names:
        batch[n] = [by_time[t].get(n) for t in times]
    return batch


def _window(
    rows: list[_Resolved], fields: dict[str, tuple[str, Quantity | None]]
) -> dict[str, Any]:
    rate: float | None = None
    samples: dict[float, dict[str, float]] = {}
    for rec in rows:
        i, name, t, unit, label, value = rec
        if name in _AXES and label == "v" and (unit is None or unit == "m/s2"):
            pass  # the common case, already checked: skip the general mapping
        else:
            name, value = _field_value(fields, rec, False)
        if name == "rate_hz":
            if rate is not None:
                raise ContractViolation.single(f"[{i}].n", name, "senml_duplicate", "rate_hz twice")
            rate = value
            continue
        row = samples.get(t)
        if row is None:
            samples[t] = row = {}
        elif name in row:
            raise ContractViolation.single(
                f"[{i}].n", name, "senml_duplicate", f"{name} twice at time {t}"
            )
        row[name] = value
    if not samples:
        raise ContractViolation.single("$", None, "senml_axes", "window has no samples")
    times = sorted(samples)
    for t in times:
        if len(samples[t]) != 3:
            missing = [a for a in _AXES if a not in samples[t]]
            raise ContractViolation.single(
                "[*].n", t, "senml_axes", f"sample at time {t} lacks {', '.join(missing)}"
            )
    axes = {a: [samples[t][a] for t in times] for a in _AXES}
    if rate is None:
        return {"t": times, **axes}
    t0 = times[0]
    if rate > 0:
        for i, t in enumerate(times):
            if abs(t - (t0 + i / rate)) > RATE_TIME_TOLERANCE:
                raise ContractViolation.single(
                    f"[*].t (sample {i})", t, "senml_time", f"sample {i} is not at t0 + {i}/rate_hz"
                )
    return {"t0": t0, "rate_hz": rate, **axes}


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
            (n, [getattr(model, n)]) for n in _FIELDS[type(model)] if getattr(model, n) is not None
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
