"""Pure parts of the worker (no services): period aggregates, hysteresis, checkpoints,
replay idempotence of a processor. Naive Python references, hypothesis examples."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.batch import DictColumn, decode
from streams.clock import StreamClock
from streams.config import WorkerConfig
from streams.district import DistrictBoard
from streams.episodes import episode_starts
from streams.output import Databases, Output
from streams.periods import PeriodStats
from streams.processors import HomeProcessor, MotionProcessor, Services, VitalsProcessor, home
from streams.processors.vitals import SIGNALS
from streams.sink.lineprotocol import encode_lines
from streams.state import CheckpointError, Columns, PartitionState
from streams.synthetic import batch as synthetic_batch
from streams.synthetic import motion_batches, vitals_batches

samples = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 40), st.floats(-5, 5, allow_nan=False)),
    min_size=1,
    max_size=120,
)


def ordered(rows: list[tuple[int, int, float]]) -> list[tuple[int, float, float]]:
    """(series, time, value), time increasing per series."""
    clock: dict[int, float] = defaultdict(float)
    out = []
    for s, dt, v in rows:
        clock[s] += dt / 10
        out.append((s, clock[s], v))
    return out


def naive_periods(rows: list[tuple[int, float, float]], length: float) -> dict:
    """(series, period) -> (count, total, peak, value at first peak, last value)."""
    agg: dict[tuple[int, int], list] = {}
    for s, t, v in rows:
        key = (s, int(t // length))
        a = agg.setdefault(key, [0, 0.0, -np.inf, np.nan, np.nan])
        a[0] += 1
        a[1] += v
        if v > a[2]:
            a[2], a[3] = v, v
        a[4] = v
    return {k: tuple(v) for k, v in agg.items()}


@settings(max_examples=60, deadline=None)
@given(samples, st.lists(st.integers(1, 30), max_size=5))
def test_period_stats_any_chunking_equals_naive(rows, cuts) -> None:
    data = ordered(rows)
    s = np.array([r[0] for r in data], dtype=np.int64)
    t = np.array([r[1] for r in data])
    v = np.array([r[2] for r in data])
    stats = PeriodStats(4)
    written: dict[tuple[int, int], tuple] = {}
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    for lo, hi in itertools.pairwise(bounds):
        sl = slice(lo, hi)
        for g in (stats.update(s[sl], (t[sl] // 2).astype(np.int64), t[sl], v[sl]), stats.flush()):
            for i in range(g.size):  # later writes overwrite (InfluxDB upsert)
                key = (int(g.series[i]), int(g.period[i]))
                written[key] = (int(g.count[i]), g.total[i], g.peak[i], g.at_peak[i], g.last[i])
    expected = naive_periods(data, 2.0)
    assert written.keys() == expected.keys()
    for key, exp in expected.items():
        assert written[key][0] == exp[0]
        np.testing.assert_allclose(written[key][1:], exp[1:], rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1)), max_size=80))
def test_hysteresis_equals_naive(rows) -> None:
    series = np.array([r[0] for r in rows], dtype=np.int64)
    value = np.array([r[1] for r in rows])
    active = np.zeros(3, dtype=np.int8)
    got = episode_starts(series, value, 0.9, 0.5, active).tolist()
    state, expected = [False] * 3, []
    for i, (s, x) in enumerate(rows):
        if state[s] and x < 0.5:
            state[s] = False
        elif not state[s] and x >= 0.9:
            state[s] = True
            expected.append(i)
    assert got == expected and active.tolist() == [int(a) for a in state]


def services() -> Services:
    return Services(WorkerConfig(), Databases("s", "p"), DistrictBoard(), StreamClock())


DEVICES = [f"p-u{i:02d}" for i in range(8)]
T0 = 1_763_700_000.0


def run(processor, payloads: list[bytes]) -> Output:
    out = Output(processor.dbs)
    for payload in payloads:
        processor.process(decode(payload), out)
    processor.flush(out)
    return out


def test_checkpoint_restore_then_replay_is_idempotent_and_continues_exactly() -> None:
    """Restore from checkpoint records, replay the covered batches, continue: the alerts
    and state equal one uninterrupted processor's (the crash-recovery contract)."""
    spikes = [(2, 250.0, 190.0), (5, 400.0, 30.0)]
    payloads = vitals_batches(DEVICES, T0, 600, per_batch=100, spikes=spikes)
    one = VitalsProcessor(services())
    alerts_one = [a.id for a in run(one, payloads).alerts]
    first = VitalsProcessor(services())
    first_alerts = run(first, payloads[:30]).alerts  # 30 batches: 375 s of data
    early = [a.id for a in first_alerts]
    records = first.state.take_dirty()
    second = VitalsProcessor(services())
    for _, record in records:
        second.state.import_block(record)
    replay = run(second, payloads[20:])  # batches 20-29 are a replay of covered ones
    assert early + [a.id for a in replay.alerts] == alerts_one
    assert any(a.subject == DEVICES[2] and a.type == "anomaly" for a in first_alerts)
    assert any(a.subject == DEVICES[5] and a.type == "anomaly" for a in replay.alerts)
    mine = np.array([one.state.index.ids.index(d) for d in DEVICES])
    theirs = np.array([second.state.index.ids.index(d) for d in DEVICES])
    for name, (part, rows) in one.state.parts.items():  # every state array, bit for bit
        want = part.export_state((mine[:, None] * rows + np.arange(rows)).ravel())
        other = second.state.parts[name][0]
        got = other.export_state((theirs[:, None] * rows + np.arange(rows)).ravel())
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name}.{key}")


