"""``cityhealth up --chaos``: crashes and restarts mid-run lose nothing.

* the worker is SIGKILLed and started again: every reading is still stored, no alert is
  published twice (same id, sensor time and severity), and kernel state is recovered from
  the checkpoints: the run published exactly the alerts that a fresh worker publishes
  when it replays the same input in one go (tests/e2e/replay.py). A worker that lost its
  state would re-learn after the restart and raise different alerts (it mostly stays
  quiet while its scorers warm up, so counting false alarms could not tell);
* InfluxDB is stopped and started again: the sink retries, nothing is lost;
* the bridge is SIGKILLed and started with the same client id: the broker re-sends what
  was not acknowledged (QoS 1, persistent session), nothing is lost.

Re-sent readings are at-least-once by design (InfluxDB keeps one point per series and
time); alerts they raise again carry the same deterministic id, so only the worker crash
test requires that no alert is re-published and that the alerts equal the replay's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingest.kafka_client import kafka_client_kwargs
from ingest.kafka_topics import topics_for
from streams.alert_reader import read_alerts
from tests.conftest import RunningStack
from tests.e2e.replay import alert_keys, replay_alerts


def assert_nothing_lost(summary: dict[str, Any]) -> None:
    assert summary["_exit_code"] == 0, summary["_stderr"]
    assert summary["drain"]["completed"], summary["drain"]
    assert all(r["error"] is None for r in summary["chaos"]), summary["chaos"]
    by_channel = summary["published_by_channel"]
    stored = {c: summary["stored"][summary["raw_channels"][c]] for c in by_channel}
    assert stored == by_channel
    # Dead letters are at-least-once like readings: a killed bridge's un-acknowledged
    # malformed messages come again. Exact equality is the smoke test's; here: none
    # missing, and no more distinct ones than were sent (the simulators' malformed
    # messages are not all distinct, so the distinct count can be a little lower).
    assert summary["dead_lettered"] >= summary["malformed_published"]
    assert summary["dead_letter_distinct"] <= summary["malformed_published"]


@pytest.mark.parametrize(
    ("chaos", "part", "crash_worker"),
    [
        ("kill-worker@15", "worker", True),
        ("restart-influx@15:3", None, False),
        ("kill-bridge@15", "bridge", False),
    ],
)
def test_restart_mid_run_loses_nothing(
    chaos: str,
    part: str | None,
    crash_worker: bool,
    stack: RunningStack,
    up_runner: Callable[..., dict[str, Any]],
    cli: Path,
    tmp_path: Path,
) -> None:
    settings = stack.isolated_settings("e")
    summary = up_runner(settings, "--chaos", chaos)
    assert_nothing_lost(summary)
    if part is not None:
        assert summary["processes"][part]["forced_restarts"] == 1
    if crash_worker:
        assert summary["alerts"]["duplicates"] == 0, summary["alerts"]["duplicate_examples"]
        published = read_alerts(kafka_client_kwargs(settings), topics_for(settings).alerts)
        replayed = replay_alerts(cli, stack.settings, settings, summary, tmp_path / "replay.log")
        got, want = alert_keys(published), alert_keys(replayed)
        assert any(key[1] == "fall" for key in want), "the replay raised no fall alert"
        assert got == want, {
            "only_in_run": sorted(got - want),
            "only_in_replay": sorted(want - got),
        }
