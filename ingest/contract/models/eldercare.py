"""Elder-care home sensor channels: ``motion``, ``door``, ``bed``, ``chair``, ``panic``.

(The pendant accelerometer uses :class:`~ingest.contract.models.accel.AccelWindow`, the hub
battery :class:`~ingest.contract.models.wearable.DeviceStatus`.) Events are edge-triggered:
a message is sent when the state changes (motion detected, door opened/closed, bed/chair
occupied/left, panic button pressed).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ingest.contract.models._base import ContractModel, PlaceName, Timestamp


class RoomMotion(ContractModel):
    """Passive-infrared motion in a room (``motion``: true = motion detected)."""

    ts: Timestamp
    room: PlaceName
    motion: bool = Field(description="True when motion is detected, false when it ends")


class DoorContact(ContractModel):
    """Door contact sensor (``open``: true = opened)."""

    ts: Timestamp
    door: PlaceName
    open: bool = Field(description="True when the door opened, false when it closed")


class Occupancy(ContractModel):
    """Bed or chair pressure mat (``occupied``: true = someone is on it)."""

    ts: Timestamp
    occupied: bool = Field(description="True when occupied, false when left")


class PanicButton(ContractModel):
    """Panic button press (only presses are sent: ``pressed`` is always true)."""

    ts: Timestamp
    pressed: Literal[True] = Field(description="Always true: a press")
