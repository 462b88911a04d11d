"""The v2 back end (influxdb-client WriteApi) where no InfluxDB 2.x is needed.

No InfluxDB 2.x/3.x runs on this machine (Debian ships 1.6, whose HTTP API has no
``/api/v2/write``), so these tests cover the client's real connection-failure path and
configuration; writes against a live 2.x server are exercised by ``cityhealth up`` with
``CITYHEALTH_INFLUX_API=v2`` against the docker-compose stack.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr

from cityhealth.settings import Settings
from streams.sink import RetryPolicy, SinkError, SinkUnavailableError, V2Sink, make_sink
from streams.sink.retention import retention_policies

TOKEN = "v2-token-never-shown"


def _settings() -> Settings:
    return Settings(
        influx_api="v2",
        influx_url="http://127.0.0.1:9",  # discard port: nothing listens, connection refused
        influx_token=SecretStr(TOKEN),
        influx_org="city",
    )


def test_unreachable_server_is_retried_then_unavailable() -> None:
    policy = RetryPolicy(initial_delay_s=0.01, max_delay_s=0.05, deadline_s=0.5)
    reasons: list[str] = []
    with make_sink(_settings(), policy=policy) as sink:
        assert isinstance(sink, V2Sink) and sink.api == "v2"
        sink.on_retry = lambda attempt, wait, reason: reasons.append(reason)
        with pytest.raises(SinkUnavailableError, match="unavailable after") as info:
            sink.write("cityhealth_sensitive", b"vitals,device=p-a heart_rate=70 1")
        assert len(reasons) >= 3 and sink.stats.writes == 0
        assert TOKEN not in str(info.value) and TOKEN not in repr(sink)
        with pytest.raises(SinkUnavailableError):
            sink.ensure_databases()


def test_v2_needs_a_token() -> None:
    with pytest.raises(SinkError, match="CITYHEALTH_INFLUX_TOKEN"):
        make_sink(_settings().model_copy(update={"influx_token": None}))


def test_buckets_follow_the_two_databases() -> None:
    settings = _settings()
    with make_sink(settings) as sink:
        assert sink.retention == retention_policies(settings)
        assert set(sink.retention) == {"cityhealth_sensitive", "cityhealth_public"}


def test_client_exceptions_map_onto_retry_and_refusal() -> None:
    """influxdb-client's ApiException: no status -> retried, 5xx -> retried, 4xx -> refused."""
    from influxdb_client.rest import ApiException

    from streams.sink.errors import RetryableError, SinkRejectedError

    def raising(exc: Exception) -> Callable[[], None]:
        def fn() -> None:
            raise exc

        return fn

    with make_sink(_settings()) as sink:
        assert isinstance(sink, V2Sink)
        with pytest.raises(RetryableError):
            sink._call(raising(ApiException(status=None, reason="connection reset")))
        with pytest.raises(RetryableError):
            sink._call(raising(ApiException(status=503, reason="Service Unavailable")))
        with pytest.raises(SinkRejectedError) as info:
            sink._call(raising(ApiException(status=400, reason="Bad Request")))
        assert info.value.status == 400
