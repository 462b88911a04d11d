"""Crash, rebalance and InfluxDB-outage behaviour of the worker on the real stack.

Every scenario feeds the same input (vitals with heart-rate spikes, accelerometer windows
with one fall) and is compared with an uninterrupted reference run: stored counts must be
exact, alert ids unique, and the *set* of alerts identical (a worker that lost its kernel
state would re-learn after the restart and raise a burst of different alerts; one that
replayed without its state would raise duplicates). The district rows, summed across
their ``partition`` tag, must hold every minute's whole counts (devices online, readings)
however the minute was split between owners (their open minutes are checkpointed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from cityhealth.settings import Settings
from ingest.kafka_client import kafka_client_kwargs
from streams.checkpoint import checkpoint_key, ensure_checkpoint_topic, read_checkpoints
from streams.synthetic import motion_batches, vitals_batches
from tests.pipeline.test_worker_support import (
    WorkerProcess,
    alerts,
    by_partition,
    count,
    produce,
    query,
    wait_for,
    worker_settings,
)

T0 = (time.time() // 3600 - 2) * 3600
VITAL_DEVICES = [f"p-cv{i:03d}" for i in range(12)]
MOTION_DEVICES = [f"p-cm{i:03d}" for i in range(4)]
SECONDS = 900
MOTION_SECONDS = 60
FALLER = MOTION_DEVICES[2]
ENV = {"CITYHEALTH_WORKER_OFFLINE_AFTER_S": "86400"}  # no offline alerts in these runs


def interleave(per_partition: list[list[bytes]]) -> list[tuple[int, bytes]]:
    """Round-robin over partitions, so any prefix of the list advances every partition."""
    longest = max(len(b) for b in per_partition)
    return [(p, b[i]) for i in range(longest) for p, b in enumerate(per_partition) if i < len(b)]


def inputs() -> dict[str, list[tuple[int, bytes]]]:
    """Records per stream, in production order (deterministic)."""
    vitals = []
    for group in by_partition(VITAL_DEVICES):
        spikes = [(i, 400.0 + k, 180.0) for i in range(0, len(group), 3) for k in range(2)]
        vitals.append(vitals_batches(group, T0, SECONDS, 250, spikes=spikes))
    motion = []
    for group in by_partition(MOTION_DEVICES):
        falls = {group.index(FALLER): 30.0} if FALLER in group else {}
        motion.append(motion_batches(group, T0, MOTION_SECONDS, falls=falls))
    return {"vitals": interleave(vitals), "motion": interleave(motion)}


EXPECTED = {
    ("vitals", "present"): len(VITAL_DEVICES) * SECONDS,
    ("anomaly", "readings"): len(VITAL_DEVICES) * 4 * (SECONDS // 60),
    ("news2", "score"): len(VITAL_DEVICES) * (SECONDS // 60),
    ("accel_window", "samples"): len(MOTION_DEVICES) * MOTION_SECONDS,
    ("activity", "samples"): len(MOTION_DEVICES) * MOTION_SECONDS,
    ("fall", "detected"): 1,
}


def district_truth() -> dict[tuple[int, str], int]:
    """Per minute (offset from T0): devices online and readings per channel (all in the
    synthetic batches' default district)."""
    out = {}
    for m in range(SECONDS // 60):
        out[(m, "devices_online")] = len(VITAL_DEVICES) + (len(MOTION_DEVICES) if m == 0 else 0)
        out[(m, "vitals")] = len(VITAL_DEVICES) * 60
    out[(0, "accel_window")] = len(MOTION_DEVICES) * MOTION_SECONDS
    return out


def district_rows(s: Settings) -> dict[tuple[int, str], int]:
    """The stored district rows summed across ``partition``, as :func:`district_truth`."""
    pub: str = s.influx_db_public
    out: dict[tuple[int, str], int] = {}
    span = f"time >= {int(T0) * 10**9} AND time < {int(T0 + 3600) * 10**9}"
    minute = f"WHERE {span} GROUP BY time(1m)"
    for x in query(s, pub, f'SELECT sum("devices_online") FROM "district" {minute} fill(none)'):
        for t, n in x["values"]:
            out[((t // 10**9 - int(T0)) // 60, "devices_online")] = int(n)
    sql = f'SELECT sum("readings") FROM "district_stream" {minute}, "channel" fill(none)'
    for x in query(s, pub, sql):
        for t, n in x["values"]:
            out[((t // 10**9 - int(T0)) // 60, x["tags"]["channel"])] = int(n)
    return out


def district_exact(s: Settings) -> None:
    truth = district_truth()
    last: list[dict[tuple[int, str], int]] = [{}]

    def same() -> bool:
        last[0] = district_rows(s)
        return last[0] == truth

    try:
        wait_for(same, 60, "district rows")
    except AssertionError:
        diff = {k: (v, truth.get(k)) for k, v in last[0].items() if truth.get(k) != v}
        missing = {k: v for k, v in truth.items() if k not in last[0]}
        raise AssertionError(f"district rows (got, truth): {diff}, missing {missing}") from None


def stored(s: Settings) -> dict[tuple[str, str], int]:
    return {k: count(s, s.influx_db_sensitive, *k) for k in EXPECTED}


def complete(s: Settings, timeout_s: float = 180) -> dict[tuple[str, str], int]:
    """Wait until every expected count is reached; then the counts (after a pause)."""
    wait_for(lambda: all(v >= EXPECTED[k] for k, v in stored(s).items()), timeout_s, "counts")
    time.sleep(2.0)  # extra or duplicated writes would show up now
    return stored(s)


def produce_all(
    s: Settings, records: dict[str, list[tuple[int, bytes]]], lo: float, hi: float
) -> None:
    """Produce the ``[lo, hi)`` fraction of every stream's records."""
    for stream, recs in records.items():
        produce(s, stream, recs[int(lo * len(recs)) : int(hi * len(recs))])


def alert_summary(s: Settings) -> tuple[list[str], set[tuple[Any, ...]]]:
    found = alerts(s)
    return [a["id"] for a in found], {
        (a["id"], a["type"], a["subject"], a["sensor_ts"]) for a in found
    }


def new_worker(cli: Path, s: Settings, tmp: Path, name: str) -> WorkerProcess:
    return WorkerProcess(cli, s, tmp / f"{name}.log", **ENV).start()


@pytest.fixture(scope="module")
def reference(
    stack: Any, cli: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], set[tuple[Any, ...]]]]:
    """The uninterrupted run: its alerts are what every disturbed run must reproduce."""
    s = worker_settings(stack.settings)
    tmp = tmp_path_factory.mktemp("reference")
    worker = new_worker(cli, s, tmp, "worker")
    try:
        produce_all(s, inputs(), 0.0, 1.0)
        assert complete(s) == EXPECTED, worker.log()[-3000:]
        ids, summary = wait_for(lambda: alert_summary(s)[0] and alert_summary(s), 30, "alerts")
        yield ids, summary
    finally:
        worker.stop()


def start_part(s: Settings, records: dict[str, list[tuple[int, bytes]]], upto: float) -> None:
    """Produce the first ``upto`` of the input; wait until a quarter of it is stored."""
    produce_all(s, records, 0.0, upto)
    quarter = EXPECTED[("vitals", "present")] // 4
    wait_for(lambda: count(s, s.influx_db_sensitive, "vitals", "present") >= quarter, 120, "1st")


def finish(s: Settings, reference: Any, worker: WorkerProcess) -> None:
    """Exact counts, then the same alerts as the uninterrupted run."""
    assert complete(s) == EXPECTED, worker.log()[-3000:]
    district_exact(s)
    wait_for(lambda: len(alert_summary(s)[0]) >= len(reference[0]), 60, "alerts")
    check_against(reference, s)


def check_against(reference: tuple[list[str], set[tuple[Any, ...]]], s: Settings) -> None:
    ref_ids, ref = reference
    assert len(ref_ids) == len(set(ref_ids))
    assert any(a[1] == "fall" for a in ref) and any(a[1] == "anomaly" for a in ref)
    ids, got = alert_summary(s)
    assert len(ids) == len(set(ids)), "duplicate alert ids"
    assert got == ref


def test_sigkill_mid_stream_and_restart(
    stack: Any, cli: Path, tmp_path: Path, reference: tuple[list[str], set[tuple[Any, ...]]]
) -> None:
    s = worker_settings(stack.settings)
    records = inputs()
    first = new_worker(cli, s, tmp_path, "first")
    start_part(s, records, 0.6)
    first.kill()  # SIGKILL while batches are in flight: nothing graceful runs
    produce_all(s, records, 0.6, 1.0)
    second = new_worker(cli, s, tmp_path, "second")
    try:
        finish(s, reference, second)
        assert second.restored_blocks() > 0
    finally:
        second.stop()


def test_rebalance_to_a_second_worker(
    stack: Any, cli: Path, tmp_path: Path, reference: tuple[list[str], set[tuple[Any, ...]]]
) -> None:
    """A second worker joins mid-stream: partitions move, their state follows them."""
    s = worker_settings(stack.settings)
    records = inputs()
    first = new_worker(cli, s, tmp_path, "first")
    second: WorkerProcess | None = None
    try:
        start_part(s, records, 0.5)
        second = new_worker(cli, s, tmp_path, "second")
        second.wait_ready()  # joined: the group rebalanced and split the partitions
        produce_all(s, records, 0.5, 1.0)
        finish(s, reference, second)
        assert second.restored_blocks() > 0  # partitions arrived with their state
        assert first.alive()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_influxdb_restart_mid_run_loses_nothing(
    stack: Any, cli: Path, tmp_path: Path, reference: tuple[list[str], set[tuple[Any, ...]]]
) -> None:
    s = worker_settings(stack.settings)
    records = inputs()
    worker = new_worker(cli, s, tmp_path, "worker")
    try:
        start_part(s, records, 1 / 3)
        stack.manager.stop_service("influx")
        try:
            produce_all(s, records, 1 / 3, 1.0)
            time.sleep(5.0)  # the worker keeps retrying its writes meanwhile
        finally:
            stack.manager.start_service("influx")
        finish(s, reference, worker)
        assert worker.alive()
    finally:
        worker.stop()


def alerts_ahead_then_successor(
    stack: Any,
    cli: Path,
    tmp_path: Path,
    reference: tuple[list[str], set[tuple[Any, ...]]],
    end_first: Callable[[WorkerProcess], None],
) -> None:
    """A first worker publishes alerts while InfluxDB is down (so ahead of any
    checkpoint) and is ended by ``end_first``; InfluxDB comes back and a successor
    replays every record: it must withhold exactly the alerts on the topic and end with
    the reference run's alerts, each once."""
    s = worker_settings(stack.settings)
    first = new_worker(cli, s, tmp_path, "first")
    try:
        first.wait_ready()
        stack.manager.stop_service("influx")
        produce_all(s, inputs(), 0.0, 1.0)
        wait_for(lambda: alerts(s), 120, "alerts while InfluxDB is down")
        end_first(first)
    finally:
        if first.alive():
            first.kill()
        stack.manager.start_service("influx")
    ahead = len(alerts(s))  # no step of the first worker was acknowledged by InfluxDB
    assert ahead > 0
    second = new_worker(cli, s, tmp_path, "second")
    try:
        finish(s, reference, second)
        # every step with an alert also writes its mirror point, so none of them was
        # checkpointed (steps without rows may have been): the replay raised each again
        assert second.withheld_alerts() == ahead
    finally:
        second.stop()


def test_alerts_go_out_while_influxdb_is_down_and_once_after_a_crash(
    stack: Any, cli: Path, tmp_path: Path, reference: tuple[list[str], set[tuple[Any, ...]]]
) -> None:
    """Alerts do not wait for InfluxDB: they are published at the step's cut, ahead of
    its checkpoint (streams/ahead.py). A worker killed before any checkpoint leaves them
    on the alerts topic; its successor replays every record, raises them again and
    withholds them."""
    alerts_ahead_then_successor(stack, cli, tmp_path, reference, WorkerProcess.kill)


def test_a_graceful_handover_while_influxdb_is_down(
    stack: Any, cli: Path, tmp_path: Path, reference: tuple[list[str], set[tuple[Any, ...]]]
) -> None:
    """A worker stopped (SIGTERM: its partitions revoked and closed) while InfluxDB is
    down lets go at once instead of sitting out the sink's retry deadline in every step
    in flight; the next owner restores the alerts-ahead records and withholds them."""

    def stop_gracefully(first: WorkerProcess) -> None:
        first.stop()  # SIGTERM; SIGKILL only if it has not exited after 30 s
        assert first.proc is not None and first.proc.returncode == 0, first.log()[-3000:]

    alerts_ahead_then_successor(stack, cli, tmp_path, reference, stop_gracefully)


def test_timers_run_after_restart_without_new_records(
    stack: Any, cli: Path, tmp_path: Path
) -> None:
    """Partitions start on assignment (not on their next record): devices that went
    silent before a crash still get their offline alert, once, from the new worker."""
    s = worker_settings(stack.settings)
    devs = VITAL_DEVICES[:4]
    records = [
        (p, b)
        for p, group in enumerate(by_partition(devs))
        for b in vitals_batches(group, T0, 30, per_batch=40)
    ]
    env = {"CITYHEALTH_WORKER_OFFLINE_AFTER_S": "30"}
    first = WorkerProcess(cli, s, tmp_path / "first.log", **env).start()
    produce(s, "vitals", records)
    wait_for(lambda: count(s, s.influx_db_sensitive, "vitals", "present") >= 4 * 30, 120, "data")
    first.kill()
    second = WorkerProcess(cli, s, tmp_path / "second.log", **env).start()
    try:
        offline = wait_for(
            lambda: len(f := [a for a in alerts(s) if a["type"] == "device_offline"]) >= 4 and f,
            150,
            "offline alerts",
        )
        time.sleep(3.0)  # timers keep running: still one each
        again = [a for a in alerts(s) if a["type"] == "device_offline"]
        assert sorted(a["subject"] for a in again) == sorted(devs)
        assert {a["id"] for a in again} == {a["id"] for a in offline}
        assert second.restored_blocks() > 0
    finally:
        second.stop()


def test_restore_reads_past_another_streams_open_transaction(stack: Any) -> None:
    """Regression (``cityhealth up --chaos kill-worker``: duplicate anomaly alerts).

    The streams share each checkpoint partition. A SIGKILLed worker can leave one
    stream's transaction open there; until that stream's new runner fences it, the last
    stable offset stays before the other streams' newest committed blocks. A restore
    that stopped at the LSO got stale state and re-published committed alerts on replay.
    """
    s = worker_settings(stack.settings)
    kafka, topic = kafka_client_kwargs(s), s.topic_prefix + "checkpoints"
    zombie_id = f"{s.topic_prefix}motion-0"

    async def run() -> dict[bytes, bytes]:
        await ensure_checkpoint_topic(kafka, topic, 1)
        zombie = AIOKafkaProducer(**kafka, transactional_id=zombie_id)
        owner = AIOKafkaProducer(**kafka, transactional_id=f"{s.topic_prefix}vitals-0")
        successor = AIOKafkaProducer(**kafka, transactional_id=zombie_id)
        await zombie.start()
        await owner.start()
        try:
            await zombie.begin_transaction()  # the dead worker's motion step, never ended
            await (await zombie.send(topic, b"m", key=checkpoint_key("motion", 0, 1), partition=0))
            async with owner.transaction():  # vitals committed after it: behind the LSO
                await owner.send(topic, b"v", key=checkpoint_key("vitals", 0, 3), partition=0)
            restore = asyncio.ensure_future(read_checkpoints(kafka, topic, 0, "vitals"))
            await asyncio.sleep(1.0)  # the vitals runner restores first ...
            await successor.start()  # ... then the motion runner fences the zombie
            return await restore
        finally:
            for producer in (successor, owner):
                await producer.stop()
            await zombie.stop()

    assert asyncio.run(run()) == {checkpoint_key("vitals", 0, 3): b"v"}
