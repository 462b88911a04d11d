"""District rows per source partition: counts add up across the ``partition`` tag, a
device reported by several streams of one partition counts once, and a partition's open
minutes and AQI categories survive a restore from its checkpoint records.

The writes are played into a dictionary with InfluxDB's semantics (same series and time:
last write wins), as in tests/pipeline/test_district_board.py.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from streams.devices import DeviceIndex
from streams.district import DistrictBoard
from streams.output import Output
from tests.pipeline.test_district_board import DBS, Store

MINUTE = 29_000_000


class Rows(Store):
    """The stored rows (last write wins), read per ``(partition, district, minute)``."""

    def flush(self, board: DistrictBoard) -> None:  # type: ignore[override]
        super().flush(board)
        self.points_by: dict[str, dict[tuple[str, str, int], dict[str, float]]] = {}
        for (measurement, tags, ts), fields in self.points.items():
            tag = dict(t.split("=", 1) for t in tags.split(","))
            key = (tag["partition"], tag.get("channel", tag["district"]), ts // 60_000_000_000)
            values = {k: float(v.rstrip("i")) for k, v in fields.items()}
            self.points_by.setdefault(measurement, {})[key] = values

    def row(self, partition: str, district: str, minute: int) -> dict[str, float]:
        return self.points_by["district"][(partition, district, minute)]

    def readings(self, partition: str, channel: str, minute: int) -> int:
        return int(self.points_by["district_stream"][(partition, channel, minute)]["readings"])

    def summed(self, field: str) -> dict[tuple[str, int], float]:
        """``field`` of ``district`` summed across the partition tag, per (district, minute)."""
        out: dict[tuple[str, int], float] = defaultdict(float)
        for (_, district, minute), values in self.points_by["district"].items():
            out[(district, minute)] += values.get(field, 0.0)
        return dict(out)


def index_of(devices: list[str], district: str) -> tuple[DeviceIndex, np.ndarray]:
    index = DeviceIndex(4)
    dev = index.lookup(
        devices,
        ([district], np.zeros(len(devices), np.int64)),
        (["w"], np.zeros(len(devices), np.int64)),
    )
    return index, dev


def seen(board: DistrictBoard, devices: list[str], district: str, minute: int) -> None:
    index, dev = index_of(devices, district)
    board.devices_seen(index, dev, np.full(dev.size, minute, np.int64))


def test_devices_count_once_per_partition_and_add_up_across_partitions() -> None:
    """A wearable reports vitals and accelerometer windows (two streams, one partition
    number): one device online; the other partition's devices add to it."""
    board, rows = DistrictBoard(), Rows()
    seen(board.view("vitals", 0), ["a", "b"], "north", MINUTE)
    seen(board.view("motion", 0), ["a", "c"], "north", MINUTE)
    seen(board.view("home", 0), ["b"], "north", MINUTE)
    seen(board.view("vitals", 1), ["d", "e", "f"], "north", MINUTE)
    rows.flush(board)
    assert rows.row("0", "north", MINUTE)["devices_online"] == 3  # a, b, c
    assert rows.row("1", "north", MINUTE)["devices_online"] == 3
    assert rows.summed("devices_online") == {("north", MINUTE): 6}


