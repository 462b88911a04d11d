"""Which model validates which ``(family, channel)``."""

from __future__ import annotations

from dataclasses import dataclass

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
from ingest.contract.topics import CHANNELS


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """The contract of one channel.

    Attributes
    ----------
    family, channel
        Topic parts.
    model
        Model of one native payload.
    batch_model
        Model of the batched columnar form (``ts`` is a list), if the channel has one.
    """

    family: str
    channel: str
    model: type[ContractModel]
    batch_model: type[ContractModel] | None = None

    @property
    def key(self) -> str:
        """``family.channel`` (also the JSON Schema file stem)."""
        return f"{self.family}.{self.channel}"


_MODELS: dict[tuple[str, str], tuple[type[ContractModel], type[ContractModel] | None]] = {
    ("wearable", "vitals"): (Vitals, VitalsBatch),
    ("wearable", "accel"): (AccelWindow, None),
    ("wearable", "status"): (DeviceStatus, None),
    ("airq", "air"): (AirQuality, None),
    ("eldercare", "pendant"): (AccelWindow, None),
    ("eldercare", "motion"): (RoomMotion, None),
    ("eldercare", "door"): (DoorContact, None),
    ("eldercare", "bed"): (Occupancy, None),
    ("eldercare", "chair"): (Occupancy, None),
    ("eldercare", "panic"): (PanicButton, None),
    ("eldercare", "status"): (DeviceStatus, None),
}

#: Every channel's contract, keyed by ``(family, channel)``, in documentation order.
SPECS: dict[tuple[str, str], ChannelSpec] = {
    (family, channel): ChannelSpec(family, channel, *_MODELS[(family, channel)])
    for family, channels in CHANNELS.items()
    for channel in channels
}


def spec_for(family: str, channel: str) -> ChannelSpec:
    """The :class:`ChannelSpec` of a channel (``KeyError`` if it does not exist)."""
    return SPECS[(family, channel)]
