"""The v2 sink against a real InfluxDB 2.x server (``influxd`` built from source).

``scripts/install_influxdb2.sh`` builds the pinned InfluxDB 2.x OSS into the cache;
:class:`cityhealth.stack.influxdb2.Influxdb2` runs it on a free port in a temporary
directory, onboarded with a generated token. Every point goes through the project's
:class:`streams.sink.V2Sink` (influxdb-client ``WriteApi``) and is read back twice: with
Flux (``/api/v2/query``, influxdb-client ``QueryApi``) and with InfluxQL over ``/query``
through the DBRP mappings ``ensure_databases`` creates.

Without the binary these tests fail with the install command in the message (``make
test`` runs the install first): a real server is the point of them, so they are never
skipped.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from influxdb_client import InfluxDBClient
from pydantic import SecretStr

from cityhealth.settings import Settings
from cityhealth.stack.influxdb2 import (
    INFLUXDB2_VERSION,
    Influxdb2,
    influxd2_binary,
    influxd2_installed,
)
from streams.sink import (
    RetryPolicy,
    SinkRejectedError,
    V2Sink,
    encode,
    make_sink,
    retention_policies,
)
from tests.pipeline.test_sink_escaping import AWKWARD
from tests.pipeline.test_sink_v1 import T0, _vitals

FAST_RETRY = RetryPolicy(initial_delay_s=0.05, max_delay_s=0.5, deadline_s=60.0)
INSTALL = "scripts/install_influxdb2.sh"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxdb2]:
    """One InfluxDB 2.x for this module, stopped (no process left) at the end."""
    cache = Settings().cache_dir
    binary = influxd2_binary(cache)
    if not influxd2_installed(cache):
        pytest.fail(f"InfluxDB {INFLUXDB2_VERSION} not built ({binary}): run {INSTALL}")
    srv = Influxdb2(binary=binary, data_dir=tmp_path_factory.mktemp("influxdb2"))
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture
def settings(server: Influxdb2) -> Settings:
    """v2 settings on ``server`` with this test's own two databases (buckets)."""
    unique = "t" + uuid.uuid4().hex[:10]
    base = Settings(influx_db_sensitive=f"{unique}_sensitive", influx_db_public=f"{unique}_public")
    return server.settings(base)


@pytest.fixture
def sink(settings: Settings) -> Iterator[V2Sink]:
    with make_sink(settings, policy=FAST_RETRY) as s:
        assert isinstance(s, V2Sink)
        s.ensure_databases()
        yield s


def flux_rows(settings: Settings, query: str) -> list[dict[str, Any]]:
    """Flux records as dicts (``_time`` in ns since the epoch)."""
    token = settings.influx_token
    assert token is not None
    with InfluxDBClient(
        url=settings.influx_url, token=token.get_secret_value(), org=settings.influx_org
    ) as client:
        tables = client.query_api().query(query)
    rows = []
    for table in tables:
        for record in table.records:
            row = dict(record.values)
            if "_time" in row:  # aggregates such as count() have none
                when = record.get_time()
                row["_time"] = int(when.timestamp()) * 10**9 + when.microsecond * 1000
            rows.append(row)
    return rows


def _flux_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_server_is_the_pinned_influxdb_2(server: Influxdb2) -> None:
    assert server.version() == INFLUXDB2_VERSION
    assert server.probe() is None


def _real_mappings(server: Influxdb2, database: str) -> list[dict[str, Any]]:
    """The database's DBRP mappings, without the *virtual* one 2.7 lists for each bucket."""
    query = {"orgID": server.org_id(), "db": database}
    return [
        m for m in server.api("GET", "/api/v2/dbrps", params=query)["content"] if not m["virtual"]
    ]


def test_ensure_databases_makes_buckets_with_their_retention(
    sink: V2Sink, server: Influxdb2, settings: Settings
) -> None:
    sink.ensure_databases()  # a second time: nothing duplicated
    for database, rp in retention_policies(settings).items():
        query = {"orgID": server.org_id(), "name": database}
        (bucket,) = server.api("GET", "/api/v2/buckets", params=query)["buckets"]
        (rule,) = bucket["retentionRules"]
        assert (rule["everySeconds"], rule["shardGroupDurationSeconds"]) == (
            rp.seconds,
            rp.shard_seconds,
        )
        assert len(_real_mappings(server, database)) <= 1


def test_dbrp_mapping_names_the_retention_policy(
    sink: V2Sink, server: Influxdb2, settings: Settings
) -> None:
    db = settings.influx_db_sensitive
    sink.write(db, _vitals(100)[0])
    (series,) = sink.query(db, 'SELECT count("present") FROM "raw_30d"."vitals"')
    assert series["values"][0][1] == 100
    for database, rp in retention_policies(settings).items():
        (mapping,) = _real_mappings(server, database)
        assert (mapping["retention_policy"], mapping["default"]) == (rp.name, True)


