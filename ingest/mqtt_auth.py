"""Which MQTT user a client logs in as, and with which password, from settings.

The broker accepts no anonymous client (docs/SECURITY.md). Every MQTT client of the project
names its *role* and gets its credentials from :func:`mqtt_credentials`:

``bridge``
    The ingest bridges (and read-only observers such as benchmarks' baseline subscribers):
    may subscribe to ``city/#`` (and ``<prefix>/city/#``), may publish nothing.
``publisher``
    Simulators and service-run gateways: may publish to ``city/#`` (and
    ``<prefix>/city/#``), may subscribe to nothing.

When ``settings.mqtt_username`` is set, it is used for every role (a deployment that gives
each process its own user through ``CITYHEALTH_MQTT_USERNAME`` / ``CITYHEALTH_MQTT_PASSWORD``);
otherwise the role's service user ``cityhealth-<role>`` with a password generated once into
``data_dir/mqtt-<role>.password`` (mode 0600), which the local stack writes into Mosquitto's
password file. Real devices have their own users (docs/GATEWAYS.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr

from ingest.secret_file import load_or_create_secret

MqttRole = Literal["bridge", "publisher"]
ROLES: tuple[MqttRole, ...] = ("bridge", "publisher")


class _MqttSettings(Protocol):
    @property
    def mqtt_username(self) -> str | None: ...
    @property
    def mqtt_password(self) -> SecretStr | None: ...
    @property
    def data_dir(self) -> Path: ...


def role_user(role: MqttRole) -> str:
    """The local stack's service user of ``role``."""
    return f"cityhealth-{role}"


def mqtt_credentials(settings: _MqttSettings, role: MqttRole) -> tuple[str, str]:
    """``(username, password)`` for an MQTT client acting as ``role``."""
    if settings.mqtt_username:
        password = settings.mqtt_password
        return settings.mqtt_username, password.get_secret_value() if password else ""
    path = Path(settings.data_dir) / f"mqtt-{role}.password"
    secret = load_or_create_secret(path, label=f"MQTT {role} password")
    return role_user(role), secret.get_secret_value()
