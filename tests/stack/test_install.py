"""Install step: apt-get runs non-interactively even through sudo (which resets the env)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cityhealth.stack.install import apt_argv


def test_apt_argv_carries_the_frontend_past_sudo() -> None:
    argv = apt_argv(["sudo", "-n"], "install", "-y", "--no-install-recommends", "mosquitto")
    assert argv[:2] == ["sudo", "-n"]
    env_at = argv.index("env")
    assert argv[env_at + 1] == "DEBIAN_FRONTEND=noninteractive"
    assert argv[env_at + 2 :] == [
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        "mosquitto",
    ]


def test_apt_argv_runs_apt_get() -> None:
    if shutil.which("apt-get") is None:
        pytest.fail("apt-get is part of the supported (Debian) platform")
    out = subprocess.run(apt_argv([], "--version"), capture_output=True, text=True, check=True)
    assert out.stdout.startswith("apt ")
