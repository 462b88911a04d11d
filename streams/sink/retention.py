"""The two InfluxDB databases/buckets and their retention policies (docs/DATA_MODEL.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class _DbSettings(Protocol):
    influx_db_sensitive: str
    influx_db_public: str


@dataclass(frozen=True)
class RetentionPolicy:
    """An InfluxDB 1.x retention policy (also the DBRP mapping name of a 2.x bucket).

    Attributes
    ----------
    name
        Policy name, written in every ``/write?rp=`` of the database.
    duration
        InfluxQL duration literal (``30d``) after which shards are dropped.
    shard_duration
        Shard group duration (InfluxDB guidance: 1d for 30d retention, 7d above 6 months).
    seconds
        ``duration`` in seconds (2.x bucket ``everySeconds``).
    """

    name: str
    duration: str
    shard_duration: str
    seconds: int
    shard_seconds: int


#: Personal health data (vitals, activity, falls, home sensors, NEWS2, anomaly scores,
#: alerts about people): kept 30 days, the minimum useful for clinical follow-up.
SENSITIVE = RetentionPolicy("raw_30d", "30d", "1d", 30 * 86400, 86400)
#: Public data (air quality, heat, district aggregates): kept 400 days for year-on-year
#: comparisons of seasonal pollution and heat.
PUBLIC = RetentionPolicy("public_400d", "400d", "7d", 400 * 86400, 7 * 86400)


def retention_policies(settings: _DbSettings) -> dict[str, RetentionPolicy]:
    """Database name -> its retention policy, for the two databases of ``settings``."""
    return {settings.influx_db_sensitive: SENSITIVE, settings.influx_db_public: PUBLIC}
