"""What every InfluxDB back end offers: write line protocol, InfluxQL queries, set-up.

Writes are synchronous and return only once InfluxDB acknowledged them, so a worker can
commit its Kafka offsets right after (at-least-once). Transient failures (connection
refused, timeouts, 5xx, 429) are retried with backoff up to ``RetryPolicy.deadline_s``,
then :class:`SinkUnavailableError` is raised; 4xx answers raise :class:`SinkRejectedError` at once.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests

from streams.sink._lines import count_lines, line_ends
from streams.sink.errors import RetryableError, SinkError, SinkQueryError, SinkRejectedError
from streams.sink.retention import RetentionPolicy
from streams.sink.retry import RetryPolicy, RetryStats, call_with_retry

Lines = bytes | bytearray | memoryview | str | Iterable[str | bytes]

#: Default largest request body; InfluxDB 1.x refuses bodies over 25 MB (``max-body-size``).
MAX_BODY_BYTES = 8 << 20
_RETRY_STATUS = frozenset({408, 429})


def quote_ident(name: str) -> str:
    """Quote an InfluxQL identifier (database, measurement, field, policy)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def as_body(lines: Lines) -> bytes:
    """Line protocol as one newline-separated bytes body."""
    if isinstance(lines, bytes | bytearray | memoryview):
        return bytes(lines)
    if isinstance(lines, str):
        return lines.encode()
    return b"\n".join(line.encode() if isinstance(line, str) else bytes(line) for line in lines)


def split_body(body: bytes, limit: int) -> Iterator[bytes]:
    """Cut ``body`` at line boundaries into chunks of at most ``limit`` bytes.

    A single line longer than ``limit`` travels alone (the server decides). A newline
    inside a quoted string field is not a line boundary (:mod:`streams.sink._lines`).
    """
    if len(body) <= limit:
        if body:
            yield body
        return
    ends = line_ends(body)
    start = 0
    while len(body) - start > limit:
        # the last line end that keeps the chunk within the limit, else the first one
        j = int(np.searchsorted(ends, start + limit, side="right")) - 1
        if j < 0 or ends[j] <= start:
            j = int(np.searchsorted(ends, start, side="left"))
            if j >= ends.size:
                break
        cut = int(ends[j])
        yield body[start:cut]
        start = cut + 1
    if start < len(body):
        yield body[start:]


