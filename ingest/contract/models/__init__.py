"""Pydantic v2 models of every device channel (the single source of truth)."""

from ingest.contract.models._base import ContractModel
from ingest.contract.models.accel import AccelWindow
from ingest.contract.models.airq import AirQuality
from ingest.contract.models.eldercare import DoorContact, Occupancy, PanicButton, RoomMotion
from ingest.contract.models.wearable import DeviceStatus, Vitals, VitalsBatch

__all__ = [
    "AccelWindow",
    "AirQuality",
    "ContractModel",
    "DeviceStatus",
    "DoorContact",
    "Occupancy",
    "PanicButton",
    "RoomMotion",
    "Vitals",
    "VitalsBatch",
]
