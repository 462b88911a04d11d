"""Generated service configuration: Mosquitto's hardening hooks work on a real broker, and
the optional Grafana's provisioning matches docker-compose's data-source uids."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from cityhealth.settings import REPO_ROOT, Settings
from cityhealth.stack.grafana import Grafana
from cityhealth.stack.mosquitto import (
    MAX_INFLIGHT_MESSAGES,
    MAX_PACKET_BYTES,
    Mosquitto,
    MosquittoSecurity,
    render_config,
)
from cityhealth.stack.process import StackError, running, spawn, stop, wait_until
from ingest.contract.decode import MAX_PAYLOAD_BYTES
from ingest.mqtt_auth import mqtt_credentials
from tests.conftest import free_ports, stack_settings


def _connect(
    port: int,
    username: str | None = None,
    password: str | None = None,
    *,
    ca: Path | None = None,
) -> str:
    """CONNACK reason of an MQTT v5 connect, as text ("Success", "Not authorized", ...)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if ca is not None:
        client.tls_set(ca_certs=str(ca))  # verifies the chain and the 127.0.0.1 SAN
    if username is not None:
        client.username_pw_set(username, password)
    reasons: list[str] = []
    client.on_connect = lambda c, u, flags, reason, props: reasons.append(str(reason))
    client.connect("127.0.0.1", port)
    try:
        assert wait_until(lambda: client.loop(0.1) is not None and bool(reasons), timeout_s=30)
    finally:
        client.disconnect()
    return reasons[0]


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[tuple[Settings, Mosquitto, int, Path]]:
    """A real broker with password file, ACL and a TLS listener (self-signed certificate)."""
    settings = stack_settings(tmp_path / "data")
    (tls_port,) = free_ports(1)
    passwords = tmp_path / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "device-1", "s3cret"], check=True
    )
    acl = tmp_path / "acl"
    acl.write_text("pattern write city/+/+/%u/#\n")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    security = MosquittoSecurity(
        password_file=passwords, acl_file=acl, tls_port=tls_port, certfile=cert, keyfile=key
    )
    broker = Mosquitto(settings, security)
    broker.paths.make()
    spawn(broker.command(), cwd=broker.paths.root, log=broker.paths.log, pid_file=broker.paths.pid)
    try:
        for port in (settings.mqtt_port, tls_port):
            assert wait_until(lambda p=port: _port_open(p), timeout_s=30)  # type: ignore[misc]
        yield settings, broker, tls_port, cert
    finally:
        stop(broker.paths.pid)
    assert running(broker.paths.pid) is None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.stack
