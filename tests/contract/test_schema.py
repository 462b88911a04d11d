"""Exported JSON Schemas (draft 2020-12) accept the same examples as the models and reject
bad ones; ``cityhealth contract schema --out DIR`` writes one file per family and channel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ingest.contract import SPECS, to_senml
from ingest.contract.schema import DRAFT, all_schemas, channel_schema
from tests.contract.examples import NOW, examples, topic
from tests.contract.test_rules import AIR, STATUS, VITALS, WINDOW, WINDOW_T

SCHEMAS = all_schemas()


def validator(family: str, channel: str) -> Draft202012Validator:
    schema = SCHEMAS[f"{family}.{channel}.json"]
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_one_schema_per_channel_with_units_and_loinc() -> None:
    assert {k for k in SCHEMAS if k.count("/") == 0} == {f"{s.key}.json" for s in SPECS.values()}
    for schema in SCHEMAS.values():
        assert schema["$schema"] == DRAFT
        Draft202012Validator.check_schema(schema)
    vitals = channel_schema(SPECS[("wearable", "vitals")])
    props = vitals["$defs"]["Vitals"]["properties"]
    assert props["heart_rate"]["loinc"] == "8867-4" and props["heart_rate"]["unit"] == "/min"
    assert props["spo2"]["loinc"] == "59408-5"
    assert props["body_temp"]["loinc"] == "8310-5" and props["body_temp"]["unit"] == "Cel"
    assert props["respiration_rate"]["loinc"] == "9279-1"
    air = SCHEMAS["airq.air.json"]["properties"]
    assert air["pm25"]["unit"] == "ug/m3" and air["o3"]["unit"] == "[ppb]"


@pytest.mark.parametrize(("key", "payloads"), sorted(examples().items()))
def test_schemas_accept_the_examples(key: tuple[str, str], payloads: list[dict[str, Any]]) -> None:
    v = validator(*key)
    for payload in payloads:
        errors = list(v.iter_errors(json.loads(json.dumps(payload))))
        assert not errors, [e.message for e in errors]


BAD: list[tuple[tuple[str, str], dict[str, Any]]] = [
    (("wearable", "vitals"), {**VITALS, "heart_rate": 251}),
    (("wearable", "vitals"), {**VITALS, "heart_rate": "72"}),
    (("wearable", "vitals"), {**VITALS, "hr": 1}),
    (("wearable", "vitals"), {"ts": NOW}),
    (("wearable", "vitals"), {"ts": NOW, "heart_rate": None}),
    (("wearable", "vitals"), {"ts": NOW, "steps": 1.5}),
    (("wearable", "vitals"), {"ts": [NOW], "heart_rate": [300.0]}),
    (("wearable", "status"), {**STATUS, "battery": 101}),
    (("wearable", "status"), {"battery": 1}),
    (("airq", "air"), {**AIR, "lat": 91}),
    (("airq", "air"), {**AIR, "pm25": -1}),
    (("airq", "air"), {"ts": NOW, "lat": 1, "lon": 1}),
    (("wearable", "accel"), {**WINDOW, "rate_hz": 10}),
    (("wearable", "accel"), {**WINDOW, "x": [200.0]}),
    (("wearable", "accel"), {k: v for k, v in WINDOW.items() if k != "rate_hz"}),
    (("eldercare", "pendant"), {**WINDOW_T, "t0": NOW}),
    (("eldercare", "pendant"), {**WINDOW, "x": []}),
    (("eldercare", "motion"), {"ts": NOW, "room": "a/b", "motion": True}),
    (("eldercare", "motion"), {"ts": NOW, "room": "hall", "motion": 1}),
    (("eldercare", "door"), {"ts": NOW, "door": "front"}),
    (("eldercare", "bed"), {"ts": NOW, "occupied": "yes"}),
    (("eldercare", "chair"), {"ts": -1, "occupied": True}),
    (("eldercare", "panic"), {"ts": NOW, "pressed": False}),
    (("eldercare", "status"), {**STATUS, "extra": 1}),
]


@pytest.mark.parametrize(
    ("key", "payload"), BAD, ids=[f"{k[0]}.{k[1]}-{i}" for i, (k, _) in enumerate(BAD)]
)
def test_schemas_reject_bad_payloads(key: tuple[str, str], payload: dict[str, Any]) -> None:
    assert list(validator(*key).iter_errors(payload))


def test_senml_pack_schema_accepts_encoder_output() -> None:
    from ingest.contract import decode

    v = Draft202012Validator(SCHEMAS["senml/pack.json"])
    for (family, channel), payloads in examples().items():
        for payload in payloads:
            model = decode(topic(family, channel), json.dumps(payload).encode(), now=NOW).model
            assert not list(v.iter_errors(to_senml(model)))
    assert list(v.iter_errors([]))
    assert list(v.iter_errors([{"n": "x", "v": "1"}]))


def test_cli_writes_one_file_per_family_and_channel(tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    proc = subprocess.run(
        [sys.executable, "-m", "cityhealth.cli", "contract", "schema", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == sorted(f"{s.key}.json" for s in SPECS.values())
    for path in out.glob("*.json"):
        schema = json.loads(path.read_text())
        assert schema["$schema"] == DRAFT
        Draft202012Validator.check_schema(schema)
    assert (out / "senml" / "pack.json").exists()


def test_cli_check_reports_structured_errors() -> None:
    cmd = [
        sys.executable,
        "-m",
        "cityhealth.cli",
        "contract",
        "check",
        "-t",
        topic("wearable", "vitals"),
        "--max-age-s",
        "0",
    ]
    ok = subprocess.run([*cmd, json.dumps(VITALS)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["reading"] == VITALS
    bad = subprocess.run(
        [*cmd, json.dumps({**VITALS, "heart_rate": 19})],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["errors"][0] == {
        "field": "heart_rate",
        "value": 19,
        "rule": "min",
        "message": "Input should be greater than or equal to 20",
    }


def test_cli_speed_reports_every_case_with_a_baseline() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cityhealth.cli", "contract", "speed", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "json.loads" in lines[0]
    assert len(lines) == 5
    for line in lines[1:]:
        ours, base, ratio = (float(x) for x in line.split()[-3:])
        assert ours > 0 and base > 0 and ratio == pytest.approx(ours / base, abs=0.01)


@pytest.mark.parametrize(("key", "payloads"), sorted(examples().items()))
def test_decoded_senml_dumps_validate_against_the_channel_schema(
    key: tuple[str, str], payloads: list[dict[str, Any]]
) -> None:
    """How a subscriber checks SenML traffic against the channel schemas: decode, dump."""
    from ingest.contract import decode, to_senml_json

    v = validator(*key)
    for payload in payloads:
        model = decode(topic(*key), json.dumps(payload).encode(), now=NOW).model
        again = decode(topic(*key), to_senml_json(model), now=NOW).model
        assert not list(v.iter_errors(again.model_dump(mode="json", exclude_none=True)))
