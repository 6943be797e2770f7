"""`govgate audit verify`: check every daily file and the links between them (Art. 20).

Art. 20 (第二十条): the integrity of access logs is assured — any edit, deletion, insertion or
reordering of records, a deleted day or a truncated day is reported with the first broken record
as ``file:line``. Safe while the gateway writes: the file sizes (and the head anchor) are taken under
the directory's lock, so only complete batches are read.

The files are read in chunks and fed to ``govgate.core.audit_walk.ChainWalk`` a line at a time, so
memory stays flat whatever the size of the log. ``walk_dir`` also hands every line to a visitor:
``show`` and ``report`` read the log in the same pass that checks it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from govgate.audit.kept_policies import kept_sha256
from govgate.audit.log_dir import LOCK_NAME, list_log_files
from govgate.core.audit_chain import HEAD_NAME, VerifyReport
from govgate.core.audit_keys import AuditKey
from govgate.core.audit_walk import LOOKAHEAD, ChainWalk, Finding, Unverified
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditChainBroken, GovGateError

CHUNK = 4 << 20  # bytes read at a time

# A visitor sees the complete lines in batches: (file, lines, start, stop, line number of lines[start], its ordinal
# among all lines walked); lines[start:stop] are the batch.
type Visitor = Callable[[str, Sequence[bytes], int, int, int, int], None]
type Batch = Callable[[Sequence[bytes], int, int, int], None]  # (lines, start, stop, line number of lines[start])
type Progress = Callable[[int], None]  # told how many more bytes were read


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


def read_lines(path: Path, size: int, each: Batch, progress: Progress | None = None) -> tuple[int, bool]:
    """Call ``each(lines, start, stop, lineno)`` for every batch of complete lines of the first ``size`` bytes of
    ``path`` (``lines[start]`` is line ``lineno``), with at least ``LOOKAHEAD`` lines after ``stop`` in ``lines``
    unless the file ends first. Returns (complete lines, whether an incomplete last line followed them)."""
    pending: list[bytes] = []
    carry = b""
    done = 0
    eof = False
    remaining = size
    with open(path, "rb") as f:
        while True:
            while len(pending) <= LOOKAHEAD and not eof:
                chunk = f.read(min(CHUNK, remaining)) if remaining > 0 else b""
                if not chunk:
                    eof = True
                    break
                remaining -= len(chunk)
                if progress is not None:
                    progress(len(chunk))
                parts = (carry + chunk).split(b"\n")
                carry = parts.pop()
                pending.extend(parts)
            if not pending:
                break
            n = len(pending) if eof else len(pending) - LOOKAHEAD
            each(pending, 0, n, done + 1)
            done += n
            del pending[:n]
    return done, carry != b""


@dataclass(frozen=True, slots=True)
class WalkResult:
    report: VerifyReport
    findings: list[Finding]  # every problem, in order (only with collect=True; else the first one was raised)
    unverified: list[Unverified]  # public key only: lines no signature vouches for
    public: bool  # checked with the exported public key (no MACs)
    file_starts: dict[str, int] = field(default_factory=dict)  # file → ordinal of its first line


def walk_dir(directory: Path, key: AuditKey, *, collect: bool = False, start: str | None = None,
             visit: Visitor | None = None, progress: Progress | None = None,
             files: tuple[list[tuple[str, int]], bytes | None] | None = None,
             seen: Callable[[dict[str, object]], None] | None = None) -> WalkResult:
    """Check the log in ``directory`` (from the file ``start`` on, when given: the part `show` reads) and hand each
    line to ``visit``. ``collect=False`` raises ``AuditChainBroken`` at the first problem.

    With the gateway key, the log is first walked the quick way (the signed chain vouches for every record);
    only when that finds anything (or the log predates signatures) is it walked again checking every MAC, which
    names the broken record exactly. ``visit`` sees each line once, in the first walk, and ``seen`` each chain,
    policy and gateway record (parsed)."""
    listing, head = files if files is not None else snapshot_with_head(directory)
    if start is not None:
        listing = [(name, size) for name, size in listing if name >= start]
    kept_cache: dict[str, str | None] = {}

    def kept(name: str) -> str | None:
        if name not in kept_cache:
            kept_cache[name] = kept_sha256(directory, name)
        return kept_cache[name]

    def walk(macs: bool, visitor: Visitor | None) -> WalkResult:
        chain = ChainWalk(key, head, collect=collect, whole_log=start is None, kept=kept, macs=macs,
                          seen=None if macs else seen)
        return _walk_files(directory, listing, chain, visitor, progress)

    if not isinstance(key, GatewayKeys):
        return walk(False, visit)
    total = sum(size for _, size in listing)
    try:
        quick = walk(False, visit)
        if not quick.findings and not quick.unverified:
            return WalkResult(quick.report, [], [], public=False, file_starts=quick.file_starts)
    except AuditChainBroken:
        pass
    if progress is not None:
        progress(-total)  # the progress bar starts again for the second walk
    return walk(True, None)


def _walk_files(directory: Path, listing: list[tuple[str, int]], walk: ChainWalk, visit: Visitor | None,
                progress: Progress | None) -> WalkResult:
    current = [""]

    def each_visited(lines: Sequence[bytes], start: int, stop: int, lineno: int) -> None:
        ordinal = walk.ordinal
        walk.lines(lines, start, stop, lineno)
        assert visit is not None
        visit(current[0], lines, start, stop, lineno, ordinal)

    for name, size in listing:
        current[0] = name
        walk.begin_file(name)
        count, partial = read_lines(directory / name, size, walk.lines if visit is None else each_visited, progress)
        walk.end_file(count, partial)
    report = walk.finish()
    return WalkResult(report, walk.findings, walk.unverified, walk.public, walk.file_starts)


def verify_dir(directory: Path, keys: AuditKey, algorithm: AuditAlgorithm | None = None, *,
               progress: Progress | None = None) -> VerifyReport:
    """Verify every daily file in ``directory``; raises ``AuditChainBroken`` at the first broken record."""
    del algorithm  # each record names its own
    return walk_dir(directory, keys, progress=progress).report


def log_size(directory: Path) -> int:
    """How many bytes ``verify`` would read (for a progress bar)."""
    return sum(size for _, size in snapshot(directory))
