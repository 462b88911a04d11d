"""Errors the sink raises: only after retries (unavailable) or when the server says no."""

from __future__ import annotations


class SinkError(RuntimeError):
    """Base class of every InfluxDB sink error."""


class SinkUnavailableError(SinkError):
    """InfluxDB stayed unreachable (connection refused, 5xx, 429) until the retry deadline."""


class SinkRejectedError(SinkError):
    """InfluxDB refused the request (4xx: parse error, field type conflict, auth, no database).

    Not retried: the same bytes would be refused again. For a *partial write* the server
    stored the valid points and ``message`` names the rejected ones.

    Attributes
    ----------
    status
        HTTP status code.
    message
        The server's error message, verbatim.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"InfluxDB rejected the request (HTTP {status}): {message}")
        self.status = status
        self.message = message

    @property
    def partial_write(self) -> bool:
        """Whether the server reported a partial write (some points were stored)."""
        return "partial write" in self.message


class SinkQueryError(SinkError):
    """An InfluxQL statement returned an error."""


class RetryableError(Exception):
    """Internal: a transient failure the retry loop should try again (not raised to users)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
