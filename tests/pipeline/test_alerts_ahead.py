"""The alerts-ahead set (streams/ahead.py): which alerts a commit step publishes, which a
restarted owner withholds, and what its checkpoint record carries."""

from __future__ import annotations

import json

import pytest

from streams.ahead import TTL_S, AlertsAhead, record_key
from streams.alerts import Alert


def alert(subject: str, start: float, **kw: object) -> Alert:
    fields: dict[str, object] = {
        "type": "news2",
        "severity": "warning",
        "subject": subject,
        "subject_kind": "device",
        "district": "north",
        "start": start,
        "sensor_ts": start + 1.0,
        "message": "NEWS2 medium",
    }
    fields.update(kw)
    return Alert(**fields)  # type: ignore[arg-type]


def test_record_keys_tell_open_escalated_and_clear_records_apart() -> None:
    opened = alert("p-1", 100.0)
    escalated = alert("p-1", 100.0, severity="critical", sensor_ts=130.0)
    cleared = alert("p-1", 100.0, end=200.0, sensor_ts=200.0)
    keys = {record_key(a) for a in (opened, escalated, cleared)}
    assert len(keys) == 3
    assert all(k.startswith(opened.id) for k in keys)
    # the emission time is not part of it: a replay raises the same key
    assert record_key(alert("p-1", 100.0, emitted_ts=5.0)) == record_key(opened)


def test_a_step_publishes_each_record_once() -> None:
    ahead = AlertsAhead()
    a, b = alert("p-1", 100.0), alert("p-2", 100.0)
    assert ahead.take([a, b], step=1, now=10.0) == [a, b]
    assert ahead.take([alert("p-1", 100.0)], step=2, now=11.0) == []  # raised twice
    assert json.loads(ahead.record()) == {record_key(a): 10.0, record_key(b): 10.0}


def test_a_checkpoint_drops_its_steps_entries_and_later_ones_stay() -> None:
    ahead = AlertsAhead()
    a, b = alert("p-1", 100.0), alert("p-2", 200.0)
    ahead.take([a], step=1, now=10.0)
    ahead.take([b], step=2, now=11.0)  # cut before step 1's checkpoint was published
    after = ahead.checkpointed(1, now=12.0)
    assert after is not None
    assert json.loads(after.record()) == {record_key(b): 11.0}
    assert json.loads(ahead.record()) == {record_key(a): 10.0, record_key(b): 11.0}  # unchanged
    assert after.checkpointed(1, now=12.0) is None  # nothing more to drop: no new record
    last = after.checkpointed(2, now=13.0)
    assert last is not None and json.loads(last.record()) == {}


def test_a_restarted_owner_withholds_what_was_published_and_publishes_the_rest() -> None:
    before = AlertsAhead()
    a, b = alert("p-1", 100.0), alert("p-2", 100.0)
    before.take([a, b], step=7, now=50.0)
    successor = AlertsAhead()
    successor.restore(before.record(), now=60.0)
    c = alert("p-3", 100.0)
    assert successor.take([alert("p-1", 100.0), c], step=1, now=61.0) == [c]
    # a withheld entry stays in the record until the replayed step's checkpoint covers it
    assert json.loads(successor.record()) == {
        record_key(a): 50.0,
        record_key(b): 50.0,
        record_key(c): 61.0,
    }
    after = successor.checkpointed(1, now=62.0)
    assert after is not None
    assert json.loads(after.record()) == {record_key(b): 50.0}  # not raised again yet
    assert after.take([alert("p-2", 100.0)], step=2, now=63.0) == []


def test_restored_entries_expire() -> None:
    before = AlertsAhead()
    a = alert("p-1", 100.0)
    before.take([a], step=1, now=0.0)
    late = AlertsAhead()
    late.restore(before.record(), now=TTL_S + 1.0)
    assert late.restored == {}
    kept = AlertsAhead()
    kept.restore(before.record(), now=TTL_S - 1.0)
    assert kept.restored == {record_key(a): 0.0}
    after = kept.checkpointed(1, now=TTL_S + 1.0)
    assert after is not None and after.restored == {}


@pytest.mark.parametrize("payload", [b"[1, 2]", b'{"k": "x"}', b"not json"])
def test_a_bad_record_is_a_value_error_and_restores_nothing(payload: bytes) -> None:
    ahead = AlertsAhead()
    with pytest.raises(ValueError):
        ahead.restore(payload, now=0.0)
    assert ahead.restored == {}
