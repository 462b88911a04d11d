"""MQTT topic grammar: ``city/{district}/{family}/{device_id}/{channel}``.

``district`` matches ``[a-z0-9][a-z0-9-]{0,31}``, ``device_id`` matches
``[A-Za-z0-9][A-Za-z0-9_-]{0,63}``, ``family`` is one of :data:`FAMILIES` and ``channel`` one
of that family's :data:`CHANNELS`. Anything else under ``city/#`` is a contract violation
(rules ``topic_shape``, ``district``, ``family``, ``device_id``, ``channel``). An optional
``prefix`` (e.g. ``"test-1a2b/"``) isolates test runs and tenants on a shared broker.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ingest.contract.errors import ContractViolation

ROOT = "city"

#: Channels per device family, in documentation order.
CHANNELS: dict[str, tuple[str, ...]] = {
    "wearable": ("vitals", "accel", "status"),
    "airq": ("air",),
    "eldercare": ("pendant", "motion", "door", "bed", "chair", "panic", "status"),
}
FAMILIES: tuple[str, ...] = tuple(CHANNELS)

DISTRICT_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class TopicParts(NamedTuple):
    """The four variable parts of a device topic."""

    district: str
    family: str
    device_id: str
    channel: str


def format_topic(
    district: str, family: str, device_id: str, channel: str, *, prefix: str = ""
) -> str:
    """Build a device topic, checking every part against the grammar.

    Raises
    ------
    ContractViolation
        If any part does not match the grammar.
    """
    topic = f"{prefix}{ROOT}/{district}/{family}/{device_id}/{channel}"
    parse_topic(topic, prefix=prefix)
    return topic


def parse_topic(topic: str, *, prefix: str = "") -> TopicParts:
    """Split and check a device topic.

    Raises
    ------
    ContractViolation
        With rule ``topic_shape`` (not ``{prefix}city/a/b/c/d``), ``district``, ``family``,
        ``device_id`` or ``channel``.
    """
    if prefix:
        if not topic.startswith(prefix):
            raise _bad("topic", topic, "topic_shape", f"topic does not start with {prefix!r}")
        rest = topic[len(prefix) :]
    else:
        rest = topic
    parts = rest.split("/")
    if len(parts) != 5 or parts[0] != ROOT:
        raise _bad(
            "topic",
            topic,
            "topic_shape",
            f"expected {prefix}{ROOT}/{{district}}/{{family}}/{{device_id}}/{{channel}}",
        )
    _, district, family, device_id, channel = parts
    if DISTRICT_RE.fullmatch(district) is None:
        raise _bad("district", district, "district", f"district must match {DISTRICT_RE.pattern}")
    channels = CHANNELS.get(family)
    if channels is None:
        raise _bad("family", family, "family", f"family must be one of {', '.join(FAMILIES)}")
    if DEVICE_ID_RE.fullmatch(device_id) is None:
        raise _bad(
            "device_id", device_id, "device_id", f"device_id must match {DEVICE_ID_RE.pattern}"
        )
    if channel not in channels:
        raise _bad("channel", channel, "channel", f"{family} channels are {', '.join(channels)}")
    return TopicParts(district, family, device_id, channel)


def _bad(field: str, value: str, rule: str, message: str) -> ContractViolation:
    return ContractViolation.single(field, value, rule, message)
