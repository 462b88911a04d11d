"""Every bound and rule of the contract produces a clear structured error (field, value, rule)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.contract import (
    DEFAULT_MAX_AGE_S,
    MAX_FUTURE_S,
    QUANTITIES,
    ContractViolation,
    decode,
    to_senml_json,
)
from ingest.contract.decode import MAX_PAYLOAD_BYTES
from ingest.contract.models.wearable import MAX_BATCH_ROWS
from ingest.contract.senml import MAX_RECORDS
from tests.contract.examples import NOW, examples, topic

EX = examples()
VITALS = {"ts": NOW, "heart_rate": 72.0}
STATUS = {"ts": NOW, "battery": 50.0}
AIR = {"ts": NOW, "lat": 52.0, "lon": 4.0, "pm25": 10.0}
WINDOW = EX[("wearable", "accel")][0]
WINDOW_T = EX[("wearable", "accel")][1]


def violation(t: str, payload: Any, **kwargs: Any) -> ContractViolation:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(ContractViolation) as info:
        decode(t, raw, now=NOW, **kwargs)
    exc = info.value
    # always JSON-safe, always with a message, always names the topic
    text = exc.to_json()
    assert json.loads(text)["errors"] == exc.errors
    assert all(e["message"] for e in exc.errors)
    assert exc.topic == t
    return exc


def assert_error(exc: ContractViolation, field: str, rule: str, value: Any = ...) -> None:
    first = exc.errors[0]
    assert (first["field"], first["rule"]) == (field, rule), exc.errors
    if value is not ...:
        assert first["value"] == value, exc.errors


# ------------------------------------------------------------------ plausibility bounds

#: quantity -> (family, channel, base payload, path to set)
WHERE: dict[str, tuple[str, str, dict[str, Any], str]] = {
    **{
        n: ("wearable", "vitals", VITALS, n)
        for n in ("heart_rate", "spo2", "body_temp", "respiration_rate", "steps")
    },
    "battery": ("wearable", "status", STATUS, "battery"),
    **{
        n: ("airq", "air", AIR, n)
        for n in ("pm25", "pm10", "o3", "no2", "so2", "co", "temperature", "humidity", "lat", "lon")
    },
    "rate_hz": ("wearable", "accel", WINDOW, "rate_hz"),
}


def test_every_quantity_has_a_bound_test() -> None:
    assert set(WHERE) | {"accel"} == set(QUANTITIES)


@pytest.mark.parametrize("name", sorted(WHERE))
def test_bounds(name: str) -> None:
    q = QUANTITIES[name]
    family, channel, base, key = WHERE[name]
    for edge in (q.lo, q.hi):  # inclusive bounds
        value = int(edge) if q.integer else float(edge)
        decode(topic(family, channel), json.dumps({**base, key: value}).encode(), now=NOW)
    step = 1 if q.integer else 1e-6 * max(1.0, abs(q.hi))
    low = int(q.lo - step) if q.integer else q.lo - step
    high = int(q.hi + step) if q.integer else q.hi + step
    exc = violation(topic(family, channel), {**base, key: low})
    assert_error(exc, key, "min", low)
    exc = violation(topic(family, channel), {**base, key: high})
    assert_error(exc, key, "max", high)


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_accel_bound_per_axis(axis: str) -> None:
    q = QUANTITIES["accel"]
    samples = list(WINDOW[axis])
    samples[3] = q.hi + 0.01
    assert_error(
        violation(topic("wearable", "accel"), {**WINDOW, axis: samples}),
        f"{axis}[3]",
        "max",
        q.hi + 0.01,
    )
    samples[3] = q.lo - 0.01
    assert_error(
        violation(topic("eldercare", "pendant"), {**WINDOW, axis: samples}),
        f"{axis}[3]",
        "min",
        q.lo - 0.01,
    )


def test_batched_vitals_bounds_name_the_row() -> None:
    payload = {"ts": [NOW - 1, NOW], "heart_rate": [70.0, 251.0]}
    assert_error(violation(topic("wearable", "vitals"), payload), "heart_rate[1]", "max", 251.0)


# ------------------------------------------------------------------ structure and types


@pytest.mark.parametrize(
    ("t", "payload", "field", "rule", "value"),
    [
        (topic("airq", "air"), {"ts": NOW, "lon": 4.0, "pm25": 1.0}, "lat", "required", ...),
        (topic("wearable", "status"), {"battery": 50.0}, "ts", "required", ...),
        (topic("wearable", "vitals"), {**VITALS, "hr": 70}, "hr", "unknown_field", 70),
        (topic("wearable", "vitals"), {**VITALS, "heart_rate": "72"}, "heart_rate", "type", "72"),
        (topic("wearable", "vitals"), {**VITALS, "heart_rate": True}, "heart_rate", "type", True),
        (topic("wearable", "vitals"), {"ts": NOW, "steps": 3.5}, "steps", "type", 3.5),
        (topic("wearable", "vitals"), {"ts": str(NOW), "steps": 3}, "ts", "type", str(NOW)),
        (
            topic("wearable", "vitals"),
            {"ts": {"a": [1, {"b": None}]}, "steps": 3},
            "ts",
            "type",
            {"a": [1, {"b": None}]},
        ),
        (
            topic("eldercare", "motion"),
            {"ts": NOW, "room": "hall", "motion": 1},
            "motion",
            "type",
            1,
        ),
        (topic("eldercare", "motion"), {"ts": NOW, "room": 5, "motion": True}, "room", "type", 5),
        (
            topic("eldercare", "door"),
            {"ts": NOW, "door": "back/door", "open": True},
            "door",
            "pattern",
            "back/door",
        ),
        (topic("eldercare", "door"), {"ts": NOW, "door": "", "open": True}, "door", "pattern", ""),
        (topic("eldercare", "panic"), {"ts": NOW, "pressed": False}, "pressed", "literal", False),
        (topic("eldercare", "bed"), {"ts": NOW}, "occupied", "required", ...),
        (topic("wearable", "accel"), {**WINDOW, "x": []}, "x", "min_length", []),
        (topic("wearable", "accel"), {**WINDOW, "x": [0.0] * 601}, "x", "max_length", ...),
        (topic("wearable", "accel"), {**WINDOW, "x": "0,1,2"}, "x", "type", "0,1,2"),
    ],
)
def test_structure_and_type_rules(
    t: str, payload: dict[str, Any], field: str, rule: str, value: Any
) -> None:
    assert_error(violation(t, payload), field, rule, value)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"ts": 1763700000, "heart_rate": NaN}', "NaN"),
        (b'{"ts": 1763700000, "heart_rate": Infinity}', "Infinity"),
        (b'{"ts": 1763700000, "heart_rate": -Infinity}', "-Infinity"),
        (b'{"ts": 1763700000, "heart_rate": 1e400}', "Infinity"),
    ],
)
def test_non_finite_numbers(raw: bytes, value: str) -> None:
    assert_error(violation(topic("wearable", "vitals"), raw), "heart_rate", "finite", value)


def test_non_finite_in_window_and_time() -> None:
    raw = json.dumps({**WINDOW, "y": [float("nan"), *WINDOW["y"][1:]]}).encode()
    assert_error(violation(topic("wearable", "accel"), raw), "y[0]", "finite", "NaN")
    raw = b'{"ts": NaN, "battery": 5}'
    assert_error(violation(topic("wearable", "status"), raw), "ts", "finite", "NaN")


@pytest.mark.parametrize(
    ("t", "payload", "field"),
    [
        (topic("wearable", "vitals"), {"ts": NOW}, "$"),
        (topic("wearable", "vitals"), {"ts": NOW, "heart_rate": None, "spo2": None}, "$"),
        (topic("airq", "air"), {"ts": NOW, "lat": 1.0, "lon": 2.0}, "$"),
        (topic("wearable", "vitals"), {"ts": [NOW - 1, NOW], "heart_rate": [60.0, None]}, "ts[1]"),
        (topic("wearable", "vitals"), {"ts": [NOW]}, "$"),
    ],
)
def test_at_least_one_measurement(t: str, payload: dict[str, Any], field: str) -> None:
    assert_error(violation(t, payload), field, "no_measurement")


# ------------------------------------------------------------------ time rules


def test_time_limits() -> None:
    t = topic("wearable", "status")
    ok_future = NOW + MAX_FUTURE_S
    decode(t, json.dumps({**STATUS, "ts": ok_future}).encode(), now=NOW)
    assert_error(violation(t, {**STATUS, "ts": ok_future + 1}), "ts", "ts_future", ok_future + 1)
    oldest = NOW - DEFAULT_MAX_AGE_S
    decode(t, json.dumps({**STATUS, "ts": oldest}).encode(), now=NOW)
    assert_error(violation(t, {**STATUS, "ts": oldest - 1}), "ts", "ts_past", oldest - 1)
    assert_error(violation(t, {**STATUS, "ts": -1.0}), "ts", "min", -1.0)


def test_past_limit_is_configurable_per_call() -> None:
    t = topic("wearable", "status")
    old = json.dumps({**STATUS, "ts": NOW - 3600}).encode()
    assert_error(violation(t, old, max_age_s=60.0), "ts", "ts_past", NOW - 3600)
    ancient = json.dumps({**STATUS, "ts": 1_000_000_000.0}).encode()  # 2001: replay
    assert decode(t, ancient, now=NOW, max_age_s=None).model.ts == 1_000_000_000.0  # type: ignore[attr-defined]
    # the future limit stays
    future = {**STATUS, "ts": NOW + 3600}
    assert_error(violation(t, future, max_age_s=None), "ts", "ts_future")


def test_window_and_batch_ends_are_time_checked() -> None:
    late = {**WINDOW, "t0": NOW + MAX_FUTURE_S - 0.5}  # start fine, last sample too late
    assert_error(violation(topic("wearable", "accel"), late), "t0", "ts_future")
    t = [NOW - DEFAULT_MAX_AGE_S - 1 + i * 0.04 for i in range(25)]
    assert_error(violation(topic("wearable", "accel"), {**WINDOW_T, "t": t}), "t[0]", "ts_past")
    batch = {"ts": [NOW, NOW + MAX_FUTURE_S + 1], "heart_rate": [60.0, 61.0]}
    assert_error(violation(topic("wearable", "vitals"), batch), "ts[1]", "ts_future")


# ------------------------------------------------------------------ window rules


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        ({k: v for k, v in WINDOW.items() if k != "rate_hz"}, "rate_hz", "window_form"),
        ({k: v for k, v in WINDOW.items() if k not in ("t0", "rate_hz")}, "t0", "window_form"),
        ({**WINDOW_T, "t0": NOW}, "t0", "window_form"),
        ({**WINDOW_T, "rate_hz": 25.0}, "rate_hz", "window_form"),
        ({**WINDOW, "y": WINDOW["y"][:-1]}, "y", "length_mismatch"),
        ({**WINDOW, "z": [*WINDOW["z"], 9.8]}, "z", "length_mismatch"),
        ({**WINDOW_T, "t": WINDOW_T["t"][:-1]}, "t", "length_mismatch"),
        (
            {**WINDOW_T, "t": [*WINDOW_T["t"][:5], WINDOW_T["t"][4], *WINDOW_T["t"][6:]]},
            "t[5]",
            "monotonic",
        ),
        ({**WINDOW_T, "t": WINDOW_T["t"][::-1]}, "t[1]", "monotonic"),
        (
            {"t": [NOW - 61, NOW], "x": [0.0, 0.0], "y": [0.0, 0.0], "z": [9.8, 9.8]},
            "t",
            "window_duration",
        ),
        ({**WINDOW_T, "t": [NOW - 5 + i * 0.1 for i in range(25)]}, "t", "window_rate"),
        ({**WINDOW_T, "t": [NOW - 1 + i * 0.001 for i in range(25)]}, "t", "window_rate"),
        ({**WINDOW, "rate_hz": 24.9}, "rate_hz", "min"),
        ({**WINDOW, "rate_hz": 100.1}, "rate_hz", "max"),
    ],
)
def test_window_rules(payload: dict[str, Any], field: str, rule: str) -> None:
    assert_error(violation(topic("wearable", "accel"), payload), field, rule)


def test_single_sample_windows_are_allowed() -> None:
    for payload in (
        {"t": [NOW], "x": [0.0], "y": [0.0], "z": [9.8]},
        {"t0": NOW, "rate_hz": 100.0, "x": [0.0], "y": [0.0], "z": [9.8]},
    ):
        model = decode(topic("eldercare", "pendant"), json.dumps(payload).encode(), now=NOW).model
        assert (model.x, model.y, model.z) == ([0.0], [0.0], [9.8])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        ({"ts": [NOW - 1, NOW], "heart_rate": [60.0]}, "heart_rate", "length_mismatch"),
        ({"ts": [NOW, NOW], "heart_rate": [60.0, 61.0]}, "ts[1]", "monotonic"),
        ({"ts": [], "heart_rate": []}, "ts", "min_length"),
        ({"ts": [NOW], "heart_rate": [60.0], "pulse": [1]}, "pulse", "unknown_field"),
    ],
)
def test_batch_rules(payload: dict[str, Any], field: str, rule: str) -> None:
    assert_error(violation(topic("wearable", "vitals"), payload), field, rule)


# ------------------------------------------------------------------ topics


@pytest.mark.parametrize(
    ("t", "field", "rule"),
    [
        ("town/centre/wearable/w1/vitals", "topic", "topic_shape"),
        ("city/centre/wearable/w1", "topic", "topic_shape"),
        ("city/centre/wearable/w1/vitals/extra", "topic", "topic_shape"),
        ("", "topic", "topic_shape"),
        ("city//wearable/w1/vitals", "district", "district"),
        ("city/Centre/wearable/w1/vitals", "district", "district"),
        ("city/" + "a" * 33 + "/wearable/w1/vitals", "district", "district"),
        ("city/centre/fitbit/w1/vitals", "family", "family"),
        ("city/centre/wearable/-w1/vitals", "device_id", "device_id"),
        ("city/centre/wearable/w 1/vitals", "device_id", "device_id"),
        ("city/centre/wearable/" + "w" * 65 + "/vitals", "device_id", "device_id"),
        ("city/centre/wearable/w1/air", "channel", "channel"),
        ("city/centre/eldercare/h1/vitals", "channel", "channel"),
        ("city/centre/airq/s1/+", "channel", "channel"),
        ("city/centre/wearable/w1/vitals/", "topic", "topic_shape"),  # trailing slash
        ("/city/centre/wearable/w1/vitals", "topic", "topic_shape"),  # leading slash
        ("city/centre/wearable/w1//vitals", "topic", "topic_shape"),  # empty segment
        ("city/centre/wearable/#/vitals", "device_id", "device_id"),
        ("city/+/wearable/w1/vitals", "district", "district"),
        ("city/c\u00e9ntre/wearable/w1/vitals", "district", "district"),  # non-ASCII letter
        ("city/centre/wearable/w\uff11/vitals", "device_id", "device_id"),  # fullwidth digit
        ("city/centre/wearable/w1\n/vitals", "device_id", "device_id"),
        ("city/centre/wearable/w1/vitals\x00", "channel", "channel"),
    ],
)
def test_topic_rules(t: str, field: str, rule: str) -> None:
    exc = violation(t, {"ts": NOW, "heart_rate": 70.0})
    assert_error(exc, field, rule)
    assert exc.errors[0]["value"] == (
        t
        if field == "topic"
        else t.split("/")[{"district": 1, "family": 2, "device_id": 3, "channel": 4}[field]]
    )


# ------------------------------------------------------------------ bytes and JSON


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"42", "payload_shape"),
        (b'"hello"', "payload_shape"),
        (b"null", "payload_shape"),
        (b"\xff\xfe{}", "encoding"),
        (b'{"ts": 1763700000, "room": "k\xe4che", "motion": true}', "encoding"),
        (b"[\xc3\x28]", "encoding"),
        (b'{"ts": 1763700000,', "json"),
        (b'{"ts": 1763700000, "heart_rate": 60}}', "json"),
        (b"{'ts': 1}", "json"),
        (b"[1, 2", "json"),
        (b"{" * 5000 + b"}" * 5000, "json"),
    ],
)
def test_undecodable_payloads(raw: bytes, rule: str) -> None:
    exc = violation(topic("eldercare", "motion"), raw)
    assert_error(exc, "$", rule)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, str])
def test_oversized_payload_is_refused_before_parsing(kind: type) -> None:
    limit = MAX_PAYLOAD_BYTES
    body = b'{"ts": %d, "heart_rate": 70, "pad": "' % NOW
    raw = body + b"a" * (limit - len(body)) + b'"}'  # valid JSON, 2 bytes over the limit
    payload = raw.decode() if kind is str else kind(raw)
    with pytest.raises(ContractViolation) as info:
        decode(topic("wearable", "vitals"), payload, now=NOW)
    assert_error(info.value, "$", "too_large", limit + 2)
    # multi-byte characters count as their UTF-8 size
    wide = "\u00e9" * (limit // 2 + 1)  # fewer characters than the limit, more bytes
    with pytest.raises(ContractViolation) as info:
        decode(topic("wearable", "vitals"), wide, now=NOW)
    assert_error(info.value, "$", "too_large")


def test_largest_valid_message_fits_the_size_and_record_limits() -> None:
    """A full vitals batch (3600 rows, every vital) round-trips as native JSON and SenML."""
    n = MAX_BATCH_ROWS
    batch = {
        "ts": [NOW - n + i + 0.123456789 for i in range(n)],
        "heart_rate": [71.12345678901234] * n,
        "spo2": [97.12345678901234] * n,
        "body_temp": [36.61234567890123] * n,
        "respiration_rate": [15.12345678901234] * n,
        "steps": [123456] * n,
    }
    native = decode(topic("wearable", "vitals"), json.dumps(batch).encode(), now=NOW)
    pack = to_senml_json(native.model)
    assert len(pack) < MAX_PAYLOAD_BYTES
    indented = json.dumps(json.loads(pack), indent=2).encode()
    assert len(indented) < MAX_PAYLOAD_BYTES
    assert decode(topic("wearable", "vitals"), indented, now=NOW).model == native.model


# ------------------------------------------------------------------ SenML


def senml(*records: dict[str, Any]) -> bytes:
    return json.dumps(list(records)).encode()


@pytest.mark.parametrize(
    ("t", "raw", "field", "rule"),
    [
        (topic("wearable", "vitals"), b"[]", "$", "senml_pack"),
        (
            topic("wearable", "vitals"),
            senml(*[{"n": "x", "v": 1.0}] * (MAX_RECORDS + 1)),
            "$",
            "senml_pack",
        ),
        (topic("wearable", "vitals"), b"[1]", "[0]", "senml_pack"),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "v": 60, "x_": 1}),
            "[0].x_",
            "senml_label",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "v": 60}, {"bver": 11, "n": "spo2", "v": 97}),
            "[1].bver",
            "senml_version",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "pulse", "v": 60}),
            "[0].n",
            "senml_name",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "u": "Cel", "v": 60}),
            "[0].u",
            "senml_unit",
        ),
        (
            topic("eldercare", "bed"),
            senml({"bt": NOW, "n": "occupied", "u": "%", "vb": True}),
            "[0].u",
            "senml_unit",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "vs": "60"}),
            "[0].vs",
            "senml_value",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "v": 6, "vs": "6"}),
            "[0]",
            "senml_value",
        ),
        (topic("wearable", "vitals"), senml({"bt": NOW, "n": "heart_rate"}), "[0]", "senml_value"),
        (
            topic("eldercare", "door"),
            senml({"bt": NOW, "n": "door", "vs": "front"}, {"n": "open", "vb": True, "t": 1}),
            "[*].t",
            "senml_time",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "v": 60}, {"n": "8867-4", "v": 61}),
            "[1].n",
            "senml_duplicate",
        ),
        (
            topic("wearable", "accel"),
            senml({"bt": NOW, "n": "x", "v": 0.0}, {"n": "y", "v": 0.0}),
            "[*].n",
            "senml_axes",
        ),
        (
            topic("wearable", "accel"),
            senml(
                {"bt": NOW, "n": "rate_hz", "u": "Hz", "v": 50.0},
                *[{"n": a, "v": 0.0, "t": dt} for dt in (0, 0.03) for a in "xyz"],
            ),
            "[*].t (sample 1)",
            "senml_time",
        ),
        (topic("wearable", "vitals"), senml({"bt": NOW, "n": 60, "v": 60}), "[0].n", "type"),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "v": "60"}),
            "[0].v",
            "type",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "v": True}),
            "[0].v",
            "type",
        ),
        (
            topic("wearable", "vitals"),
            b'[{"bt": 1763700000, "n": "heart_rate", "v": 1e999}]',
            "[0].v",
            "finite",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW, "n": "heart_rate", "v": 300}),
            "heart_rate",
            "max",
        ),
        (
            topic("wearable", "vitals"),
            senml({"bt": NOW + 1000, "n": "heart_rate", "v": 60}),
            "ts",
            "ts_future",
        ),
        (
            topic("eldercare", "panic"),
            senml({"bt": NOW, "n": "pressed", "vb": False}),
            "pressed",
            "literal",
        ),
    ],
)
def test_senml_rules(t: str, raw: bytes, field: str, rule: str) -> None:
    assert_error(violation(t, raw), field, rule)


def test_senml_ignores_unknown_optional_labels() -> None:
    raw = senml({"bt": NOW, "n": "heart_rate", "v": 60, "bver": 10, "ut": 60, "note": "x"})
    assert decode(topic("wearable", "vitals"), raw, now=NOW).model.heart_rate == 60.0  # type: ignore[attr-defined]


# ------------------------------------------------------------------ error shape


def test_error_shape_and_truncation() -> None:
    payload = {"ts": NOW, "heart_rate": 300.0, "spo2": 20.0, "junk": "z" * 10_000}
    exc = violation(topic("wearable", "vitals"), payload)
    assert exc.rules == ["max", "min", "unknown_field"]
    assert {e["field"] for e in exc.errors} == {"heart_rate", "spo2", "junk"}
    for e in exc.errors:
        assert set(e) == {"field", "value", "rule", "message"}
    junk = next(e for e in exc.errors if e["field"] == "junk")
    assert len(junk["value"]) < 300
    d = exc.to_dict()
    assert d["rule"] == "max" and d["topic"] == topic("wearable", "vitals")
    assert str(exc).startswith("max at heart_rate")
