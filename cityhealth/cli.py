"""The ``cityhealth`` command line.

Each command group lives in its own module under :mod:`cityhealth.commands` and
registers itself here; heavy imports (numba, faust) happen inside the commands so
``cityhealth --help`` stays instant.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="cityhealth",
    help="Smart-city health IoT pipeline: MQTT -> Kafka -> Faust/Numba -> InfluxDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Order is the order shown in --help.
_COMMAND_MODULES = (
    "stack",
    "contract",
    "simulate",
    "ingest",
    "worker",
    "up",
    "alerts",
    "dashboards",
    "bench",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"cityhealth.commands.{_name}").register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
