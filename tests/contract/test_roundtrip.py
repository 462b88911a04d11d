"""Native JSON and SenML round trips for every channel decode to the same validated model."""

from __future__ import annotations

import json

import pytest

from ingest.contract import (
    SPECS,
    AccelWindow,
    ContractViolation,
    Vitals,
    VitalsBatch,
    decode,
    to_senml,
    to_senml_json,
)
from tests.contract.examples import NOW, examples, topic

CASES = [
    pytest.param(key, i, payload, id=f"{key[0]}.{key[1]}[{i}]")
    for key, payloads in examples().items()
    for i, payload in enumerate(payloads)
]


def test_examples_cover_every_channel() -> None:
    assert set(examples()) == set(SPECS)


@pytest.mark.parametrize(("key", "i", "payload"), CASES)
def test_native_json_round_trip(key: tuple[str, str], i: int, payload: dict) -> None:
    family, channel = key
    decoded = decode(topic(family, channel), json.dumps(payload).encode(), now=NOW)
    assert (decoded.district, decoded.family, decoded.device_id, decoded.channel) == (
        "centre",
        family,
        "dev-0001",
        channel,
    )
    assert decoded.encoding == "json"
    # serialise the model and decode again: identical model
    again = decode(topic(family, channel), decoded.model.model_dump_json().encode(), now=NOW)
    assert again.model == decoded.model
    # every value sent is kept exactly
    dumped = decoded.model.model_dump()
    for name, value in payload.items():
        assert dumped[name] == value


@pytest.mark.parametrize(("key", "i", "payload"), CASES)
@pytest.mark.parametrize("use_loinc", [False, True])
def test_senml_round_trip(key: tuple[str, str], i: int, payload: dict, use_loinc: bool) -> None:
    family, channel = key
    native = decode(topic(family, channel), json.dumps(payload).encode(), now=NOW)
    pack = to_senml_json(native.model, use_loinc=use_loinc)
    assert pack.startswith(b"[")
    decoded = decode(topic(family, channel), pack, now=NOW)
    assert decoded.encoding == "senml"
    assert decoded.model == native.model
    assert type(decoded.model) is type(native.model)


@pytest.mark.parametrize("base_name", ["urn:dev:ow:10e2073a01080063:", "dev-0001/", ""])
def test_senml_base_name_is_a_prefix_only(base_name: str) -> None:
    vitals = Vitals(ts=NOW, heart_rate=80.0, spo2=96.0)
    pack = to_senml(vitals, base_name=base_name)
    assert pack[0]["bn"] == base_name
    decoded = decode(topic("wearable", "vitals"), json.dumps(pack).encode(), now=NOW)
    assert decoded.model == vitals


def test_senml_loinc_names_and_units() -> None:
    vitals = Vitals(ts=NOW, heart_rate=80.0, spo2=96.0, body_temp=37.1, respiration_rate=15.0)
    pack = to_senml(vitals, use_loinc=True)
    by_name = {r["n"]: r for r in pack}
    assert by_name["8867-4"]["u"] == "beat/min"
    assert by_name["59408-5"]["u"] == "%"
    assert by_name["8310-5"]["u"] == "Cel"
    assert by_name["9279-1"]["u"] == "1/min"
    assert pack[0]["bt"] == NOW


def test_senml_relative_times_resolve_against_now() -> None:
    # RFC 8428 4.5.3: no bt, t < 2**28 -> relative to now (here 2 s ago)
    pack = [{"n": "heart_rate", "u": "beat/min", "v": 75, "t": -2}]
    decoded = decode(topic("wearable", "vitals"), json.dumps(pack).encode(), now=NOW)
    assert decoded.model == Vitals(ts=NOW - 2, heart_rate=75.0)
    # no time at all -> "roughly now"
    pack = [{"n": "battery", "u": "%EL", "v": 50}]
    decoded = decode(topic("eldercare", "status"), json.dumps(pack).encode(), now=NOW)
    assert decoded.model.ts == NOW  # type: ignore[attr-defined]


