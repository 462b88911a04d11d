"""The v1 sink against a real InfluxDB 1.x: round trips, separation, errors, restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from pydantic import SecretStr

from cityhealth.credentials import influx_password
from cityhealth.settings import Settings
from cityhealth.stack.influx import Influx
from cityhealth.stack.process import stop
from ingest.batch import DictColumn
from streams.sink import (
    InfluxSink,
    RetryPolicy,
    SinkRejectedError,
    SinkUnavailableError,
    V1Sink,
    encode,
    make_sink,
)
from streams.sink.base import split_body
from tests.conftest import RunningStack

FAST_RETRY = RetryPolicy(initial_delay_s=0.05, max_delay_s=0.5, deadline_s=60.0)

# An hour ago, whole hour, in ns: inside both retention policies whenever the tests run.
T0 = (int(time.time()) // 3600 - 1) * 3600 * 10**9


@pytest.fixture
def sink(settings: Settings) -> Iterator[InfluxSink]:
    """A v1 sink on the shared stack's InfluxDB; this test's two databases get their
    retention policies."""
    with make_sink(settings, policy=FAST_RETRY) as s:
        s.ensure_databases()
        yield s


def _vitals(n: int, seed: int = 0, t0: int = T0) -> tuple[bytes, dict[str, int]]:
    """Encoded vitals points (NaN gaps) and the expected non-NaN count per field."""
    rng = np.random.default_rng(seed)
    hr = np.round(rng.normal(72, 8, n), 1)
    spo2 = rng.normal(97, 1, n)
    hr[rng.random(n) < 0.2] = np.nan
    spo2[rng.random(n) < 0.3] = np.nan
    present = (~np.isnan(hr)).astype(np.int64) + 2 * (~np.isnan(spo2)).astype(np.int64)
    device = DictColumn.from_strings(f"p-dev{i % 37}" for i in range(n))
    body = encode(
        "vitals",
        t0 + np.arange(n, dtype=np.int64) * 1_000_000,
        {"device": device, "district": "north", "family": "wearable"},
        {"heart_rate": hr, "spo2": spo2, "present": present},
    )
    counts = {"heart_rate": int(np.isfinite(hr).sum()), "spo2": int(np.isfinite(spo2).sum())}
    return body, counts | {"present": n}


def test_write_query_round_trip_counts_and_values(sink: InfluxSink, settings: Settings) -> None:
    db = settings.influx_db_sensitive
    body, counts = _vitals(12_000)
    sink.write(db, body)
    for field, expected in counts.items():
        assert sink.count(db, "vitals", field) == expected
    assert sink.stats.points == 12_000 and sink.stats.retries == 0
    # exact float round trip through the text encoding
    sink.write(db, encode("probe", np.array([T0]), {"device": "p-x"}, {"v": np.array([0.1 + 0.2])}))
    (series,) = sink.query(db, 'SELECT "v", "device" FROM "probe"')
    assert series["values"] == [[T0, 0.1 + 0.2, "p-x"]]
    writes = sink.stats.writes
    sink.write(db, b"")  # nothing to write (every row was NaN): no request at all
    assert sink.stats.writes == writes
    # rewriting the same points (at-least-once replay) changes nothing
    sink.write(db, body)
    assert sink.count(db, "vitals", "present") == 12_000


def test_gzip_off_and_list_of_lines(settings: Settings) -> None:
    with make_sink(settings, policy=FAST_RETRY, gzip_level=0) as plain:
        plain.ensure_databases()
        db = settings.influx_db_public
        plain.write(db, [f"aqi,station=s{i} aqi={i}i {T0 + i}" for i in range(50)])
        plain.write(db, [f"aqi,station=extra aqi=1i {T0}".encode()])
        assert plain.count(db, "aqi", "aqi") == 51


def test_two_databases_are_separate_with_their_retention(
    sink: InfluxSink, settings: Settings
) -> None:
    sensitive, public = settings.influx_db_sensitive, settings.influx_db_public
    sink.write(sensitive, _vitals(100)[0])
    sink.write(public, encode("aqi", np.array([T0]), {"station": "st-1"}, {"aqi": np.array([42])}))
    measurements = {
        db: [v[0] for s in sink.query(db, "SHOW MEASUREMENTS") for v in s["values"]]
        for db in (sensitive, public)
    }
    assert measurements == {sensitive: ["vitals"], public: ["aqi"]}
    policies = {
        db: {
            row[0]: (row[1], row[4])
            for row in sink.query(db, "SHOW RETENTION POLICIES")[0]["values"]
        }
        for db in (sensitive, public)
    }
    assert policies[sensitive]["raw_30d"] == ("720h0m0s", True)
    assert policies[public]["public_400d"] == ("9600h0m0s", True)
    # the points went to the documented policy, not autogen
    assert sink.query(sensitive, 'SELECT count("present") FROM "autogen"."vitals"') == []
    (stored,) = sink.query(sensitive, 'SELECT count("present") FROM "raw_30d"."vitals"')
    assert stored["values"][0][1] == 100


def test_ensure_databases_is_idempotent_and_repairs_policy(
    sink: InfluxSink, settings: Settings
) -> None:
    db = settings.influx_db_public
    sink.query(
        None, f'ALTER RETENTION POLICY "public_400d" ON "{db}" DURATION 30d SHARD DURATION 1d'
    )
    sink.ensure_databases()
    sink.ensure_databases()
    rows = sink.query(db, "SHOW RETENTION POLICIES")[0]["values"]
    assert ["public_400d", "9600h0m0s", "168h0m0s", 1, True] in rows


def test_partial_write_error_is_surfaced_not_retried(sink: InfluxSink, settings: Settings) -> None:
    db = settings.influx_db_sensitive
    sink.write(db, f"fall,device=p-a confidence=0.9 {T0}")
    conflicting = [
        f"fall,device=p-b confidence=1i {T0 + 1}",  # float field written as integer
        f"fall,device=p-c confidence=0.5 {T0 + 2}",
    ]
    with pytest.raises(SinkRejectedError) as info:
        sink.write(db, conflicting)
    assert info.value.status == 400
    assert info.value.partial_write
    assert "field type conflict" in info.value.message
    assert sink.stats.retries == 0
    assert sink.count(db, "fall", "confidence") == 2  # the valid point of the batch is stored


def test_client_errors_are_not_retried(sink: InfluxSink, settings: Settings) -> None:
    with pytest.raises(SinkRejectedError, match="database not found") as info:
        sink.write("no_such_db", "m v=1 1")
    assert info.value.status == 404
    with pytest.raises(SinkRejectedError, match="unable to parse"):
        sink.write(settings.influx_db_public, "m v= 1")
    wrong = settings.model_copy(update={"influx_password": SecretStr("wrong-password")})
    with make_sink(wrong, policy=FAST_RETRY) as bad, pytest.raises(SinkRejectedError) as auth:
        bad.write(settings.influx_db_public, "m v=1 1")
    assert auth.value.status == 401
    assert "wrong-password" not in str(auth.value)
    assert sink.stats.retries == 0


def test_unreachable_influx_raises_after_retries_until_deadline(settings: Settings) -> None:
    closed = settings.model_copy(update={"influx_url": "http://127.0.0.1:9"})
    policy = RetryPolicy(initial_delay_s=0.01, max_delay_s=0.05, deadline_s=0.5)
    with make_sink(closed, policy=policy) as down:
        with pytest.raises(SinkUnavailableError, match="unavailable after"):
            down.write("db", "m v=1 1")
        assert down.stats.retries >= 3 and down.stats.failures == 1 and down.stats.writes == 0


def test_a_write_gives_up_while_waiting_to_retry(settings: Settings) -> None:
    """A worker giving a partition away stops retrying at once, not at the deadline."""
    closed = settings.model_copy(update={"influx_url": "http://127.0.0.1:9"})
    policy = RetryPolicy(initial_delay_s=5.0, max_delay_s=5.0, deadline_s=600.0)
    stop_at = time.monotonic() + 0.5
    with make_sink(closed, policy=policy) as down:
        # "after 1 attempts": it left during its first 5-s wait; one waited out would
        # have made a second attempt first
        with pytest.raises(SinkUnavailableError, match="given up after 1 attempts"):
            down.write("db", "m v=1 1", give_up=lambda: time.monotonic() >= stop_at)
        assert down.stats.retries == 1 and down.stats.writes == 0


def test_restart_influx_mid_stream_loses_nothing(stack: RunningStack, settings: Settings) -> None:
    """Stop the stack's InfluxDB between two writes, restart it once a write is retrying."""
    db = settings.influx_db_sensitive
    retried = threading.Event()
    with make_sink(settings, policy=RetryPolicy(initial_delay_s=0.05, max_delay_s=0.5)) as sink:
        sink.ensure_databases()
        batches = [_vitals(5_000, seed=i, t0=T0 + i * 10**12)[0] for i in range(4)]
        sink.write(db, batches[0])
        stop(Influx(stack.settings).paths.pid, grace_s=20)

        errors: list[BaseException] = []

        def write_while_down() -> None:
            try:
                sink.write(db, batches[1])
                sink.write(db, batches[2])
            except BaseException as exc:  # surfaced to the test thread below
                errors.append(exc)

        # restart InfluxDB only once a write has failed and is waiting to retry
        sink.on_retry = lambda attempt, wait, reason: retried.set()
        writer = threading.Thread(target=write_while_down)
        writer.start()
        assert retried.wait(60), "the write never retried while InfluxDB was down"
        stack.manager.up()  # starts what is not running: InfluxDB
        writer.join(120)
        assert not writer.is_alive() and errors == []
        sink.write(db, batches[3])
        assert sink.stats.retries >= 1
        assert sink.count(db, "vitals", "present") == 20_000


