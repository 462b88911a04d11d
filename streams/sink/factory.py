"""Build the configured sink from settings."""

from __future__ import annotations

from typing import Any

from cityhealth.credentials import influx_password
from cityhealth.settings import Settings
from streams.sink.base import InfluxSink
from streams.sink.errors import SinkError
from streams.sink.retention import retention_policies
from streams.sink.retry import RetryPolicy
from streams.sink.v1 import V1Sink
from streams.sink.v2 import V2Sink


def make_sink(settings: Settings, policy: RetryPolicy | None = None, **kwargs: Any) -> InfluxSink:
    """The v1 or v2 sink ``settings.influx_api`` asks for, with the two databases' policies."""
    url, retention = settings.influx_url, retention_policies(settings)
    if settings.influx_api == "v1":
        password = influx_password(settings)
        return V1Sink(url, retention, settings.influx_username, password, policy=policy, **kwargs)
    if settings.influx_token is None:
        raise SinkError("influx_api=v2 needs CITYHEALTH_INFLUX_TOKEN")
    token = settings.influx_token
    return V2Sink(url, retention, token, settings.influx_org, policy=policy, **kwargs)
