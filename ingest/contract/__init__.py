"""The device contract: the single source of truth for what devices may publish.

Typical use (the ingest bridge)::

    from ingest.contract import ContractViolation, decode

    try:
        msg = decode(topic, payload)            # -> Decoded(district, family, ..., model)
    except ContractViolation as exc:
        dead_letter(topic, payload, exc.to_dict())

Simulators build models (:mod:`ingest.contract.models`), publish them with
``model.model_dump_json()`` or :func:`to_senml_json`, on topics from :func:`format_topic`.
Units and LOINC codes: :mod:`ingest.contract.quantities`. Full rules: docs/GATEWAYS.md.
"""

from ingest.contract.clock import DEFAULT_MAX_AGE_S, MAX_FUTURE_S, validation_context
from ingest.contract.decode import Decoded, decode
from ingest.contract.errors import ContractViolation, ErrorDetail
from ingest.contract.models import (
    AccelWindow,
    AirQuality,
    ContractModel,
    DeviceStatus,
    DoorContact,
    Occupancy,
    PanicButton,
    RoomMotion,
    Vitals,
    VitalsBatch,
)
from ingest.contract.quantities import (
    LOINC_CODES,
    QUANTITIES,
    SENML_UNITS,
    UCUM_UNITS,
    Quantity,
)
from ingest.contract.registry import SPECS, ChannelSpec, spec_for
from ingest.contract.senml import to_senml, to_senml_json
from ingest.contract.topics import CHANNELS, FAMILIES, TopicParts, format_topic, parse_topic

__all__ = [
    "CHANNELS",
    "DEFAULT_MAX_AGE_S",
    "FAMILIES",
    "LOINC_CODES",
    "MAX_FUTURE_S",
    "QUANTITIES",
    "SENML_UNITS",
    "SPECS",
    "UCUM_UNITS",
    "AccelWindow",
    "AirQuality",
    "ChannelSpec",
    "ContractModel",
    "ContractViolation",
    "Decoded",
    "DeviceStatus",
    "DoorContact",
    "ErrorDetail",
    "Occupancy",
    "PanicButton",
    "Quantity",
    "RoomMotion",
    "TopicParts",
    "Vitals",
    "VitalsBatch",
    "decode",
    "format_topic",
    "parse_topic",
    "spec_for",
    "to_senml",
    "to_senml_json",
    "validation_context",
]
