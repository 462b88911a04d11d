"""Shared helpers: run simulators in-process without a broker."""

from __future__ import annotations

from typing import Any

from simulators.malformed import Malformer
from simulators.plugins import build, rng_for
from simulators.publisher import NullPublisher
from simulators.runner import Runner
from simulators.scenario import Scenario, load_scenario

#: A fixed simulated start inside the contract's time window for ``decode(now=...)``.
START = 1_780_000_000.0


def run_inprocess(
    scenario: Scenario | str = "smoke",
    *,
    seed: int = 0,
    duration: float = 40.0,
    malformed_rate: float = 0.0,
    start: float = START,
    **counts: int,
) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]], Runner]:
    """All messages (in publishing order) and the truth of a run with a null publisher."""
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    sc = sc.with_counts(**counts)
    pub = NullPublisher(keep=True)
    malformer = Malformer(malformed_rate, rng_for(seed, "malformed")) if malformed_rate else None
    runner = Runner(
        build(sc, seed),
        pub,
        tick_s=sc.tick_s,
        duration=duration,
        start=start,
        speed=None,
        malformer=malformer,
    )
    runner.run()
    assert pub.kept is not None
    return pub.kept, runner.truth(), runner
