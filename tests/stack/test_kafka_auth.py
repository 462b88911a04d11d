"""Kafka has no endpoint open without credentials: SASL on the client listener, the
controller listener on loopback only and authenticated, secrets in owner-only files."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from cityhealth.settings import Settings
from cityhealth.stack.kafka import Kafka, kafka_probe
from ingest.kafka_client import PASSWORD_FILE_NAME, kafka_client_kwargs, kafka_password
from tests.conftest import RunningStack, stack_settings


async def _produce_one(kafka: dict[str, Any], topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(**kafka, acks="all", request_timeout_ms=5000)
    try:
        await asyncio.wait_for(producer.start(), 15)
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read_all(kafka: dict[str, Any], topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, **kafka, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        return [r.value for records in batches.values() for r in records if r.value is not None]
    finally:
        await consumer.stop()


def test_unauthenticated_and_wrong_password_clients_are_refused(
    stack: RunningStack, settings: Settings, create_topics: Any
) -> None:
    """The real broker refuses a client without SASL and one with a wrong password; the
    same produce with the settings' credentials is stored and read back."""
    (topic,) = create_topics("auth")
    anonymous = {"bootstrap_servers": settings.kafka_bootstrap}
    wrong = settings.model_copy(update={"kafka_password": SecretStr("not-the-password")})
    for kafka in (anonymous, kafka_client_kwargs(wrong)):
        with pytest.raises(KafkaError):
            asyncio.run(_produce_one(kafka, topic, b"refused"))
        assert kafka_probe(kafka, timeout_s=3) is not None

    asyncio.run(_produce_one(kafka_client_kwargs(settings), topic, b"accepted"))
    assert asyncio.run(_read_all(kafka_client_kwargs(settings), topic)) == [b"accepted"]
    assert kafka_probe(kafka_client_kwargs(settings)) is None


def test_controller_listener_is_loopback_only_and_refuses_anonymous_clients(
    stack: RunningStack,
) -> None:
    props = Kafka(stack.settings)._server_properties()
    cport = stack.settings.kafka_controller_port
    assert f"CONTROLLER://127.0.0.1:{cport}" in props
    assert "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT" in props
    assert "PLAINTEXT://" not in props  # no unauthenticated listener at all
    controller = {"bootstrap_servers": f"127.0.0.1:{cport}"}
    assert kafka_probe(controller, timeout_s=3) is not None


def test_generated_password_and_broker_config_are_owner_only(stack: RunningStack) -> None:
    assert stack.settings.kafka_password is None  # the fixture relies on the generated one
    password_file = stack.data_dir / PASSWORD_FILE_NAME
    server_properties = stack.data_dir / "kafka" / "conf" / "server.properties"
    for path in (password_file, server_properties):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    password = kafka_password(stack.settings).get_secret_value()
    assert len(password) == 64 and password_file.read_text().strip() == password
    assert password in server_properties.read_text()  # JAAS: the broker's own login


def test_explicit_password_wins_and_empty_counts_as_unset(tmp_path: Path) -> None:
    given = Settings(data_dir=tmp_path, kafka_password=SecretStr("from-env"))
    assert kafka_client_kwargs(given)["sasl_plain_password"] == "from-env"
    assert not (tmp_path / PASSWORD_FILE_NAME).exists()
    empty = Settings(data_dir=tmp_path, kafka_password=SecretStr(""))
    generated = kafka_client_kwargs(empty)["sasl_plain_password"]
    assert generated == (tmp_path / PASSWORD_FILE_NAME).read_text().strip()
    assert kafka_client_kwargs(empty) == {
        "bootstrap_servers": empty.kafka_bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "cityhealth",
        "sasl_plain_password": generated,
    }


def test_log_dir_formatted_without_scram_user_is_moved_aside_and_reformatted(
    tmp_path: Path,
) -> None:
    """A data dir from before SASL (no SCRAM user) would refuse every client: ``prepare``
    keeps it under ``data.before-sasl-*`` and formats a new one with the user."""
    settings = stack_settings(tmp_path)
    kafka = Kafka(settings)
    kafka.paths.make()
    kafka.prepare()
    marker = kafka.paths.root / "scram.user"
    assert marker.read_text().strip() == settings.kafka_username
    meta = (kafka.paths.data / "meta.properties").read_text()
    kafka.prepare()  # formatted with the user: left alone
    assert (kafka.paths.data / "meta.properties").read_text() == meta

    marker.unlink()  # what a data dir formatted by the version before SASL looks like
    kafka.prepare()
    (aside,) = kafka.paths.root.glob("data.before-sasl-*")
    assert (aside / "meta.properties").read_text() == meta
    assert (kafka.paths.data / "meta.properties").read_text() != meta  # new cluster id
    assert marker.read_text().strip() == settings.kafka_username
