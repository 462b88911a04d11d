"""docker-compose.yml: valid for Debian's docker-compose 1.29, complete, and health-gated.

No Docker engine is needed: ``docker-compose config`` validates and resolves the file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cityhealth.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
INFRA = ("mosquitto", "kafka", "influxdb", "grafana")
PROJECT = {
    "bridge": ["cityhealth", "ingest"],
    "worker": ["cityhealth", "worker"],
    "alerts": ["cityhealth", "alerts"],
    "simulator": ["cityhealth", "simulate", "--scenario", "smoke"],
}


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: run `cityhealth stack install`"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INFLUXDB_", "GRAFANA_", "CITYHEALTH_KAFKA_", "MQTT_"))
    }
    return subprocess.run(
        [exe, "-f", str(COMPOSE), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=False,
        timeout=120,
    )


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes (short ``src:dst[:mode]`` or long syntax)."""
    mounts = {}
    for vol in service.get("volumes", []):
        if isinstance(vol, str):
            source, target = vol.split(":")[:2]
        else:
            source, target = vol.get("source", ""), vol["target"]
        mounts[target] = source
    return mounts


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    out = _compose("config")
    assert out.returncode == 0, out.stderr
    config: dict[str, Any] = yaml.safe_load(out.stdout)
    return config


def test_config_quiet_passes() -> None:
    out = _compose("config", "-q")
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_services_exist(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == set(INFRA) | set(PROJECT)


@pytest.mark.parametrize("service", INFRA)
def test_infrastructure_has_healthchecks(resolved: dict[str, Any], service: str) -> None:
    check = resolved["services"][service]["healthcheck"]
    assert check["test"] and check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] >= 3


