"""MicroBatcher: readings (dicts or attribute objects) -> per-partition columnar records."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ingest.batch import BatchLimits, MicroBatcher, decode, kafka_partition


class FakeClock:
    """Manually advanced monotonic clock, so age flushing needs no sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Vitals(BaseModel):
    """Stand-in with contract field names (the real models live in ingest.contract)."""

    ts: float
    heart_rate: float | None = None
    spo2: float | None = None


def _batcher(**limits) -> tuple[MicroBatcher, FakeClock]:
    clock = FakeClock()
    return MicroBatcher(1, "bridge-1", BatchLimits(**limits), clock=clock), clock


PROV = {"district": "north", "family": "wearable", "channel": "vitals"}


def test_vitals_from_dicts_models_and_objects_decode_to_columns() -> None:
    b, _ = _batcher(max_count=3)
    assert b.append({"ts": 1.0, "heart_rate": 70}, device="p-a", token=1, **PROV) is None
    assert b.append(Vitals(ts=2.0, spo2=97.5), device="p-b", token=2, **PROV) is None
    sealed = b.append(SimpleNamespace(ts=3.0, steps=12), device="p-a", token=3, **PROV)
    assert sealed is not None and sealed.count == 3 and sealed.tokens == [1, 2, 3]
    assert (sealed.stream, sealed.partition) == ("vitals", 0)
    batch = decode(sealed.payload)
    assert batch.producer == "bridge-1" and batch.count == 3
    np.testing.assert_array_equal(batch["ts"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(batch["heart_rate"], [70.0, np.nan, np.nan])
    np.testing.assert_array_equal(batch["spo2"], [np.nan, 97.5, np.nan])
    np.testing.assert_array_equal(batch["steps"], [np.nan, np.nan, 12.0])
    device = batch.strings["device"]
    assert device.values == ("p-a", "p-b")
    assert list(device.codes) == [0, 1, 0]
    assert list(batch.strings["district"].decoded()) == ["north"] * 3
    assert b.pending == 0


def test_accelerometer_windows_rate_and_explicit_times() -> None:
    b, _ = _batcher()
    b.append(
        {"t0": 10.0, "rate_hz": 4.0, "x": [1, 2, 3], "y": [0, 0, 0], "z": [9.8] * 3},
        device="p-a",
        district="d",
        family="wearable",
        channel="accel",
    )
    b.append(
        SimpleNamespace(t=[20.0, 20.5], x=(4.0, 5.0), y=[1, 1], z=[2, 2]),
        device="p-b",
        district="d",
        family="eldercare",
        channel="pendant",
    )
    b.append(
        {"t0": 30.0, "rate_hz": 2.0, "x": [7], "y": [7], "z": [7]},
        device="p-a",
        district="d",
        family="wearable",
        channel="accel",
    )
    (sealed,) = b.flush()
    batch = decode(sealed.payload)
    assert batch.stream == "motion"
    np.testing.assert_array_equal(batch.ragged.offsets, [0, 3, 5, 6])
    np.testing.assert_array_equal(batch.ragged["t"], [10.0, 10.25, 10.5, 20.0, 20.5, 30.0])
    np.testing.assert_array_equal(batch.ragged["x"], [1, 2, 3, 4, 5, 7])
    np.testing.assert_array_equal(batch["ts"], [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(batch["rate_hz"], [4.0, np.nan, 2.0])
    assert list(batch.strings["channel"].decoded()) == ["accel", "pendant", "accel"]


def test_home_flags_and_strings() -> None:
    b, _ = _batcher()
    home = {"district": "d", "family": "eldercare"}
    b.append({"ts": 1, "room": "kitchen", "motion": True}, device="h1", channel="motion", **home)
    b.append({"ts": 2, "door": "front", "open": False}, device="h1", channel="door", **home)
    b.append({"ts": 3, "occupied": True}, device="h1", channel="bed", **home)
    b.append({"ts": 4, "pressed": True}, device="h1", channel="panic", **home)
    b.append(
        {"ts": 5, "battery": 41.5}, device="w1", channel="status", district="d", family="wearable"
    )
    (sealed,) = b.flush()
    batch = decode(sealed.payload)
    assert batch.stream == "home"
    assert list(batch["motion"]) == [1, -1, -1, -1, -1]
    assert list(batch["open"]) == [-1, 0, -1, -1, -1]
    assert list(batch["occupied"]) == [-1, -1, 1, -1, -1]
    assert list(batch["pressed"]) == [-1, -1, -1, 1, -1]
    np.testing.assert_array_equal(batch["battery"], [np.nan] * 4 + [41.5])
    assert list(batch.strings["room"].decoded()) == ["kitchen", "", "", "", ""]
    assert list(batch.strings["door"].decoded()) == ["", "front", "", "", ""]


def test_partitions_follow_kafka_default_partitioner() -> None:
    clock = FakeClock()
    b = MicroBatcher(4, "p", BatchLimits(max_count=10_000), clock=clock)
    devices = [f"p-dev{i}" for i in range(40)]
    for i, dev in enumerate(devices):
        b.append({"ts": float(i), "heart_rate": 60}, device=dev, **PROV)
    sealed = b.flush()
    seen = {}
    for s in sealed:
        for dev in decode(s.payload).strings["device"].values:
            seen[dev] = s.partition
    assert seen == {d: kafka_partition(d, 4) for d in devices}
    assert len(set(seen.values())) > 1
    assert sum(s.count for s in sealed) == 40


def test_air_stations_are_keyed_by_district_and_devices_keep_one_partition_number() -> None:
    """Every station of a district lands on the district's partition (its AQI is computed
    in one place); a wearable's vitals, accelerometer and status share one partition."""
    b = MicroBatcher(4, "p", BatchLimits(max_count=10_000), clock=FakeClock())
    districts = [f"d{i}" for i in range(8)]
    for i in range(40):
        district = districts[i % 8]
        prov = {"district": district, "family": "airq", "channel": "air"}
        b.append({"ts": float(i), "lat": 1.0, "lon": 2.0, "pm25": 9.0}, device=f"st-{i}", **prov)
    wearables = [f"p-w{i}" for i in range(12)]
    for dev in wearables:
        b.append({"ts": 1.0, "heart_rate": 60}, device=dev, **PROV)
        b.append({"ts": 1.0, "battery": 50.0}, device=dev, **{**PROV, "channel": "status"})
        window = {"t0": 1.0, "rate_hz": 50.0, "x": [0.0], "y": [0.0], "z": [9.8]}
        b.append(window, device=dev, **{**PROV, "channel": "accel"})
    where: dict[str, set[tuple[str, int]]] = {}
    for s in b.flush():
        batch = decode(s.payload)
        key = batch.strings["district"] if s.stream == "airq" else batch.strings["device"]
        for value in key.values:
            where.setdefault(value, set()).add((s.stream, s.partition))
    for district in districts:
        assert where[district] == {("airq", kafka_partition(district, 4))}
    assert len({p for d in districts for _, p in where[d]}) > 1
    for dev in wearables:
        assert {p for _, p in where[dev]} == {kafka_partition(dev, 4)}
        assert {stream for stream, _ in where[dev]} == {"vitals", "home", "motion"}


def test_age_and_bytes_limits() -> None:
    b, clock = _batcher(max_age_s=0.05)
    assert b.next_deadline() is None
    b.append({"ts": 1.0, "heart_rate": 60}, device="p-a", **PROV)
    assert b.next_deadline() == pytest.approx(100.05)
    clock.now = 100.04
    assert b.poll() == []
    clock.now = 100.05
    (sealed,) = b.poll()
    assert sealed.count == 1 and b.pending == 0

    b, _ = _batcher(max_bytes=4096)
    window = {"t0": 0.0, "rate_hz": 50.0, "x": [0.0] * 50, "y": [0.0] * 50, "z": [0.0] * 50}
    full = [
        b.append(window, device="p-a", district="d", family="wearable", channel="accel")
        for _ in range(10)
    ]
    first = next(i for i, s in enumerate(full) if s is not None)
    assert first == 2  # 3 windows x 50 samples x 32 bytes > 4096
    assert len(full[first].payload) <= 4096 + 2 * 50 * 32


def test_bad_input_is_a_clear_error() -> None:
    b, _ = _batcher()
    with pytest.raises(KeyError, match="no micro-batch stream"):
        b.append({"ts": 1}, device="x", district="d", family="wearable", channel="radio")
    with pytest.raises(ValueError, match="equal-length"):
        b.append(
            {"t0": 0, "rate_hz": 1, "x": [1, 2], "y": [1], "z": [1]},
            device="x",
            district="d",
            family="wearable",
            channel="accel",
        )
    with pytest.raises(ValueError, match="invalid batch limits"):
        BatchLimits(max_count=0)


def test_a_reading_that_fails_half_way_leaves_nothing_behind() -> None:
    """A window whose samples fail to convert after its strings, floats and first axis
    were appended is cut back out: the buffer's other readings still seal, aligned."""
    b, _ = _batcher()
    good = {"t0": 10.0, "rate_hz": 2.0, "x": [1.0, 2.0], "y": [0.0, 0.0], "z": [9.8, 9.8]}
    where = {"district": "d", "family": "wearable", "channel": "accel"}
    b.append(good, device="p-a", **where)
    with pytest.raises(TypeError):
        b.append({**good, "t0": 11.0, "y": [0.5, "oops"]}, device="p-new", **where)
    with pytest.raises(ValueError, match="timestamps"):
        b.append({**good, "t": [12.0], "t0": None}, device="p-a", **where)
    b.append({**good, "t0": 13.0, "x": [3.0, 4.0]}, device="p-a", **where)
    (sealed,) = b.flush()
    batch = decode(sealed.payload)
    assert sealed.count == 2
    np.testing.assert_array_equal(batch["ts"], [10.0, 13.0])
    np.testing.assert_array_equal(batch.ragged.offsets, [0, 2, 4])
    np.testing.assert_array_equal(batch.ragged["x"], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(batch.ragged["t"], [10.0, 10.5, 13.0, 13.5])
    assert list(batch.strings["device"].decoded()) == ["p-a", "p-a"]


def test_real_contract_models_of_every_channel() -> None:
    """Readings validated by ingest.contract land in the right stream and columns."""
    from ingest.contract import decode as decode_message

    now = 1_800_000_000.0
    messages = {
        "wearable/w1/vitals": {"ts": now, "heart_rate": 71, "spo2": 98.5, "steps": 3},
        "wearable/w1/accel": {
            "t0": now,
            "rate_hz": 50,
            "x": [0.1] * 50,
            "y": [0] * 50,
            "z": [9.8] * 50,
        },
        "wearable/w1/status": {"ts": now, "battery": 77},
        "eldercare/h1/pendant": {"t": [now, now + 0.02], "x": [1, 2], "y": [0, 0], "z": [9, 9]},
        "eldercare/h1/motion": {"ts": now, "room": "kitchen", "motion": True},
        "eldercare/h1/door": {"ts": now, "door": "front", "open": True},
        "eldercare/h1/bed": {"ts": now, "occupied": False},
        "eldercare/h1/chair": {"ts": now, "occupied": True},
        "eldercare/h1/panic": {"ts": now, "pressed": True},
        "eldercare/h1/status": {"ts": now, "battery": 12.5},
        "airq/st-1/air": {"ts": now, "lat": 52.5, "lon": 13.4, "pm25": 12.1, "no2": 20},
    }
    b = MicroBatcher(1, "bridge", BatchLimits(max_count=100))
    for path, payload in messages.items():
        msg = decode_message(f"city/north/{path}", json.dumps(payload), now=now)
        b.append(
            msg.model,
            device=msg.device_id,
            district=msg.district,
            family=msg.family,
            channel=msg.channel,
            token=path,
        )
    batches = {s.stream: (decode(s.payload), s.tokens) for s in b.flush()}
    assert {k: len(v[1]) for k, v in batches.items()} == {
        "vitals": 1,
        "motion": 2,
        "home": 7,
        "airq": 1,
    }
    vitals = batches["vitals"][0]
    assert (vitals["heart_rate"][0], vitals["spo2"][0], vitals["steps"][0]) == (71.0, 98.5, 3.0)
    assert np.isnan(vitals["body_temp"][0])
    motion = batches["motion"][0]
    assert list(motion.ragged.lengths) == [50, 2]
    assert motion.ragged["t"][49] == pytest.approx(now + 49 / 50)
    home = batches["home"][0]
    channels = list(home.strings["channel"].decoded())
    assert channels == ["status", "motion", "door", "bed", "chair", "panic", "status"]
    assert list(home["occupied"]) == [-1, -1, -1, 0, 1, -1, -1]
    np.testing.assert_array_equal(home["battery"], [77, *[np.nan] * 5, 12.5])
    airq = batches["airq"][0]
    assert airq.strings["device"].values == ("st-1",)
    assert (airq["pm25"][0], airq["no2"][0], airq["lat"][0]) == (12.1, 20.0, 52.5)


_maybe = st.none() | st.floats(20, 250)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.floats(1e9, 2e9), _maybe, _maybe, _maybe),
        max_size=60,
    ),
    st.integers(1, 4),
    st.integers(1, 25),
)
def test_every_reading_lands_once_in_order_per_partition(rows, partitions, max_count) -> None:
    """Any stream of readings, any partition count and batch size: nothing lost or reordered."""
    clock = FakeClock()
    b = MicroBatcher(partitions, "p", BatchLimits(max_count=max_count), clock=clock)
    sealed = []
    for i, (dev, ts, hr, spo2, temp) in enumerate(rows):
        reading = {"ts": ts, "heart_rate": hr, "spo2": spo2, "body_temp": temp}
        out = b.append(reading, device=f"p-{dev}", token=i, **PROV)
        sealed.extend([out] if out else [])
    sealed.extend(b.flush())
    assert all(s.count <= max_count for s in sealed)
    seen = []
    for s in sealed:
        batch = decode(s.payload)
        devices = batch.strings["device"].decoded()
        for j, token in enumerate(s.tokens):
            dev, ts, hr, spo2, temp = rows[token]
            assert devices[j] == f"p-{dev}" and batch["ts"][j] == ts
            assert kafka_partition(devices[j], partitions) == s.partition
            for col, value in (("heart_rate", hr), ("spo2", spo2), ("body_temp", temp)):
                assert (np.isnan(batch[col][j]) and value is None) or batch[col][j] == value
        seen.extend(s.tokens)
    assert sorted(seen) == list(range(len(rows)))
    by_partition: dict[int, list[int]] = {}
    for s in sealed:
        by_partition.setdefault(s.partition, []).extend(s.tokens)
    assert all(tokens == sorted(tokens) for tokens in by_partition.values())
