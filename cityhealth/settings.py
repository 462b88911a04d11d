"""One typed settings object for every service, read from ``CITYHEALTH_*`` env vars.

Every field maps to the environment variable ``CITYHEALTH_<FIELD NAME IN UPPER CASE>``
(for example ``mqtt_port`` -> ``CITYHEALTH_MQTT_PORT``). docs/CONFIGURATION.md lists
them all with defaults; ``tests/test_settings.py`` keeps that document honest.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration for the stack, the bridge, the workers and the sinks."""

    model_config = SettingsConfigDict(
        env_prefix="CITYHEALTH_", env_file=None, extra="ignore", validate_default=True
    )

    # --- local stack (cityhealth stack ...) -------------------------------------------
    data_dir: Path = Field(
        default=REPO_ROOT / ".cityhealth",
        description="Where the local stack keeps data, logs, pid files and generated configs.",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "cityhealth",
        description="Download cache shared by checkouts (Kafka jars resolved by Maven).",
    )
    kafka_version: str = Field(
        default="3.9.1", description="org.apache.kafka:kafka_2.13 version resolved from Maven."
    )
    kafka_heap_mb: int = Field(
        default=512, description="Maximum heap (MiB) of the local Kafka JVM."
    )
    influx_rpc_port: int = Field(
        default=8088, description="Port of the local InfluxDB 1.x backup/restore RPC service."
    )
    influx_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Scheduling niceness of the local InfluxDB 1.x (0: as the pipeline).",
    )
    grafana_port: int = Field(
        default=3000,
        description="Port of the local Grafana (started only if grafana-server exists).",
    )
    stack_timeout_s: float = Field(
        default=120.0, description="Seconds `stack up` waits for the services to become ready."
    )

    # --- MQTT ---------------------------------------------------------------------------
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(default=1883, description="MQTT broker TCP port.")
    mqtt_username: str | None = Field(
        default=None,
        description=(
            "MQTT user of this process. When unset, each client logs in as its role's service "
            "user (cityhealth-bridge / cityhealth-publisher) with a password generated under "
            "data_dir."
        ),
    )
    mqtt_password: SecretStr | None = Field(default=None, description="Password of mqtt_username.")
    mqtt_share_group: str = Field(
        default="cityhealth-ingest",
        description="MQTT v5 shared-subscription group the ingest bridges join (prefixed with "
        "topic_prefix: bridges of different Kafka namespaces never share a group).",
    )

    # --- Kafka --------------------------------------------------------------------------
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_controller_port: int = Field(
        default=9093, description="Port of the local KRaft controller listener (loopback only)."
    )
    kafka_username: str = Field(
        default="cityhealth", description="SASL user every Kafka client authenticates as."
    )
    kafka_password: SecretStr | None = Field(
        default=None,
        description=(
            "SASL password of kafka_username. When unset, the local stack generates one in "
            "data_dir/kafka.password (mode 0600, never logged)."
        ),
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "PLAIN"] = Field(
        default="SCRAM-SHA-512",
        description=(
            "SASL mechanism of the client listener: SCRAM-SHA-512 (local stack) or PLAIN "
            "(docker-compose)."
        ),
    )
    topic_prefix: str = Field(
        default="",
        description="Prefix for every Kafka topic name (isolates test runs and tenants).",
    )
    kafka_partitions: int = Field(default=4, description="Partitions of the stream topics.")

    # --- InfluxDB -----------------------------------------------------------------------
    influx_url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB base URL.")
    influx_api: Literal["v1", "v2"] = Field(
        default="v1", description="v1: InfluxDB 1.x /write + InfluxQL; v2: token/org/bucket."
    )
    influx_username: str = Field(default="cityhealth", description="InfluxDB 1.x user (v1 API).")
    influx_password: SecretStr | None = Field(
        default=None,
        description=(
            "InfluxDB 1.x password (v1 API). When unset, the local stack generates one in "
            "data_dir/influx.password (mode 0600, never logged)."
        ),
    )
    influx_token: SecretStr | None = Field(default=None, description="InfluxDB 2.x API token.")
    influx_org: str = Field(default="cityhealth", description="InfluxDB 2.x organisation.")
    influx_db_sensitive: str = Field(
        default="cityhealth_sensitive",
        description="Database/bucket for personal health data (vitals, falls, home, NEWS2).",
    )
    influx_db_public: str = Field(
        default="cityhealth_public",
        description="Database/bucket for public data (air quality, heat, district aggregates).",
    )

    # --- privacy ------------------------------------------------------------------------
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description=(
            "HMAC key for pseudonymising resident/device ids at ingest. When unset, the local "
            "stack generates one under data_dir (never logged)."
        ),
    )

    def to_env(self) -> dict[str, str]:
        """These settings as ``CITYHEALTH_*`` environment variables (secrets revealed).

        For starting another process (a CLI command, a worker) with exactly these
        settings; fields that are None are left out so they keep their default.
        """
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, list | tuple | dict):
                value = json.dumps(value)  # pydantic-settings parses complex values as JSON
            env[f"CITYHEALTH_{name.upper()}"] = str(value)
        return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings read once from the environment (tests build their own ``Settings``)."""
    return Settings()
