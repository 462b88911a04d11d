"""Optional Grafana for the local stack, started only when ``grafana-server`` is on PATH.

Its provisioning is generated next to its config: two InfluxQL data sources pointing at
the local InfluxDB 1.x (uids ``influx-sensitive`` and ``influx-public``, the same uids the
docker-compose provisioning in ``dashboards/provisioning`` gives its InfluxDB 2.x data
sources, so one dashboard JSON works in both), and a file provider that loads every
dashboard JSON under the repository's ``dashboards/`` folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import requests

from cityhealth.credentials import influx_password
from cityhealth.settings import REPO_ROOT
from cityhealth.stack.service import Service

DASHBOARDS_DIR = REPO_ROOT / "dashboards"


def grafana_binary() -> str | None:
    """``grafana-server`` on PATH, else None (Grafana is optional)."""
    return shutil.which("grafana-server")


def _home(binary: str) -> Path:
    for candidate in (Path("/usr/share/grafana"), Path(binary).resolve().parent.parent):
        if (candidate / "conf" / "defaults.ini").exists():
            return candidate
    return Path("/usr/share/grafana")


class Grafana(Service):
    """``grafana-server --homepath ... --config conf/grafana.ini`` on loopback."""

    name: ClassVar[str] = "grafana"
    env_hint: ClassVar[str] = "CITYHEALTH_GRAFANA_PORT"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.addr.grafana_port}"

    def ports(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.addr.grafana_port)]

    def _provisioning(self) -> Path:
        prov = self.paths.conf / "provisioning"
        (prov / "datasources").mkdir(parents=True, exist_ok=True)
        (prov / "dashboards").mkdir(parents=True, exist_ok=True)
        (prov / "plugins").mkdir(parents=True, exist_ok=True)
        (prov / "alerting").mkdir(parents=True, exist_ok=True)
        s = self.settings
        sources = [
            {
                "name": f"InfluxDB {kind}",
                "uid": f"influx-{kind}",
                "type": "influxdb",
                "access": "proxy",
                "url": s.influx_url,
                "user": s.influx_username,
                "jsonData": {"dbName": db, "httpMode": "POST"},
                "secureJsonData": {"password": influx_password(s).get_secret_value()},
                "isDefault": kind == "public",
            }
            for kind, db in (("sensitive", s.influx_db_sensitive), ("public", s.influx_db_public))
        ]
        # JSON is valid YAML; Grafana reads both.
        (prov / "datasources" / "cityhealth.yaml").write_text(
            json.dumps({"apiVersion": 1, "datasources": sources}, indent=2)
        )
        provider = {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "cityhealth",
                    "type": "file",
                    "allowUiUpdates": False,
                    "options": {"path": str(DASHBOARDS_DIR), "foldersFromFilesStructure": True},
                }
            ],
        }
        (prov / "dashboards" / "cityhealth.yaml").write_text(json.dumps(provider, indent=2))
        return prov

    def command(self) -> list[str]:
        binary = grafana_binary() or "grafana-server"
        data = self.paths.data
        ini = self.paths.conf / "grafana.ini"
        ini.write_text(
            "\n".join(
                [
                    "[server]",
                    "http_addr = 127.0.0.1",
                    f"http_port = {self.addr.grafana_port}",
                    "[paths]",
                    f"data = {data}",
                    f"logs = {self.paths.root}",
                    f"plugins = {data / 'plugins'}",
                    f"provisioning = {self._provisioning()}",
                    "[analytics]",
                    "reporting_enabled = false",
                    "check_for_updates = false",
                    "[log]",
                    "mode = console",
                    "level = warn",
                ]
            )
            + "\n"
        )
        return [binary, "--homepath", str(_home(binary)), "--config", str(ini)]

    def probe(self) -> str | None:
        try:
            resp = requests.get(self.url + "/api/health", timeout=3)
        except requests.RequestException as exc:
            return f"cannot reach {self.url}: {type(exc).__name__}"
        return None if resp.status_code == 200 else f"/api/health answered {resp.status_code}"

    def describe(self) -> dict[str, Any]:
        return {"url": self.url}
