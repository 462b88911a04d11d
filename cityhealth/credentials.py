"""The InfluxDB 1.x password: the configured one, else a generated one kept under data_dir.

Like the Kafka password (ingest/kafka_client.py), no InfluxDB credential of the local
stack has a well-known default: when ``CITYHEALTH_INFLUX_PASSWORD`` is unset (or empty),
32 random bytes are generated once into ``data_dir/influx.password`` (mode 0600), and the
stack's bootstrap creates the admin user with them. Every process started with the same
``data_dir`` (bridge, workers, ``cityhealth up``, tests) reads the same file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from cityhealth.settings import Settings
from ingest.secret_file import load_or_create_secret

#: The generated password's file under ``data_dir``.
PASSWORD_FILE_NAME = "influx.password"
#: The fixed default of earlier versions: the stack re-keys an instance still using it.
LEGACY_DEFAULT_PASSWORD = SecretStr("cityhealth-local")


def influx_password(settings: Settings) -> SecretStr:
    """``settings.influx_password``, else the generated one in ``data_dir/influx.password``."""
    password = settings.influx_password
    if password is not None and password.get_secret_value():
        return password
    return load_or_create_secret(
        Path(settings.data_dir) / PASSWORD_FILE_NAME, label="InfluxDB password"
    )
