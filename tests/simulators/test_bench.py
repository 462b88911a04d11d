"""``cityhealth bench simulate`` runs end to end against the real broker and reports ratios."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import RunningStack

pytestmark = pytest.mark.stack


def test_bench_simulate_reports(cli: Path, stack: RunningStack, tmp_path: Path) -> None:
    report = stack.bench_report(
        cli,
        tmp_path / "bench.json",
        *("simulate", "--scenario", "smoke", "--duration", "2", "--repeat", "1"),
    )
    assert report["messages"] > 300
    for key in (
        "baseline_msgs_per_s",
        "simulator_msgs_per_s",
        "baseline_msgs_per_cpu_s",
        "simulator_msgs_per_cpu_s",
    ):
        assert len(report[key]) == 1 and report[key][0] > 0
    assert report["ratio"] == pytest.approx(
        report["best_simulator_msgs_per_s"] / report["best_baseline_msgs_per_s"], rel=1e-3
    )
    assert report["goal"] == 0.8 and isinstance(report["goal_met"], bool)


def test_bench_simulate_without_broker_is_a_clear_error(cli: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [
            str(cli),
            "bench",
            "simulate",
            "--scenario",
            "smoke",
            "--duration",
            "1",
            "--repeat",
            "1",
            "--mqtt-port",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 3
    assert "cityhealth stack up" in res.stdout
