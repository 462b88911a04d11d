"""Write steps on the real stack: rows reach InfluxDB every ``write_interval_s`` while
checkpoints and acks wait for the commit step, and a crash before that step loses nothing.

The worker runs with commit steps effectively off (``checkpoint_interval_s`` 1 h, no
aggregate flush, no batch limit), so every row it writes went out in a write step; it is
then killed before any commit, and a second worker replays the same records from the
start (nothing was acked) and writes the same points again: the counts stay exact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from cityhealth.settings import Settings
from streams.synthetic import vitals_batches
from tests.pipeline.test_worker_support import (
    WorkerProcess,
    by_partition,
    produce,
    query,
    wait_for,
    worker_settings,
)

T0 = (time.time() // 3600 - 1) * 3600
NO_COMMITS = {
    "CITYHEALTH_WORKER_CHECKPOINT_INTERVAL_S": "3600",
    "CITYHEALTH_WORKER_CHECKPOINT_MAX_BATCHES": "1000000",
    "CITYHEALTH_WORKER_AGGREGATE_INTERVAL_S": "3600",
    "CITYHEALTH_WORKER_OFFLINE_AFTER_S": "3600",
    "CITYHEALTH_WORKER_WRITE_INTERVAL_S": "0.3",
}


def raw_vitals(s: Settings, district: str) -> int:
    series = query(
        s,
        s.influx_db_sensitive,
        f'SELECT count("present") FROM "vitals" WHERE district = \'{district}\'',
    )
    return int(series[0]["values"][0][1]) if series else 0


def test_rows_are_written_between_commit_steps_and_replayed_after_a_crash(
    stack, cli: Path, tmp_path: Path
) -> None:
    s, district = worker_settings(stack.settings), "write-steps"
    devs = [f"p-ws{i:03d}" for i in range(6)]
    seconds = 60
    records = [
        (p, b)
        for p, group in enumerate(by_partition(devs))
        for b in vitals_batches(group, T0, seconds, per_batch=60, district=district)
    ]
    stats_path = tmp_path / "stats.json"
    first = WorkerProcess(
        cli, s, tmp_path / "first.log", CITYHEALTH_WORKER_STATS_JSON=str(stats_path), **NO_COMMITS
    ).start()
    try:
        first.wait_ready()
        produce(s, "vitals", records)
        wait_for(lambda: raw_vitals(s, district) >= 6 * seconds, 120, "rows from write steps")
        wait_for(
            lambda: json.loads(stats_path.read_text())["writes"] > 0, 30, "stats with the writes"
        )
        stats = json.loads(stats_path.read_text())
        assert stats["commits"] == 0, stats  # every row went out in a write step
        assert stats["alerts"] == 0, stats
    finally:
        if first.alive():
            first.kill()  # a crash: nothing acked, no checkpoint
    assert raw_vitals(s, district) == 6 * seconds

    replay_stats = tmp_path / "replay.json"
    second = WorkerProcess(
        cli, s, tmp_path / "second.log", CITYHEALTH_WORKER_STATS_JSON=str(replay_stats)
    ).start()
    try:
        second.wait_ready()
        # nothing was acked: the second worker processes every record again
        wait_for(
            lambda: (
                replay_stats.exists()
                and json.loads(replay_stats.read_text())["readings"] >= 6 * seconds
            ),
            120,
            "the replay",
        )
        assert second.restored_blocks() == 0  # the first worker never checkpointed
        time.sleep(2.0)  # its writes acknowledged
        assert raw_vitals(s, district) == 6 * seconds  # the same points, written again
    finally:
        second.stop()
