"""Hypothesis: valid readings always validate (native and SenML alike); mutated payloads and
topics never raise anything but :class:`ContractViolation`, whose output is JSON-safe."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.contract import (
    CHANNELS,
    DEFAULT_MAX_AGE_S,
    MAX_FUTURE_S,
    QUANTITIES,
    ContractViolation,
    decode,
    to_senml_json,
)
from tests.contract.examples import NOW, examples, topic

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AIR_MEASURES = ("pm25", "pm10", "o3", "no2", "so2", "co", "temperature", "humidity")
VITAL_MEASURES = ("heart_rate", "spo2", "body_temp", "respiration_rate", "steps")

# ------------------------------------------------------------------ valid strategies


def value_of(name: str) -> st.SearchStrategy[Any]:
    q = QUANTITIES[name]
    if q.integer:
        return st.integers(int(q.lo), int(q.hi))
    return st.floats(q.lo, q.hi, allow_nan=False, allow_infinity=False)


timestamps = st.floats(NOW - DEFAULT_MAX_AGE_S, NOW + MAX_FUTURE_S - 61, allow_nan=False)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_ -]{0,31}", fullmatch=True)


@st.composite
def measurements(draw: st.DrawFn, fields: tuple[str, ...]) -> dict[str, Any]:
    chosen = draw(st.sets(st.sampled_from(fields), min_size=1))
    return {name: draw(value_of(name)) for name in sorted(chosen)}


@st.composite
def vitals_batch(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 20))
    t0 = draw(timestamps)
    steps = draw(st.lists(st.floats(0.001, 3.0), min_size=n - 1, max_size=n - 1))
    ts = [t0]
    for dt in steps:
        ts.append(ts[-1] + dt)
    cols = draw(st.sets(st.sampled_from(VITAL_MEASURES), min_size=1))
    out: dict[str, Any] = {"ts": ts}
    for name in sorted(cols):
        out[name] = draw(st.lists(st.none() | value_of(name), min_size=n, max_size=n))
    first = sorted(cols)[0]
    out[first] = [
        v
        if v is not None or any(out[c][i] is not None for c in cols if c != first)
        else draw(value_of(first))
        for i, v in enumerate(out[first])
    ]
    return out


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 120))
    rate = draw(st.floats(25.0, 100.0))
    t0 = draw(timestamps)
    axis = st.lists(value_of("accel"), min_size=n, max_size=n)
    data = {"x": draw(axis), "y": draw(axis), "z": draw(axis)}
    if draw(st.booleans()):
        return {"t0": t0, "rate_hz": rate, **data}
    jitter = draw(st.lists(st.floats(0.0, 0.05 / rate), min_size=n, max_size=n))
    return {"t": [t0 + i / rate + j for i, j in enumerate(jitter)], **data}


def valid_payload(family: str, channel: str) -> st.SearchStrategy[dict[str, Any]]:
    ts = st.fixed_dictionaries({"ts": timestamps})
    merge = lambda parts: {k: v for p in parts for k, v in p.items()}  # noqa: E731
    if channel == "vitals":
        single = st.tuples(ts, measurements(VITAL_MEASURES)).map(merge)
        return single | vitals_batch()
    if channel in ("accel", "pendant"):
        return windows()
    if channel == "status":
        return st.fixed_dictionaries({"ts": timestamps, "battery": value_of("battery")})
    if channel == "air":
        pos = st.fixed_dictionaries({"lat": value_of("lat"), "lon": value_of("lon")})
        return st.tuples(ts, pos, measurements(AIR_MEASURES)).map(merge)
    if channel == "motion":
        return st.fixed_dictionaries({"ts": timestamps, "room": names, "motion": st.booleans()})
    if channel == "door":
        return st.fixed_dictionaries({"ts": timestamps, "door": names, "open": st.booleans()})
    if channel in ("bed", "chair"):
        return st.fixed_dictionaries({"ts": timestamps, "occupied": st.booleans()})
    assert channel == "panic"
    return st.fixed_dictionaries({"ts": timestamps, "pressed": st.just(True)})


CHANNEL_KEYS = [(f, c) for f, cs in CHANNELS.items() for c in cs]


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    family, channel = draw(st.sampled_from(CHANNEL_KEYS))
    return topic(family, channel), draw(valid_payload(family, channel))


@SETTINGS
@given(valid_messages(), st.booleans())
def test_valid_readings_always_validate(msg: tuple[str, dict[str, Any]], loinc: bool) -> None:
    t, payload = msg
    decoded = decode(t, json.dumps(payload).encode(), now=NOW)
    dumped = decoded.model.model_dump()
    assert all(dumped[k] == v for k, v in payload.items())
    # the SenML encoding of the same reading decodes to the same readings
    again = decode(t, to_senml_json(decoded.model, use_loinc=loinc), now=NOW)
    assert again.readings() == decoded.readings()


# ------------------------------------------------------------------ hostile input

json_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)


def check_no_crash(t: str, raw: bytes) -> None:
    try:
        decoded = decode(t, raw, now=NOW)
    except ContractViolation as exc:
        # JSON-safe (strict JSON, no NaN) and structured
        out = json.loads(exc.to_json())
        assert out["errors"] and all(
            set(e) == {"field", "value", "rule", "message"} for e in out["errors"]
        )
    else:
        assert decoded.model is not None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()  # NaN/Infinity tokens on purpose


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    (family, channel), payloads = draw(st.sampled_from(sorted(examples(NOW).items())))
    payload = dict(draw(st.sampled_from(payloads)))
    if draw(st.booleans()):
        pack = json.loads(
            to_senml_json(decode(topic(family, channel), dumps(payload), now=NOW).model)
        )
        i = draw(st.integers(0, len(pack) - 1))
        how = draw(st.sampled_from(["value", "delete", "add", "replace"]))
        rec = dict(pack[i])
        if how == "value" and rec:
            rec[draw(st.sampled_from(sorted(rec)))] = draw(json_junk)
        elif how == "delete" and rec:
            rec.pop(draw(st.sampled_from(sorted(rec))))
        elif how == "add":
            rec[draw(st.text(max_size=6))] = draw(json_junk)
        else:
            pack[i] = draw(json_junk)
            return topic(family, channel), dumps(pack)
        pack[i] = rec
        return topic(family, channel), dumps(pack)
    how = draw(st.sampled_from(["value", "delete", "add", "element", "bytes", "truncate"]))
    key = draw(st.sampled_from(sorted(payload)))
    if how == "value":
        payload[key] = draw(json_junk)
    elif how == "delete":
        payload.pop(key)
    elif how == "add":
        payload[draw(st.text(max_size=10))] = draw(json_junk)
    elif how == "element" and isinstance(payload[key], list) and payload[key]:
        col = list(payload[key])
        col[draw(st.integers(0, len(col) - 1))] = draw(json_junk)
        payload[key] = col
    raw = dumps(payload)
    if how == "bytes":
        pos = draw(st.integers(0, len(raw) - 1))
        raw = raw[:pos] + draw(st.binary(min_size=1, max_size=4)) + raw[pos + 1 :]
    elif how == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    return topic(family, channel), raw


@SETTINGS
@given(mutated())
def test_mutated_payloads_never_crash(msg: tuple[str, bytes]) -> None:
    check_no_crash(*msg)


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(CHANNEL_KEYS))
def test_random_bytes_never_crash(raw: bytes, key: tuple[str, str]) -> None:
    check_no_crash(topic(*key), raw)


@SETTINGS
@given(json_junk, st.sampled_from(CHANNEL_KEYS))
def test_random_json_never_crashes(obj: Any, key: tuple[str, str]) -> None:
    check_no_crash(topic(*key), dumps(obj))


@SETTINGS
@given(st.text(max_size=80) | st.lists(st.text(max_size=12), max_size=7).map("/".join))
def test_random_topics_never_crash(t: str) -> None:
    check_no_crash(t, json.dumps({"ts": NOW, "battery": 5.0}).encode())


def test_huge_and_deep_values_are_violations() -> None:
    t = topic("wearable", "vitals")
    for raw in (
        b'{"ts": 1763700000, "heart_rate": 1' + b"0" * 400 + b"}",
        b'{"ts": 1763700000, "steps": 1' + b"0" * 30 + b"}",
        b'{"ts": 1763700000, "heart_rate": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'[{"bt": 1763700000, "n": "heart_rate", "v": ' + b"[" * 3000 + b"]" * 3000 + b"}]",
    ):
        try:
            decode(t, raw, now=NOW)
        except ContractViolation as exc:
            assert json.loads(exc.to_json())["errors"]
        else:  # pragma: no cover - must not decode
            raise AssertionError(raw[:60])
