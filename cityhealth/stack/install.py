"""``cityhealth stack install``: Debian packages and the Kafka broker jars, idempotently.

* Debian packages ``mosquitto``, ``mosquitto-clients``, ``influxdb`` (InfluxDB 1.x OSS) and
  ``docker-compose`` (used to validate docker-compose.yml); ``apt-get update`` runs only
  when one of them is missing. Java 17 and Maven are installed the same way if absent.
  When this command installs ``mosquitto``/``influxdb`` itself, the distribution's system
  services it started are disabled again: the project runs its own instances, and the
  system ones would hold ports 1883/8086.
* Kafka: ``mvn dependency:copy-dependencies`` on ``cityhealth/stack/kafka/pom.xml`` into
  ``<cache_dir>/kafka-<version>/libs``, resolved into a temporary folder and renamed into
  place, so a concurrent or interrupted install never leaves half a set of jars.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cityhealth.settings import Settings
from cityhealth.stack.paths import kafka_libs_dir
from cityhealth.stack.process import StackError

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
APT_PACKAGES = ("mosquitto", "mosquitto-clients", "influxdb", "docker-compose")
# Installed only when the tool itself is missing (CI images already carry them).
TOOL_PACKAGES = {"java": "openjdk-17-jre-headless", "mvn": "maven"}
SYSTEM_SERVICES = {"mosquitto": "mosquitto.service", "influxdb": "influxdb.service"}
_COMPLETE = ".complete"


def _dpkg_installed(package: str) -> bool:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode == 0 and out.stdout.strip() == "installed"


def missing_packages() -> list[str]:
    """Debian packages the stack needs that are not installed."""
    if shutil.which("dpkg-query") is None:
        binaries = {
            "mosquitto": "mosquitto",
            "mosquitto-clients": "mosquitto_pub",
            "influxdb": "influxd",
            "docker-compose": "docker-compose",
        }
        return [pkg for pkg, exe in binaries.items() if _which(exe) is None]
    missing = [pkg for pkg in APT_PACKAGES if not _dpkg_installed(pkg)]
    missing += [pkg for tool, pkg in TOOL_PACKAGES.items() if shutil.which(tool) is None]
    return missing


def _which(exe: str) -> str | None:
    return shutil.which(exe) or shutil.which(exe, path="/usr/sbin:/sbin")


def _root_prefix() -> list[str]:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n"]
    raise StackError("installing Debian packages needs root (or passwordless sudo)")


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        text = (out.stdout + out.stderr).strip()
        raise StackError(f"{what} failed (exit {out.returncode}): {' '.join(argv)}\n{text[-3000:]}")


def apt_argv(sudo: list[str], *args: str) -> list[str]:
    """``apt-get`` command line, non-interactive even through ``sudo``.

    ``sudo`` resets the environment, so ``DEBIAN_FRONTEND`` goes on the command line
    (through ``env``) rather than into the caller's environment, where it would be lost.
    """
    return [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", *args]


def install_packages(packages: list[str]) -> None:
    """``apt-get update`` + ``apt-get install`` of ``packages`` (no recommends)."""
    if not packages:
        return
    if shutil.which("apt-get") is None:
        raise StackError(
            f"missing packages {packages} and no apt-get here: install them by hand "
            "(the stack needs mosquitto 2.x and InfluxDB 1.x)"
        )
    sudo = _root_prefix()
    _run(apt_argv(sudo, "update", "-qq"), "apt-get update")
    _run(
        apt_argv(sudo, "install", "-y", "-qq", "--no-install-recommends", *packages),
        "apt-get install",
    )
    if shutil.which("systemctl"):
        units = [SYSTEM_SERVICES[p] for p in packages if p in SYSTEM_SERVICES]
        if units:
            # Best effort: without systemd (containers) there is nothing to disable.
            subprocess.run(
                [*sudo, "systemctl", "disable", "--now", *units],
                capture_output=True,
                check=False,
            )


def kafka_installed(settings: Settings) -> bool:
    """True when the broker jars for ``settings.kafka_version`` are cached."""
    return (kafka_libs_dir(settings).parent / _COMPLETE).exists()


def install_kafka(settings: Settings) -> bool:
    """Resolve the Kafka broker jars with Maven; returns False when already cached."""
    libs = kafka_libs_dir(settings)
    if kafka_installed(settings):
        return False
    for tool in ("mvn", "java"):
        if shutil.which(tool) is None:
            raise StackError(f"{tool} is not on PATH (Kafka needs Java 17 and Maven)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = libs.parent / f".libs-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            f"-Dkafka.version={settings.kafka_version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
        ],
        f"resolving Kafka {settings.kafka_version} with Maven",
    )
    if not (tmp / f"kafka_2.13-{settings.kafka_version}.jar").exists():
        raise StackError(f"Maven ran but kafka_2.13-{settings.kafka_version}.jar is not in {tmp}")
    if libs.exists():  # another install finished first; its jars are as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(libs)
    (libs.parent / _COMPLETE).write_text(settings.kafka_version + "\n")
    return True


def install(settings: Settings) -> list[str]:
    """Install whatever is missing; returns what was done (empty when nothing was)."""
    done = []
    packages = missing_packages()
    if packages:
        install_packages(packages)
        done.append("apt: " + " ".join(packages))
    if install_kafka(settings):
        done.append(f"kafka {settings.kafka_version} jars -> {kafka_libs_dir(settings)}")
    return done
