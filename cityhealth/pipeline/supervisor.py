"""Supervised subprocesses: the bridge, the worker and the simulators of ``cityhealth up``.

Each part runs as its own CLI command (``python -m cityhealth.cli <command> ...``) in its
own session (so a terminal's Ctrl-C reaches only ``up``, which then stops the parts in
order), with stdout and stderr appended to ``<logs>/<name>.log``. A part that should keep
running (``keep_alive``) and exits without being asked is started again, a bounded number
of times; the chaos hooks (:mod:`cityhealth.pipeline.chaos`) kill and restart parts on
purpose through the same object.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The CLI of the running interpreter: works in a venv without the console script on PATH.
CLI = (sys.executable, "-m", "cityhealth.cli")


class SupervisorError(RuntimeError):
    """A part could not be started or kept running."""


@dataclass
class ManagedProcess:
    """One supervised command.

    Parameters
    ----------
    name
        Short name (``bridge``, ``worker``, ``simulate``), also the log file name.
    argv_for
        The command line of incarnation ``n`` (0 first; lets each incarnation write its
        own stats file).
    env
        Its environment.
    log_path
        Where stdout/stderr are appended.
    keep_alive
        Start it again when it exits unasked (at most ``max_crash_restarts`` times).
    """

    name: str
    argv_for: Callable[[int], Sequence[str]]
    env: dict[str, str]
    log_path: Path
    keep_alive: bool = True
    max_crash_restarts: int = 3
    incarnation: int = -1
    crash_restarts: int = 0
    forced_restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None
    _stopping: bool = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the next incarnation."""
        self.incarnation += 1
        self._stopping = False
        argv = list(self.argv_for(self.incarnation))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            header = f"\n=== cityhealth up: start {self.name} #{self.incarnation} at {time.ctime()}"
            log.write(f"{header}: {' '.join(argv)} ===\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise SupervisorError(f"cannot start {self.name}: {exc}") from exc

    def poll(self) -> int | None:
        """Exit code if it has exited, else None."""
        if self._proc is None:
            return None
        return self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def send(self, sig: int) -> None:
        """Send ``sig`` to the process (not its whole group: children handle their own)."""
        if self.running and self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, sig)

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Wait up to ``timeout_s`` for it to exit; its exit code, or None if still running."""
        if self._proc is None:
            return None
        try:
            code = self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return code

    def stop(self, grace_s: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask it to stop with ``sig``; SIGKILL its process group after ``grace_s``."""
        self._stopping = True
        if self._proc is None:
            return None
        if self.running:
            self.send(sig)
            if self.wait(grace_s) is None:
                self.kill()
        code = self._proc.wait()
        self._record(code)
        return code

    def kill(self) -> None:
        """SIGKILL the process group (a crash: nothing is flushed)."""
        self._stopping = True
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._record(self._proc.wait())

    def restart(self, *, hard: bool, grace_s: float = 30.0) -> None:
        """Stop (SIGKILL when ``hard``, else SIGTERM) and start the next incarnation."""
        if hard:
            self.kill()
        else:
            self.stop(grace_s)
        self.forced_restarts += 1
        self.start()

    def check(self) -> str | None:
        """Restart it if it died unasked; a message describing what happened, or None."""
        if self._proc is None or self._stopping or not self.keep_alive:
            return None
        code = self._proc.poll()
        if code is None:
            return None
        self._record(code)
        if self.crash_restarts >= self.max_crash_restarts:
            raise SupervisorError(
                f"{self.name} exited with {code} {self.crash_restarts + 1} times; "
                f"see {self.log_path}"
            )
        self.crash_restarts += 1
        self.start()
        return f"{self.name} exited with {code}; restarted (#{self.incarnation})"

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines its current incarnation wrote (for error messages: a
        part that died at start-up says why in its log, which CI throws away)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        header = f"=== cityhealth up: start {self.name} #{self.incarnation} "
        text = text[max(text.rfind(header), 0) :]
        return "\n".join(text.splitlines()[-lines:])

    def _record(self, code: int) -> None:
        if len(self.exit_codes) <= self.incarnation:
            self.exit_codes.append(code)

    def report(self) -> dict[str, object]:
        """Incarnations, restarts and exit codes, for the summary."""
        return {
            "incarnations": self.incarnation + 1,
            "crash_restarts": self.crash_restarts,
            "forced_restarts": self.forced_restarts,
            "exit_codes": list(self.exit_codes),
            "log": str(self.log_path),
        }


class Supervisor:
    """The parts of one run, started and stopped in a fixed order."""

    def __init__(self) -> None:
        self.parts: dict[str, ManagedProcess] = {}

    def add(self, part: ManagedProcess) -> ManagedProcess:
        if part.name in self.parts:
            raise ValueError(f"duplicate part {part.name}")
        self.parts[part.name] = part
        return part

    def __getitem__(self, name: str) -> ManagedProcess:
        return self.parts[name]

    def check(self) -> list[str]:
        """Restart parts that died unasked; what happened, for the display."""
        return [msg for part in self.parts.values() if (msg := part.check()) is not None]

    def stop_all(self, order: Sequence[str], grace_s: float = 30.0) -> None:
        """Stop every part, ``order`` first; never leaves a child behind."""
        names = list(order) + [n for n in self.parts if n not in order]
        for name in names:
            if name in self.parts:
                self.parts[name].stop(grace_s)

    def report(self) -> dict[str, dict[str, object]]:
        return {name: part.report() for name, part in self.parts.items()}
