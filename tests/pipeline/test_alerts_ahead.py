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


def test_aqi_category_changes_of_one_minute_have_keys_of_their_own() -> None:
    """One id per district and minute; two categories share each severity."""
    usg, unhealthy = "Unhealthy for Sensitive Groups", "Unhealthy"

    def aqi(previous: str, category: str) -> Alert:
        evidence = {"previous_category": previous, "category": category}
        return alert(
            "north", 600.0, type="aqi_category", subject_kind="district", evidence=evidence
        )

    keys = [
        record_key(aqi("Moderate", usg)),
        record_key(aqi(usg, unhealthy)),
        record_key(aqi(unhealthy, usg)),
    ]
    assert len(set(keys)) == 3
    assert record_key(aqi("Moderate", usg)) == keys[0]


def test_a_step_publishes_each_record_once() -> None:
    ahead = AlertsAhead()
    a, b = alert("p-1", 100.0), alert("p-2", 100.0)
    fresh, ahead = ahead.take([a, b], step=1, now=10.0, offset=5)
    assert fresh == [a, b]
    assert ahead.take([alert("p-1", 100.0)], step=2, now=11.0, offset=6)[0] == []  # twice
    assert json.loads(ahead.record()) == {record_key(a): [10.0, 5], record_key(b): [10.0, 5]}


def test_take_changes_nothing_until_the_caller_adopts_the_result() -> None:
    """An aborted alert transaction published nothing: the retry must send them."""
    ahead = AlertsAhead()
    a = alert("p-1", 100.0)
    fresh, _ = ahead.take([a], step=1, now=10.0, offset=5)  # transaction aborted: dropped
    assert fresh == [a] and ahead.ahead == {}
    assert ahead.take([a], step=2, now=11.0, offset=5)[0] == [a]


def test_a_checkpoint_drops_its_steps_entries_and_later_ones_stay() -> None:
    ahead = AlertsAhead()
    a, b = alert("p-1", 100.0), alert("p-2", 200.0)
    _, ahead = ahead.take([a], step=1, now=10.0, offset=1)
    _, ahead = ahead.take([b], step=2, now=11.0, offset=2)  # cut before step 1's checkpoint
    after = ahead.checkpointed(1, now=12.0, acked=1)
    assert after is not None
    assert json.loads(after.record()) == {record_key(b): [11.0, 2]}
    assert json.loads(ahead.record()) == {record_key(a): [10.0, 1], record_key(b): [11.0, 2]}
    assert after.checkpointed(1, now=12.0, acked=1) is None  # nothing more to drop
    last = after.checkpointed(2, now=13.0, acked=2)
    assert last is not None and json.loads(last.record()) == {}


def test_a_restarted_owner_withholds_what_was_published_and_publishes_the_rest() -> None:
    before = AlertsAhead()
    a, b = alert("p-1", 100.0), alert("p-2", 100.0)
    _, before = before.take([a, b], step=7, now=50.0, offset=70)
    successor = AlertsAhead()
    successor.restore(before.record(), now=60.0)
    c = alert("p-3", 100.0)
    fresh, successor = successor.take([alert("p-1", 100.0), c], step=1, now=61.0, offset=65)
    assert fresh == [c]
    assert json.loads(successor.record()) == {
        record_key(a): [50.0, 65],
        record_key(b): [50.0, 70],
        record_key(c): [61.0, 65],
    }
    after = successor.checkpointed(1, now=62.0, acked=65)
    assert after is not None
    assert json.loads(after.record()) == {record_key(b): [50.0, 70]}  # not raised again yet
    assert after.take([alert("p-2", 100.0)], step=2, now=63.0, offset=70)[0] == []


def test_restored_entries_are_kept_however_late_the_restart() -> None:
    before = AlertsAhead()
    a = alert("p-1", 100.0)
    _, before = before.take([a], step=1, now=0.0, offset=10)
    late = AlertsAhead()
    late.restore(before.record(), now=24 * 3600.0)  # restarted a day later
    assert late.take([alert("p-1", 100.0)], step=1, now=24 * 3600.0 + 1, offset=10)[0] == []


def test_restored_entries_expire_once_the_replay_passed_them_and_ttl_since_restore() -> None:
    before = AlertsAhead()
    _, before = before.take([alert("p-1", 100.0)], step=1, now=0.0, offset=10)
    kept = AlertsAhead()
    kept.restore(before.record(), now=1000.0)
    assert kept.checkpointed(1, now=1000.0 + TTL_S + 1, acked=9) is None  # not passed yet
    assert kept.checkpointed(1, now=1001.0, acked=10) is None  # passed, but timers may come
    after = kept.checkpointed(1, now=1000.0 + TTL_S + 1, acked=10)
    assert after is not None and after.restored == {}


@pytest.mark.parametrize(
    "payload", [b"[1, 2]", b'{"k": "x"}', b'{"k": 5.0}', b"not json", b'{"k": [1.0]}']
)
def test_a_bad_record_is_a_value_error_and_restores_nothing(payload: bytes) -> None:
    ahead = AlertsAhead()
    with pytest.raises(ValueError):
        ahead.restore(payload, now=0.0)
    assert ahead.restored == {}
