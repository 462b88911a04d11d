"""InfluxDB's password on a private instance: generated when unset, never a known default.

An instance bootstrapped by an earlier version with the fixed default password
(``cityhealth-local``) is re-keyed to the generated password at its next start.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from cityhealth.credentials import LEGACY_DEFAULT_PASSWORD, PASSWORD_FILE_NAME, influx_password
from cityhealth.settings import Settings
from cityhealth.stack.influx import influx_query
from cityhealth.stack.manager import StackManager
from tests.conftest import stack_settings

pytestmark = pytest.mark.stack


def _status(settings: Settings, password: SecretStr) -> int:
    as_user = settings.model_copy(update={"influx_password": password})
    return influx_query(as_user, "SHOW DATABASES").status_code


def test_generated_password_and_rekey_of_the_old_default(tmp_path: Path) -> None:
    old = stack_settings(tmp_path / "stack", influx_password=LEGACY_DEFAULT_PASSWORD)
    manager = StackManager(old, grafana=False)
    try:
        manager.start_service("influx")  # bootstrapped as an earlier version did
        assert _status(old, LEGACY_DEFAULT_PASSWORD) == 200
        manager.stop_service("influx")

        new = old.model_copy(update={"influx_password": None})
        assert StackManager(new, grafana=False).start_service("influx") == "started"
        generated = influx_password(new)
        path = tmp_path / "stack" / PASSWORD_FILE_NAME
        assert path.read_text().strip() == generated.get_secret_value()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(generated.get_secret_value()) >= 32
        assert _status(new, generated) == 200
        assert _status(new, LEGACY_DEFAULT_PASSWORD) == 401
        assert influx_query(new, "SHOW DATABASES", auth=False).status_code == 401
    finally:
        manager.stop_service("influx")


def test_a_configured_password_is_used_as_is(tmp_path: Path) -> None:
    s = stack_settings(tmp_path / "stack", influx_password=SecretStr("operator-chosen"))
    assert influx_password(s).get_secret_value() == "operator-chosen"
    assert not (tmp_path / "stack" / PASSWORD_FILE_NAME).exists()
    empty = s.model_copy(update={"influx_password": SecretStr("")})  # compose's ${VAR:-}
    assert influx_password(empty).get_secret_value() != ""
