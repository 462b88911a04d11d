"""How every Kafka client connects: bootstrap servers plus SASL credentials, from settings.

Health data is sensitive, so the broker has no unauthenticated listener: every producer,
consumer and admin client of the project is built with ``**kafka_client_kwargs(settings)``
(aiokafka keyword arguments), and the Faust app with the same values as
``faust.SASLCredentials``. The local stack formats its broker with the same credentials
(``cityhealth/stack/kafka.py``), so clients and broker agree by construction.

Mechanism: SCRAM-SHA-512 by default (RFC 5802/RFC 7677 with SHA-512, Kafka KIP-84): a
challenge-response, so the password never crosses the (loopback, non-TLS) connection and
the broker stores only salted hashes. ``PLAIN`` (RFC 4616) sends the password itself and
is meant for SASL_SSL or a container network; docs/SECURITY.md has the reasoning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr

from ingest.secret_file import load_or_create_secret

#: The generated password's file under ``data_dir`` when ``kafka_password`` is unset.
PASSWORD_FILE_NAME = "kafka.password"


class _KafkaSettings(Protocol):
    # Read-only members, so a Literal-typed field of the settings matches ``str``.
    @property
    def kafka_bootstrap(self) -> str: ...
    @property
    def kafka_username(self) -> str: ...
    @property
    def kafka_password(self) -> SecretStr | None: ...
    @property
    def kafka_sasl_mechanism(self) -> str: ...
    @property
    def data_dir(self) -> Path: ...


def kafka_password(settings: _KafkaSettings) -> SecretStr:
    """``settings.kafka_password``, else the generated one in ``data_dir/kafka.password``.

    An empty ``CITYHEALTH_KAFKA_PASSWORD`` counts as unset (docker-compose passes an empty
    string for an unset ``${VAR:-}``).
    """
    password = settings.kafka_password
    if password is not None and password.get_secret_value():
        return password
    return load_or_create_secret(
        Path(settings.data_dir) / PASSWORD_FILE_NAME, label="Kafka password"
    )


def kafka_client_kwargs(settings: _KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for connecting to ``settings.kafka_bootstrap`` with SASL.

    ``bootstrap_servers``, ``security_protocol`` (SASL_PLAINTEXT), ``sasl_mechanism``,
    ``sasl_plain_username`` and ``sasl_plain_password`` (aiokafka's names for SCRAM too).
    Use as ``AIOKafkaConsumer(**kafka_client_kwargs(settings), group_id=...)``.
    """
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": settings.kafka_sasl_mechanism,
        "sasl_plain_username": settings.kafka_username,
        "sasl_plain_password": kafka_password(settings).get_secret_value(),
    }
