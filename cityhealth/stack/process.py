"""Detached service processes: start, identify by pid file, stop, and read their logs.

A service is started through a tiny launcher process that puts it in its own session
(``setsid``) and exits, so the service is never a child of the caller (no zombies in
long-lived callers such as pytest, nothing killed by the caller's Ctrl-C) and survives
the ``cityhealth stack up`` command that started it. The pid file holds the pid *and*
the process start time from ``/proc/<pid>/stat`` and the kernel's boot id, so a pid
recycled by another process - now, or after a reboot, when start times count from a new
boot - is never mistaken for the service (and never signalled).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = """
import subprocess, sys
log = open(sys.argv[1], "ab", buffering=0)
proc = subprocess.Popen(sys.argv[3:], cwd=sys.argv[2], stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
print(proc.pid)
"""


class StackError(RuntimeError):
    """A service could not be installed, started or stopped; the message says why."""


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file stores about a started service."""

    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    ports: tuple[int, ...] = ()
    boot_id: str = ""  # empty in pid files written before it was recorded


def boot_id() -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``); empty where unavailable."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


#: A service log above this size is rotated (to ``<log>.1``) when the service starts.
LOG_ROTATE_BYTES = 16 << 20


def rotate_log(log: Path, max_bytes: int | None = None) -> bool:
    """Move ``log`` to ``log.1`` (replacing an older one) when it exceeds ``max_bytes``.

    Keeps a long-lived data directory's logs bounded to about two files; returns whether
    it rotated. ``max_bytes`` defaults to :data:`LOG_ROTATE_BYTES`.
    """
    limit = LOG_ROTATE_BYTES if max_bytes is None else max_bytes
    try:
        if log.stat().st_size <= limit:
            return False
    except OSError:
        return False
    log.replace(log.with_name(log.name + ".1"))
    return True


def spawn(
    argv: Sequence[str], *, cwd: Path, log: Path, pid_file: Path, ports: Sequence[int] = ()
) -> ProcessRecord:
    """Start ``argv`` detached in its own session, appending stdout/stderr to ``log``.

    ``ports`` are recorded so a later ``up`` can tell whether the running process is the
    one its settings ask for. A ``log`` over :data:`LOG_ROTATE_BYTES` is rotated first.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log)
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log), str(cwd), *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise StackError(f"could not start {argv[0]}: {out.stderr.strip()}")
    pid = int(out.stdout.strip())
    ticks = _start_ticks(pid)
    record = ProcessRecord(
        pid=pid,
        # A process that already died gets 0, which no live process has.
        start_ticks=ticks if ticks is not None else 0,
        argv=tuple(argv),
        ports=tuple(ports),
        boot_id=boot_id(),
    )
    pid_file.write_text(
        json.dumps(
            {
                "pid": pid,
                "start_ticks": record.start_ticks,
                "argv": list(argv),
                "ports": list(ports),
                "boot_id": record.boot_id,
            }
        )
    )
    return record


def read_record(pid_file: Path) -> ProcessRecord | None:
    """The record in ``pid_file``, or None when there is none (or it is unreadable)."""
    try:
        raw = json.loads(pid_file.read_text())
        return ProcessRecord(
            int(raw["pid"]),
            int(raw["start_ticks"]),
            tuple(raw["argv"]),
            tuple(int(p) for p in raw.get("ports", ())),
            str(raw.get("boot_id", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_alive(record: ProcessRecord | None) -> bool:
    """True when the recorded process still runs (same boot, pid *and* start time)."""
    if record is None:
        return False
    if record.boot_id and record.boot_id != boot_id():
        return False  # written before a reboot: start times are not comparable
    ticks = _start_ticks(record.pid)
    return ticks is not None and ticks == record.start_ticks


def running(pid_file: Path) -> ProcessRecord | None:
    """The live process recorded in ``pid_file``, else None."""
    record = read_record(pid_file)
    return record if is_alive(record) else None


def stop(pid_file: Path, *, grace_s: float = 30.0) -> bool:
    """Stop the recorded process group: SIGTERM, then SIGKILL after ``grace_s``.

    Returns True when a live process was stopped. The pid file is removed either way.
    """
    record = running(pid_file)
    stopped = False
    if record is not None:
        stopped = True
        _signal_group(record.pid, signal.SIGTERM)
        if not wait_until(lambda: not is_alive(record), timeout_s=grace_s, interval_s=0.1):
            _signal_group(record.pid, signal.SIGKILL)
            wait_until(lambda: not is_alive(record), timeout_s=10.0, interval_s=0.05)
    pid_file.unlink(missing_ok=True)
    return stopped


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The service leads its own session/process group; signalling the group also reaches
    # helper processes it forked.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_until(check: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll ``check`` until it returns True or ``timeout_s`` elapses."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def bind_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound by a new server, or None when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the servers use it: connections in TIME_WAIT from a stopped
        # instance do not block a new one, a live listener (or bound socket) does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {host}:{port} is already in use by another process"
            return f"cannot bind {host}:{port}: {exc.strerror or exc}"
    return None


def tail(log: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of ``log`` (empty when it does not exist)."""
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
