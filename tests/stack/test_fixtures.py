"""The shared fixtures give each test its own topics, share group and databases."""

from __future__ import annotations

from cityhealth.settings import Settings
from tests.conftest import RunningStack


def test_settings_point_at_the_stack_and_are_isolated(
    stack: RunningStack, settings: Settings
) -> None:
    other = stack.isolated_settings("x")
    for field in ("mqtt_port", "kafka_bootstrap", "influx_url", "data_dir"):
        assert getattr(settings, field) == getattr(stack.settings, field)
    for field in ("topic_prefix", "mqtt_share_group", "influx_db_sensitive", "influx_db_public"):
        assert getattr(settings, field) != getattr(other, field)
        assert getattr(settings, field) != getattr(stack.settings, field)
    shown = stack.influx_query("SHOW DATABASES").json()["results"][0]["series"][0]["values"]
    databases = {row[0] for row in shown}
    for s in (settings, other):
        assert {s.influx_db_sensitive, s.influx_db_public} <= databases
