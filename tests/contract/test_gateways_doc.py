"""docs/GATEWAYS.md stays honest: every ``mosquitto_pub`` line in it, expanded by a real bash
(quotes, ``$NOW``), publishes a payload that the contract accepts, for every channel in both
encodings, logged in as the device of its topic; every rule name is documented. The payload
checks shadow ``mosquitto_pub`` by a shell function that records its arguments; one test runs
the same lines with the real ``mosquitto_pub`` against a real broker with per-device users."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from cityhealth.stack.mosquitto import DEVICES_FILE, Mosquitto
from cityhealth.stack.process import spawn, stop, wait_until
from ingest.contract import CHANNELS, decode
from ingest.contract.errors import _RULES
from ingest.contract.topics import parse_topic
from ingest.mqtt_auth import mqtt_credentials
from tests.conftest import stack_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "GATEWAYS.md"
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
RECORD = 'mosquitto_pub() { printf "%s\\0" "$@"; printf "\\1"; }\n'


def _blocks() -> str:
    """The doc's bash blocks that set variables or publish, as one script."""
    blocks = [b for b in BLOCK.findall(DOC.read_text()) if "mosquitto_pub" in b or "NOW=" in b]
    return "\n".join(blocks)


def published() -> list[dict[str, str]]:
    """Run the doc's shell blocks; return one ``{option: value}`` per mosquitto_pub call."""
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", RECORD + _blocks()],
        capture_output=True,
        check=True,
    ).stdout
    calls = []
    for call in out.split(b"\1")[:-1]:
        args = [a.decode() for a in call.split(b"\0")[:-1]]
        opts = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}
        assert len(args) % 2 == 0, args
        calls.append(opts)
    return calls


def test_every_mosquitto_pub_line_validates() -> None:
    calls = published()
    assert len(calls) >= 2 * sum(len(c) for c in CHANNELS.values())
    seen: set[tuple[str, str, str]] = set()
    for opts in calls:
        assert opts["-V"] == "mqttv5" and opts["-q"] == "1", opts
        # Logged in as the device itself: the broker refuses anonymous clients, and its ACL
        # lets a device user publish to its own topics only.
        assert opts["-u"] == parse_topic(opts["-t"]).device_id and opts["-P"], opts
        decoded = decode(opts["-t"], opts["-m"].encode(), now=time.time())
        seen.add((decoded.family, decoded.channel, decoded.encoding))
    wanted = {(f, c, e) for f, cs in CHANNELS.items() for c in cs for e in ("json", "senml")}
    assert wanted <= seen, wanted - seen


def test_every_rule_is_documented() -> None:
    text = DOC.read_text()
    table = {
        r
        for row in re.findall(r"^\| (`.+?`(?:, `.+?`)*) \|", text, re.M)
        for r in re.findall(r"`([a-z_]+)`", row)
    }
    rules = set(_RULES.values()) | {
        "topic_shape",
        "district",
        "family",
        "device_id",
        "channel",
        "empty",
        "encoding",
        "payload_shape",
        "type",
        "no_measurement",
        "ts_future",
        "ts_past",
        "window_form",
        "length_mismatch",
        "monotonic",
        "window_duration",
        "window_rate",
        "senml_pack",
        "senml_label",
        "senml_name",
        "senml_unit",
        "senml_value",
        "senml_time",
        "senml_duplicate",
        "senml_axes",
    }
    assert rules <= table, rules - table


def test_python_gateway_example_compiles() -> None:
    code = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code
    for snippet in code:
        compile(snippet, str(DOC), "exec")


@pytest.mark.stack
def test_doc_lines_publish_to_a_real_broker_as_per_device_users(tmp_path: Path) -> None:
    """The doc's lines, run by the real ``mosquitto_pub`` against a broker configured like
    the local stack's (generated service users, ACL) plus the doc's device users in
    ``devices.passwd``: every message arrives; a wrong password is refused."""
    calls = published()
    password = "issued-" + os.urandom(6).hex()
    settings = stack_settings(tmp_path / "data")
    broker = Mosquitto(settings)
    broker.paths.make()
    devices = sorted({c["-u"] for c in calls})
    plain = tmp_path / "devices.plain"
    plain.write_text("".join(f"{d}:{password}\n" for d in devices))
    subprocess.run(["mosquitto_passwd", "-U", str(plain)], check=True)
    (broker.paths.root / DEVICES_FILE).write_text(plain.read_text())
    spawn(broker.command(), cwd=broker.paths.root, log=broker.paths.log, pid_file=broker.paths.pid)
    got: list[str] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.username_pw_set(*mqtt_credentials(settings, "bridge"))
    sub.on_message = lambda c, u, msg: got.append(msg.topic)
    try:
        assert wait_until(lambda: broker.probe() is None, timeout_s=30)
        sub.on_connect = lambda c, *a: c.subscribe("city/#", qos=1)
        sub.connect(settings.mqtt_host, settings.mqtt_port)
        sub.loop_start()
        assert wait_until(sub.is_connected, timeout_s=10)
        time.sleep(0.5)  # SUBACK before the first publish
        # mosquitto_pub reads default options from $XDG_CONFIG_HOME/mosquitto_pub: the port.
        (tmp_path / "mosquitto_pub").write_text(f"-h 127.0.0.1\n-p {settings.mqtt_port}\n")
        env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "DEVICE_PASSWORD": password}
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _blocks()], env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        assert wait_until(lambda: len(got) >= len(calls), timeout_s=30), (len(got), len(calls))
        assert sorted(got) == sorted(c["-t"] for c in calls)
        env["DEVICE_PASSWORD"] = "wrong"
        refused = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _blocks()], env=env, capture_output=True, text=True
        )
        assert refused.returncode != 0 and "not authorized" in refused.stderr.lower()
    finally:
        sub.disconnect()
        sub.loop_stop()
        stop(broker.paths.pid)