def test_mosquitto_password_file_hook_refuses_anonymous_clients(
    secured_broker: tuple[Settings, Mosquitto, int, Path],
) -> None:
    settings, broker, _, _ = secured_broker
    conf = (broker.paths.conf / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file" in conf
    assert _connect(settings.mqtt_port) == "Not authorized"
    assert _connect(settings.mqtt_port, "device-1", "wrong") in {
        "Not authorized",
        "Bad user name or password",
    }
    assert _connect(settings.mqtt_port, "device-1", "s3cret") == "Success"


def test_local_mosquitto_config_requires_credentials_with_persistence(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "data")
    broker = Mosquitto(settings)
    broker.paths.make()
    conf = Path(broker.command()[-1]).read_text().splitlines()
    assert f"listener {settings.mqtt_port} 127.0.0.1" in conf
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    assert f"password_file {broker.paths.conf / 'passwd'}" in conf
    assert f"acl_file {broker.paths.conf / 'acl'}" in conf
    users = [line.split(":")[0] for line in (broker.paths.conf / "passwd").read_text().split()]
    assert users == ["cityhealth-bridge", "cityhealth-publisher"]
    assert "per_listener_settings true" in conf
    assert "persistence true" in conf
    assert f"persistence_location {broker.paths.data}/" in conf


@pytest.mark.stack
def test_local_broker_advertises_its_packet_size_and_inflight_limits(tmp_path: Path) -> None:
    """A real broker from the generated config tells v5 clients its limits in CONNACK.

    Receive Maximum must be well above Mosquitto's default of 20, or pipelined QoS 1
    publishers (the simulator) stall on acknowledgements.
    """
    settings = stack_settings(tmp_path / "data")
    broker = Mosquitto(settings)
    broker.paths.make()
    spawn(broker.command(), cwd=broker.paths.root, log=broker.paths.log, pid_file=broker.paths.pid)
    try:
        assert wait_until(lambda: _port_open(settings.mqtt_port), timeout_s=30)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.username_pw_set(*mqtt_credentials(settings, "bridge"))
        limits: list[tuple[int, int]] = []
        client.on_connect = lambda c, u, flags, reason, props: limits.append(
            (getattr(props, "MaximumPacketSize", -1), getattr(props, "ReceiveMaximum", -1))
        )
        client.connect("127.0.0.1", settings.mqtt_port)
        try:
            assert wait_until(lambda: client.loop(0.1) is not None and bool(limits), timeout_s=30)
        finally:
            client.disconnect()
        assert limits == [(MAX_PACKET_BYTES, MAX_INFLIGHT_MESSAGES)]
        assert MAX_INFLIGHT_MESSAGES >= 1000
        assert MAX_PACKET_BYTES > MAX_PAYLOAD_BYTES  # refused payloads still reach dead letters
    finally:
        stop(broker.paths.pid)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.0.2.10", "broker.example", "127.0.0.1", "::1", "localhost"]
)
def test_mosquitto_never_serves_anonymous_clients(tmp_path: Path, host: str) -> None:
    """Not off loopback, and not on loopback either (health data: docs/SECURITY.md)."""
    with pytest.raises(StackError, match="anonymous"):
        render_config(host=host, port=1883, data_dir=tmp_path)
    # with a password file the same listener is fine: anonymous access is off
    conf = render_config(
        host=host,
        port=1883,
        data_dir=tmp_path,
        security=MosquittoSecurity(password_file=tmp_path / "passwd"),
    ).splitlines()
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf


def test_grafana_provisioning_points_at_local_influx_with_compose_uids(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "data")
    grafana = Grafana(settings)
    grafana.paths.make()
    argv = grafana.command()
    ini = Path(argv[argv.index("--config") + 1]).read_text()
    assert f"http_port = {settings.grafana_port}" in ini
    prov = grafana.paths.conf / "provisioning"
    local = yaml.safe_load((prov / "datasources" / "cityhealth.yaml").read_text())["datasources"]
    compose_file = REPO_ROOT / "dashboards" / "provisioning" / "datasources" / "influxdb.yaml"
    compose = yaml.safe_load(compose_file.read_text())["datasources"]
    assert {d["uid"] for d in local} == {d["uid"] for d in compose}
    for source in local:
        assert source["url"] == settings.influx_url
        assert source["user"] == settings.influx_username
    provider = yaml.safe_load((prov / "dashboards" / "cityhealth.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(REPO_ROOT / "dashboards")


@pytest.mark.stack
def test_mosquitto_tls_listener_hook_serves_authenticated_tls_clients(
    secured_broker: tuple[Settings, Mosquitto, int, Path],
) -> None:
    _, _, tls_port, cert = secured_broker
    assert _connect(tls_port, "device-1", "s3cret", ca=cert) == "Success"
    assert _connect(tls_port, ca=cert) == "Not authorized"


def test_kafka_cluster_id_never_starts_with_a_dash() -> None:
    """An id like ``-Xy...`` would be parsed as an option by the storage tool (1 in 64 ids)."""
    from cityhealth.stack.kafka import _cluster_id

    draws = iter([b"\xf8" + bytes(15), b"\x04" + bytes(15)])  # '-' first, then 'B' first
    cluster_id = _cluster_id(lambda: next(draws))
    assert cluster_id == "BAAAAAAAAAAAAAAAAAAAAA"
    assert len(cluster_id) == 22
