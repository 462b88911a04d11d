"""``cityhealth bench ...``: benchmarks reported as ratios against in-run baselines."""

from __future__ import annotations

import typer

bench_app = typer.Typer(
    help="Benchmarks: each figure comes with a baseline measured in the same run.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Attach the ``bench`` group; each benchmark module adds its own command."""
    app.add_typer(bench_app, name="bench")
