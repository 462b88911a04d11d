"""Through a real Mosquitto: counts, schema validity, truth, determinism, malformed."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from ingest.contract import ContractViolation, decode
from simulators.events import EVENT_TYPES
from tests.conftest import RunningStack
from tests.simulators.conftest import Subscriber, run_cli

pytestmark = pytest.mark.stack


def daytime_start() -> float:
    """The most recent 10:00 UTC (11:00 in the scenarios' city): residents are up, and the
    timestamps of a short run are inside the contract's 7-day window."""
    now = time.time()
    start = now - (now % 86400.0) + 10 * 3600.0
    return start if start < now - 120 else start - 86400.0


def key(topic: str) -> str:
    parts = topic.split("/")
    return f"{parts[2]}/{parts[4]}"


def test_smoke_run_counts_validity_and_truth(
    cli: Path, stack: RunningStack, subscriber: Subscriber, schemas: dict, tmp_path: Path
) -> None:
    summary_path, truth_path = tmp_path / "summary.json", tmp_path / "truth.jsonl"
    start = daytime_start()
    res = run_cli(
        cli,
        stack,
        "--scenario",
        "smoke",
        "--fast",
        "--duration",
        "50",  # smoke guarantees every event type between 25 s and 45 s
        "--seed",
        "11",
        "--start",
        str(start),
        "--summary-json",
        str(summary_path),
        "--truth",
        str(truth_path),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(summary_path.read_text())
    received = subscriber.wait_for(summary["published"])
    # exactly what was published arrived, channel by channel
    assert len(received) == summary["published"] == summary["acked"]
    assert Counter(key(t) for t, _ in received) == summary["published_by_family_channel"]
    by_channel = Counter(t.rsplit("/", 1)[1] for t, _ in received)
    assert by_channel == summary["published_by_channel"]
    assert summary["malformed"] == 0
    # everything validates against the exported JSON Schemas and the contract's decode
    validators = {name: jsonschema.Draft202012Validator(schema) for name, schema in schemas.items()}
    senml = 0
    for topic, payload in received:
        data = json.loads(payload)
        fam_ch = key(topic).replace("/", ".")
        if isinstance(data, list):
            senml += 1
            validators["senml"].validate(data)
        else:
            validators[fam_ch].validate(data)
        decode(topic, payload, now=start + 60.0)
    assert senml == summary["published_senml"] > 0
    # ground truth: one line per event, every injected type present
    truth = [json.loads(line) for line in truth_path.read_text().splitlines()]
    assert {e["type"] for e in truth} == set(EVENT_TYPES)
    assert Counter(e["type"] for e in truth) == summary["truth_by_type"]
    assert summary["truth_by_type"]["fall"] >= 2


def test_same_seed_same_messages_through_the_broker(
    cli: Path, stack: RunningStack, subscriber: Subscriber, tmp_path: Path
) -> None:
    start = daytime_start()
    args = [
        "--fast",
        "--duration",
        "5",
        "--seed",
        "21",
        "--start",
        str(start),
        "--wearables",
        "30",
        "--eldercare",
        "5",
        "--airq",
        "4",
    ]
    first = run_cli(cli, stack, *args, "--summary-json", str(tmp_path / "a.json"))
    assert first.returncode == 0, first.stderr
    n = json.loads((tmp_path / "a.json").read_text())["published"]
    run_a = subscriber.wait_for(n)
    assert len(run_a) == n
    subscriber.messages.clear()
    second = run_cli(cli, stack, *args, "--truth", str(tmp_path / "t.jsonl"))
    assert second.returncode == 0, second.stderr
    run_b = subscriber.wait_for(n)
    # per topic, the same payload bytes in the same order
    assert sorted(run_a) == sorted(run_b)
    per_topic = lambda msgs: {t: [p for tt, p in msgs if tt == t] for t, _ in msgs}  # noqa: E731
    assert per_topic(run_a) == per_topic(run_b)


def test_malformed_payloads_are_published_and_rejected(
    cli: Path, stack: RunningStack, subscriber: Subscriber, tmp_path: Path
) -> None:
    start = daytime_start()
    res = run_cli(
        cli,
        stack,
        "--fast",
        "--duration",
        "5",
        "--seed",
        "5",
        "--start",
        str(start),
        "--wearables",
        "40",
        "--eldercare",
        "5",
        "--airq",
        "5",
        "--malformed-rate",
        "0.05",
        "--summary-json",
        str(tmp_path / "s.json"),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    total = summary["published"] + summary["malformed"]
    assert summary["malformed"] > 10
    assert summary["acked"] == total
    assert sum(summary["malformed_by_kind"].values()) == summary["malformed"]
    received = subscriber.wait_for(total)
    assert len(received) == total
    rejected = Counter()
    for topic, payload in received:
        try:
            decode(topic, payload, now=start + 10.0)
        except ContractViolation as exc:
            rejected[exc.to_dict()["rule"]] += 1
    assert sum(rejected.values()) == summary["malformed"]


def test_unreachable_broker_is_a_clear_error(cli: Path, stack: RunningStack) -> None:
    res = run_cli(cli, stack, "--fast", "--duration", "1", "--mqtt-port", "1")
    assert res.returncode == 3
    assert "cannot connect" in res.stderr
