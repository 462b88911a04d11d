"""InfluxDB 2.x/3.x back end: influxdb-client ``WriteApi`` (synchronous) with token/org.

Each database name of the 1.x model is a bucket of the same name; :meth:`ensure_databases`
creates it with the retention of its policy and a DBRP mapping (database = bucket name,
retention policy = the policy name), so InfluxQL queries over ``/query`` work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

import urllib3
from influxdb_client import BucketRetentionRules, InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.dbrp_create import DBRPCreate
from influxdb_client.rest import ApiException
from influxdb_client.service.dbr_ps_service import DBRPsService
from pydantic import SecretStr

from streams.sink.base import InfluxSink, check_response
from streams.sink.errors import RetryableError, SinkError
from streams.sink.retention import RetentionPolicy
from streams.sink.retry import call_with_retry

T = TypeVar("T")


class V2Sink(InfluxSink):
    """InfluxDB 2.x/3.x through ``influxdb-client``.

    Parameters
    ----------
    token
        API token with write access to the buckets (and bucket/DBRP creation for
        :meth:`ensure_databases`).
    org
        Organisation name.
    **kwargs
        See :class:`streams.sink.base.InfluxSink`.
    """

    api = "v2"

    def __init__(
        self,
        url: str,
        retention: Mapping[str, RetentionPolicy],
        token: SecretStr,
        org: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, retention, **kwargs)
        secret = token.get_secret_value()
        self.org = org
        self._client = InfluxDBClient(
            url=self.url,
            token=secret,
            org=org,
            enable_gzip=bool(self.gzip_level),
            timeout=int(self.timeout_s * 1000),
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._session.headers["Authorization"] = f"Token {secret}"
        self.gzip_level = 0  # the client compresses itself; base.write must not do it twice

    def _write_once(self, database: str, payload: bytes) -> None:
        self._call(
            lambda: self._write_api.write(
                bucket=database,
                org=self.org,
                record=payload,
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]  # a str constant
            )
        )

    def _call(self, fn: Callable[[], T]) -> T:
        """Map influxdb-client/urllib3 failures onto the sink's error classes."""
        try:
            return fn()
        except ApiException as exc:
            if not exc.status:  # no HTTP answer at all: a transport failure, not a refusal
                raise RetryableError(f"no HTTP status: {exc.reason}") from None
            check_response(int(exc.status), str(exc.body or exc.reason), exc.headers)
            raise  # 2xx ApiException does not happen; keep mypy and readers sure
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(type(exc).__name__) from None

    def ensure_databases(self) -> None:
        """Create each bucket (retention from its policy) and its DBRP mapping."""
        call_with_retry(self._ensure_once, self.policy, "ensure buckets", self.stats)

    def _ensure_once(self) -> None:
        buckets = self._client.buckets_api()
        orgs = self._call(lambda: self._client.organizations_api().find_organizations(org=self.org))
        if not orgs:
            raise SinkError(f"InfluxDB organisation {self.org!r} not found (CITYHEALTH_INFLUX_ORG)")
        org_id = orgs[0].id
        dbrps = DBRPsService(self._client.api_client)
        for database, rp in self.retention.items():
            bucket = self._call(partial(buckets.find_bucket_by_name, database))
            if bucket is None:
                rules = BucketRetentionRules(
                    type="expire",
                    every_seconds=rp.seconds,
                    shard_group_duration_seconds=rp.shard_seconds,
                )
                create = partial(
                    buckets.create_bucket,
                    bucket_name=database,
                    org=orgs[0],  # influxdb-client deprecates org_id= here
                    retention_rules=rules,
                )
                bucket = self._call(create)
            existing = self._call(partial(dbrps.get_dbr_ps, org_id=org_id, db=database))
            # InfluxDB 2.7 lists a *virtual* mapping of every bucket (policy ``autogen``):
            # only a mapping that names our policy makes InfluxQL's db.rp names work.
            if not any(m.retention_policy == rp.name for m in existing.content or []):
                mapping = DBRPCreate(
                    org_id=org_id,
                    bucket_id=bucket.id,
                    database=database,
                    retention_policy=rp.name,
                    default=True,
                )
                self._call(partial(dbrps.post_dbrp, mapping))

    def close(self) -> None:
        """Close the write API, the client and the query session."""
        self._write_api.close()
        self._client.close()
        super().close()
