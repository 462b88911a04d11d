"""Shared fixtures: the real local stack (Mosquitto, Kafka KRaft, InfluxDB 1.x), no fakes.

Fixtures
--------
``stack`` (session scope, started lazily)
    A :class:`RunningStack` (tests using it are marked ``stack`` automatically, so
    ``pytest -m "not stack"`` skips them): the real services started by
    :class:`cityhealth.stack.StackManager` on free loopback ports in a temporary data
    directory, stopped (no process left behind) when the session ends. Tests that do not
    ask for ``stack`` or ``settings`` never start it. Attributes and helpers:

    - ``settings``: a :class:`cityhealth.settings.Settings` pointing at this stack;
    - ``mqtt_host``, ``mqtt_port``, ``kafka_bootstrap``, ``influx_url``, ``data_dir``;
    - ``kafka``: :func:`ingest.kafka_client.kafka_client_kwargs` of ``settings`` (address and
      SASL credentials: ``AIOKafkaConsumer(**stack.kafka, ...)``);
    - ``env()``: ``os.environ`` plus ``CITYHEALTH_*`` for this stack, for subprocesses
      (``subprocess.run([cli, ...], env=stack.env())``);
    - ``create_topics(names, partitions=1)``: create Kafka topics (admin client) and wait
      until every partition has a leader;
    - ``influx_query(query, db=None, auth=True)``: one InfluxQL statement, returns the
      ``requests.Response``;
    - ``manager``: the :class:`~cityhealth.stack.StackManager`; ``manager.stop_service(
      "influx")`` / ``manager.start_service("influx")`` restart one service (data kept)
      for outage tests; ``manager.status()`` is what ``stack status --json`` prints.

    The Kafka jars come from ``cityhealth stack install``'s cache; if they are missing,
    the fixture runs the installer itself.

``settings`` (function scope; starts the stack)
    ``stack.isolated_settings()``: ``stack.settings`` with a unique ``topic_prefix`` (e.g.
    ``t1a2b3c4d5.``; prepend it to every Kafka topic name), a unique ``mqtt_share_group``
    and unique ``influx_db_sensitive`` / ``influx_db_public`` databases, already created,
    so tests never see each other's data. Session-scoped fixtures that need the same
    isolation call ``stack.isolated_settings("e")`` themselves. MQTT topics are
    shared by the whole session: use unique device ids or districts (``settings``'s
    ``topic_prefix`` without the dot makes a good district name).

``create_topics`` (function scope)
    ``create_topics("vitals", "alerts", partitions=4)`` creates
    ``<settings.topic_prefix>vitals`` etc. and returns the full names.

``cli`` (session scope)
    Path of the ``cityhealth`` console script of the running interpreter's environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from cityhealth.settings import Settings
from cityhealth.stack import StackManager, create_databases, influx_query
from cityhealth.stack import create_topics as create_kafka_topics
from cityhealth.stack.install import install, kafka_installed
from ingest.kafka_client import kafka_client_kwargs


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free on loopback right now."""
    with ExitStack() as stack:
        ports = []
        for _ in range(n):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def stack_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for a private stack in ``data_dir`` on fresh free ports."""
    mqtt, kafka, controller, influx, rpc, grafana = free_ports(6)
    values: dict[str, object] = {
        "data_dir": data_dir,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": mqtt,
        "kafka_bootstrap": f"127.0.0.1:{kafka}",
        "kafka_controller_port": controller,
        "influx_url": f"http://127.0.0.1:{influx}",
        "influx_api": "v1",
        "influx_rpc_port": rpc,
        "grafana_port": grafana,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def settings_env(settings: Settings) -> dict[str, str]:
    """The current environment with ``settings`` as ``CITYHEALTH_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYHEALTH_")}
    env.update(settings.to_env())
    return env


@dataclass
class RunningStack:
    """A started local stack and shortcuts to reach it (see the module docstring)."""

    settings: Settings
    manager: StackManager

    @property
    def mqtt_host(self) -> str:
        return self.settings.mqtt_host

    @property
    def mqtt_port(self) -> int:
        return self.settings.mqtt_port

    @property
    def kafka_bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def kafka(self) -> dict[str, Any]:
        return kafka_client_kwargs(self.settings)

    @property
    def influx_url(self) -> str:
        return self.settings.influx_url

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir)

    def env(self) -> dict[str, str]:
        return settings_env(self.settings)

    def bench_report(self, cli: Path, out: Path, *args: str) -> dict[str, Any]:
        """Run ``cityhealth bench ARGS --json OUT`` against this stack; its JSON report."""
        res = subprocess.run(
            [str(cli), "bench", *args, "--json", str(out)],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr
        report: dict[str, Any] = json.loads(out.read_text())
        return report

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        create_kafka_topics(self.kafka, names, partitions=partitions)

    def influx_query(
        self, query: str, db: str | None = None, *, auth: bool = True
    ) -> requests.Response:
        return influx_query(self.settings, query, db=db, auth=auth)

    def isolated_settings(self, tag: str = "t") -> Settings:
        """This stack's settings with a fresh topic prefix, share group and databases.

        The databases are created. The MQTT share group is unique too: persistent sessions
        of earlier tests' bridges stay members of theirs and would otherwise receive a
        share of this test's messages.
        """
        unique = tag + uuid.uuid4().hex[:10]
        isolated = self.settings.model_copy(
            update={
                "topic_prefix": f"{unique}.",
                "mqtt_share_group": f"{unique}-ingest",
                "influx_db_sensitive": f"{unique}_sensitive",
                "influx_db_public": f"{unique}_public",
            }
        )
        create_databases(isolated, isolated.influx_db_sensitive, isolated.influx_db_public)
        return isolated


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real stack, so ``-m "not stack"`` runs the fast rest."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def cli() -> Path:
    """The ``cityhealth`` console script next to the running interpreter."""
    path = Path(sys.executable).parent / "cityhealth"
    assert path.exists(), f"{path} missing: install the project (pip install -e .)"
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The real stack on free ports in a temporary directory, for the whole session."""
    settings = stack_settings(tmp_path_factory.mktemp("stack"))
    if not kafka_installed(settings):
        install(settings)
    manager = StackManager(settings, grafana=False)
    try:
        manager.up()
        yield RunningStack(settings=settings, manager=manager)
    finally:
        manager.down()


@pytest.fixture
def settings(stack: RunningStack) -> Settings:
    """Per-test settings: unique Kafka topic prefix, MQTT share group and InfluxDB databases."""
    return stack.isolated_settings()


@pytest.fixture
def create_topics(stack: RunningStack, settings: Settings) -> Callable[..., list[str]]:
    """``create_topics("a", "b", partitions=2)`` -> prefixed topic names, created."""

    def make(*names: str, partitions: int = 1) -> list[str]:
        full = [settings.topic_prefix + name for name in names]
        stack.create_topics(full, partitions=partitions)
        return full

    return make
