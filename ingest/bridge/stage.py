"""The bridge's CPU stage: contract decode, pseudonymise, columnar batching, dead letters.

:class:`DecodeStage` is pure computation on raw MQTT messages identified by integer
*tokens*; it never touches the network. The bridge runs it in a decoder process (default,
see :mod:`ingest.bridge.workers`) or in its own event-loop thread (``decoders=0``). What it
returns says, per token, how many readings it became (or its dead letter), and which sealed
records carry which tokens, so the bridge can acknowledge each MQTT message after Kafka
acknowledged everything it became.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ingest.batch import BatchLimits, MicroBatcher, SealedBatch, stream_for
from ingest.batch.builder import Route
from ingest.contract import ContractViolation, decode
from ingest.contract.errors import detail
from ingest.deadletter import encode_deadletter
from ingest.pseudonym import pseudonymizer_from_settings

if TYPE_CHECKING:
    from cityhealth.settings import Settings

log = logging.getLogger(__name__)

#: Cached topic routes before the cache is emptied (bounds memory against topic floods).
_MAX_ROUTES = 1 << 17

#: ``(token, raw topic bytes, payload)`` — what the MQTT side hands to the stage.
RawMessage = tuple[int, bytes, bytes | bytearray]


@dataclass(frozen=True)
class StageConfig:
    """What a stage needs besides the settings (picklable, for decoder processes)."""

    bridge_id: str
    mqtt_prefix: str = ""
    max_age_s: float | None = 7 * 86_400.0
    limits: BatchLimits = field(default_factory=BatchLimits)


@dataclass(frozen=True)
class DeadLetter:
    """A rejected message, encoded for the dead-letter topic."""

    token: int
    key: bytes  # the MQTT topic
    value: bytes  # ingest.deadletter record
    rule: str


@dataclass
class StageOutput:
    """Result of one :meth:`DecodeStage.process` / ``poll`` / ``flush`` call.

    Attributes
    ----------
    accepted
        ``(token, readings)`` of every valid message, in input order.
    rejected
        Dead letters of invalid messages.
    sealed
        Records ready for Kafka; ``tokens`` holds one token per reading.
    """

    accepted: list[tuple[int, int]] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)
    sealed: list[SealedBatch] = field(default_factory=list)


class DecodeStage:
    """Decode, validate, pseudonymise and batch raw MQTT messages."""

    def __init__(self, settings: Settings, config: StageConfig) -> None:
        self._config = config
        self._pseudonymise = pseudonymizer_from_settings(settings)
        self._batcher = MicroBatcher(
            settings.kafka_partitions,
            producer=config.bridge_id,
            limits=config.limits,
            clock=time.monotonic,  # also the asyncio loop's clock: timers line up
        )
        # topic -> batch route (stream, partition, pseudonymised provenance): devices
        # publish on the same few topics over and over, so this is computed once per topic.
        self._routes: dict[str, Route] = {}

    def next_deadline(self) -> float | None:
        """Monotonic time at which :meth:`poll` has a record to seal (``None``: nothing)."""
        return self._batcher.next_deadline()

    def poll(self) -> StageOutput:
        """Seal the buffers whose oldest reading reached ``max_age_s``."""
        return StageOutput(sealed=self._batcher.poll())

    def flush(self) -> StageOutput:
        """Seal every buffer (shutdown)."""
        return StageOutput(sealed=self._batcher.flush())

    def process(self, messages: list[RawMessage]) -> StageOutput:
        """Handle a chunk of messages; never raises for bad input."""
        out = StageOutput()
        for token, topic, payload in messages:
            self._one(token, topic, payload, out)
        return out

    def _one(
        self, token: int, raw_topic: bytes, payload: bytes | bytearray, out: StageOutput
    ) -> None:
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError:
            topic = raw_topic.decode("utf-8", "backslashreplace")
            error = ContractViolation([detail("topic", topic, "encoding", "topic is not UTF-8")])
            out.rejected.append(self._dead_letter(token, topic, payload, error.to_dict()))
            return
        try:
            decoded = decode(
                topic, payload, max_age_s=self._config.max_age_s, prefix=self._config.mqtt_prefix
            )
            route = self._routes.get(topic)
            if route is None:
                route = self._route(
                    decoded.district, decoded.family, decoded.device_id, decoded.channel
                )
                if len(self._routes) >= _MAX_ROUTES:
                    self._routes.clear()
                self._routes[topic] = route
            readings = decoded.readings()
        except ContractViolation as exc:
            out.rejected.append(self._dead_letter(token, topic, payload, exc.to_dict()))
            return
        except Exception as exc:  # a decoder or routing bug must not stop the bridge
            log.exception("unexpected failure decoding a message on %s", topic)
            out.rejected.append(self._dead_letter(token, topic, payload, _internal(topic, exc)))
            return
        append = self._batcher.append_routed
        appended = 0
        for reading in readings:
            try:
                # A model's __dict__ holds every field (None when absent): plain dict lookups
                # are much cheaper than attribute access on a pydantic model.
                sealed = append(reading.__dict__, route, token)
            except (KeyError, TypeError, ValueError) as exc:  # the contract should prevent it
                log.error("cannot batch reading %d of a message on %s: %s", appended, topic, exc)
                if appended == 0:
                    internal = _internal(topic, exc)
                    out.rejected.append(self._dead_letter(token, topic, payload, internal))
                    return
                break
            appended += 1
            if sealed is not None:
                out.sealed.append(sealed)
        out.accepted.append((token, appended))

    def _route(self, district: str, family: str, device_id: str, channel: str) -> Route:
        stream_for(family, channel)  # KeyError (an internal dead letter) before pseudonymising
        device = self._pseudonymise(family, device_id)
        return self._batcher.route(device=device, district=district, family=family, channel=channel)

    def _dead_letter(
        self, token: int, topic: str, payload: bytes | bytearray, error: dict[str, Any]
    ) -> DeadLetter:
        value = encode_deadletter(
            topic, payload, error, bridge=self._config.bridge_id, received_at=time.time()
        )
        key = topic.encode("utf-8", "backslashreplace")
        return DeadLetter(token, key, value, str(error.get("rule", "unknown")))


def _internal(topic: str, exc: Exception) -> dict[str, Any]:
    violation = ContractViolation(
        [detail("$", repr(exc), "internal", f"bridge failed: {type(exc).__name__}")],
        topic=topic,
    )
    return violation.to_dict()
