"""Keyed pseudonyms for personal identifiers, applied before anything leaves ingest.

A wearable or elder-care ``device_id`` (which identifies a resident) becomes
``"p-" + base32(HMAC-SHA256(key, "cityhealth/v1\\0" + family + "\\0" + device_id)[:16])``
(lower case, no padding: 28 characters, valid as a topic-level ``device_id``). HMAC is a
PRF (RFC 2104), so without the key the mapping can be neither inverted nor recomputed
from a list of candidate ids, while the pipeline still sees one stable id per device.

Collisions: 128 output bits give a birthday bound of ``n**2 / 2**129``; for a city of
10 million devices that is about 1.5e-25, negligible.

Air-quality stations are public infrastructure: their ids pass through unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from ingest.secret_file import load_or_create_secret

log = logging.getLogger(__name__)

PREFIX = "p-"
DIGEST_BYTES = 16
KEY_FILE_NAME = "pseudonym.key"
PUBLIC_FAMILIES = frozenset({"airq"})
_DOMAIN = b"cityhealth/v1\0"


class _KeySettings(Protocol):
    pseudonym_key: SecretStr | None
    data_dir: Path


class PseudonymKeyError(ValueError):
    """The pseudonymisation key is missing, empty or its file is unusable (key not shown)."""


class Pseudonymizer:
    """Map ``(family, device_id)`` to a stable keyed pseudonym, with an LRU cache.

    Parameters
    ----------
    key
        Secret key (``SecretStr`` or raw bytes); never stored in a printable attribute.
    cache_size
        Entries of the LRU cache: the same devices report every second, so nearly every
        lookup is a hit.
    """

    def __init__(self, key: SecretStr | bytes, cache_size: int = 1 << 16) -> None:
        raw = key.get_secret_value().encode() if isinstance(key, SecretStr) else bytes(key)
        if not raw:
            raise PseudonymKeyError("pseudonym key is empty")
        # Keep only the keyed HMAC state: copying it per id skips re-hashing the key pads.
        self._mac = hmac.new(raw, _DOMAIN, hashlib.sha256)
        del raw
        self._cached = lru_cache(maxsize=cache_size)(self._compute)

    def __repr__(self) -> str:
        return "Pseudonymizer(key=**********)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Pseudonymizer holds a secret and cannot be pickled")

    def __call__(self, family: str, device_id: str) -> str:
        """Pseudonym of a device id; air-quality station ids are returned unchanged."""
        if family in PUBLIC_FAMILIES:
            return device_id
        return self._cached(family, device_id)

    def _compute(self, family: str, device_id: str) -> str:
        if not isinstance(family, str) or not isinstance(device_id, str):
            raise TypeError(
                f"family and device_id must be str, got {type(family).__name__}, "
                f"{type(device_id).__name__}"
            )
        mac = self._mac.copy()
        mac.update(family.encode() + b"\0" + device_id.encode())
        digest = mac.digest()[:DIGEST_BYTES]
        return PREFIX + base64.b32encode(digest).decode().rstrip("=").lower()

    def cache_info(self) -> object:
        """Hit/miss statistics of the LRU cache."""
        return self._cached.cache_info()


def load_or_create_key(data_dir: Path) -> SecretStr:
    """Read ``data_dir/pseudonym.key``, creating it (32 random bytes, hex, mode 0600) if absent.

    See :func:`ingest.secret_file.load_or_create_secret` (concurrent bridges agree on one key;
    a key file readable by group or others is tightened to 0600).
    """
    return load_or_create_secret(
        Path(data_dir) / KEY_FILE_NAME, label="pseudonym key", error=PseudonymKeyError
    )


def pseudonymizer_from_settings(settings: _KeySettings) -> Pseudonymizer:
    """Pseudonymizer keyed by ``settings.pseudonym_key``, else by the key file in data_dir.

    An empty ``CITYHEALTH_PSEUDONYM_KEY`` counts as unset (docker-compose passes
    ``${CITYHEALTH_PSEUDONYM_KEY:-}``, an empty string, when the operator sets none).
    """
    key = settings.pseudonym_key
    if key is None or not key.get_secret_value():
        key = load_or_create_key(settings.data_dir)
    return Pseudonymizer(key)
