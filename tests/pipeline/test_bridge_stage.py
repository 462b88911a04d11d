"""DecodeStage (the bridge's CPU stage) against the plain decode -> pseudonymise -> append path.

The stage caches each topic's batch route (stream, partition, pseudonymised provenance) and
appends windows as C doubles; the records it seals must be byte-identical to those of the
uncached path through the public APIs, including after the route cache is emptied.
"""

from __future__ import annotations

import time

import pytest

from cityhealth.bench.ingest_samples import malformed_messages, sample_messages
from cityhealth.settings import Settings
from ingest.batch import BatchLimits, MicroBatcher, decode
from ingest.bridge import stage as stage_module
from ingest.bridge.stage import DecodeStage, StageConfig
from ingest.contract import ContractViolation
from ingest.contract import decode as contract_decode
from ingest.pseudonym import pseudonymizer_from_settings

NOW = 1_800_000_000.0
KEY = "test-bridge-stage-key-0123456789abcdef"


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch headers, dead letters and the contract clock all read ``time.time``."""
    monkeypatch.setattr(time, "time", lambda: NOW)


def _messages() -> list[tuple[str, bytes]]:
    valid = sample_messages(400, now=NOW, devices=7).messages
    bad = [(t, p) for t, p, _ in malformed_messages()]
    # every topic several times, malformed ones interleaved
    return valid[:150] + bad + valid[150:] + bad


def _reference(settings: Settings, limits: BatchLimits) -> tuple[list[bytes], list[str]]:
    """Records and dead-letter rules of the straightforward path (no caches of the stage)."""
    pseudonymise = pseudonymizer_from_settings(settings)
    batcher = MicroBatcher(settings.kafka_partitions, producer="b1", limits=limits)
    records: list[bytes] = []
    rules: list[str] = []
    for token, (topic, payload) in enumerate(_messages()):
        try:
            decoded = contract_decode(topic, payload, max_age_s=7 * 86_400.0)
        except ContractViolation as exc:
            rules.append(exc.rule)
            continue
        device = pseudonymise(decoded.family, decoded.device_id)
        for reading in decoded.readings():
            sealed = batcher.append(
                reading.__dict__,
                device=device,
                district=decoded.district,
                family=decoded.family,
                channel=decoded.channel,
                token=token,
            )
            if sealed is not None:
                records.append(sealed.payload)
    records.extend(s.payload for s in batcher.flush())
    return records, rules


def _run_stage(
    settings: Settings, limits: BatchLimits, chunk: int
) -> tuple[list[bytes], list[str]]:
    stage = DecodeStage(settings, StageConfig(bridge_id="b1", limits=limits))
    raw = [(i, t.encode(), p) for i, (t, p) in enumerate(_messages())]
    records: list[bytes] = []
    rules: list[str] = []
    for start in range(0, len(raw), chunk):
        part = raw[start : start + chunk]
        out = stage.process(part)
        records.extend(s.payload for s in out.sealed)
        rules.extend(d.rule for d in out.rejected)
        assert len(out.accepted) + len(out.rejected) == len(part)  # every message answered
    records.extend(s.payload for s in stage.flush().sealed)
    return records, rules


@pytest.mark.parametrize("max_routes", [1 << 17, 3])
def test_stage_records_are_those_of_the_uncached_path(
    frozen_time: None, monkeypatch: pytest.MonkeyPatch, max_routes: int
) -> None:
    monkeypatch.setattr(stage_module, "_MAX_ROUTES", max_routes)  # 3: the cache is emptied
    settings = Settings(pseudonym_key=KEY)
    limits = BatchLimits(max_count=37)  # several seals per stream mid-run
    expected, expected_rules = _reference(settings, limits)
    got, rules = _run_stage(settings, limits, chunk=64)
    assert got == expected
    assert rules == expected_rules
    assert sorted(set(rules)) == sorted({r for _, _, r in malformed_messages()})
    motion = [decode(p) for p in got if decode(p).stream == "motion"]
    assert motion and all(b.ragged is not None and b.ragged["x"].size > 0 for b in motion)
