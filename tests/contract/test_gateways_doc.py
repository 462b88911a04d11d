"""docs/GATEWAYS.md stays honest: every ``mosquitto_pub`` line in it, expanded by a real bash
(quotes, ``$NOW``), publishes a payload that the contract accepts, for every channel in both
encodings; every rule name is documented. No broker needed: ``mosquitto_pub`` is shadowed by
a shell function that records its arguments."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from ingest.contract import CHANNELS, decode
from ingest.contract.errors import _RULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "GATEWAYS.md"
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
RECORD = 'mosquitto_pub() { printf "%s\\0" "$@"; printf "\\1"; }\n'


def published() -> list[dict[str, str]]:
    """Run the doc's shell blocks; return one ``{option: value}`` per mosquitto_pub call."""
    blocks = [b for b in BLOCK.findall(DOC.read_text()) if "mosquitto_pub" in b or "NOW=" in b]
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", RECORD + "\n".join(blocks)],
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
