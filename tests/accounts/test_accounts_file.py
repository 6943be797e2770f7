"""The accounts file on disk: missing file, errors, mode 0600, atomic replace, concurrent writers."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from govgate.accounts_file import load_accounts, lock_path, locked, update_accounts, write_atomically
from govgate.core.accounts import Accounts
from govgate.core.settle import moved_in_whole, settled
from govgate.errors import AccountError, PolicyError
from govgate.files import file_signature, look_at
from tests.accounts.builders import make_account

REPO = Path(__file__).resolve().parents[2]


def test_a_missing_file_means_no_accounts(tmp_path: Path) -> None:
    assert len(load_accounts(tmp_path / "accounts.yaml")) == 0
    assert file_signature(tmp_path / "accounts.yaml") is None


def test_an_invalid_file_is_a_policy_error_naming_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("version: 1\naccounts:\n  zhangsan:\n    password: nope\n", encoding="utf-8")
    with pytest.raises(PolicyError) as excinfo:
        load_accounts(path)
    assert f"{path}:4: accounts.zhangsan.password: expected an Argon2id hash" in str(excinfo.value)


def test_a_file_that_is_not_utf8_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_bytes(b"version: 1\n\xff\xfe\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_accounts(path)


def test_an_update_writes_a_0600_file_that_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "accounts.yaml"
    update_accounts(path, lambda a: a.with_account(make_account("zhangsan")))
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_accounts(path).names() == ("zhangsan",)
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_an_update_replaces_the_file_so_a_reader_never_sees_half_of_it(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    update_accounts(path, lambda a: a.with_account(make_account("zhangsan")))
    before = file_signature(path)
    old_inode = path.stat().st_ino
    with path.open("rb") as reader:  # an open reader keeps the old version whole
        update_accounts(path, lambda a: a.with_account(make_account("lisi")))
        assert b"lisi" not in reader.read()
    assert path.stat().st_ino != old_inode
    assert file_signature(path) != before


def test_a_failing_change_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    update_accounts(path, lambda a: a.with_account(make_account("zhangsan")))
    before = path.read_bytes()

    def refuse(_: Accounts) -> Accounts:
        raise AccountError("no")

    with pytest.raises(AccountError):
        update_accounts(path, refuse)
    assert path.read_bytes() == before


def test_an_invalid_file_is_never_overwritten_by_an_update(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text("version: 1\naccounts: [oops]\n", encoding="utf-8")
    with pytest.raises(PolicyError):
        update_accounts(path, lambda a: a.with_account(make_account("zhangsan")))
    assert path.read_text(encoding="utf-8") == "version: 1\naccounts: [oops]\n"


def test_while_one_writer_holds_the_lock_another_cannot_take_it(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    print('busy')\n"
        "else:\n    print('free')\n"
    )
    with locked(path):
        held = subprocess.run([sys.executable, "-c", probe, str(lock_path(path))], capture_output=True, text=True,
                              check=True)
    after = subprocess.run([sys.executable, "-c", probe, str(lock_path(path))], capture_output=True, text=True,
                           check=True)
    assert held.stdout.strip() == "busy"
    assert after.stdout.strip() == "free"
    fd = os.open(lock_path(path), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: we can take it too
    finally:
        os.close(fd)


WRITER = """
import sys
from pathlib import Path
from govgate.accounts_file import update_accounts
from tests.accounts.builders import make_account
path, prefix, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
sys.stdin.readline()  # start together
for i in range(count):
    update_accounts(path, lambda a, i=i: a.with_account(make_account(f"{prefix}{i}")))
"""


def test_two_processes_adding_accounts_at_once_both_end_up_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    count = 15
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, str(count)], cwd=REPO,
                         stdin=subprocess.PIPE, text=True)
        for prefix in ("a", "b")
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(60) == 0
    names = set(load_accounts(path).names())
    assert names == {f"{p}{i}" for p in ("a", "b") for i in range(count)}


def test_a_file_this_command_writes_is_seen_as_moved_in_whole_at_the_next_poll(tmp_path: Path) -> None:
    """The gateway applies a renamed-in file at once, a file written in place only after 1.5 s of quiet
    (govgate.core.settle). Write, fsync and rename happen within one tick of the kernel's coarse file clock:
    without dating the write back, every change by `govgate account`/`device` waited out the quiet time."""
    path = tmp_path / "accounts.yaml"
    path.write_bytes(b"accounts: {}\n")
    for i in range(50):
        before = look_at(path)
        assert before is not None
        write_atomically(path, b"accounts: {}\n# %d\n" % i, what="the accounts file")
        after = look_at(path)
        assert after is not None
        assert moved_in_whole(after[0], applied_inode=before[0].inode), (i, after[0])
        assert settled(after[0], None, applied_inode=before[0].inode, now_ns=time.time_ns(),
                       seen_since_ns=time.time_ns())