def test_a_partition_restored_from_its_records_resumes_the_minute() -> None:
    """The first owner commits part of a minute and goes; the next owner restores the
    records of each stream and sees the rest. The stored totals are the whole minute's,
    not what the next owner saw (which a fresh board would write over them)."""
    first, rows = DistrictBoard(), Rows()
    vitals, motion, air = (first.view(s, 0) for s in ("vitals", "motion", "airq"))
    seen(vitals, ["a", "b"], "north", MINUTE)
    seen(motion, ["a"], "north", MINUTE)
    vitals.readings_seen("vitals", "vitals", ["north"], np.zeros(5, np.int64), np.full(5, MINUTE))
    air.station_seen("north", MINUTE, "st-1", 120.0, 30.0)
    assert air.category_alerts(Output(DBS)) == 1  # Unhealthy for Sensitive Groups
    records = {
        s: v.take_records() for s, v in (("vitals", vitals), ("motion", motion), ("airq", air))
    }
    rows.flush(first)
    assert {n for n, _ in records["airq"]} == {"aqi-category", f"minute:north:{MINUTE}"}
    vitals.drop(), motion.drop(), air.drop()  # revoked
    assert first.open_minutes() == []

    second = DistrictBoard()
    for stream, recs in records.items():
        view = second.view(stream, 0)
        for name, body in recs:
            assert body is not None
            view.import_record(name, body)
    # the rest of the minute: one more device, readings, and the same station's category
    seen(second.view("motion", 0), ["a", "c"], "north", MINUTE)
    second.view("vitals", 0).readings_seen(
        "vitals", "vitals", ["north"], np.zeros(3, np.int64), np.full(3, MINUTE)
    )
    second.view("airq", 0).station_seen("north", MINUTE, "st-2", 130.0, 31.0)
    assert second.view("airq", 0).category_alerts(Output(DBS)) == 0  # restored: no re-alert
    rows.flush(second)
    row = rows.row("0", "north", MINUTE)
    assert row["devices_online"] == 3  # a, b, c
    assert row["alerts"] == 1  # the category alert counted by the first owner
    assert (row["stations_reporting"], row["aqi_max"], row["heat_index_max"]) == (2, 130, 31.0)
    assert rows.readings("0", "vitals", MINUTE) == 8


def test_forgotten_minutes_leave_tombstones_in_every_stream_that_saved_them() -> None:
    board, rows = DistrictBoard(), Rows()
    vitals, motion = board.view("vitals", 2), board.view("motion", 2)
    seen(vitals, ["a"], "north", MINUTE)
    seen(motion, ["a"], "north", MINUTE)
    assert [n for n, _ in vitals.take_records()] == [f"minute:north:{MINUTE}"]
    rows.flush(board)
    board._forget_idle(float("inf"))  # idle long enough
    assert vitals.has_tombstones() and not motion.has_tombstones()  # motion never saved it
    assert motion.take_records() == []
    assert vitals.take_records() == [(f"minute:north:{MINUTE}", None)]
    assert not vitals.has_tombstones()


def test_a_forgotten_minute_recreated_by_another_stream_still_tombstones_the_stale_part() -> None:
    """Vitals and motion saved a minute; it is forgotten; late motion data re-creates it
    before vitals' next checkpoint. Vitals' stale part must leave its checkpoint (before
    the fix its tombstone was dropped, and every restore brought the stale part back)."""
    board = DistrictBoard()
    vitals, motion = board.view("vitals", 1), board.view("motion", 1)
    logs: dict[str, dict[str, bytes]] = {"vitals": {}, "motion": {}}

    def checkpoint(view: DistrictBoard) -> None:  # a compacted topic: last record per name wins
        for name, body in view.take_records():
            if body is None:
                logs[view.stream].pop(name, None)
            else:
                logs[view.stream][name] = body

    seen(vitals, ["a"], "north", MINUTE)
    seen(motion, ["b"], "north", MINUTE)
    checkpoint(vitals)
    checkpoint(motion)
    Rows().flush(board)
    board._forget_idle(float("inf"))
    seen(motion, ["c"], "north", MINUTE)  # late motion data: the minute is back, motion only
    checkpoint(vitals)
    checkpoint(motion)
    assert logs["vitals"] == {}
    assert list(logs["motion"]) == [f"minute:north:{MINUTE}"]

    restored, rows = DistrictBoard(), Rows()
    for stream, records in logs.items():
        for name, body in records.items():
            restored.view(stream, 1).import_record(name, body)
    rows.flush(restored)
    assert rows.row("1", "north", MINUTE)["devices_online"] == 1  # c: what was last written
