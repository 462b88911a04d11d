"""What an undisturbed worker makes of a finished run's input: the reference for crash tests.

Two ``cityhealth up`` runs of one seed do not see the same readings (the simulators follow
the wall clock: time of day, start second), so comparing their alerts is noisy, and it
cannot tell a worker that recovered its kernel state from one that lost it (a scorer
without history mostly stays quiet while it warms up). Replaying the *same* input is
exact instead: the run's micro-batch records are copied, partition by partition and in
order, into fresh topics, and a fresh worker with no checkpoint processes them in one
go. Kernels are chunk-invariant, so the alerts a reading raises do not depend on where
batches, restarts or checkpoints fell, and a worker that crashed and restored its state
must have published exactly the replay's alerts.

Alerts raised by wall-clock timers are left out of the comparison
(:data:`TIMER_DRIVEN`): offline, inactivity and district categories are decided when a
timer runs. NEWS2 escalations are decided per reading (streams.escalation), so they are
compared like the other reading-driven alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cityhealth.pipeline.channels import RAW_MEASUREMENTS, database_name
from cityhealth.settings import Settings
from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import STREAM_BASES, topics_for
from ingest.topic_reader import read_to_end
from streams.alert_reader import read_alerts
from tests.pipeline.test_bridge_support import wait_for
from tests.pipeline.test_worker_support import WorkerProcess, count, produce, worker_settings

#: Alert types decided by timers, not by the readings alone (see the module docstring).
TIMER_DRIVEN = frozenset({"device_offline", "station_offline", "inactivity", "aqi_category"})

AlertKey = tuple[str, str, str, float, str]


def alert_keys(alerts: list[dict[str, Any]]) -> set[AlertKey]:
    """``(id, type, subject, sensor_ts, severity)`` of every reading-driven alert."""
    return {
        (a["id"], a["type"], a["subject"], a["sensor_ts"], a["severity"])
        for a in alerts
        if a["type"] not in TIMER_DRIVEN
    }


def copy_stream_records(source: Settings, target: Settings) -> dict[str, int]:
    """Copy every micro-batch record of ``source``'s stream topics to ``target``'s, same
    partition, same order; records copied per stream."""
    src = topics_for(source)
    found = read_to_end(kafka_client_kwargs(source), src.streams, timeout_s=120)
    copied = {}
    for stream in STREAM_BASES:
        records = found[src.stream(stream)]
        produce(target, stream, [(r.partition, r.value) for r in records])
        copied[stream] = len(records)
    return copied


def replay_alerts(
    cli: Path, base: Settings, run: Settings, summary: dict[str, Any], log: Path
) -> list[dict[str, Any]]:
    """The alerts a fresh worker publishes for the stream records of ``run``.

    ``summary`` is the run's ``cityhealth up`` summary: the replay is complete when every
    raw measurement holds as many points as the run stored there.
    """
    target = worker_settings(base, partitions=run.kafka_partitions)
    copy_stream_records(run, target)
    expected = {
        (database_name(target, raw.database), raw.measurement, raw.count_field): summary["stored"][
            f"{database_name(run, raw.database)}/{raw.measurement}"
        ]
        for raw in RAW_MEASUREMENTS.values()
    }

    def stored() -> dict[tuple[str, str, str], int]:
        return {k: count(target, *k) for k in expected}

    worker = WorkerProcess(cli, target, log).start()
    try:
        wait_for(lambda: stored() == expected, 300, f"replay stored {expected}")
    finally:
        worker.stop()  # graceful: the last checkpoint transaction (with its alerts) commits
    return read_alerts(kafka_client_kwargs(target), topics_for(target).alerts)
