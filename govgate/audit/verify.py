"""`govgate audit verify`: check every daily file and the links between them (Art. 20).

Art. 20 (第二十条): the integrity of access logs is assured — any edit, deletion, insertion or
reordering of records, a deleted day or a truncated day is reported with the first broken record
as ``file:line``. Safe while the gateway writes: the file sizes are taken under the directory's
lock, so only complete batches are read.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from govgate.audit.log_dir import LOCK_NAME, list_log_files
from govgate.core.audit_chain import HEAD_NAME, VerifyReport, verify_files
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import GovGateError


@contextmanager
def shared_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s audit lock if it has one (a backup copy has none and needs none)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def snapshot(directory: Path) -> list[tuple[str, int]]:
    """The daily files and their sizes at one consistent moment (between two writers' appends)."""
    return snapshot_with_head(directory)[0]


def snapshot_with_head(directory: Path) -> tuple[list[tuple[str, int]], bytes | None]:
    """``snapshot`` and, taken at the same moment, the head anchor's content (None if there is none)."""
    if not directory.is_dir():
        raise GovGateError(f"{directory}: no such audit directory")
    with shared_lock(directory):
        files = [(name, (directory / name).stat().st_size) for name in list_log_files(directory)]
        try:
            head: bytes | None = (directory / HEAD_NAME).read_bytes()
        except FileNotFoundError:
            head = None
        return files, head


def read_upto(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def verify_dir(directory: Path, keys: GatewayKeys, algorithm: AuditAlgorithm | None = None) -> VerifyReport:
    """Verify every daily file in ``directory``; raises ``AuditChainBroken`` at the first broken record."""
    files, head = snapshot_with_head(directory)

    def contents() -> Iterator[tuple[str, bytes]]:
        for name, size in files:
            yield name, read_upto(directory / name, size)

    return verify_files(contents(), keys, algorithm, head=head)
