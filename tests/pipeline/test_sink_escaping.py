"""Line-protocol escaping checked against the real InfluxDB 1.x parser, not only ``Point``.

Every awkward character the line-protocol reference names (comma, space, equals sign,
double quote, backslash, newline; https://docs.influxdata.com/influxdb/v1/write_protocols/
line_protocol_reference/#special-characters) goes into measurement, tag keys, tag values,
field keys and string fields; what InfluxDB stores must be what was sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from cityhealth.settings import Settings
from streams.sink import InfluxSink, RetryPolicy, SinkRejectedError, encode, make_sink
from streams.sink._lines import count_lines
from streams.sink.base import split_body

T0 = (int(time.time()) // 3600 - 1) * 3600 * 10**9

# Awkward text that must survive unchanged (tag values, field keys, string fields).
AWKWARD = [
    "plain",
    "with space",
    "com,ma",
    "equals=sign",
    'double"quote',
    "back\\slash",
    "mid\\ dle",
    "ünïcödé ✓",
    "a=b,c d",
    'dq\\"mix',
]


@pytest.fixture
def sink(settings: Settings) -> Iterator[InfluxSink]:
    with make_sink(settings, policy=RetryPolicy(deadline_s=30.0)) as s:
        s.ensure_databases()
        yield s


def test_awkward_tags_fields_and_strings_round_trip_through_influxdb(
    sink: InfluxSink, settings: Settings
) -> None:
    db = settings.influx_db_public
    n = len(AWKWARD)
    measurement = "odd name,with=chars"
    body = encode(
        measurement,
        T0 + np.arange(n, dtype=np.int64),
        {"tag key, odd=": np.array(AWKWARD, dtype=object)},
        {
            "field key, odd=": np.arange(n, dtype=np.float64) + 0.5,
            "text": np.array(AWKWARD, dtype=object),
        },
    )
    sink.write(db, body)
    q_meas = '"' + measurement.replace('"', '\\"') + '"'
    (series,) = sink.query(db, f"SELECT * FROM {q_meas} ORDER BY time")
    assert series["name"] == measurement
    rows = [dict(zip(series["columns"], row, strict=True)) for row in series["values"]]
    assert [r["tag key, odd="] for r in rows] == AWKWARD
    assert [r["text"] for r in rows] == AWKWARD
    assert [r["field key, odd="] for r in rows] == [i + 0.5 for i in range(n)]


def test_string_field_with_newline_and_trailing_backslash_survive(
    sink: InfluxSink, settings: Settings
) -> None:
    db = settings.influx_db_public
    texts = ["line one\nline two", "ends with backslash\\", 'ends with quote"']
    sink.write(
        db,
        encode(
            "evidence",
            T0 + np.arange(len(texts), dtype=np.int64),
            {"kind": "probe"},
            {"text": np.array(texts, dtype=object)},
        ),
    )
    (series,) = sink.query(db, 'SELECT "text" FROM "evidence" ORDER BY time')
    assert [row[1] for row in series["values"]] == texts


def test_body_split_never_cuts_inside_a_string_field(settings: Settings) -> None:
    """Bodies are cut at line ends; a newline inside a quoted string is not a line end."""
    db = settings.influx_db_public
    texts = [f"row {i}\nsecond line\nthird line" for i in range(20)]
    body = encode(
        "multiline",
        T0 + np.arange(len(texts), dtype=np.int64),
        {"kind": "probe"},
        {"text": np.array(texts, dtype=object)},
    )
    with make_sink(settings, policy=RetryPolicy(deadline_s=30.0), max_body_bytes=100) as sink:
        sink.ensure_databases()
        sink.write(db, body)
        assert sink.stats.points == len(texts)
        (series,) = sink.query(db, 'SELECT "text" FROM "multiline" ORDER BY time')
    assert [row[1] for row in series["values"]] == texts


def test_split_and_count_follow_line_protocol_sections() -> None:
    """Pure: newlines in strings, escaped quotes/spaces, quotes in tags and keys."""
    lines = [
        b'm,t=a\\ b s="x\ny",v=1 5',  # escaped space in a tag, newline in a string
        b'm,q=dq"tag s="esc\\"\n\\\\" 6',  # quote in a tag value (no meaning there)
        b"m v=2",
    ]
    body = b"\n".join(lines)
    assert count_lines(body) == 3 and count_lines(body + b"\n") == 3
    assert list(split_body(body, 10)) == lines
    assert list(split_body(body, len(body))) == [body]
    assert count_lines(b"") == 0 and count_lines(b"a v=1\nb v=2") == 2


def test_a_refused_chunk_does_not_lose_the_chunks_after_it(settings: Settings) -> None:
    """One bad point in a large (split) body: every other point is still stored."""
    db = settings.influx_db_public
    lines = [f"chunked,k=a v={i}.5 {T0 + i}" for i in range(30)]
    lines[3] = f"chunked,k=a v=1i {T0 + 3}"  # field type conflict with the float field
    lines[4] = "chunked,k=a v= broken"  # unparsable
    with make_sink(settings, policy=RetryPolicy(deadline_s=30.0), max_body_bytes=120) as sink:
        sink.ensure_databases()
        sink.write(db, lines[:1])  # the field is a float from now on
        with pytest.raises(SinkRejectedError) as info:
            sink.write(db, lines)
        assert info.value.status == 400
        assert sink.count(db, "chunked", "v") == 28  # all but the two bad points
