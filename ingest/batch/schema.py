"""Which columns each micro-batch stream carries, and which channels feed which stream.

The ingest bridge routes every validated reading to one of four Kafka topics by its
``(family, channel)`` pair (docs/ARCHITECTURE.md, wire contract). Each stream has a fixed
column set so workers can rely on it; docs/BATCH_FORMAT.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

#: String columns every stream carries (dictionary-encoded): topic provenance of a reading.
COMMON_STRINGS: tuple[str, ...] = ("device", "district", "family", "channel")
#: Numeric column every stream carries: the reading time (seconds since the Unix epoch).
TIME_COLUMN = "ts"
#: Ragged sample columns of accelerometer windows (motion stream only).
SAMPLE_COLUMNS: tuple[str, ...] = ("t", "x", "y", "z")


@dataclass(frozen=True)
class StreamSchema:
    """Column layout of one stream.

    Attributes
    ----------
    name
        Stream (and Kafka topic base) name.
    floats
        Measurement columns, ``<f8``; NaN where the reading did not carry the value.
    flags
        Boolean columns, ``|i1``: 1 true, 0 false, -1 absent.
    strings
        Extra dictionary-encoded string columns (besides :data:`COMMON_STRINGS`);
        ``""`` where absent.
    ragged
        Whether readings are sample windows (offsets + concatenated ``t, x, y, z``).
    partition_key
        The provenance column whose value picks the Kafka partition (murmur2, as Kafka's
        default partitioner): ``device`` (a person's devices: one partition per device,
        the same number in every stream), or ``district`` for air stations, so one
        partition holds every station of a district (its AQI and category alert are
        computed in one place, streams/district.py).
    """

    name: str
    floats: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    strings: tuple[str, ...] = ()
    ragged: bool = False
    partition_key: str = "device"

    @property
    def numeric_dtypes(self) -> dict[str, str]:
        """Every per-reading numeric column with its numpy dtype string."""
        cols = {TIME_COLUMN: "<f8"}
        cols.update({name: "<f8" for name in self.floats})
        cols.update({name: "|i1" for name in self.flags})
        return cols

    @property
    def string_columns(self) -> tuple[str, ...]:
        """Every dictionary-encoded string column."""
        return COMMON_STRINGS + self.strings


VITALS = StreamSchema(
    "vitals", floats=("heart_rate", "spo2", "body_temp", "respiration_rate", "steps")
)
MOTION = StreamSchema("motion", floats=("rate_hz",), ragged=True)
HOME = StreamSchema(
    "home",
    floats=("battery",),
    flags=("motion", "open", "occupied", "pressed"),
    strings=("room", "door"),
)
AIRQ = StreamSchema(
    "airq",
    floats=("lat", "lon", "pm25", "pm10", "o3", "no2", "so2", "co", "temperature", "humidity"),
    partition_key="district",
)

STREAMS: dict[str, StreamSchema] = {s.name: s for s in (VITALS, MOTION, HOME, AIRQ)}

#: ``(family, channel)`` -> stream name.
CHANNEL_STREAMS: dict[tuple[str, str], str] = {
    ("wearable", "vitals"): "vitals",
    ("wearable", "accel"): "motion",
    ("eldercare", "pendant"): "motion",
    ("wearable", "status"): "home",
    ("eldercare", "status"): "home",
    ("eldercare", "motion"): "home",
    ("eldercare", "door"): "home",
    ("eldercare", "bed"): "home",
    ("eldercare", "chair"): "home",
    ("eldercare", "panic"): "home",
    ("airq", "air"): "airq",
}


def stream_for(family: str, channel: str) -> str:
    """Stream name of a ``(family, channel)`` pair.

    Raises
    ------
    KeyError
        If the pair is not part of the wire contract.
    """
    try:
        return CHANNEL_STREAMS[(family, channel)]
    except KeyError:
        raise KeyError(f"no micro-batch stream for family={family!r} channel={channel!r}") from None