@pytest.mark.parametrize(("service", "command"), sorted(PROJECT.items()))
def test_project_services_build_from_one_dockerfile_and_wait_for_health(
    resolved: dict[str, Any], service: str, command: list[str]
) -> None:
    svc = resolved["services"][service]
    assert Path(svc["build"]["context"]).resolve() == REPO_ROOT
    assert svc["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert svc["command"] == command
    for infra in ("mosquitto", "kafka", "influxdb"):
        assert svc["depends_on"][infra]["condition"] == "service_healthy"
    env = svc["environment"]
    assert env["CITYHEALTH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["CITYHEALTH_INFLUX_API"] == "v2"
    assert env["CITYHEALTH_INFLUX_TOKEN"]
    assert (REPO_ROOT / "Dockerfile").exists()


def test_kafka_runs_kraft(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert len(env["CLUSTER_ID"]) == 22  # base64url of a 16-byte UUID


def test_kafka_listeners_all_require_sasl_with_the_services_credentials(
    resolved: dict[str, Any],
) -> None:
    """No Kafka endpoint without credentials, and the services log in as the JAAS user."""
    env = resolved["services"]["kafka"]["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = [item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")]
    assert all(protocols[name] == "SASL_PLAINTEXT" for name in listeners)
    assert "CONTROLLER://localhost:9093" in env["KAFKA_LISTENERS"]
    assert "ports" not in resolved["services"]["kafka"]  # not published on the host
    bridge = resolved["services"]["bridge"]["environment"]
    user, password = bridge["CITYHEALTH_KAFKA_USERNAME"], bridge["CITYHEALTH_KAFKA_PASSWORD"]
    assert bridge["CITYHEALTH_KAFKA_SASL_MECHANISM"] == env["KAFKA_SASL_ENABLED_MECHANISMS"]
    for listener in ("CLIENT", "CONTROLLER"):
        jaas = env[f"KAFKA_LISTENER_NAME_{listener}_PLAIN_SASL_JAAS_CONFIG"]
        assert f'user_{user}="{password}"' in jaas
    assert "--command-config" in resolved["services"]["kafka"]["healthcheck"]["test"][1]


def test_mosquitto_refuses_anonymous_clients_and_services_log_in_by_role(
    resolved: dict[str, Any],
) -> None:
    svc = resolved["services"]["mosquitto"]
    script = svc["command"][-1]
    assert "'allow_anonymous false'" in script and "allow_anonymous true" not in script
    assert "mosquitto_passwd -U" in script and "'acl_file /tmp/acl'" in script
    assert "-u cityhealth-bridge" in svc["healthcheck"]["test"][1]
    broker_env = svc["environment"]
    for service, user, variable in (
        ("bridge", "cityhealth-bridge", "MQTT_BRIDGE_PASSWORD"),
        ("simulator", "cityhealth-publisher", "MQTT_PUBLISHER_PASSWORD"),
    ):
        env = resolved["services"][service]["environment"]
        assert env["CITYHEALTH_MQTT_USERNAME"] == user
        assert env["CITYHEALTH_MQTT_PASSWORD"] == broker_env[variable]
        assert f'"{user}:$${variable}"' in script
    # The bridge reads, the publisher writes: the same roles as the local stack's ACL.
    assert "'user cityhealth-bridge' 'topic read city/#'" in script
    assert "'user cityhealth-publisher' 'topic write city/#'" in script


def _services_with(**env: str) -> dict[str, Any]:
    """The resolved services of ``docker-compose config`` with ``env`` set."""
    out = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    services: dict[str, Any] = yaml.safe_load(out.stdout)["services"]
    return services


def test_kafka_password_comes_from_the_environment() -> None:
    config = _services_with(CITYHEALTH_KAFKA_PASSWORD="from-env-kafka")
    assert config["worker"]["environment"]["CITYHEALTH_KAFKA_PASSWORD"] == "from-env-kafka"
    jaas = config["kafka"]["environment"]["KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG"]
    assert 'user_cityhealth="from-env-kafka"' in jaas


def test_influxdb_initialises_org_buckets_and_token_from_env(resolved: dict[str, Any]) -> None:
    svc = resolved["services"]["influxdb"]
    env = svc["environment"]
    assert svc["image"].startswith("influxdb:2.")
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == "cityhealth"
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == "cityhealth_sensitive"
    assert env["CITYHEALTH_PUBLIC_BUCKET"] == "cityhealth_public"
    assert (
        env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
        == (resolved["services"]["bridge"]["environment"]["CITYHEALTH_INFLUX_TOKEN"])
    )
    init = Path(_mounts(svc)["/docker-entrypoint-initdb.d"])
    scripts = sorted(init.glob("*.sh"))
    assert scripts and all(os.access(s, os.X_OK) for s in scripts)
    text = "".join(s.read_text() for s in scripts)
    assert "bucket create" in text and "dbrp create" in text
    check = subprocess.run(["bash", "-n", *map(str, scripts)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_token_comes_from_the_environment() -> None:
    config = _services_with(INFLUXDB_TOKEN="from-env-token")
    assert config["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == "from-env-token"
    assert config["worker"]["environment"]["CITYHEALTH_INFLUX_TOKEN"] == "from-env-token"
    assert config["grafana"]["environment"]["INFLUXDB_TOKEN"] == "from-env-token"


def test_grafana_mounts_provisioning_from_dashboards(resolved: dict[str, Any]) -> None:
    volumes = _mounts(resolved["services"]["grafana"])
    source = Path(volumes["/etc/grafana/provisioning"])
    assert source == REPO_ROOT / "dashboards" / "provisioning"
    sources = yaml.safe_load((source / "datasources" / "influxdb.yaml").read_text())
    by_uid = {d["uid"]: d for d in sources["datasources"]}
    assert set(by_uid) == {"influx-sensitive", "influx-public"}
    assert by_uid["influx-sensitive"]["jsonData"]["dbName"] == "cityhealth_sensitive"
    assert by_uid["influx-public"]["jsonData"]["dbName"] == "cityhealth_public"
    providers = yaml.safe_load((source / "dashboards" / "cityhealth.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert Path(volumes[path]) == REPO_ROOT / "dashboards"
