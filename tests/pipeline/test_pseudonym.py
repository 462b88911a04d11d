"""Keyed pseudonyms: deterministic per key, different across keys, key never exposed."""

from __future__ import annotations

import logging
import pickle
import re
import stat
import traceback
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from cityhealth.settings import Settings
from ingest.pseudonym import (
    KEY_FILE_NAME,
    Pseudonymizer,
    PseudonymKeyError,
    load_or_create_key,
    pseudonymizer_from_settings,
)

KEY = "s3cr3t-pseudonym-key-0123456789abcdef"
_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True)
_families = st.sampled_from(["wearable", "eldercare"])
_PSEUDONYM = re.compile(r"p-[a-z2-7]{26}")


@settings(max_examples=50)
@given(_families, _ids)
def test_deterministic_per_key_and_valid_device_id(family: str, device_id: str) -> None:
    a = Pseudonymizer(SecretStr(KEY))
    b = Pseudonymizer(KEY.encode())
    p = a(family, device_id)
    assert _PSEUDONYM.fullmatch(p)
    assert p == a(family, device_id) == b(family, device_id)


@settings(max_examples=50)
@given(_families, _ids, st.text(min_size=1, max_size=40))
def test_different_key_gives_different_pseudonym(family: str, device_id: str, other: str) -> None:
    if other == KEY:
        return
    assert Pseudonymizer(SecretStr(KEY))(family, device_id) != Pseudonymizer(SecretStr(other))(
        family, device_id
    )


def test_families_are_separated_and_stations_pass_through() -> None:
    p = Pseudonymizer(SecretStr(KEY))
    assert p("wearable", "dev-1") != p("eldercare", "dev-1")
    assert p("airq", "station-7") == "station-7"
    ids = {p("wearable", f"w{i}") for i in range(5000)}
    assert len(ids) == 5000


def test_cache_serves_repeats() -> None:
    p = Pseudonymizer(SecretStr(KEY), cache_size=8)
    for _ in range(10):
        p("wearable", "w1")
    info = p.cache_info()
    assert info.hits == 9 and info.misses == 1


def test_key_never_in_repr_logs_or_exceptions(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    p = Pseudonymizer(SecretStr(KEY))
    assert KEY not in repr(p) and KEY not in str(p)
    assert KEY not in repr(vars(p))
    with pytest.raises(TypeError) as info:
        p("wearable", 123)  # type: ignore[arg-type]
    rendered = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert KEY not in rendered and "must be str" in rendered
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(p)
    s = Settings(pseudonym_key=SecretStr(KEY), data_dir=tmp_path)
    assert KEY not in repr(s) and KEY not in str(s.model_dump())
    created = load_or_create_key(tmp_path / "fresh")
    logging.getLogger("ingest.pseudonym").info("using %r", pseudonymizer_from_settings(s))
    assert KEY not in caplog.text
    assert created.get_secret_value() not in caplog.text
    assert "created pseudonym key file" in caplog.text


def test_empty_key_is_rejected() -> None:
    with pytest.raises(PseudonymKeyError, match="empty"):
        Pseudonymizer(SecretStr(""))


def test_empty_key_setting_means_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose passes CITYHEALTH_PSEUDONYM_KEY="" when none is set: use the key file."""
    monkeypatch.setenv("CITYHEALTH_PSEUDONYM_KEY", "")
    s = Settings(data_dir=tmp_path / "data")
    from_file = pseudonymizer_from_settings(s)
    assert (tmp_path / "data" / KEY_FILE_NAME).exists()
    assert from_file("wearable", "w1") == pseudonymizer_from_settings(s)("wearable", "w1")


def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    first = pseudonymizer_from_settings(s)
    path = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64
    second = pseudonymizer_from_settings(s)
    assert first("wearable", "w1") == second("wearable", "w1")
    # the file's text is the key: configuring it explicitly gives the same pseudonyms
    explicit = Settings(data_dir=tmp_path / "x", pseudonym_key=SecretStr(path.read_text().strip()))
    assert pseudonymizer_from_settings(explicit)("wearable", "w1") == first("wearable", "w1")
    # the setting wins over the file
    other = Settings(data_dir=tmp_path / "data", pseudonym_key=SecretStr(KEY))
    assert pseudonymizer_from_settings(other)("wearable", "w1") != first("wearable", "w1")


def test_loose_key_file_is_tightened_and_empty_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    path.write_text("abc\n")
    path.chmod(0o644)
    assert load_or_create_key(tmp_path).get_secret_value() == "abc"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("")
    with pytest.raises(PseudonymKeyError, match="is empty"):
        load_or_create_key(tmp_path)
