"""Plug-ins: a simulator registered through the ``cityhealth.simulators`` entry points."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.contract import decode
from simulators.plugins import GROUP, build, discover
from simulators.publisher import NullPublisher
from simulators.runner import Runner
from simulators.scenario import load_scenario
from tests.simulators.helpers import START

# The minimal plug-in of docs/SIMULATORS.md.
PLUGIN = '''
import numpy as np


class ThermometerSimulator:
    """Smart thermometers reporting body temperature once a second."""

    family = "wearable"
    channels = ("vitals",)

    def __init__(self, scenario, rng):
        self.n = scenario.counts["thermometer"]
        self.district = scenario.districts[0].name
        self.rng = rng
        self.device_count = self.n

    def tick(self, now):
        if round(now * 10) % 10:  # ticks come every 0.1 s; report on whole seconds
            return []
        temps = np.round(36.6 + self.rng.normal(0.0, 0.2, self.n), 2)
        return [
            (f"city/{self.district}/wearable/thermo-{i:03d}/vitals",
             b'{"ts":%.3f,"body_temp":%.2f}' % (now, t))
            for i, t in enumerate(temps.tolist())
        ]

    def truth(self):
        return []
'''

SCENARIO = """
name = "thermo-city"
[[district]]
name = "harbour"
residents = 100
[thermometer]
count = 3
[wearable]
count = 2
"""


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution (dist-info with entry_points.txt) on sys.path."""
    (tmp_path / "thermo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "thermo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thermo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\nthermometer = thermo_plugin:ThermometerSimulator\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    (tmp_path / "city.toml").write_text(SCENARIO)
    return tmp_path


def test_builtins_are_registered_entry_points() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=GROUP)}
    assert {"wearable", "eldercare", "airq"} <= names


def test_plugin_is_discovered_and_runs(plugin_dir: Path) -> None:
    found = discover()
    assert found["thermometer"].__name__ == "ThermometerSimulator"
    sc = load_scenario(plugin_dir / "city.toml")
    sims = build(sc, seed=1)
    assert sorted(type(s).__name__ for s in sims) == ["ThermometerSimulator", "WearableSimulator"]
    pub = NullPublisher(keep=True)
    runner = Runner(sims, pub, tick_s=sc.tick_s, duration=3.0, start=START, speed=None)
    runner.run()
    assert pub.kept is not None
    thermo = [(t, p) for t, p in pub.kept if "/thermo-" in t]
    assert len(thermo) == 9
    for topic, payload in thermo:
        assert 35.0 < decode(topic, payload, now=START).model.body_temp < 38.5
    assert runner.summary()["devices"] == {"thermometer": 3, "wearable": 2}


def test_plugin_via_cli(plugin_dir: Path, cli: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), *sys.path])}
    res = subprocess.run(
        [
            str(cli),
            "simulate",
            "--quiet",
            "--dry-run",
            "--fast",
            "--duration",
            "2",
            "--scenario",
            str(plugin_dir / "city.toml"),
            "--summary-json",
            str(tmp_path / "s.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["devices"] == {"thermometer": 3, "wearable": 2}
    # 2 wearables x (vitals + accel) + 3 thermometers, per second
    assert summary["published_by_family_channel"]["wearable/vitals"] == 2 * 2 + 3 * 2


def test_scenario_naming_an_unregistered_simulator_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text(SCENARIO)  # no plug-in on sys.path here
    from simulators.plugins import PluginError

    with pytest.raises(PluginError, match="thermometer"):
        build(load_scenario(path), seed=0)
