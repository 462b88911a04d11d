"""Helpers for the end-to-end tests: run ``cityhealth up`` as a subprocess on the test stack.

``up_run(stack, settings, tmp_path, *extra)`` runs ``cityhealth up`` with the scenario
``smoke`` and the common options below, with ``CITYHEALTH_*`` pointing at the session's
stack and the per-run topic prefix and databases of ``settings``; it returns the summary.
``smoke`` is the summary of one undisturbed run shared by the session (``smoke_settings``
are its isolated settings).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cityhealth.settings import Settings
from tests.conftest import RunningStack, settings_env

#: Seconds of simulated smoke traffic per run: every event type is guaranteed between 25 s
#: and 45 s (simulators/scenarios/smoke.toml), before the 10-s settle window at the end.
DURATION_S = 60
SEED = 7
MALFORMED_RATE = 0.02
COMMON = (
    "--scenario",
    "smoke",
    "--duration",
    str(DURATION_S),
    "--seed",
    str(SEED),
    "--malformed-rate",
    str(MALFORMED_RATE),
    "--no-live",
    "--drain-timeout",
    "180",
    # every run has its own topic prefix: a session left behind would make the session
    # broker queue (and persist) a copy of every later test's messages
    "--end-session",
)


@pytest.fixture(scope="session")
def smoke_settings(stack: RunningStack) -> Settings:
    """Settings of the undisturbed smoke run (own topics, share group and databases)."""
    return stack.isolated_settings("e")


def run_up(settings: Settings, run_dir: Path, *extra: str) -> dict[str, Any]:
    """``cityhealth up`` (common options + ``extra``) to the end; its summary JSON."""
    summary_path = run_dir / "summary-out.json"
    argv = [
        sys.executable,
        "-m",
        "cityhealth.cli",
        "up",
        *COMMON,
        "--summary-json",
        str(summary_path),
        "--run-dir",
        str(run_dir / "run"),
        *extra,
    ]
    proc = subprocess.run(
        argv,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=DURATION_S + 600,
    )
    assert summary_path.exists(), (
        f"cityhealth up exited {proc.returncode} without a summary:\n{proc.stderr[-4000:]}"
    )
    summary: dict[str, Any] = json.loads(summary_path.read_text())
    summary["_exit_code"] = proc.returncode
    summary["_stderr"] = proc.stderr[-4000:]
    return summary


@pytest.fixture(scope="session")
def up_runner(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Any]]:
    def run(settings: Settings, *extra: str) -> dict[str, Any]:
        return run_up(settings, tmp_path_factory.mktemp("up"), *extra)

    return run


@pytest.fixture(scope="session")
def smoke(smoke_settings: Settings, up_runner: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The summary of one undisturbed smoke run (checked by test_up_smoke, and the
    baseline of the restart tests)."""
    return up_runner(smoke_settings)
