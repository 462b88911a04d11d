"""``cityhealth bench ...``: benchmarks reported as ratios against in-run baselines.

Each benchmark module in :mod:`cityhealth.bench` exposes ``register(bench_app)`` and adds
its own command, so benchmarks for different parts evolve independently.
"""

from __future__ import annotations

import importlib

import typer

bench_app = typer.Typer(
    help="Benchmarks: each figure comes with a baseline measured in the same run.",
    no_args_is_help=True,
)

_BENCH_MODULES = ("kernels", "quality", "simulate", "ingest", "sink", "pipeline")


def register(app: typer.Typer) -> None:
    """Attach the ``bench`` group and every benchmark command."""
    for name in _BENCH_MODULES:
        importlib.import_module(f"cityhealth.bench.{name}").register(bench_app)
    app.add_typer(bench_app, name="bench")