def test_fall_detected_once_across_batch_boundaries_and_replay() -> None:
    payloads = motion_batches(DEVICES[:3], T0, 20, windows_per_batch=2, falls={1: 9.0})
    proc = MotionProcessor(services())
    out = run(proc, payloads)
    falls = [a for a in out.alerts if a.type == "fall"]
    assert [(a.subject, a.start) for a in falls] == [(DEVICES[1], pytest.approx(T0 + 9.0))]
    assert not [a for a in run(proc, payloads).alerts if a.type == "fall"]  # replayed


def test_bad_checkpoint_record_is_a_clear_error() -> None:
    proc = VitalsProcessor(services())
    with pytest.raises(CheckpointError, match="bad checkpoint record"):
        proc.state.import_block(b"\x93garbage")
    other = MotionProcessor(services())
    run(other, motion_batches(DEVICES[:1], T0, 2))
    record = other.state.take_dirty()[0][1]
    with pytest.raises(CheckpointError, match="stream 'motion'"):
        proc.state.import_block(record)


def test_signs_opening_at_one_reading_raise_one_alert() -> None:
    """Regression (duplicate anomaly alerts in ``cityhealth up``): the id is
    type|subject|start, so two signs of a device opening an episode at the same reading
    must not publish two records with one id."""
    proc = VitalsProcessor(
        Services(
            WorkerConfig(anomaly_min_samples=0), Databases("s", "p"), DistrictBoard(), StreamClock()
        )
    )
    proc.state.devices(["p-two"], (["north"], np.zeros(1)), (["f"], np.zeros(1)))
    out = Output(Databases("s", "p"))
    series = np.array([0, 1, 2], dtype=np.int64)  # heart_rate, spo2, body_temp of device 0
    t = np.full(3, T0)
    at_rest = np.zeros(3, dtype=bool)
    proc._anomaly_alerts(
        series, t, np.array([190.0, 80.0, 37.0]), np.array([1.0, 0.9995, 0.5]), at_rest, out
    )
    assert [a.id for a in out.alerts] == [out.alerts[0].id]
    assert out.alerts[0].evidence["signal"] == "heart_rate"
    assert out.alerts[0].evidence["signals"] == ["heart_rate", "spo2"]
    assert proc.episode["open"][:3].tolist() == [1, 1, 0]  # both episodes are open


def test_take_dirty_records_equal_one_block_export_each() -> None:
    """The batched export of all dirty blocks gives each block's own record, byte for
    byte, and only the dirty blocks (then none)."""
    processor = MotionProcessor(services())
    run(processor, motion_batches(DEVICES, T0, 5, windows_per_batch=4))
    dirty = sorted(processor.state.dirty)
    records = processor.state.take_dirty()
    assert [b for b, _ in records] == dirty and dirty
    for block, data in records:
        assert data == processor.state.export_block(block)
    assert processor.state.take_dirty() == []


def deteriorating(per_batch: int) -> list[bytes]:
    """3 residents at 1 Hz for 200 s: p-u01 reaches NEWS2 medium at 80 s and high at 130 s,
    p-u02 flickers between low and medium (RCP 2017 Chart 1 subscores in comments)."""
    n_dev, seconds = 3, 200
    codes = np.tile(np.arange(n_dev), seconds)
    sec = np.repeat(np.arange(seconds), n_dev)
    signs = np.tile([70.0, 97.0, 36.7, 15.0], (codes.size, 1))  # all 0: low
    one, two = codes == 1, codes == 2
    signs[one & (sec >= 80)] = [115.0, 93.0, 38.5, 15.0]  # 2 + 2 + 1 = 5: medium
    signs[one & (sec >= 130)] = [135.0, 93.0, 36.7, 22.0]  # 3 + 2 + 2 = 7: high
    signs[two & (sec % 7 < 2)] = [115.0, 93.0, 38.5, 15.0]
    return [
        synthetic_batch(
            "vitals", DEVICES[:n_dev], codes[lo : lo + per_batch],
            T0 + sec[lo : lo + per_batch].astype(float),
            **{k: signs[lo : lo + per_batch, j] for j, k in enumerate(SIGNALS)},
        )
        for lo in range(0, codes.size, per_batch)
    ]  # fmt: skip


