"""Secrets generated on first use and kept in a file only the owner can read (mode 0600).

The local stack generates the secrets an operator did not set (the pseudonymisation key,
the Kafka password) under ``data_dir``, so every process started with the same settings
agrees on them and none of them has a well-known default.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

log = logging.getLogger(__name__)


def load_or_create_secret(
    path: Path, *, label: str, error: type[Exception] = ValueError
) -> SecretStr:
    """Read ``path``, creating it first (32 random bytes as hex, mode 0600) if absent.

    Creation uses ``O_CREAT | O_EXCL`` so concurrent first users agree on one secret. A
    file readable by group or others is tightened to 0600 (logged, without the secret).

    Parameters
    ----------
    path
        The secret's file.
    label
        What the secret is, for log lines and errors (e.g. ``"pseudonym key"``).
    error
        Exception raised when the file exists but is empty.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s file %s had mode %o; setting 0600", label, path, mode)
            path.chmod(0o600)
        text = path.read_text().strip()
        if not text:
            raise error(f"{label} file {path} is empty") from None
        return SecretStr(text)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    log.info("created %s file %s (mode 0600)", label, path)
    return load_or_create_secret(path, label=label, error=error)
