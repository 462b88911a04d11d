"""Time rules: timestamps must be neither in the far future nor too far in the past.

The rules are about the *receiver's* clock, so they apply when the pydantic validation
context carries one: ``{"now": float | None, "max_age_s": float | None}`` (``now=None`` means
the wall clock). :func:`ingest.contract.decode` always passes it; building a model in code
(``Vitals(ts=...)`` in a simulator, a replay tool) without a context skips the time rules and
keeps every other rule. ``max_age_s=None`` disables the past limit so recorded data can be
replayed (``cityhealth simulate --replay``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic_core import PydanticCustomError

#: Greatest tolerated clock skew into the future (device clocks drift; NTP may be late).
MAX_FUTURE_S = 300.0
#: Default oldest accepted reading (a device buffering offline for up to a week).
DEFAULT_MAX_AGE_S = 7 * 86400.0


def validation_context(
    now: float | None = None, max_age_s: float | None = DEFAULT_MAX_AGE_S
) -> dict[str, Any]:
    """Build the validation context for ``Model.model_validate*(..., context=...)``."""
    return {"now": time.time() if now is None else float(now), "max_age_s": max_age_s}


def time_limits(context: Mapping[str, Any]) -> tuple[float, float]:
    """Return the ``(oldest, newest)`` accepted timestamp for a validation context."""
    given = context.get("now")
    now = time.time() if given is None else float(given)
    max_age = context.get("max_age_s", DEFAULT_MAX_AGE_S)
    oldest = 0.0 if max_age is None else now - max_age
    return oldest, now + MAX_FUTURE_S


def check_time(field: str, value: float, context: Mapping[str, Any] | None) -> None:
    """Raise ``ts_future`` / ``ts_past`` for a timestamp outside the accepted window.

    Without a validation context (a model built in code) there is no receiver clock and
    nothing is checked.
    """
    if context is None:
        return
    oldest, newest = time_limits(context)
    if value > newest:
        raise PydanticCustomError(
            "ts_future",
            "timestamp {value} is more than {limit_s} s after now",
            {"field": field, "value": value, "limit_s": MAX_FUTURE_S},
        )
    if value < oldest:
        raise PydanticCustomError(
            "ts_past",
            "timestamp {value} is older than the accepted limit {oldest}",
            {"field": field, "value": value, "oldest": oldest},
        )