def test_news2_alerts_are_decided_in_the_batch_of_the_reading_and_chunk_invariant() -> None:
    """NEWS2 escalations come out of the batch carrying the reading that raised the band
    (not the next flush of the minute), and any batching gives the one-shot alerts."""
    proc = VitalsProcessor(services())
    out = Output(proc.dbs)
    seen = []
    for payload in deteriorating(per_batch=9):  # 3 s per batch
        batch = decode(payload)
        proc.process(batch, out)  # no flush: the alert must already be there
        fresh = [a for a in out.alerts if a.type == "news2" and a.id not in seen]
        newest = float(np.max(batch.columns["ts"]))
        assert all(newest - 3 < a.sensor_ts <= newest for a in fresh)
        seen += [a.id for a in fresh]

    def news2_alerts(per_batch: int) -> list[tuple[str, str, float, str, str]]:
        got = run(VitalsProcessor(services()), deteriorating(per_batch)).alerts
        return [
            (a.id, a.subject, a.sensor_ts, a.severity, a.evidence["band"])
            for a in got
            if a.type == "news2"
        ]

    one_shot = news2_alerts(per_batch=600)
    assert [(s, t - T0, b) for _, s, t, _, b in one_shot if s == DEVICES[1]] == [
        (DEVICES[1], 80.0, "medium"),
        (DEVICES[1], 130.0, "high"),
    ]
    # flicker (medium 2 s of every 7, below for 5 s < limit_clear_s): one episode
    assert [(s, t - T0) for _, s, t, _, _ in one_shot if s == DEVICES[2]] == [(DEVICES[2], 0.0)]
    assert len(seen) == len(one_shot)
    for per_batch in (1, 7, 50, 301):
        assert sorted(news2_alerts(per_batch)) == sorted(one_shot)


def test_a_limit_alarm_publishes_its_clear_record_under_its_id() -> None:
    """A latched limit alarm (streams.limits) ends with a clear record: same id, ``end``
    set to the clearing reading; the district board does not count it as an alert and the
    ``alert`` measurement does not mirror it."""
    seconds = np.arange(60)
    hr = np.where((seconds >= 10) & (seconds < 30), 140.0, 70.0)  # clears at 29 + 10 s
    payload = synthetic_batch(
        "vitals", DEVICES[:1], np.zeros(60, np.int64), T0 + seconds.astype(float),
        heart_rate=hr, spo2=np.full(60, 97.0), body_temp=np.full(60, 36.7),
        respiration_rate=np.full(60, 15.0),
    )  # fmt: skip
    proc = VitalsProcessor(services())
    out = run(proc, [payload])
    raised, cleared = [a for a in out.alerts if a.type == "tachycardia"]
    assert (raised.end, cleared.id, cleared.start) == (None, raised.id, T0 + 10)
    assert cleared.end == cleared.sensor_ts == T0 + 39
    assert cleared.evidence["cleared"] is True
    out = Output(proc.dbs)
    proc.services.board.flush(out)
    (alert_row,) = [
        line
        for body in out.bodies[proc.dbs.public]
        for line in body.split(b"\n")
        if line.startswith(b"district,")
    ]
    assert b"alerts=1i" in alert_row  # the board's alert count
    mirror = Output(proc.dbs)
    mirror.alert(raised)
    mirror.alert(cleared)
    mirror.mirror_alerts()
    lines = b"\n".join(mirror.bodies[proc.dbs.sensitive]).split(b"\n")
    assert [line.split(b",")[0] for line in lines] == [b"alert"]


def test_columns_added_after_a_checkpoint_take_their_default() -> None:
    """A worker upgraded with a new state column restores an older checkpoint (the new
    column at its default) instead of skipping the block; malformed arrays still raise."""
    old = Columns({"open": ("i1", 0), "since": ("f8", np.nan)}, 3)
    old["open"][:] = [1, 0, 1]
    old["since"][:] = [5.0, np.nan, 7.0]
    saved = old.export_state([0, 2])
    new = Columns({"open": ("i1", 0), "since": ("f8", np.nan), "opened": ("f8", np.nan)}, 3)
    new.import_state([1, 2], saved)
    assert new["open"].tolist() == [0, 1, 1]
    assert new["since"][1:].tolist() == [5.0, 7.0]
    assert np.isnan(new["opened"]).all()
    with pytest.raises(ValueError, match="shape"):
        new.import_state([0], saved)  # two rows for one device


