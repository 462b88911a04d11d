"""``cityhealth dashboards push``: the requests it would send (no Grafana is reachable here,
so the upload itself is unverified against a live Grafana; see docs/DASHBOARDS.md)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from cityhealth.dashboards import load_dashboards, push, push_plan

APP = "from cityhealth.commands.dashboards import dashboards_app; dashboards_app()"


def test_push_plan_is_grafanas_create_update_body() -> None:
    dashboards = load_dashboards()
    before = json.dumps([d.model for d in dashboards], sort_keys=True)
    plan = push_plan(dashboards, "release 1")
    assert plan.folders == (("cityhealth-clinical", "clinical"),)
    assert len(plan.payloads) == len(dashboards)
    for dash, body in zip(dashboards, plan.payloads, strict=True):
        assert set(body) == {"dashboard", "folderUid", "overwrite", "message"}
        assert body["overwrite"] is True and body["message"] == "release 1"
        assert body["dashboard"]["id"] is None
        assert body["dashboard"]["uid"] == dash.uid
        assert body["dashboard"]["panels"] == dash.model["panels"]
        expected_folder = "cityhealth-clinical" if dash.folder == "clinical" else ""
        assert body["folderUid"] == expected_folder
    # building the plan leaves the loaded dashboards untouched
    assert json.dumps([d.model for d in dashboards], sort_keys=True) == before


def test_dry_run_prints_the_plan() -> None:
    out = subprocess.run(
        [sys.executable, "-c", APP, "push", "--url", "http://127.0.0.1:1", "--token", "t",
         "--uid", "cityhealth-resident-drilldown", "--dry-run"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    body = json.loads(out.stdout)
    assert body["folders"] == [["cityhealth-clinical", "clinical"]]
    assert [d["dashboard"]["uid"] for d in body["dashboards"]] == ["cityhealth-resident-drilldown"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_push_to_an_unreachable_grafana_fails_cleanly() -> None:
    """A real connection attempt (refused): a clear error and exit 1, no traceback."""
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(Exception, match="onnect"):
        push(url, "token", push_plan(load_dashboards()[:1]), timeout_s=2)
    out = subprocess.run(
        [sys.executable, "-c", APP, "push", "--url", url, "--token", "t"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: cannot push to {url}") and "Traceback" not in out.stderr
