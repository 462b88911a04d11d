"""The district board keeps a minute's whole totals for as long as the minute is touched.

Its rows are upserts of whole-minute totals, so a minute dropped from memory and touched
again would overwrite the stored totals with a partial count. These tests play the
writes into a dictionary with InfluxDB's semantics (same series and time: last write
wins) and compare the stored totals with the naive sum of what was reported.
"""

from __future__ import annotations

import numpy as np
import pytest

import streams.district as district_module
from streams.alerts import Alert
from streams.district import DistrictBoard
from streams.output import Databases, Output

DBS = Databases("sens", "pub")
DISTRICTS = ["d-north", "d-south"]
T0_MINUTE = 29_000_000  # a sensor minute in 2025


def heat_alert(district: str, station: str, minute: int) -> Alert:
    return Alert(
        type="heat_episode",
        severity="warning",
        subject=station,
        subject_kind="station",
        district=district,
        start=minute * 60.0,
        sensor_ts=minute * 60.0,
        message="hot",
    )


class Store:
    """``(measurement, tag set, time) -> fields`` as InfluxDB keeps them (last write wins)."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str, int], dict[str, str]] = {}

    def flush(self, board: DistrictBoard) -> None:
        out = Output(DBS)
        board.flush(out)
        for body in out.bodies.get("pub", []):
            for line in body.decode().splitlines():
                series, fields, ts = line.rsplit(" ", 2)
                measurement, _, tags = series.partition(",")
                pairs = dict(f.split("=", 1) for f in fields.split(","))
                self.points[(measurement, tags, int(ts))] = pairs

    def total(self, measurement: str, field: str, tag: str) -> int:
        return sum(
            int(f[field].rstrip("i"))
            for (m, tags, _), f in self.points.items()
            if m == measurement and tag in tags.split(",")
        )


def report(board: DistrictBoard, district: str, minutes: np.ndarray, n_per_minute: int) -> None:
    code = np.full(minutes.size * n_per_minute, DISTRICTS.index(district), dtype=np.int64)
    board.readings_seen("airq", "air", DISTRICTS, code, np.repeat(minutes, n_per_minute))


def test_late_partition_after_a_flush_keeps_whole_minute_totals() -> None:
    """Two partitions of one district replay 90 historic minutes; a flush falls between
    them. Every minute's stored readings and alerts are the totals of both."""
    board, store = DistrictBoard(), Store()
    minutes = T0_MINUTE + np.arange(90)
    report(board, "d-north", minutes, 2)  # partition 0: two stations
    board.alert_raised(heat_alert("d-north", "st-1", T0_MINUTE + 30))
    board.alert_raised(heat_alert("d-north", "st-2", T0_MINUTE + 30))
    store.flush(board)  # the worker's timer runs before partition 1 is processed
    report(board, "d-north", minutes, 1)  # partition 1: the third station
    board.alert_raised(heat_alert("d-north", "st-3", T0_MINUTE + 30))
    store.flush(board)
    assert store.total("district_stream", "readings", "district=d-north") == 3 * 90
    assert store.total("district_alert", "alerts", "type=heat_episode") == 3
    assert board.late_rewrites == 0


def test_idle_minutes_are_forgotten_and_a_late_touch_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(district_module.time, "monotonic", lambda: clock[0])
    board, store = DistrictBoard(), Store()
    report(board, "d-south", T0_MINUTE + np.arange(5), 4)
    store.flush(board)
    clock[0] += district_module._KEEP_IDLE_S - 1
    store.flush(board)
    assert len(board.open_minutes()) == 5  # not idle long enough yet
    clock[0] += 2
    store.flush(board)
    assert board.open_minutes() == []
    # a touch of a forgotten minute rewrites it partially, and is counted as such
    report(board, "d-south", T0_MINUTE + np.arange(1), 1)
    assert board.late_rewrites == 1


def test_memory_is_bounded_least_recently_touched_first(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(district_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(district_module, "_MAX_BUCKETS", 10)
    board, store = DistrictBoard(), Store()
    for m in range(25):  # a fast replay: one minute per second of wall time
        clock[0] = float(m)
        report(board, "d-north", np.array([T0_MINUTE + m]), 3)
        store.flush(board)
    kept = sorted(minute for _, _, minute in board.open_minutes())
    assert kept == list(range(T0_MINUTE + 15, T0_MINUTE + 25))
    assert store.total("district_stream", "readings", "district=d-north") == 3 * 25
