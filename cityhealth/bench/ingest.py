"""`cityhealth bench ingest` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def register(bench_app: typer.Typer) -> None:
    """Attach nothing yet: the benchmark arrives with its issue."""
