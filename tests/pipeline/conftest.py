"""A private, restartable InfluxDB 1.x for the sink tests.

Started with the project's own launcher (:class:`cityhealth.stack.influx.Influx`: the same
config, auth bootstrap and process handling as ``cityhealth stack up``) on free ports in
a temporary directory. The sink tests need nothing else from the stack, and the restart
test must stop and start InfluxDB without disturbing the shared ``stack`` fixture.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from cityhealth.settings import Settings
from cityhealth.stack.influx import Influx
from cityhealth.stack.process import spawn, stop, wait_until
from streams.sink import InfluxSink, RetryPolicy, make_sink


def _free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@dataclass
class PrivateInflux:
    """influxd on its own ports and data directory; ``stop()``/``start()`` restart it."""

    settings: Settings
    service: Influx

    @classmethod
    def create(cls, root: Path) -> PrivateInflux:
        http, rpc = _free_ports(2)
        settings = Settings(
            data_dir=root,
            influx_url=f"http://127.0.0.1:{http}",
            influx_rpc_port=rpc,
            influx_api="v1",
        )
        return cls(settings, Influx(settings))

    def start(self) -> None:
        svc = self.service
        svc.paths.make()
        spawn(
            svc.command(),
            cwd=svc.paths.root,
            log=svc.paths.log,
            pid_file=svc.paths.pid,
            ports=[port for _, port in svc.ports()],
        )
        if not wait_until(lambda: svc.probe() is None, timeout_s=90, interval_s=0.1):
            raise RuntimeError(f"influxd did not start; see {svc.paths.log}")
        svc.bootstrap()

    def stop(self) -> None:
        stop(self.service.paths.pid, grace_s=20)

    def with_databases(self) -> Settings:
        """Settings with unique database names, so tests never share data."""
        tag = "t" + uuid.uuid4().hex[:10]
        return self.settings.model_copy(
            update={"influx_db_sensitive": f"{tag}_sensitive", "influx_db_public": f"{tag}_public"}
        )


def _started(root: Path) -> PrivateInflux:
    server = PrivateInflux.create(root)
    server.start()
    return server


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateInflux]:
    """One private InfluxDB for the session's sink tests."""
    server = _started(tmp_path_factory.mktemp("influx"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def restartable_influx(tmp_path: Path) -> Iterator[PrivateInflux]:
    """A private InfluxDB only this test uses, so it may stop and restart it."""
    server = _started(tmp_path / "influx")
    try:
        yield server
    finally:
        server.stop()


FAST_RETRY = RetryPolicy(initial_delay_s=0.05, max_delay_s=0.5, deadline_s=60.0)


@pytest.fixture
def sink_settings(influx_server: PrivateInflux) -> Settings:
    """Settings of the private InfluxDB with unique database names."""
    return influx_server.with_databases()


@pytest.fixture
def sink(sink_settings: Settings) -> Iterator[InfluxSink]:
    """A v1 sink whose two databases (with retention policies) exist."""
    with make_sink(sink_settings, policy=FAST_RETRY) as s:
        s.ensure_databases()
        yield s
