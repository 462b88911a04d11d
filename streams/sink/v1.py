"""InfluxDB 1.x back end: ``POST /write?db=&rp=&precision=ns`` (gzip) and InfluxQL.

What the local stack runs (Debian's ``influxdb`` 1.6). Credentials go in an HTTP basic
``Authorization`` header, never in the URL, so they cannot leak into exception texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from pydantic import SecretStr

from streams.sink.base import InfluxSink, check_response, quote_ident
from streams.sink.errors import RetryableError, SinkError, SinkQueryError
from streams.sink.retention import RetentionPolicy


class V1Sink(InfluxSink):
    """InfluxDB 1.x over its HTTP API.

    Parameters
    ----------
    username, password
        A user with write access (``ALL PRIVILEGES`` for :meth:`ensure_databases`);
        ``username=None`` for an instance without authentication.
    **kwargs
        See :class:`streams.sink.base.InfluxSink`.
    """

    api = "v1"

    def __init__(
        self,
        url: str,
        retention: Mapping[str, RetentionPolicy],
        username: str | None = None,
        password: SecretStr | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, retention, **kwargs)
        if username is not None:
            secret = password.get_secret_value() if password is not None else ""
            self._session.auth = (username, secret)
        self._write_headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip_level:
            self._write_headers["Content-Encoding"] = "gzip"

    def _write_once(self, database: str, payload: bytes) -> None:
        params = {"db": database, "precision": "ns"}
        rp = self.retention.get(database)
        if rp is not None:
            params["rp"] = rp.name
        try:
            resp = self._session.post(
                self.url + "/write",
                params=params,
                data=payload,
                headers=self._write_headers,
                timeout=self.timeout_s,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RetryableError(type(exc).__name__) from None
        except requests.RequestException as exc:
            raise SinkError(f"write failed: {type(exc).__name__}: {exc}") from None
        check_response(resp.status_code, resp.text, resp.headers)

    def ensure_databases(self) -> None:
        """``CREATE DATABASE`` and a default retention policy per database (idempotent).

        An existing policy with other settings is altered to the documented ones.
        """
        for database, rp in self.retention.items():
            db = quote_ident(database)
            self.query(None, f"CREATE DATABASE {db}")
            spec = f"DURATION {rp.duration} REPLICATION 1 SHARD DURATION {rp.shard_duration}"
            try:
                self.query(
                    None, f"CREATE RETENTION POLICY {quote_ident(rp.name)} ON {db} {spec} DEFAULT"
                )
            except SinkQueryError:  # exists with different settings
                self.query(
                    None, f"ALTER RETENTION POLICY {quote_ident(rp.name)} ON {db} {spec} DEFAULT"
                )
