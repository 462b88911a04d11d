"""Worker tuning: checkpoint cadence, alert thresholds, timers (``CITYHEALTH_WORKER_*``).

Connection settings (Kafka, InfluxDB, topic prefix, partitions) come from
:class:`cityhealth.settings.Settings`; what is specific to the stream workers lives here
so the shared settings stay small. docs/STREAMS.md explains each value.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernels.anomaly import THRESHOLD

if TYPE_CHECKING:
    from cityhealth.settings import Settings


def app_id(settings: Settings) -> str:
    """The workers' Faust app id and Kafka consumer group; it includes the topic prefix so
    test runs never share a group. Here, not in ``streams.app`` (which builds the Faust app
    at import), so that supervisors (``cityhealth up``) read the same definition."""
    return f"{settings.topic_prefix}cityhealth-worker"


class WorkerConfig(BaseSettings):
    """Stream-worker parameters; every field is ``CITYHEALTH_WORKER_<NAME>`` in the env."""

    model_config = SettingsConfigDict(env_prefix="CITYHEALTH_WORKER_", extra="ignore")

    checkpoint_interval_s: float = Field(
        # 5 s, not 1: each step checkpoints every active device's state; at 1/4 district
        # the 1-s steps wrote 1.4x the stream data again in checkpoints and cost 10-16 %
        # of the pipeline's CPU (docs/STREAMS.md). Rows are still written every
        # write_interval_s, and an alert still cuts a step at once.
        default=5.0,
        description="Most seconds between kernel-state checkpoints (and acks).",
    )
    write_interval_s: float = Field(
        default=1.0,
        description="Most seconds processed rows wait for their InfluxDB write: between commit "
        "steps they are written without a checkpoint (their offsets are acked at the next step).",
    )
    checkpoint_max_batches: int = Field(
        default=200, description="Checkpoint at the latest after this many batches."
    )
    aggregate_interval_s: float = Field(
        default=10.0,
        description="Most seconds between upserts of still-open aggregate periods (a "
        "period is also written when it closes).",
    )
    checkpoint_blocks: int = Field(
        default=32, description="Compacted-topic keys per source partition (devices hashed)."
    )
    anomaly_enter: float = Field(
        default=THRESHOLD, description="Score that opens an anomaly episode (alert)."
    )
    anomaly_exit: float = Field(
        default=0.99, description="Score below which an open anomaly episode closes."
    )
    anomaly_min_samples: int = Field(
        default=120,
        description="Readings a vital series needs before its anomaly scores may alert.",
    )
    limit_sustain_s: float = Field(
        default=5.0, description="Seconds a vital sign stays beyond its clinical limit: alert."
    )
    limit_grace_s: float = Field(
        default=3.0, description="Seconds back inside a limit that do not end a violation."
    )
    limit_clear_s: float = Field(
        default=10.0, description="Seconds normal again before a limit episode closes."
    )
    limit_baseline_tau_s: float = Field(
        default=10.0,
        description="Time constant (s) of the recent baseline an abrupt onset is measured from.",
    )
    active_s: float = Field(
        default=60.0,
        description="Steps within this many seconds: active (exertion limits, HR/RR scores held).",
    )
    heat_enter_c: float = Field(
        default=32.2, description="Heat index (°C) opening a heat episode (NWS extreme caution)."
    )
    heat_exit_c: float = Field(default=31.0, description="Heat index (°C) closing it.")
    heat_critical_c: float = Field(
        default=39.4, description="Heat index (°C) from which a heat alert is critical (danger)."
    )
    offline_after_s: float = Field(
        default=300.0, description="No data for this long: device/station offline alert."
    )
    inactivity_after_s: float = Field(
        default=4 * 3600.0, description="No motion at home for this long (daytime): alert."
    )
    day_start_hour: int = Field(default=8, description="Daytime start, hour of day (UTC).")
    day_end_hour: int = Field(default=21, description="Daytime end, hour of day (UTC).")
    timer_interval_s: float = Field(
        default=1.0, description="Seconds between timer runs (offline, inactivity, districts)."
    )
    stats_json: Path | None = Field(
        default=None, description="Rewrite this file with the worker's counters at each timer run."
    )
