"""What every local-stack service provides to the manager."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from cityhealth.settings import Settings
from cityhealth.stack.paths import ServicePaths, StackAddresses, service_paths


class Service(ABC):
    """One locally run server: its config, its command line and its readiness probe.

    Parameters
    ----------
    settings
        Ports, credentials and directories; nothing is read from anywhere else, so any
        number of stacks can run side by side in different data directories.
    """

    name: ClassVar[str]
    env_hint: ClassVar[str]  # the env var to change when the port is taken

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths: ServicePaths = service_paths(settings, self.name)
        self.addr = StackAddresses.from_settings(settings)

    @abstractmethod
    def ports(self) -> list[tuple[str, int]]:
        """Every (host, port) the service binds; all must be free before it starts."""

    @abstractmethod
    def command(self) -> list[str]:
        """Write the configuration files and return the argv that starts the service."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """One-off work before the first start (e.g. formatting Kafka's storage)."""

    @abstractmethod
    def probe(self) -> str | None:
        """None when the service answers like a real client expects, else the reason."""

    def bootstrap(self) -> None:  # noqa: B027 - optional hook
        """Idempotent set-up once the service answers (users, databases)."""

    def health(self) -> str | None:
        """Full health check used by ``status`` (defaults to :meth:`probe`)."""
        return self.probe()

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The addresses reported by ``stack status --json`` (without ``healthy``)."""