def test_server_helper_makes_the_same_buckets_and_named_mappings(
    server: Influxdb2, settings: Settings
) -> None:
    """``Influxdb2.ensure_buckets`` (no sink): buckets and real DBRP mappings, idempotent;
    a sink made afterwards queries the policy by name."""
    retention = retention_policies(settings)
    ids = server.ensure_buckets(retention)
    assert server.ensure_buckets(retention) == ids and set(ids) == set(retention)
    for database, rp in retention.items():
        (mapping,) = _real_mappings(server, database)
        assert (mapping["bucketID"], mapping["retention_policy"]) == (ids[database], rp.name)
    db = settings.influx_db_sensitive
    with make_sink(settings, policy=FAST_RETRY) as sink:
        sink.write(db, _vitals(100)[0])
        (series,) = sink.query(db, 'SELECT count("present") FROM "raw_30d"."vitals"')
    assert series["values"][0][1] == 100


def test_points_read_back_through_flux_and_influxql(sink: V2Sink, settings: Settings) -> None:
    db = settings.influx_db_sensitive
    body, counts = _vitals(3_000)
    sink.write(db, body)
    assert sink.stats.points == 3_000 and sink.stats.retries == 0
    # InfluxQL over /query, through the DBRP mapping (database = bucket, default policy)
    for field, expected in counts.items():
        assert sink.count(db, "vitals", field) == expected
    # exact float, integer and time round trip, both query languages
    probe = encode(
        "probe",
        np.array([T0 + 7]),
        {"device": "p-x"},
        {"v": np.array([0.1 + 0.2]), "n": np.array([-(2**62)])},
    )
    sink.write(db, probe)
    (series,) = sink.query(db, 'SELECT "v", "n", "device" FROM "probe"')
    assert series["values"] == [[T0 + 7, 0.1 + 0.2, -(2**62), "p-x"]]
    rows = flux_rows(
        settings,
        f"from(bucket: {_flux_string(db)}) |> range(start: 0)"
        ' |> filter(fn: (r) => r._measurement == "probe")'
        ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
    )
    assert [(r["_time"] // 1000, r["v"], r["n"], r["device"]) for r in rows] == [
        ((T0 + 7) // 1000, 0.1 + 0.2, -(2**62), "p-x")
    ]
    # Flux counts every stored vitals value per field
    counted = flux_rows(
        settings,
        f"from(bucket: {_flux_string(db)}) |> range(start: 0)"
        ' |> filter(fn: (r) => r._measurement == "vitals")'
        ' |> group(columns: ["_field"]) |> count()',
    )
    assert {r["_field"]: r["_value"] for r in counted} == counts
    # a replayed batch (at-least-once) rewrites the same points: nothing added
    sink.write(db, body)
    assert sink.count(db, "vitals", "present") == 3_000
    assert sink.count(settings.influx_db_public, "vitals", "present") == 0  # other bucket


def test_gzip_bodies_as_sent_to_a_remote_server(settings: Settings) -> None:
    """gzip_level > 0 (the default for a non-loopback URL) turns on the client's gzip."""
    db = settings.influx_db_public
    with make_sink(settings, policy=FAST_RETRY, gzip_level=1) as zipped:
        zipped.ensure_databases()
        zipped.write(db, [f"aqi,station=s{i} aqi={i}i {T0 + i}" for i in range(500)])
        assert zipped.count(db, "aqi", "aqi") == 500


def test_awkward_names_and_strings_round_trip(sink: V2Sink, settings: Settings) -> None:
    """Every special character of line protocol survives the 2.x parser, read back by
    both query languages."""
    db = settings.influx_db_public
    measurement = "odd name,with=chars"
    texts = [*AWKWARD, "line one\nline two", "ends with backslash\\"]
    tags = [*AWKWARD, "nl", "bs"]
    sink.write(
        db,
        encode(
            measurement,
            T0 + np.arange(len(texts), dtype=np.int64),
            {"tag key, odd=": np.array(tags, dtype=object)},
            {"text": np.array(texts, dtype=object)},
        ),
    )
    flux = flux_rows(
        settings,
        f"from(bucket: {_flux_string(db)}) |> range(start: 0)"
        f" |> filter(fn: (r) => r._measurement == {_flux_string(measurement)})"
        ' |> group() |> sort(columns: ["_time"])',
    )
    # Flux answers in CSV written with Go's csv.Writer(UseCRLF), which turns a newline
    # inside a value into CRLF on the wire; InfluxQL below (JSON) shows the stored bytes.
    assert [(r["_field"], r["_value"], r["tag key, odd="]) for r in flux] == [
        ("text", text.replace("\n", "\r\n"), tag) for text, tag in zip(texts, tags, strict=True)
    ]
    q_meas = '"' + measurement.replace('"', '\\"') + '"'
    (series,) = sink.query(db, f'SELECT "text", "tag key, odd=" FROM {q_meas}')
    assert series["name"] == measurement
    assert [row[1:] for row in series["values"]] == [list(p) for p in zip(texts, tags, strict=True)]


def test_refusals_are_not_retried_and_hide_the_token(
    sink: V2Sink, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    db = settings.influx_db_public
    token = settings.influx_token
    assert token is not None
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SinkRejectedError) as missing:
        sink.write("no_such_bucket", "m v=1 1")
    assert missing.value.status == 404 and "not found" in missing.value.message
    with pytest.raises(SinkRejectedError) as unparsable:
        sink.write(db, "m v= 1")
    assert unparsable.value.status == 400
    wrong = settings.model_copy(update={"influx_token": SecretStr("wrong-token-" + "x" * 20)})
    with make_sink(wrong, policy=FAST_RETRY) as bad, pytest.raises(SinkRejectedError) as auth:
        bad.write(db, "m v=1 1")
    assert auth.value.status == 401
    assert sink.stats.retries == 0
    secret = token.get_secret_value()
    for text in (str(missing.value), str(unparsable.value), str(auth.value), repr(sink)):
        assert secret not in text and "wrong-token-" not in text
    assert secret not in caplog.text and "wrong-token-" not in caplog.text


def test_points_beyond_retention_are_a_partial_write(sink: V2Sink, settings: Settings) -> None:
    """DATA_MODEL.md: writes older than the bucket's retention are dropped and reported."""
    db = settings.influx_db_sensitive
    old = T0 - 40 * 86400 * 10**9  # 40 days: outside the 30-day bucket
    with pytest.raises(SinkRejectedError) as info:
        sink.write(
            db,
            [f"fall,device=p-old confidence=0.9 {old}", f"fall,device=p-new confidence=0.8 {T0}"],
        )
    assert info.value.partial_write, info.value.message
    assert sink.stats.retries == 0
    assert sink.count(db, "fall", "confidence") == 1  # the recent point is stored


def test_field_type_conflict_is_refused_and_keeps_the_rest(
    sink: V2Sink, settings: Settings
) -> None:
    db = settings.influx_db_sensitive
    sink.write(db, f"fall,device=p-a confidence=0.9 {T0}")
    with pytest.raises(SinkRejectedError) as info:
        sink.write(
            db,
            [f"fall,device=p-b confidence=1i {T0 + 1}", f"fall,device=p-c confidence=0.5 {T0 + 2}"],
        )
    assert "field type conflict" in info.value.message
    assert sink.stats.retries == 0
    assert sink.count(db, "fall", "confidence") == 2


def test_a_type_conflict_does_not_lose_the_chunks_after_it(settings: Settings) -> None:
    db = settings.influx_db_public
    lines = [f"chunked,k=a v={i}.5 {T0 + i}" for i in range(30)]
    lines[3] = f"chunked,k=a v=1i {T0 + 3}"  # integer into the float field
    with make_sink(settings, policy=FAST_RETRY, max_body_bytes=120) as sink:
        sink.ensure_databases()
        sink.write(db, lines[:1])  # the field is a float from now on
        with pytest.raises(SinkRejectedError) as info:
            sink.write(db, lines)
        assert info.value.status == 422 and info.value.partial_write
        assert sink.count(db, "chunked", "v") == 29  # every point but the conflicting one


def test_an_unparsable_line_refuses_its_whole_request(sink: V2Sink, settings: Settings) -> None:
    """Unlike 1.x, InfluxDB 2.x stores none of a request with a line it cannot parse
    (docs/DATA_MODEL.md); the sink reports it as a 400, not retried."""
    db = settings.influx_db_public
    with pytest.raises(SinkRejectedError, match="unable to parse") as info:
        sink.write(db, [f"parse v=1 {T0}", "parse v= broken", f"parse v=2 {T0 + 1}"])
    assert info.value.status == 400 and not info.value.partial_write
    assert sink.count(db, "parse", "v") == 0 and sink.stats.retries == 0


def test_server_down_is_retried_and_nothing_is_lost(
    server: Influxdb2, sink: V2Sink, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop influxd between two writes; restart it once a write is retrying."""
    caplog.set_level(logging.DEBUG)
    db = settings.influx_db_sensitive
    batches = [_vitals(2_000, seed=i, t0=T0 + i * 10**12)[0] for i in range(4)]
    sink.write(db, batches[0])
    assert server.stop()
    retried = threading.Event()
    reasons: list[str] = []
    sink.on_retry = lambda attempt, wait, reason: (reasons.append(reason), retried.set())
    with ThreadPoolExecutor(max_workers=1) as pool:
        # write_many: both bodies in order, each acknowledged, while influxd is down
        pending = pool.submit(sink.write_many, db, batches[1:3], 1)
        try:
            assert retried.wait(60), "the write never retried while influxd was down"
        finally:
            server.start()  # same port, same data directory: same token and buckets
        assert pending.result(timeout=120) == 2
    sink.write(db, batches[3])
    assert sink.stats.retries >= 1 and sink.stats.failures == 0
    assert sink.count(db, "vitals", "present") == 8_000
    token = settings.influx_token
    assert token is not None
    secret = token.get_secret_value()
    assert all(secret not in r for r in reasons) and secret not in caplog.text
    assert secret not in Path(server.log_path).read_text()
