"""Pid files identify a service by boot, pid and start time: a recycled pid is never killed.

Plain processes started here stand in for "another program that now has the pid"; no
services are needed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cityhealth.stack import process


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process (in its own session, like a service would be)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _write(pid_file: Path, record: process.ProcessRecord) -> None:
    raw = dataclasses.asdict(record)
    pid_file.write_text(json.dumps({**raw, "argv": list(raw["argv"])}))


def _record_of(proc: subprocess.Popen[bytes], **changes: object) -> process.ProcessRecord:
    ticks = process._start_ticks(proc.pid)
    assert ticks is not None
    record = process.ProcessRecord(proc.pid, ticks, ("sleep",), (), process.boot_id())
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_spawn_records_boot_and_start_time_and_stop_ends_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "svc.pid"
    record = process.spawn(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        cwd=tmp_path,
        log=tmp_path / "svc.log",
        pid_file=pid_file,
    )
    assert record.boot_id and record.boot_id == process.boot_id()
    assert process.read_record(pid_file) == record
    assert process.running(pid_file) == record
    assert process.stop(pid_file, grace_s=5.0) is True
    assert process._start_ticks(record.pid) is None
    assert not pid_file.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"start_ticks": -1},  # same pid, another start time: the pid was recycled
        {"boot_id": "00000000-0000-0000-0000-000000000000"},  # written before a reboot
    ],
    ids=["recycled-pid", "other-boot"],
)
def test_stale_pid_file_never_signals_the_process_now_holding_the_pid(
    tmp_path: Path, bystander: subprocess.Popen[bytes], changes: dict[str, object]
) -> None:
    pid_file = tmp_path / "svc.pid"
    _write(pid_file, _record_of(bystander, **changes))
    assert process.running(pid_file) is None
    assert process.stop(pid_file, grace_s=1.0) is False
    assert bystander.poll() is None  # still alive: not signalled
    assert not pid_file.exists()  # the stale file is cleaned up


def test_pid_file_without_boot_id_still_matches_by_start_time(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    """Pid files written before the boot id was recorded keep working."""
    pid_file = tmp_path / "svc.pid"
    record = _record_of(bystander)
    raw = dataclasses.asdict(record)
    del raw["boot_id"]
    pid_file.write_text(json.dumps({**raw, "argv": list(raw["argv"])}))
    assert process.running(pid_file) is not None


@pytest.mark.parametrize("text", ["", "{", "[]", '{"pid": "x"}', '{"pid": 1}'])
def test_unreadable_pid_file_is_no_process(tmp_path: Path, text: str) -> None:
    pid_file = tmp_path / "svc.pid"
    pid_file.write_text(text)
    assert process.running(pid_file) is None
    assert process.stop(pid_file, grace_s=0.1) is False


def test_spawn_rotates_an_oversized_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "svc.log"
    log.write_bytes(b"old line\n" * 1000)  # 9000 bytes
    (tmp_path / "svc.log.1").write_text("older generation\n")
    monkeypatch.setattr(process, "LOG_ROTATE_BYTES", 4096)  # a size limit, not a service
    pid_file = tmp_path / "svc.pid"
    process.spawn(
        [sys.executable, "-c", "print('new run')"], cwd=tmp_path, log=log, pid_file=pid_file
    )
    assert process.wait_until(lambda: b"new run" in log.read_bytes(), timeout_s=30)
    assert log.read_bytes() == b"new run\n"
    assert (tmp_path / "svc.log.1").read_bytes() == b"old line\n" * 1000
    # under the limit: appended, not rotated
    assert process.rotate_log(log, max_bytes=4096) is False
