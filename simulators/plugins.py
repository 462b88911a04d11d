"""Simulator plug-ins: discovery through the ``cityhealth.simulators`` entry-point group.

A distribution registers a simulator class under a name::

    [project.entry-points."cityhealth.simulators"]
    thermometer = "my_package.thermo:ThermometerSimulator"

and a scenario enables it with a table of that name holding ``count = N``. The built-ins
(``wearable``, ``eldercare``, ``airq``) are registered the same way by this project.
"""

from __future__ import annotations

import inspect
import zlib
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from simulators.base import SimulatorLike
from simulators.scenario import Scenario

GROUP = "cityhealth.simulators"
_BUILTIN = {
    "wearable": "simulators.wearable:WearableSimulator",
    "eldercare": "simulators.eldercare:ElderCareSimulator",
    "airq": "simulators.airq:AirQualitySimulator",
}


class PluginError(RuntimeError):
    """An entry point could not be loaded or is not a simulator class."""


def discover() -> dict[str, Any]:
    """Registered simulator classes by entry-point name (built-ins included), loaded."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(f"simulator plug-in {ep.name!r} ({ep.value}): {exc}") from exc
        if not (isinstance(obj, type) and callable(getattr(obj, "tick", None))):
            raise PluginError(f"simulator plug-in {ep.name!r} ({ep.value}) has no tick()")
        found[ep.name] = obj
    for name, target in _BUILTIN.items():  # an un-refreshed editable install still works
        if name not in found:
            module, _, attr = target.partition(":")
            found[name] = getattr(__import__(module, fromlist=[attr]), attr)
    return dict(sorted(found.items()))


def rng_for(seed: int, name: str) -> np.random.Generator:
    """The random stream of simulator ``name``: depends on the seed and the name only."""
    return np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))
    )


def build(scenario: Scenario, seed: int) -> list[SimulatorLike]:
    """Instantiate every registered simulator the scenario gives devices to."""
    sims: list[SimulatorLike] = []
    registered = discover()
    for name, cls in registered.items():
        if scenario.counts.get(name, 0) > 0:
            rng = rng_for(seed, name)
            takes_name = "name" in inspect.signature(cls).parameters
            sim = cls(scenario, rng, name=name) if takes_name else cls(scenario, rng)
            if getattr(sim, "name", None) is None:
                sim.name = name  # summaries report simulators by entry-point name
            sims.append(sim)
    unknown = set(scenario.counts) - set(registered)
    if unknown:
        raise PluginError(
            f"scenario has devices for {sorted(unknown)} but no simulator is registered under "
            f"that name (entry-point group {GROUP!r})"
        )
    return sims
