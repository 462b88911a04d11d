"""One processor per micro-batch stream: batch columns in, InfluxDB bodies and alerts out."""

from __future__ import annotations

from streams.processors.airq import AirqProcessor
from streams.processors.base import Processor, Services
from streams.processors.home import HomeProcessor
from streams.processors.motion import MotionProcessor
from streams.processors.vitals import VitalsProcessor

PROCESSORS: dict[str, type[Processor]] = {
    "vitals": VitalsProcessor,
    "motion": MotionProcessor,
    "home": HomeProcessor,
    "airq": AirqProcessor,
}

__all__ = [
    "PROCESSORS",
    "AirqProcessor",
    "HomeProcessor",
    "MotionProcessor",
    "Processor",
    "Services",
    "VitalsProcessor",
]