def test_senml_base_value_and_alternative_units() -> None:
    pack = [
        {"bt": NOW, "bv": 90.0, "n": "spo2", "u": "%", "v": 7.0},  # 90 + 7
        {"n": "heart_rate", "v": 60},  # unit omitted: the field's unit
    ]
    decoded = decode(topic("wearable", "vitals"), json.dumps(pack).encode(), now=NOW)
    assert decoded.model == Vitals(ts=NOW, spo2=97.0, heart_rate=150.0)  # bv applies to all v
    pack = [{"bt": NOW, "n": "spo2", "u": "/", "v": 0.97}]  # a ratio, scaled to %
    decoded = decode(topic("wearable", "vitals"), json.dumps(pack).encode(), now=NOW)
    assert decoded.model.spo2 == pytest.approx(97.0)  # type: ignore[attr-defined]
    pack = [
        {"bt": NOW, "n": "co", "u": "/", "v": 4e-7},
        {"n": "lat", "u": "lat", "v": 1.0},
        {"n": "lon", "u": "lon", "v": 2.0},
    ]
    decoded = decode(topic("airq", "air"), json.dumps(pack).encode(), now=NOW)
    assert decoded.model.co == pytest.approx(0.4)  # type: ignore[attr-defined]


def test_senml_vitals_at_several_times_decode_to_a_batch() -> None:
    pack = [
        {"bt": NOW - 2, "n": "heart_rate", "u": "beat/min", "v": 70},
        {"n": "heart_rate", "u": "beat/min", "v": 71, "t": 1},
        {"n": "spo2", "u": "%", "v": 97, "t": 2},
    ]
    decoded = decode(topic("wearable", "vitals"), json.dumps(pack).encode(), now=NOW)
    assert decoded.is_batch
    assert decoded.model == VitalsBatch(
        ts=[NOW - 2, NOW - 1, NOW], heart_rate=[70.0, 71.0, None], spo2=[None, None, 97.0]
    )
    assert decoded.readings() == [
        Vitals(ts=NOW - 2, heart_rate=70.0),
        Vitals(ts=NOW - 1, heart_rate=71.0),
        Vitals(ts=NOW, spo2=97.0),
    ]


def test_senml_window_without_rate_decodes_to_per_sample_times() -> None:
    pack = [
        {"bt": NOW, "bu": "m/s2", "n": "x", "v": 0.0},
        {"n": "y", "v": 0.1},
        {"n": "z", "v": 9.8},
    ]
    for i in range(1, 5):
        pack += [{"n": a, "v": v, "t": i * 0.02} for a, v in (("x", 0.0), ("y", 0.1), ("z", 9.8))]
    decoded = decode(topic("wearable", "accel"), json.dumps(pack).encode(), now=NOW)
    model = decoded.model
    assert isinstance(model, AccelWindow)
    assert model.t is not None and model.rate_hz is None
    assert model.times() == [NOW + i * 0.02 for i in range(5)]
    assert model.z == [9.8] * 5


def test_batched_native_vitals_expand_to_single_readings() -> None:
    payload = {"ts": [NOW - 1, NOW], "heart_rate": [60, 61], "steps": [10, None]}
    decoded = decode(topic("wearable", "vitals"), json.dumps(payload).encode(), now=NOW)
    assert decoded.is_batch
    assert decoded.readings() == [
        Vitals(ts=NOW - 1, heart_rate=60.0, steps=10),
        Vitals(ts=NOW, heart_rate=61.0),
    ]


def test_window_times_in_rate_form() -> None:
    w = AccelWindow(t0=NOW, rate_hz=25.0, x=[0.0] * 3, y=[0.0] * 3, z=[9.8] * 3)
    assert w.times() == [NOW, NOW + 0.04, NOW + 0.08]
    assert w.start == NOW and w.n == 3


def test_payload_may_be_str_bytearray_or_memoryview() -> None:
    raw = json.dumps({"ts": NOW, "battery": 50}).encode()
    padded = b" " * 100 + raw
    for payload in (raw.decode(), bytearray(raw), memoryview(raw), padded, memoryview(padded)):
        assert decode(topic("wearable", "status"), payload, now=NOW).model.battery == 50.0  # type: ignore[attr-defined]


def test_prefix_is_stripped_before_the_grammar() -> None:
    raw = json.dumps({"ts": NOW, "battery": 50}).encode()
    d = decode("t-9f/city/centre/wearable/w1/status", raw, now=NOW, prefix="t-9f/")
    assert d.device_id == "w1"
    with pytest.raises(ContractViolation) as exc:
        decode("city/centre/wearable/w1/status", raw, now=NOW, prefix="t-9f/")
    assert exc.value.rule == "topic_shape"
