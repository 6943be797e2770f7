"""Durations, gateway keys and CSRF tokens."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govgate.core.csrf import csrf_token, csrf_valid, is_browser_id, new_browser_id
from govgate.core.durations import format_duration, parse_duration
from govgate.core.keys import GatewayKeys, Purpose
from govgate.errors import KeyFileError
from govgate.files import STALE_KEY_TEMPORARY, load_key_file, remove_stale_key_temporaries


@pytest.mark.parametrize(("text", "value"), [
    ("30s", timedelta(seconds=30)), ("15m", timedelta(minutes=15)), ("8h", timedelta(hours=8)),
    ("7d", timedelta(days=7)), ("1h30m", timedelta(minutes=90)),
])
def test_durations_parse(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", ["", "15", "15 m", "m", "-5m", "0s", "1.5h", "15M", "1w"])
def test_bad_durations_are_refused_with_the_value_named(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**7))
def test_format_and_parse_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


def test_key_file_is_created_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "gateway.key"
    first = load_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = load_key_file(path)
    assert first.derive(Purpose.CSRF) == second.derive(Purpose.CSRF)
    assert "key" not in repr(first).lower() or path.read_text().strip() not in repr(first)


def test_a_malformed_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.key"
    path.write_text("not hex")
    with pytest.raises(KeyFileError, match="hex"):
        load_key_file(path)


def test_derived_keys_differ_by_purpose() -> None:
    keys = GatewayKeys.from_bytes(b"k" * 32)
    assert len({keys.derive(p) for p in Purpose}) == len(Purpose)


def test_csrf_token_is_bound_to_browser_and_form() -> None:
    keys = GatewayKeys.from_bytes(b"k" * 32)
    browser = new_browser_id()
    token = csrf_token(keys, browser, "login")
    assert csrf_valid(keys, browser, "login", token)
    assert not csrf_valid(keys, browser, "mfa", token)
    assert not csrf_valid(keys, new_browser_id(), "login", token)
    assert not csrf_valid(keys, browser, "login", token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not csrf_valid(keys, None, "login", token)
    assert not csrf_valid(keys, browser, "login", None)


@pytest.mark.parametrize("browser_id", ["\udcff\udcfe" * 12, "é" * 30, "a" * 19, "a" * 65, "a b" * 10, "a" * 30 + "="])
def test_a_csrf_cookie_not_of_the_gates_making_is_no_browser_id_and_never_an_error(browser_id: str) -> None:
    # A client can send any bytes (decoded with surrogateescape): refused, never an UnicodeEncodeError in the MAC.
    keys = GatewayKeys.from_bytes(b"k" * 32)
    assert not is_browser_id(browser_id)
    assert not csrf_valid(keys, browser_id, "login", "A" * 43)
    assert not csrf_valid(keys, new_browser_id(), "login", "\udcff" * 43)
    assert is_browser_id(new_browser_id())


def _load_after(barrier: Any, path: Path) -> bytes:
    barrier.wait()
    return load_key_file(path).derive(Purpose.CSRF)


def test_gateways_starting_at_once_never_read_a_key_file_half_written(tmp_path: Path) -> None:
    # `govgate run --workers N` on a fresh key_file: every worker creates or reads it at the same moment. The
    # creator's file must appear whole (one key for all), never empty or part-written to the others.
    context = multiprocessing.get_context("fork")
    for attempt in range(8):
        path = tmp_path / f"attempt-{attempt}" / "gateway.key"
        with context.Manager() as manager:
            barrier = manager.Barrier(6)
            with context.Pool(6) as pool:
                keys = pool.starmap(_load_after, [(barrier, path)] * 6)
        assert len(set(keys)) == 1
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["gateway.key"]  # nothing else left beside it


@pytest.mark.parametrize("refusal", [errno.EPERM, errno.EOPNOTSUPP])
def test_a_key_folder_without_hard_links_still_gets_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            refusal: int) -> None:
    # vfat, exfat and many FUSE/CIFS mounts refuse link(2): the key is then created in place, as before.
    def no_links(src: str, dst: str) -> None:
        raise OSError(refusal, os.strerror(refusal), src, None, dst)

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "k" / ("g" * 240)  # a long name: the temporary file's name does not grow with it
    first = load_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key_file(path).derive(Purpose.CSRF) == first.derive(Purpose.CSRF)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_crash_mid_creation_leaves_no_key_material_behind_for_long(tmp_path: Path) -> None:
    # A crash between mkstemp and unlink in the key's creation leaves `.govgate-key.*.new` (after link(2): a second
    # name of the key in use). The next start removes it once it is older than any creation under way.
    path = tmp_path / "gateway.key"
    load_key_file(path)
    hour_ago = time.time() - 3600
    stale = tmp_path / ".govgate-key.abc123.new"
    os.link(path, stale)
    os.utime(stale, (hour_ago, hour_ago))
    in_flight = tmp_path / ".govgate-key.def456.new"  # another worker creating the key right now
    in_flight.write_text("0" * 64)
    look_alike = tmp_path / ".govgate-key.old"  # not the temporaries' pattern: not ours to remove
    look_alike.write_text("x")
    os.utime(look_alike, (hour_ago, hour_ago))
    folder = tmp_path / ".govgate-key.dir.new"  # a folder is never removed
    folder.mkdir()
    os.utime(folder, (hour_ago, hour_ago))
    link = tmp_path / ".govgate-key.lnk.new"  # nor a symbolic link (lstat: its own age, not its target's)
    link.symlink_to(look_alike)
    os.utime(link, (hour_ago, hour_ago), follow_symlinks=False)
    load_key_file(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["gateway.key", in_flight.name, look_alike.name, folder.name, link.name])
    assert remove_stale_key_temporaries(tmp_path, now=time.time() + STALE_KEY_TEMPORARY + 1) == [in_flight]
