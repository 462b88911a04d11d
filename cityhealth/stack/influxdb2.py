"""A private InfluxDB 2.x OSS server for the v2 sink's live tests (and manual trials).

``influxd`` 2.x is not a Debian package: ``scripts/install_influxdb2.sh`` builds the
pinned :data:`INFLUXDB2_VERSION` from the Go module proxy into
``<cache_dir>/influxdb2-<version>/bin/influxd``. :class:`Influxdb2` runs it on a free
loopback port with every file (BoltDB, SQLite, TSM engine) under one data directory, and
onboards it through ``POST /api/v2/setup`` (InfluxDB 2.x API reference, "Setup") with an
organisation, a user and an all-access operator token that are generated on first start
and kept in 0600 files there (:func:`ingest.secret_file.load_or_create_secret`), so a
restart on the same directory finds the same token. :meth:`Influxdb2.ensure_buckets`
creates the buckets of the 1.x model with DBRP mappings (database = bucket name,
retention policy = the policy's name, default), so InfluxQL over ``/query`` reaches them
("Query with InfluxQL", InfluxDB OSS v2 documentation); the *virtual* mappings InfluxDB
2.7 lists for every bucket (policy ``autogen``) do not count as one.

The token is never logged and never part of an exception message.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests
from pydantic import SecretStr

from cityhealth.settings import Settings
from cityhealth.stack.process import StackError, running, spawn, stop, tail, wait_until
from ingest.secret_file import load_or_create_secret

log = logging.getLogger(__name__)

#: The release ``scripts/install_influxdb2.sh`` builds (keep the two in step).
INFLUXDB2_VERSION = "v2.7.12"


class RetentionLike(Protocol):
    """What a bucket needs from a retention policy (``streams.sink.RetentionPolicy``)."""

    @property
    def name(self) -> str: ...

    @property
    def seconds(self) -> int: ...

    @property
    def shard_seconds(self) -> int: ...


def influxd2_binary(cache_dir: Path, version: str = INFLUXDB2_VERSION) -> Path:
    """Where the install script puts ``influxd`` ``version`` under ``cache_dir``."""
    return Path(cache_dir).expanduser() / f"influxdb2-{version}" / "bin" / "influxd"


def influxd2_installed(cache_dir: Path, version: str = INFLUXDB2_VERSION) -> bool:
    """Whether ``scripts/install_influxdb2.sh`` has built ``version`` into ``cache_dir``."""
    path = influxd2_binary(cache_dir, version)
    return path.is_file() and path.stat().st_mode & 0o111 != 0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Influxdb2:
    """One ``influxd`` 2.x process on loopback with its data under ``data_dir``.

    Parameters
    ----------
    binary
        The ``influxd`` 2.x executable (:func:`influxd2_binary`).
    data_dir
        Holds ``influxd.bolt``, ``influxd.sqlite``, ``engine/``, the log, the pid file and
        the generated ``token``/``password`` files.
    org, username
        Organisation and operator user created at onboarding.
    port
        HTTP port; 0 picks a free one at the first :meth:`start` and keeps it afterwards
        (a restart for an outage test comes back on the same address).
    """

    binary: Path
    data_dir: Path
    org: str = "cityhealth"
    username: str = "cityhealth"
    host: str = "127.0.0.1"
    port: int = 0
    timeout_s: float = 10.0
    _session: requests.Session = field(default_factory=requests.Session, repr=False)

    # -- files and addresses ----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "influxd.log"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "influxd.pid"

    @property
    def token(self) -> SecretStr:
        """The operator token (generated on first use, mode 0600)."""
        return load_or_create_secret(
            self.data_dir / "token", label="InfluxDB 2.x token", error=StackError
        )

    def _password(self) -> SecretStr:
        return load_or_create_secret(
            self.data_dir / "password", label="InfluxDB 2.x password", error=StackError
        )

    def settings(self, base: Settings) -> Settings:
        """``base`` pointed at this server through the v2 API (URL, token, organisation)."""
        return base.model_copy(
            update={
                "influx_api": "v2",
                "influx_url": self.url,
                "influx_token": self.token,
                "influx_org": self.org,
            }
        )

    # -- process ------------------------------------------------------------------------
    def command(self) -> list[str]:
        data = self.data_dir
        return [
            str(self.binary),
            f"--bolt-path={data / 'influxd.bolt'}",
            f"--sqlite-path={data / 'influxd.sqlite'}",
            f"--engine-path={data / 'engine'}",
            f"--http-bind-address={self.host}:{self.port}",
            "--reporting-disabled",  # no phoning home to usage.influxdata.com
            "--ui-disabled",  # built without assets anyway
            "--log-level=warn",
        ]

    def is_running(self) -> bool:
        return running(self._pid_file) is not None

    def start(self, timeout_s: float = 60.0) -> None:
        """Start ``influxd`` (if not running), wait until healthy, onboard a fresh one."""
        if not (self.binary.is_file() and self.binary.stat().st_mode & 0o111 != 0):
            raise StackError(f"{self.binary} missing: run scripts/install_influxdb2.sh")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        record = running(self._pid_file)
        if record is not None and self.port == 0 and record.ports:
            self.port = record.ports[0]  # a server this data directory already runs
        if record is None:
            if self.port == 0:
                self.port = _free_port(self.host)
            spawn(
                self.command(),
                cwd=self.data_dir,  # influxd reads ./config.{toml,yaml,json}: there is none
                log=self.log_path,
                pid_file=self._pid_file,
                ports=(self.port,),
            )
        if not wait_until(lambda: self.probe() is None, timeout_s=timeout_s):
            reason = self.probe()
            self.stop()
            raise StackError(f"influxd 2.x not healthy at {self.url}: {reason}\n{self._log()}")
        self._onboard()

    def stop(self) -> bool:
        """Stop the process (data kept); True when one was running."""
        return stop(self._pid_file)

    def _log(self) -> str:
        return tail(self.log_path, 20)

    # -- HTTP -------------------------------------------------------------------------
    def probe(self) -> str | None:
        """None once ``GET /health`` says ``pass``, else the reason."""
        try:
            resp = self._session.get(self.url + "/health", timeout=3)
        except requests.RequestException as exc:
            return f"cannot reach {self.url}/health: {type(exc).__name__}"
        if resp.status_code != 200:
            return f"/health answered {resp.status_code}"
        status = resp.json().get("status")
        return None if status == "pass" else f"/health status {status!r}"

    def version(self) -> str:
        """The server's version string from ``/health`` (e.g. ``v2.7.12``)."""
        return str(self._session.get(self.url + "/health", timeout=3).json().get("version"))

    def api(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """One authenticated ``/api/v2`` call; the decoded JSON (None for 204, and for 404
        when ``missing_ok``: a lookup by name answers 404 when nothing matches).

        Raises
        ------
        StackError
            On a non-2xx answer, with the server's message (never the token).
        """
        headers = {"Authorization": f"Token {self.token.get_secret_value()}"}
        resp = self._session.request(
            method, self.url + path, headers=headers, timeout=self.timeout_s, **kwargs
        )
        if missing_ok and resp.status_code == 404:
            return None
        if not 200 <= resp.status_code < 300:
            raise StackError(f"{method} {path} answered {resp.status_code}: {resp.text.strip()}")
        return resp.json() if resp.content else None

    def _onboard(self) -> None:
        """``POST /api/v2/setup`` once: the organisation, the user and our token."""
        resp = self._session.get(self.url + "/api/v2/setup", timeout=self.timeout_s)
        if not resp.ok or not resp.json().get("allowed"):
            return  # already set up (a restart on the same data directory)
        body = {
            "username": self.username,
            "password": self._password().get_secret_value(),
            "org": self.org,
            # onboarding insists on a first bucket; the sink's buckets come later
            "bucket": "onboarding",
            "token": self.token.get_secret_value(),
        }
        resp = self._session.post(self.url + "/api/v2/setup", json=body, timeout=self.timeout_s)
        if resp.status_code != 201:
            raise StackError(f"InfluxDB 2.x onboarding answered {resp.status_code}: {resp.text}")
        log.info("InfluxDB 2.x at %s onboarded: org %r, user %r", self.url, self.org, self.username)

    def org_id(self) -> str:
        orgs = self.api("GET", "/api/v2/orgs", params={"org": self.org})["orgs"]
        if not orgs:
            raise StackError(f"organisation {self.org!r} not found")
        return str(orgs[0]["id"])

    def ensure_buckets(self, retention: Mapping[str, RetentionLike]) -> dict[str, str]:
        """Create each database's bucket (``everySeconds`` from its policy) and its default
        DBRP mapping; idempotent. Returns database name -> bucket id."""
        org_id = self.org_id()
        ids: dict[str, str] = {}
        for database, rp in retention.items():
            query = {"orgID": org_id, "name": database}
            found = self.api("GET", "/api/v2/buckets", params=query, missing_ok=True)
            if found and found["buckets"]:
                bucket_id = str(found["buckets"][0]["id"])
            else:
                rule = {
                    "type": "expire",
                    "everySeconds": rp.seconds,
                    "shardGroupDurationSeconds": rp.shard_seconds,
                }
                bucket = {"orgID": org_id, "name": database, "retentionRules": [rule]}
                bucket_id = str(self.api("POST", "/api/v2/buckets", json=bucket)["id"])
            ids[database] = bucket_id
            query = {"orgID": org_id, "db": database, "rp": rp.name}
            mappings = self.api("GET", "/api/v2/dbrps", params=query)["content"]
            # 2.7 lists a *virtual* mapping (policy "autogen") for every bucket; only a real
            # one carries the policy name that InfluxQL queries may name.
            if not any(not m.get("virtual") for m in mappings):
                dbrp = {
                    "orgID": org_id,
                    "bucketID": bucket_id,
                    "database": database,
                    "retention_policy": rp.name,
                    "default": True,
                }
                self.api("POST", "/api/v2/dbrps", json=dbrp)
        return ids

    def close(self) -> None:
        """Stop the server and close the HTTP session."""
        self.stop()
        self._session.close()
