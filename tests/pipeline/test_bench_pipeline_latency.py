"""The latency split of ``cityhealth bench pipeline`` (cityhealth.bench.pipeline_latency):
each alert's triggering sample is found in the stream records, and the four stages add up
to the latency ``cityhealth up`` reports."""

from __future__ import annotations

import numpy as np
import pytest

from cityhealth.bench.pipeline_latency import STAGES, first_sightings, stage_split
from ingest.batch.codec import ColumnarBatch, DictColumn, Ragged
from ingest.batch.schema import STREAMS


def _batch(stream: str, devices: list[str], ts: list[float], created: float, samples=None):
    n = len(devices)
    columns = {
        name: (np.asarray(ts) if name == "ts" else np.zeros(n)).astype(dtype)
        for name, dtype in STREAMS[stream].numeric_dtypes.items()
    }
    strings = {
        name: DictColumn.from_strings(devices if name == "device" else [""] * n)
        for name in STREAMS[stream].string_columns
    }
    ragged = None
    if samples is not None:
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in samples])]).astype(np.int64)
        t = np.concatenate([np.asarray(s, dtype="<f8") for s in samples])
        ragged = Ragged(offsets, {k: (t if k == "t" else np.zeros_like(t)) for k in "txyz"})
    return ColumnarBatch(stream, "bridge", created, columns, strings, ragged)


def test_stages_add_up_to_the_reported_latency() -> None:
    vitals_early = _batch("vitals", ["p-a", "p-b"], [100.0, 100.0], created=100.30)
    vitals_again = _batch("vitals", ["p-a"], [100.0], created=105.0)  # a later duplicate
    motion = _batch(
        "motion",
        ["p-c", "p-a"],
        [100.0, 101.0],
        created=101.50,
        samples=[[100.00, 100.02, 100.04], [101.00, 101.02]],
    )
    records = [(100.35, vitals_early), (105.1, vitals_again), (101.55, motion)]
    wanted = {"p-a": [100.0], "p-c": [100.02], "p-z": [100.0]}
    seen = first_sightings(records, wanted)
    assert set(seen) == {("p-a", 100.0), ("p-c", 100.02)}  # p-z never arrived
    assert seen[("p-a", 100.0)].kafka_ts == 100.35  # the first record, not the duplicate
    assert seen[("p-c", 100.02)].sealed == 101.50  # a sample inside an accel window

    alerts = [
        {
            "type": "bradycardia",
            "subject": "p-a",
            "sensor_ts": 100.0,
            "emitted_ts": 100.60,
            "kafka_ts": 100.70,
        },
        {
            "type": "fall",
            "subject": "p-c",
            "sensor_ts": 100.02,
            "emitted_ts": 101.90,
            "kafka_ts": 102.00,
        },
        {
            "type": "district_count",
            "subject": "centro",
            "sensor_ts": None,
            "emitted_ts": 101.0,
            "kafka_ts": 101.1,
        },
    ]
    split = stage_split(alerts, seen)
    assert split["unmatched"] == 1
    assert [split[s]["count"] for s in STAGES] == [2, 2, 2, 2]
    slowest = split["slowest"]
    assert [a["type"] for a in slowest] == ["fall", "bradycardia"]
    for a in slowest:
        assert sum(a[s] for s in STAGES) == pytest.approx(a["total_s"], abs=2e-3)
    fall = slowest[0]
    assert fall["to_bridge_batch"] == pytest.approx(1.48)
    assert fall["bridge_to_kafka"] == pytest.approx(0.05)
    assert fall["kafka_to_step"] == pytest.approx(0.35)
    assert fall["step_to_alert"] == pytest.approx(0.10)


def test_no_alerts_gives_unknown_stages() -> None:
    split = stage_split([], {})
    assert split["unmatched"] == 0
    assert split["slowest"] == []
    assert all(split[s] == {"p50": None, "p99": None, "max": None, "count": 0} for s in STAGES)
