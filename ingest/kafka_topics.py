"""Kafka topic names of the pipeline, and their idempotent creation.

Ingest owns the names because ``streams`` imports ``ingest`` and never the other way round:
the bridge produces to them and the workers consume from them, so both read them here.
Every name is ``{settings.topic_prefix}{base}``; the prefix isolates test runs and tenants
on one cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.kafka_client import kafka_client_kwargs

if TYPE_CHECKING:
    from cityhealth.settings import Settings

#: Micro-batch streams (ingest.batch.STREAMS), one topic each.
STREAM_BASES: tuple[str, ...] = ("vitals", "motion", "home", "airq")
#: Records the bridge could not validate (ingest.deadletter).
DEADLETTER_BASE = "deadletter"
#: Detection events produced by the stream workers.
ALERTS_BASE = "alerts"
ALL_BASES: tuple[str, ...] = (*STREAM_BASES, DEADLETTER_BASE, ALERTS_BASE)

# Kafka's error code for "topic already exists" (a concurrent creator won the race).
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class Topics:
    """The topic names for one prefix."""

    prefix: str = ""

    def stream(self, stream: str) -> str:
        """Topic of a micro-batch stream (``vitals``, ``motion``, ``home``, ``airq``)."""
        if stream not in STREAM_BASES:
            raise KeyError(f"unknown stream {stream!r}; streams are {', '.join(STREAM_BASES)}")
        return self.prefix + stream

    @property
    def deadletter(self) -> str:
        return self.prefix + DEADLETTER_BASE

    @property
    def alerts(self) -> str:
        return self.prefix + ALERTS_BASE

    @property
    def streams(self) -> tuple[str, ...]:
        """The four micro-batch topics, in :data:`STREAM_BASES` order."""
        return tuple(self.prefix + base for base in STREAM_BASES)

    @property
    def all(self) -> tuple[str, ...]:
        """Every topic the pipeline uses."""
        return tuple(self.prefix + base for base in ALL_BASES)


def topics_for(settings: Settings) -> Topics:
    """The topic names under ``settings.topic_prefix``."""
    return Topics(settings.topic_prefix)


async def ensure_topics_async(
    kafka: Mapping[str, Any],
    names: tuple[str, ...] | list[str],
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the missing topics among ``names``; returns the ones created.

    ``kafka`` is :func:`ingest.kafka_client.kafka_client_kwargs` of the settings.
    Idempotent: existing topics are left untouched (their partition count is not changed),
    and a concurrent creator winning the race is not an error.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**kafka, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(n, partitions, replication_factor) for n in missing],
                timeout_ms=int(timeout_s * 1000),
            )
            for error in response.topic_errors:
                name, code = error[0], error[1]
                if code == 0:
                    created.append(name)
                elif code != _TOPIC_ALREADY_EXISTS:
                    raise RuntimeError(f"cannot create Kafka topic {name!r}: error code {code}")
        await _wait_for_leaders(admin, list(names), timeout_s)
        return created
    finally:
        await admin.close()


async def _wait_for_leaders(admin: Any, names: list[str], timeout_s: float) -> None:
    """Return once every partition of ``names`` has a leader (producers then succeed first go)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(
            d["error_code"] == 0
            and d["partitions"]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in d["partitions"])
            for d in described
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"Kafka topics {names} have no leaders after {timeout_s} s")
        await asyncio.sleep(0.1)


def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create every pipeline topic with ``settings.kafka_partitions`` partitions (idempotent).

    Returns the names that did not exist before. Must not be called from a running event
    loop (use :func:`ensure_topics_async` there).
    """
    return asyncio.run(
        ensure_topics_async(
            kafka_client_kwargs(settings),
            topics_for(settings).all,
            settings.kafka_partitions,
            timeout_s=timeout_s,
        )
    )
