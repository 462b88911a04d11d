"""Settings: ``CITYHEALTH_*`` environment mapping, and docs/CONFIGURATION.md stays complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from cityhealth.settings import REPO_ROOT, Settings

DOC = REPO_ROOT / "docs" / "CONFIGURATION.md"


def _doc_default(value: Any) -> str:
    """How CONFIGURATION.md writes a default (machine-specific paths abbreviated)."""
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Path):
        if value.is_relative_to(REPO_ROOT):
            return f"<repo>/{value.relative_to(REPO_ROOT)}"
        if value.is_relative_to(Path.home()):
            return f"~/{value.relative_to(Path.home())}"
    if value == "":
        return '""'
    return str(value)


def _doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("CITYHEALTH_"):
            rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_field_is_documented_with_env_var_and_default(field: str) -> None:
    rows = _doc_rows()
    assert field in rows, f"{field} missing from {DOC}"
    info = Settings.model_fields[field]
    assert rows[field][1] == f"CITYHEALTH_{field.upper()}"
    assert rows[field][2] == _doc_default(info.default)
    assert info.description, f"{field} has no description"


def test_documentation_lists_no_stale_fields() -> None:
    assert set(_doc_rows()) == set(Settings.model_fields)


def test_env_vars_map_to_typed_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"CITYHEALTH_{name.upper()}", raising=False)
    monkeypatch.setenv("CITYHEALTH_MQTT_PORT", "11883")
    monkeypatch.setenv("CITYHEALTH_KAFKA_BOOTSTRAP", "10.0.0.1:19092")
    monkeypatch.setenv("CITYHEALTH_INFLUX_API", "v2")
    monkeypatch.setenv("CITYHEALTH_INFLUX_TOKEN", "s3cret")
    monkeypatch.setenv("CITYHEALTH_DATA_DIR", "/tmp/elsewhere")
    monkeypatch.setenv("CITYHEALTH_STACK_TIMEOUT_S", "7.5")
    s = Settings()
    assert s.mqtt_port == 11883
    assert s.kafka_bootstrap == "10.0.0.1:19092"
    assert s.influx_api == "v2"
    assert s.influx_token is not None and s.influx_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.data_dir == Path("/tmp/elsewhere")
    assert s.stack_timeout_s == 7.5
    assert s.mqtt_host == "127.0.0.1"  # untouched fields keep their defaults


def test_invalid_env_values_are_rejected_with_the_field_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CITYHEALTH_INFLUX_API", "v3")
    with pytest.raises(ValidationError, match="influx_api"):
        Settings()
    monkeypatch.setenv("CITYHEALTH_INFLUX_API", "v1")
    monkeypatch.setenv("CITYHEALTH_MQTT_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="mqtt_port"):
        Settings()


def test_to_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"CITYHEALTH_{name.upper()}", raising=False)
    original = Settings(
        mqtt_port=2883,
        topic_prefix="t1.",
        influx_password=SecretStr("pw"),
        influx_token=SecretStr("tok"),
        data_dir=Path("/tmp/x"),
    )
    env = original.to_env()
    assert env["CITYHEALTH_INFLUX_PASSWORD"] == "pw"
    assert "CITYHEALTH_MQTT_USERNAME" not in env  # None stays unset
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def _worker_doc_rows() -> dict[str, str]:
    """``{env var: default}`` of the stream-worker table (first cell is the variable)."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("CITYHEALTH_WORKER_"):
            rows[cells[0]] = cells[1]
    return rows


def test_every_worker_setting_is_documented_with_its_default() -> None:
    from streams.config import WorkerConfig

    documented = _worker_doc_rows()
    fields = WorkerConfig.model_fields
    assert set(documented) == {f"CITYHEALTH_WORKER_{name.upper()}" for name in fields}
    for name, info in fields.items():
        assert documented[f"CITYHEALTH_WORKER_{name.upper()}"] == _doc_default(info.default)
        assert info.description, f"worker setting {name} has no description"