def test_split_body_cuts_at_line_boundaries() -> None:
    body = b"\n".join(b"m v=%d %d" % (i, i) for i in range(1000))
    chunks = list(split_body(body, 100))
    assert all(len(c) <= 100 for c in chunks)
    assert b"\n".join(chunks) == body
    assert list(split_body(b"x" * 50, 10)) == [b"x" * 50]


def test_v1_sink_repr_hides_credentials(settings: Settings) -> None:
    s = V1Sink(settings.influx_url, {}, username="u", password=influx_password(settings))
    assert influx_password(settings).get_secret_value() not in repr(s)


def test_write_many_pipelines_in_order_and_stops_at_first_error(
    sink: InfluxSink, settings: Settings
) -> None:
    db = settings.influx_db_sensitive
    produced: list[int] = []

    def chunks():
        for i in range(8):
            produced.append(i)
            yield _vitals(1_000, seed=i, t0=T0 + i * 10**12)[0]

    assert sink.write_many(db, chunks()) == 8
    assert produced == list(range(8))
    assert sink.count(db, "vitals", "present") == 8_000

    def with_bad_third():
        for i in range(6):
            body = f"late v=1 {T0 + i}" if i != 2 else "late v= broken"
            yield body

    with pytest.raises(SinkRejectedError, match="unable to parse"):
        sink.write_many(db, with_bad_third(), depth=1)
    # bodies 0 and 1 were acknowledged before the failure; at most `depth` more were queued
    assert 2 <= sink.count(db, "late", "v") <= 4