def default_gzip_level(url: str) -> int:
    """1 (fast gzip) for a remote InfluxDB; 0 on loopback, where compressing only burns the
    CPU that client and server share (``cityhealth bench sink`` measures both)."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return 0 if loopback else 1


def check_response(status: int, text: str, headers: Mapping[str, str] | None) -> None:
    """Classify an HTTP answer: return on 2xx, else raise RetryableError or SinkRejectedError."""
    if 200 <= status < 300:
        return
    message = _server_message(text)
    if status >= 500 or status in _RETRY_STATUS:
        retry_after = _retry_after(headers)
        raise RetryableError(f"HTTP {status}: {message}", retry_after)
    raise SinkRejectedError(status, message)


def _server_message(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return text.strip()


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class InfluxSink(ABC):
    """One interface over InfluxDB 1.x (``/write``) and 2.x/3.x (``WriteApi``).

    Parameters
    ----------
    url
        Base URL, e.g. ``http://127.0.0.1:8086``.
    retention
        Database name -> retention policy (:func:`streams.sink.retention_policies`);
        writes to a listed database name that policy explicitly.
    policy
        Retry policy for transient failures.
    timeout_s
        Per-request timeout.
    gzip_level
        ``Content-Encoding: gzip`` level for write bodies (0 sends them uncompressed);
        ``None``: :func:`default_gzip_level`.
    """

    api: str = ""

    def __init__(
        self,
        url: str,
        retention: Mapping[str, RetentionPolicy],
        policy: RetryPolicy | None = None,
        timeout_s: float = 30.0,
        gzip_level: int | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.url = url.rstrip("/")
        self.retention = dict(retention)
        self.policy = policy or RetryPolicy()
        self.timeout_s = timeout_s
        self.gzip_level = default_gzip_level(self.url) if gzip_level is None else gzip_level
        self.max_body_bytes = max_body_bytes
        self.stats = RetryStats()
        #: Called as ``on_retry(attempt, wait_s, reason)`` before each retry wait.
        self.on_retry: Callable[[int, float, str], None] | None = None
        self._session = requests.Session()

    # -- writing ----------------------------------------------------------------------
    def write(
        self, database: str, lines: Lines, *, give_up: Callable[[], bool] | None = None
    ) -> None:
        """Write line protocol (ns timestamps) and return once InfluxDB acknowledged it.

        ``give_up``: polled while a retry waits; true ends the write with
        :class:`SinkUnavailableError` (a worker's revoked partition, docs/STREAMS.md).

        Raises
        ------
        SinkUnavailableError
            InfluxDB stayed unreachable until the retry deadline.
        SinkRejectedError
            The server refused the data (not retried); for a partial write the valid
            points are stored and the message names the rest. A body split into several
            requests is written to the end first when one request gets a 400 (the error
            of the first refused request is raised afterwards).
        """
        body = as_body(lines)
        rejected: SinkRejectedError | None = None
        for chunk in split_body(body, self.max_body_bytes):
            payload = gzip.compress(chunk, self.gzip_level, mtime=0) if self.gzip_level else chunk
            try:
                call_with_retry(
                    partial(self._write_once, database, payload),
                    self.policy,
                    f"write to {database!r}",
                    self.stats,
                    self.on_retry,
                    give_up=give_up,
                )
            except SinkRejectedError as exc:
                if exc.status not in (400, 422):
                    raise  # auth, unknown database, ...: every chunk would be refused
                # 400 (1.x) / 422 (2.x: unprocessable) is about this chunk's data (parse
                # error, field type conflict): the following chunks are still written,
                # so one bad point loses nothing else.
                rejected = rejected or exc
                continue
            self.stats.writes += 1
            self.stats.points += count_lines(chunk)
            self.stats.bytes += len(chunk)
        if rejected is not None:
            raise rejected

    def write_many(self, database: str, bodies: Iterable[Lines], depth: int = 2) -> int:
        """Write a stream of bodies, producing the next while earlier ones are in flight.

        ``bodies`` is typically a generator that encodes one chunk of columns per step:
        encoding runs in the calling thread while a writer thread waits on InfluxDB (the
        socket wait releases the GIL), so the cost is ``max(encode, write)`` per chunk
        rather than their sum. Bodies are written in order, at most ``depth`` ahead of
        the acknowledgements; returns the number of bodies once *all* are acknowledged.

        Raises
        ------
        SinkUnavailableError, SinkRejectedError
            The first failure of any body (later bodies are not written).
        """
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        pending: deque[Future[None]] = deque()
        written = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="influx-write") as pool:
            try:
                for body in bodies:
                    pending.append(pool.submit(self.write, database, body))
                    while len(pending) > depth:
                        pending.popleft().result()
                        written += 1
                while pending:
                    pending.popleft().result()
                    written += 1
            finally:
                for fut in pending:
                    fut.cancel()
        return written

    @abstractmethod
    def _write_once(self, database: str, payload: bytes) -> None:
        """One write attempt; raises :class:`RetryableError` or :class:`SinkRejectedError`."""

    # -- querying (InfluxQL over the 1.x /query endpoint; 2.x serves it via DBRP) -----
    def query(self, database: str | None, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; returns the series of the first statement (``name, columns,
        values``, times in ns).

        Raises
        ------
        SinkQueryError
            If the statement returned an error.
        """
        results = call_with_retry(
            lambda: self._query_once(database, influxql),
            self.policy,
            "query",
            self.stats,
            self.on_retry,
        )
        first = results[0] if results else {}
        if "error" in first:
            raise SinkQueryError(f"{influxql!r}: {first['error']}")
        return list(first.get("series", []))

    def count(self, database: str, measurement: str, field: str) -> int:
        """Number of points of ``measurement`` that carry ``field`` (0 if none)."""
        series = self.query(
            database, f"SELECT count({quote_ident(field)}) FROM {quote_ident(measurement)}"
        )
        return int(series[0]["values"][0][1]) if series else 0

    def _query_once(self, database: str | None, influxql: str) -> list[dict[str, Any]]:
        data = {"q": influxql, "epoch": "ns"}
        if database is not None:
            data["db"] = database
        try:
            resp = self._session.post(self.url + "/query", data=data, timeout=self.timeout_s)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetryableError(type(exc).__name__) from None
        except requests.RequestException as exc:
            raise SinkError(f"query failed: {type(exc).__name__}: {exc}") from None
        check_response(resp.status_code, resp.text, resp.headers)
        return list(resp.json().get("results", []))

    # -- set-up -------------------------------------------------------------------------
    @abstractmethod
    def ensure_databases(self) -> None:
        """Create every database/bucket of ``retention`` with its policy (idempotent)."""

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Release connections."""
        self._session.close()

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"
