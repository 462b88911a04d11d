"""Which InfluxDB measurement holds one point per reading of each channel.

The table of docs/DATA_MODEL.md ("Raw readings"), as data: ``cityhealth up`` compares
``published_by_channel[c]`` with the count of ``raw_channels[c]`` after the drain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cityhealth.settings import Settings


@dataclass(frozen=True)
class RawMeasurement:
    """Where a channel's readings are stored and which always-present field counts them."""

    database: Literal["sensitive", "public"]
    measurement: str
    count_field: str


#: ``family/channel`` -> raw measurement (docs/DATA_MODEL.md).
RAW_MEASUREMENTS: dict[str, RawMeasurement] = {
    "wearable/vitals": RawMeasurement("sensitive", "vitals", "present"),
    "wearable/accel": RawMeasurement("sensitive", "accel_window", "samples"),
    "eldercare/pendant": RawMeasurement("sensitive", "pendant_window", "samples"),
    "wearable/status": RawMeasurement("sensitive", "wearable_status", "battery"),
    "eldercare/status": RawMeasurement("sensitive", "home_status", "battery"),
    "eldercare/motion": RawMeasurement("sensitive", "home_motion", "motion"),
    "eldercare/door": RawMeasurement("sensitive", "home_door", "open"),
    "eldercare/bed": RawMeasurement("sensitive", "home_bed", "occupied"),
    "eldercare/chair": RawMeasurement("sensitive", "home_chair", "occupied"),
    "eldercare/panic": RawMeasurement("sensitive", "home_panic", "pressed"),
    "airq/air": RawMeasurement("public", "air", "present"),
}


def database_name(settings: Settings, role: Literal["sensitive", "public"]) -> str:
    """The configured database/bucket name for ``role``."""
    return settings.influx_db_sensitive if role == "sensitive" else settings.influx_db_public


def raw_channels(settings: Settings) -> dict[str, str]:
    """``{"family/channel": "<database>/<measurement>"}`` under ``settings``'s names."""
    return {
        channel: f"{database_name(settings, raw.database)}/{raw.measurement}"
        for channel, raw in RAW_MEASUREMENTS.items()
    }
