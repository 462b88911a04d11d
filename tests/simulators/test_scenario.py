"""Scenario files: built-ins, overrides and clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simulators.scenario import ScenarioError, load_scenario


def test_builtins() -> None:
    smoke = load_scenario("smoke")
    assert smoke.counts == {"wearable": 100, "eldercare": 20, "airq": 10}
    assert len(smoke.stations) == 10 and smoke.guarantee_s > 0
    district = load_scenario("district")
    assert district.counts == {"wearable": 10_000, "eldercare": 2_000, "airq": 500}
    assert len(district.districts) == 10
    assert district.with_counts(wearable=5, airq=None).counts["wearable"] == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\n", "at least one"),
        ("[[district]]\nname = 'Bad Name'\n", "must match"),
        ("tick_s = 0.3\n[[district]]\nname = 'a'\n", "tick_s"),
        ("[[district]]\nname = 'a'\n[events.meteor]\nrate_per_hour = 1\n", "unknown event"),
        ("[[district]]\nname = 'a'\n[events.fall]\nduration_s = [5]\n", "duration_s"),
        ("[[district]]\nname = 'a'\n[wearable]\ncount = 'many'\n", "must be a number"),
        (
            "[[district]]\nname = 'a'\n[airq]\ncount = 1\n[[airq.station]]\n"
            "id = 's'\ndistrict = 'b'\nlat = 1\nlon = 2\n",
            "unknown district",
        ),
        ("[[district]\n", "invalid TOML"),
    ],
)
def test_bad_scenarios(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_unknown_scenario_and_negative_count() -> None:
    with pytest.raises(ScenarioError, match="neither a built-in"):
        load_scenario("atlantis")
    with pytest.raises(ScenarioError, match=">= 0"):
        load_scenario("smoke").with_counts(wearable=-1)


def test_cli_reports_bad_scenario(cli: Path) -> None:
    res = subprocess.run(
        [str(cli), "simulate", "--scenario", "atlantis", "--dry-run", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "neither a built-in" in res.stderr
