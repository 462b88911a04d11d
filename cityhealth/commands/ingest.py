"""`cityhealth ingest` (placeholder until its issue lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach nothing yet: the command arrives with its issue."""