def test_a_state_added_after_a_checkpoint_starts_fresh_and_the_rest_restores() -> None:
    """A processor upgraded with a new named state (e.g. airq's anomaly scorer) restores
    an older block: the states the record holds come back, the new one starts at its
    initial values for those devices (not a skipped block whose devices all re-learn)."""
    labels = (["north"], np.zeros(2, np.int64)), (["airq"], np.zeros(2, np.int64))
    old = PartitionState("airq", blocks=1)
    hours = old.add("hour", Columns({"n": ("i8", 0)}), 2)
    idx = old.devices(["aq-1", "aq-2"], *labels)
    hours["n"][old._rows(idx, 2)] = [3, 4, 5, 6]
    payload = old.export_block(0)

    new = PartitionState("airq", blocks=1)
    new_hours = new.add("hour", Columns({"n": ("i8", 0)}), 2)
    scorer = new.add("anomaly", Columns({"level": ("f8", np.nan), "seen": ("i8", 0)}), 6)
    known = new.devices(["aq-1", "aq-2"], *labels)  # seen before the restore: stale values
    scorer["level"][new._rows(known, 6)] = 7.0
    scorer["seen"][new._rows(known, 6)] = 9
    assert new.import_block(payload) == 2
    restored = new.devices(["aq-1", "aq-2"], *labels)
    assert new_hours["n"][new._rows(restored, 2)].tolist() == [3, 4, 5, 6]
    rows = new._rows(restored, 6)
    assert np.isnan(scorer["level"][rows]).all() and (scorer["seen"][rows] == 0).all()
    with pytest.raises(CheckpointError, match="stream"):
        PartitionState("vitals", blocks=1).import_block(payload)


def test_a_runner_start_that_failed_on_assignment_is_retried_from_the_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stream whose start failed (e.g. Kafka restarting) is started again after
    ``START_RETRY_S``, even if no record ever arrives to retry it (an air partition with
    no district): until then its partition writes no district row."""
    import asyncio

    from cityhealth.settings import Settings
    from streams import worker as worker_module

    worker = worker_module.StreamWorker(Settings(), WorkerConfig(), "unit")
    calls: list[tuple[str, int]] = []

    async def runner(stream: str, partition: int, *, if_assigned: bool = False) -> None:
        calls.append((stream, partition))
        if len(calls) == 1:
            raise ConnectionError("Kafka restarting")
        worker.runners[(stream, partition)] = object()  # type: ignore[assignment]

    monkeypatch.setattr(worker, "runner", runner)

    async def scenario() -> None:
        worker.assign({(worker.topics.stream("airq"), 3)})
        await asyncio.gather(*worker._background)
        assert ("airq", 3) not in worker.runners
        assert worker.retry_failed_starts() == 0  # not before its retry time
        worker._retry_at[("airq", 3)] = 0.0
        assert worker.retry_failed_starts() == 1
        await asyncio.gather(*worker._background)
        assert ("airq", 3) in worker.runners and worker.retry_failed_starts() == 0

    asyncio.run(scenario())
    assert calls == [("airq", 3), ("airq", 3)]


def _home_batch(rooms: list[str], t: float) -> bytes:
    """Motion events of DEVICES[0..n) in ``rooms`` (one per device) at ``t``."""
    n = len(rooms)
    codes = np.arange(n)
    return synthetic_batch(
        "home",
        DEVICES[:n],
        codes,
        np.full(n, t),
        family="eldercare",
        channel="motion",
        strings={"room": DictColumn(tuple(rooms), codes.astype(np.int32))},
        motion=np.ones(n, dtype=np.int8),
    )


@pytest.mark.parametrize("max_labels", [4096, 2])
def test_home_rows_of_a_step_merge_and_keep_each_batchs_lines(monkeypatch, max_labels) -> None:
    """Home rows are coded into the device index and a growing room list, so a step's
    batches encode as one table (while the list is below MAX_LABELS; beyond, each
    batch's names): the lines are those of each batch's own dictionaries, in order."""
    monkeypatch.setattr(home, "MAX_LABELS", max_labels)
    payloads = [
        _home_batch(["kitchen", "hall"], T0),
        _home_batch(["bath", "kitchen", "hall"], T0 + 1),
        _home_batch(["attic"], T0 + 2),
    ]
    processor = HomeProcessor(services())
    out = run(processor, payloads)
    lines = [line for body in out.bodies["s"] for line in body.decode().split("\n")]
    expected = []
    for payload in payloads:
        b = decode(payload)
        s = b.strings
        tags = {k: s[k] for k in ("device", "district", "family", "room")}
        expected += encode_lines(
            "home_motion", np.round(b.columns["ts"] * 1e9).astype(np.int64), tags,
            {"motion": np.asarray(b.columns["motion"]) == 1},
        )  # fmt: skip
    assert lines == expected
    assert len(out.bodies["s"]) == (1 if max_labels > 4 else 3)  # 2: the 1st batch fills it
