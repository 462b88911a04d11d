"""Where the local stack keeps its files, and the addresses it listens on.

Everything derives from one :class:`~cityhealth.settings.Settings`, so a second stack
(for example the one the tests start) lives in another data directory on other ports.

Layout under ``settings.data_dir``::

    <service>/conf/     generated configuration (rewritten on every start)
    <service>/data/     persistent data (kept by ``stack down``, removed by ``--purge``)
    <service>/service.log, <service>/service.pid
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cityhealth.settings import Settings


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """Split ``host:port`` (the first entry of a comma-separated list)."""
    first = address.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep:
        return first, default_port
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass(frozen=True)
class ServicePaths:
    """Files of one service under the stack's data directory."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "service.log"

    @property
    def pid(self) -> Path:
        return self.root / "service.pid"

    def make(self) -> None:
        """Create the directories (idempotent)."""
        self.conf.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class StackAddresses:
    """Host/port of every listener, parsed once from the settings."""

    mqtt_host: str
    mqtt_port: int
    kafka_host: str
    kafka_port: int
    kafka_controller_port: int
    influx_host: str
    influx_port: int
    influx_rpc_port: int
    grafana_port: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StackAddresses:
        kafka_host, kafka_port = split_host_port(settings.kafka_bootstrap, 9092)
        url = urlsplit(settings.influx_url)
        return cls(
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
            kafka_host=kafka_host,
            kafka_port=kafka_port,
            kafka_controller_port=settings.kafka_controller_port,
            influx_host=url.hostname or "127.0.0.1",
            influx_port=url.port or 8086,
            influx_rpc_port=settings.influx_rpc_port,
            grafana_port=settings.grafana_port,
        )


def service_paths(settings: Settings, service: str) -> ServicePaths:
    """Paths of ``service`` (``mqtt``, ``kafka``, ``influx``, ``grafana``)."""
    return ServicePaths(Path(settings.data_dir).resolve() / service)


def kafka_libs_dir(settings: Settings) -> Path:
    """Cache folder holding the broker's jars for ``settings.kafka_version``."""
    return (
        Path(settings.cache_dir).expanduser().resolve() / f"kafka-{settings.kafka_version}" / "libs"
    )
