"""Bring the local stack up, report its health, and take it down again."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cityhealth.settings import Settings
from cityhealth.stack.grafana import Grafana, grafana_binary
from cityhealth.stack.influx import Influx
from cityhealth.stack.kafka import Kafka
from cityhealth.stack.mosquitto import Mosquitto
from cityhealth.stack.process import (
    StackError,
    bind_problem,
    is_alive,
    rotate_log,
    running,
    spawn,
    stop,
    tail,
)
from cityhealth.stack.service import Service

REQUIRED = ("mqtt", "kafka", "influx")
ALL_SERVICES = (*REQUIRED, "grafana")
# Seconds between SIGTERM and SIGKILL; Kafka's controlled shutdown can take a while on a
# busy machine.
_GRACE_S = {"mqtt": 15.0, "kafka": 45.0, "influx": 15.0, "grafana": 15.0}


@dataclass(frozen=True)
class UpResult:
    """What ``up`` did for one service: ``started``, ``reused`` or ``failed: <reason>``.

    ``seconds`` runs from the start of ``up`` until the service was ready.
    """

    service: str
    action: str
    seconds: float


class StackManager:
    """Start, inspect and stop Mosquitto, Kafka (KRaft), InfluxDB 1.x and optional Grafana.

    Parameters
    ----------
    settings
        Ports, credentials, data and cache directories of this stack.
    grafana
        Start Grafana too; by default only when ``grafana-server`` is on PATH.
    """

    def __init__(self, settings: Settings, *, grafana: bool | None = None) -> None:
        self.settings = settings
        self.required: list[Service] = [Mosquitto(settings), Kafka(settings), Influx(settings)]
        want_grafana = grafana_binary() is not None if grafana is None else grafana
        self.optional: list[Service] = [Grafana(settings)] if want_grafana else []

    @property
    def data_dir(self) -> Path:
        return Path(self.settings.data_dir).resolve()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold this data directory's stack lock: one ``up``/``down`` at a time.

        Two ``up`` calls racing on one data directory would both find nothing running,
        both spawn, and overwrite each other's pid files (leaving an untracked broker or
        two Kafka nodes on one log directory). With the lock the second waits, then finds
        the first one's healthy stack and reuses it. ``flock`` is released by the kernel
        if the holder dies, so a crash never leaves a stale lock behind.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "stack.lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- up ---------------------------------------------------------------------------
    def up(self, on_event: Callable[[UpResult], None] | None = None) -> list[UpResult]:
        """Start what is not running, reuse what is, and wait until all are ready.

        Raises
        ------
        StackError
            A port is taken, a service exits or does not become ready in
            ``settings.stack_timeout_s``; the message carries its last log lines. Services
            this call started are stopped again before raising.
        """
        with self._exclusive():
            return self._up(on_event)

    def _up(self, on_event: Callable[[UpResult], None] | None) -> list[UpResult]:
        t0 = time.monotonic()
        to_start = [svc for svc in self.required if not self._running_as_configured(svc)]
        self._check_ports(to_start)
        results: list[UpResult] = []
        started: list[Service] = []
        try:
            # Kafka last: its storage format runs while the others boot.
            for svc in sorted(to_start, key=lambda s: s.name == "kafka"):
                self._start(svc)
                started.append(svc)
            for svc in self._wait_ready(self.required):
                action = "started" if svc in started else "reused"
                results.append(UpResult(svc.name, action, time.monotonic() - t0))
                if on_event is not None:
                    on_event(results[-1])
        except BaseException:
            for svc in reversed(started):
                stop(svc.paths.pid, grace_s=10)
            raise
        for svc in self.optional:
            results.append(self._up_optional(svc, time.monotonic()))
            if on_event is not None:
                on_event(results[-1])
        return results

    def _running_as_configured(self, svc: Service) -> bool:
        record = running(svc.paths.pid)
        if record is None:
            return False
        wanted = tuple(port for _, port in svc.ports())
        if record.ports and record.ports != wanted:
            raise StackError(
                f"{svc.name} from {self.data_dir} already runs (pid {record.pid}) on ports "
                f"{list(record.ports)}, not {list(wanted)}; run `cityhealth stack down` first"
            )
        return True

    def _check_ports(self, services: list[Service]) -> None:
        problems = []
        seen: dict[int, str] = {}
        for svc in services:
            for host, port in svc.ports():
                if port in seen:
                    problems.append(f"{svc.name}: port {port} is also configured for {seen[port]}")
                seen[port] = svc.name
                problem = bind_problem(host, port)
                if problem is not None:
                    problems.append(
                        f"{svc.name}: {problem} (stop it, or choose another port with "
                        f"{svc.env_hint})"
                    )
        if problems:
            raise StackError("cannot start the local stack:\n  " + "\n  ".join(problems))

    def _start(self, svc: Service) -> None:
        svc.paths.make()
        svc.prepare()
        argv = svc.command()
        rotate_log(svc.paths.log)  # before the banner, so the banner opens the new log
        with svc.paths.log.open("a") as log:
            log.write(f"\n=== cityhealth stack: starting {svc.name} at {time.ctime()} ===\n")
        spawn(
            argv,
            cwd=svc.paths.root,
            log=svc.paths.log,
            pid_file=svc.paths.pid,
            ports=[port for _, port in svc.ports()],
        )

    def _wait_ready(self, services: list[Service]) -> Iterator[Service]:
        """Yield each service once it answers and is set up, polling all of them together.

        Raises on the first one that exits or misses ``settings.stack_timeout_s``, so a
        broken service fails ``up`` at once instead of after the slow ones are ready.
        """
        records = {svc.name: running(svc.paths.pid) for svc in services}
        reasons: dict[str, str | None] = {}
        pending = list(services)
        deadline = time.monotonic() + self.settings.stack_timeout_s
        while pending:
            for svc in list(pending):
                reasons[svc.name] = svc.probe()
                if reasons[svc.name] is None:
                    try:
                        svc.bootstrap()
                    except StackError as exc:
                        raise StackError(self._failure(svc, f"set-up failed: {exc}")) from exc
                    pending.remove(svc)
                    yield svc
                elif not is_alive(records[svc.name]):
                    raise StackError(self._failure(svc, "exited during start-up"))
            if pending and time.monotonic() > deadline:
                late = pending[0]
                timeout = self.settings.stack_timeout_s
                raise StackError(
                    self._failure(late, f"not ready after {timeout:.0f} s ({reasons[late.name]})")
                )
            if pending:
                time.sleep(0.2)

    def _failure(self, svc: Service, what: str) -> str:
        lines = tail(svc.paths.log, 25) or "(no log output)"
        return f"{svc.name} {what}. Last lines of {svc.paths.log}:\n{lines}"

    def _up_optional(self, svc: Service, t0: float) -> UpResult:
        try:
            action = self._start_one(svc)
        except StackError as exc:
            return UpResult(svc.name, f"failed: {exc}", time.monotonic() - t0)
        return UpResult(svc.name, action, time.monotonic() - t0)

    def _start_one(self, svc: Service) -> str:
        if self._running_as_configured(svc):
            list(self._wait_ready([svc]))
            return "reused"
        self._check_ports([svc])
        try:
            self._start(svc)
            list(self._wait_ready([svc]))
        except BaseException:
            stop(svc.paths.pid, grace_s=10)
            raise
        return "started"

    # -- one service (restart tests, e.g. "InfluxDB goes away mid-run") ---------------
    def service(self, name: str) -> Service:
        """The service called ``name`` (``mqtt``, ``kafka``, ``influx``, ``grafana``)."""
        for svc in self.required + self.optional:
            if svc.name == name:
                return svc
        if name == "grafana":
            return Grafana(self.settings)
        raise StackError(f"unknown service {name!r}; expected one of {ALL_SERVICES}")

    def stop_service(self, name: str) -> bool:
        """Stop one service gracefully (then forcefully); True when it was running."""
        with self._exclusive():
            return stop(self.service(name).paths.pid, grace_s=_GRACE_S[name])

    def start_service(self, name: str) -> str:
        """Start one service (or reuse it) and wait until it is ready; returns the action."""
        with self._exclusive():
            return self._start_one(self.service(name))

    # -- down -------------------------------------------------------------------------
    def down(self, *, purge: bool = False) -> list[str]:
        """Stop every service this data directory runs (SIGTERM, then SIGKILL).

        Returns the names of the services that were running. ``purge`` also deletes their
        data, configs and logs (other files under the data directory are left alone).
        """
        if not self.data_dir.exists():
            return []  # nothing was ever started here; do not create the directory
        with self._exclusive():
            return self._down(purge)

    def _down(self, purge: bool) -> list[str]:
        stopped = []
        for name in reversed(ALL_SERVICES):
            if stop(self.data_dir / name / "service.pid", grace_s=_GRACE_S[name]):
                stopped.append(name)
        if purge:
            for name in ALL_SERVICES:
                shutil.rmtree(self.data_dir / name, ignore_errors=True)
        return stopped

    # -- status -----------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        """Health of each service, as ``stack status --json`` prints it.

        ``healthy`` comes from a real client check (MQTT CONNACK, Kafka metadata,
        InfluxDB ``/ping`` plus an authenticated query), not from the pid file.
        """
        report: dict[str, dict[str, Any]] = {}
        services = self.required + self.optional
        grafana = Grafana(self.settings)
        if not self.optional and running(grafana.paths.pid) is not None:
            services.append(grafana)
        for svc in services:
            reason = svc.health()
            record = running(svc.paths.pid)
            report[svc.name] = {
                **svc.describe(),
                "healthy": reason is None,
                "pid": record.pid if record else None,
                "log": str(svc.paths.log),
                **({"error": reason} if reason else {}),
            }
        return report

    def healthy(self) -> bool:
        """True when every required service is healthy."""
        report = self.status()
        return all(report[name]["healthy"] for name in REQUIRED)
