"""Writes merged per measurement at the commit step (streams.tables) hold exactly the lines
of encoding every write on its own, in the same order within each measurement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.batch import DictColumn
from streams import tables
from streams.output import Databases, Output
from streams.sink.lineprotocol import encode_lines
from streams.tables import Coded, PendingTables

_MEASUREMENTS = ("vitals", "anomaly", "news2")


@st.composite
def writes(draw: st.DrawFn) -> list[tuple[str, str, np.ndarray, dict, dict]]:
    """Writes like a processor's: index-coded device tags (one growing list), batch
    dictionaries, constant tags, float fields with NaN and int fields; sometimes a
    different field set for the same measurement (a layout change)."""
    ids: list[str] = []
    out = []
    for _ in range(draw(st.integers(1, 12))):
        n = draw(st.integers(0, 6))
        ids.extend(f"p-{len(ids) + k}" for k in range(draw(st.integers(0, 3))))
        if not ids:
            ids.append("p-0")
        dev = np.array(draw(st.lists(st.integers(0, len(ids) - 1), min_size=n, max_size=n)))
        time_ns = np.array(draw(st.lists(st.integers(0, 10**18), min_size=n, max_size=n)))
        district = DictColumn(("north", "south"), (dev % 2).astype(np.int32))
        values = draw(st.lists(st.sampled_from([1.5, 72.0, np.nan, -0.25]), min_size=n, max_size=n))
        fields: dict[str, object] = {"x": np.array(values, dtype=np.float64)}
        if draw(st.booleans()):
            fields["count"] = dev.astype(np.int64)
        tags = {"device": Coded(ids, dev.astype(np.int64)), "district": district, "k": "c"}
        db = draw(st.sampled_from(["s", "p"]))
        out.append((db, draw(st.sampled_from(_MEASUREMENTS)), time_ns, tags, fields))
    return out


def _by_measurement(lines: list[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for line in lines:
        grouped.setdefault(line.split(",", 1)[0], []).append(line)
    return grouped


@settings(max_examples=150, deadline=None)
@given(writes(), st.sampled_from([1, 3, 8192]))
def test_merged_tables_equal_write_by_write(batch, max_rows) -> None:
    expected: dict[str, list[str]] = {}
    for db, measurement, time_ns, tags, fields in batch:
        # encoded now, with the dictionaries as they are at the write
        snap = {
            k: Coded(list(v.values), v.codes) if isinstance(v, Coded) else v
            for k, v in tags.items()
        }
        expected.setdefault(db, []).extend(encode_lines(measurement, time_ns, snap, fields))
    old, tables.MAX_ROWS = tables.MAX_ROWS, max_rows
    try:
        pending = PendingTables()
        for db, measurement, time_ns, tags, fields in batch:
            pending.add(db, measurement, time_ns, tags, fields)
        bodies, points, failed = pending.encode()
    finally:
        tables.MAX_ROWS = old
    got = {db: b"\n".join(parts).decode().split("\n") for db, parts in bodies.items()}
    assert failed == 0
    assert points == sum(len(v) for v in expected.values())
    assert {db: _by_measurement(v) for db, v in got.items()} == {
        db: _by_measurement(v) for db, v in expected.items() if v
    }


def test_a_growing_device_list_is_cut_to_what_the_write_used() -> None:
    ids = ["p-a"]
    pending = PendingTables()
    pending.add(
        "s", "vitals", np.array([1]), {"device": Coded(ids, np.array([0]))}, {"x": np.ones(1)}
    )
    ids.append("p-b")  # the index grows after the write (another batch's new device)
    pending.add(
        "s", "vitals", np.array([2]), {"device": Coded(ids, np.array([1]))}, {"x": np.ones(1)}
    )
    bodies, points, _ = pending.encode()
    assert points == 2
    assert bodies == {"s": [b"vitals,device=p-a x=1 1\nvitals,device=p-b x=1 2"]}


def test_unequal_columns_fail_at_the_write_and_a_bad_table_is_counted() -> None:
    out = Output(Databases("s", "p"))
    with pytest.raises(ValueError, match="3 rows"):
        out.write("s", "m", np.array([1, 2]), {}, {"x": np.ones(3)})
    out.write("s", "m", np.array([1]), {}, {"x": np.array(["\ud800"], dtype=object)})
    out.write("s", "ok", np.array([5]), {}, {"x": np.ones(1)})
    assert out.bodies == {"s": [b"ok x=1 5"]}
    assert out.points == 1
    assert out.unencoded == 1


def test_a_few_rows_of_a_large_device_index_encode_only_the_ids_they_use() -> None:
    """Sparse writes (a fall, a NEWS2 row) against a partition's whole device index are
    compacted before encoding; the lines are those of the rows as written, including a
    constant tag given as a ``str`` subclass."""
    ids = [f"p-{k}" for k in range(5_000)]
    dev = np.array([4_321, 7, 4_321])
    pending = PendingTables()
    tags = {"device": Coded(ids, dev), "k": np.str_("c")}
    pending.add("s", "fall", np.array([1, 2, 3]), tags, {"x": np.arange(3.0)})
    pending.add(
        "s",
        "fall",
        np.array([4]),
        {"device": Coded(ids, np.array([7])), "k": "c"},
        {"x": np.ones(1)},
    )
    merged = pending._tables[0]._merged("device", [t["device"] for t in pending._tables[0].tags])
    assert list(merged.values) == ["p-7", "p-4321"]  # not 5,000 ids
    bodies, points, _ = pending.encode()
    assert points == 4
    assert bodies["s"][0].decode().split("\n") == [
        "fall,device=p-4321,k=c x=0 1",
        "fall,device=p-7,k=c x=1 2",
        "fall,device=p-4321,k=c x=2 3",
        "fall,device=p-7,k=c x=1 4",
    ]
