"""Appending to the audit directory under an exclusive lock, from any process (Art. 20).

Every writer (the gateway's writer thread, a `govgate account ...` process, a pruning pass) does
"lock, read the chain's tail, append, fsync, unlock" with ``fcntl.flock`` on ``<dir>/.lock``, so
records from several processes interleave without breaking the chain. The tail (last ``seq`` and
hash) is cached and re-read only when the newest file changed under us (inode, size or mtime).
Other writers only append, so when it changed, our own last line must still end at the cached size
and hash to the cached ``prev``; if not, records were erased under us: the chain goes on from the
remembered ``seq``/``prev`` (so ``verify`` reports them missing) after an ``audit.damaged`` record.

A day's file is sealed and the next one opened (with its link record) in one locked step, at the
first append or rotation check of a new day in ``gateway.timezone``. A write that fails leaves the
files as they were (each touched file is cut back to its size before the attempt), so a retry
appends the same records again with correct numbers.
"""

from __future__ import annotations

import fcntl
import hmac
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from govgate.core.audit_chain import (
    DAMAGED_EVENT,
    GENESIS,
    HEAD_NAME,
    PRUNE_EVENT,
    REPAIR_EVENT,
    SEAL_EVENT,
    ChainCrypto,
    Head,
    chain_record,
    file_day,
    file_name,
    head_line,
    link_record,
    parse_head,
    parse_line,
    seal_line,
    seal_lines,
    seal_record,
)
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditWriteFailed

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
MIN_RETENTION_DAYS = 365  # Art. 20 (第二十条): logs kept at least one year
_TAIL_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Tail:
    name: str  # newest file
    day: date
    ino: int
    size: int
    mtime_ns: int
    next_seq: int
    prev: str
    sealed: bool
    vanished: bool = False  # the file was deleted under us: the chain goes on, and says so


def list_log_files(directory: Path) -> list[str]:
    """The daily files in ``directory``, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if file_day(n) is not None)


class AuditDir:
    """One audit directory's chain, appended to under the directory's lock."""

    def __init__(self, directory: Path, keys: GatewayKeys, algorithm: AuditAlgorithm, tz: ZoneInfo) -> None:
        self.directory = directory
        self.tz = tz
        self._keys = keys
        self._crypto = ChainCrypto(keys, algorithm)
        self._cryptos: dict[AuditAlgorithm, ChainCrypto] = {algorithm: self._crypto}
        self._tail: _Tail | None = None
        self._lock_fd: int | None = None

    @property
    def algorithm(self) -> AuditAlgorithm:
        return self._crypto.algorithm

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's exclusive lock (creating the directory and lock file if needed)."""
        fd = self._acquire()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _acquire(self) -> int:
        for _ in range(3):
            if self._lock_fd is None:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
                self._lock_fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
            fd = self._lock_fd
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                mine = os.fstat(fd)
                current = os.stat(self.directory / LOCK_NAME)
            except FileNotFoundError:
                current = None
            except OSError:
                self.close()
                raise
            if current is not None and (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
                return fd
            # The directory (or its lock file) was replaced since we opened it: our lock would guard
            # nothing another process can see. Open the current one and lock again.
            self.close()
        raise OSError(f"{self.directory / LOCK_NAME} keeps being replaced")

    def day_of(self, now: datetime) -> date:
        return now.astimezone(self.tz).date()

    def rotation_due(self, now: datetime) -> bool:
        """True when the newest file we know of belongs to an earlier day (cheap, no I/O)."""
        tail = self._tail
        return tail is not None and tail.day < self.day_of(now)

    def append(self, records: Sequence[Mapping[str, object]], now: datetime) -> list[bytes]:
        """Chain, write and fsync ``records`` (and any seal/link a new day needs). Returns the lines written.

        Raises ``AuditWriteFailed`` (the files are left as before) or ``OSError`` from locking.
        """
        try:
            with self.locked():
                return self._append_locked(records, now)
        except AuditWriteFailed:
            raise
        except OSError as exc:
            raise AuditWriteFailed(f"cannot write audit records in {self.directory}: {exc}") from exc

    def prune(self, now: datetime, retention_days: int, enabled: bool) -> list[str]:
        """Delete files older than ``retention_days``, only when ``enabled`` and never below 365 days.

        The deletion is announced first by an ``audit.prune`` record naming the files, so the
        oldest remaining file's link still verifies. Returns the names deleted.
        """
        # Art. 20 (第二十条): access logs are kept at least one year; pruning is the operator's choice.
        if not enabled or retention_days < MIN_RETENTION_DAYS:
            return []
        today = self.day_of(now)
        try:
            with self.locked():
                names = list_log_files(self.directory)
                old = [n for n in names[:-1] if (today - (file_day(n) or today)).days > retention_days]
                if not old:
                    return []
                self._append_locked([chain_record(PRUNE_EVENT, now, files=",".join(old))], now)
                for name in old:
                    (self.directory / name).unlink()
                _fsync_dir(self.directory)
                return old
        except OSError as exc:
            raise AuditWriteFailed(f"cannot prune audit files in {self.directory}: {exc}") from exc

    # -- internals -------------------------------------------------------------------------

    def _crypto_for(self, algorithm: AuditAlgorithm) -> ChainCrypto:
        crypto = self._cryptos.get(algorithm)
        if crypto is None:
            crypto = self._cryptos[algorithm] = ChainCrypto(self._keys, algorithm)
        return crypto

    def _current_tail(self, now: datetime) -> tuple[_Tail | None, list[dict[str, object]]]:
        """The chain's tail, re-read when another process (or a crash) changed the newest file."""
        tail = self._tail
        if tail is not None:
            try:
                st = os.stat(self.directory / tail.name)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_ino, st.st_size, st.st_mtime_ns) == (tail.ino, tail.size, tail.mtime_ns):
                return tail, []
            if st is None:
                names = list_log_files(self.directory)
                if not names or names[-1] < tail.name:
                    # Our newest file was deleted (or the whole directory): continue the chain from
                    # memory, so the next file's link names the missing file and `verify` reports it.
                    return replace(tail, vanished=True), []
            else:
                found = self._cut_under_us(tail, st)
                if found is not None:
                    return self._continue_after_cut(tail, found, now)
        return self._read_tail(now)

    def _cut_under_us(self, tail: _Tail, st: os.stat_result) -> str | None:
        """What changed in the records we last wrote, or None when they are still there as written.

        Other writers only ever append, so our last line must still end at the cached size and hash
        to the cached ``prev``. A shorter file, or another line there, means records were erased.
        """
        if st.st_ino == tail.ino and st.st_size < tail.size:
            return f"the file shrank from {tail.size} to {st.st_size} bytes"
        try:
            with open(self.directory / tail.name, "rb") as f:
                if os.fstat(f.fileno()).st_size < tail.size:
                    return f"the file was replaced by a shorter one (under {tail.size} bytes)"
                last, end = _last_complete_line(f, tail.size)
        except FileNotFoundError:
            return None  # deleted since the stat: handled as a vanished file by the next append
        if (
            last is None
            or end != tail.size
            or not any(hmac.compare_digest(self._crypto_for(alg).hash(last), tail.prev) for alg in AuditAlgorithm)
        ):
            return f"the record before byte {tail.size} is no longer the last one written"
        return None

    def _continue_after_cut(
        self, tail: _Tail, found: str, now: datetime
    ) -> tuple[_Tail | None, list[dict[str, object]]]:
        """Records we wrote were erased: chain on from memory so `verify` names the gap, and say so."""
        log.error("audit.tail.cut file=%s %s", self.directory / tail.name, found)
        current, extra = self._read_tail(now)
        extra = [r for r in extra if r.get("event") != DAMAGED_EVENT]  # replaced by the precise one below
        extra.append(chain_record(DAMAGED_EVENT, now, file=tail.name, found=found))
        if current is None:
            return replace(tail, vanished=True), extra
        # Never go back in numbering: a record another writer chained onto the cut file keeps its number.
        return replace(current, next_seq=max(tail.next_seq, current.next_seq), prev=tail.prev), extra

    def _read_tail(self, now: datetime) -> tuple[_Tail | None, list[dict[str, object]]]:
        """The tail as the files show it, held against the head anchor: newest records cut while
        nothing was writing are found here (``audit.damaged``) and the chain goes on after them, so
        ``verify`` names the gap."""
        tail, extra = self._read_tail_from_files(now)
        try:
            data: bytes | None = (self.directory / HEAD_NAME).read_bytes()
        except FileNotFoundError:
            data = None
        if data is None and tail is None:
            return tail, extra  # a new log
        head = None if data is None else parse_head(data, self._crypto_for)
        last = -1 if tail is None else tail.next_seq - 1
        if head is None:
            found = "the head anchor is missing" if data is None else "the head anchor does not match its MAC"
        elif head.seq > last:
            found = (f"the log ends at seq {last}, but the head anchor names seq {head.seq} in {head.file}: "
                     f"the newest records were erased")
        else:
            return tail, extra
        log.error("audit.tail.cut dir=%s %s", self.directory, found)
        extra.append(chain_record(DAMAGED_EVENT, now, file=head.file if head else HEAD_NAME, found=found))
        if head is None or head.seq <= last:
            return tail, extra
        if tail is None:  # every file is gone: the next one links to the file the anchor names
            day = file_day(head.file) or self.day_of(now)
            return _Tail(head.file, day, 0, 0, 0, head.seq + 1, head.hash, sealed=False, vanished=True), extra
        return replace(tail, next_seq=head.seq + 1, prev=head.hash), extra

    def _read_tail_from_files(self, now: datetime) -> tuple[_Tail | None, list[dict[str, object]]]:
        extra: list[dict[str, object]] = []
        for name in reversed(list_log_files(self.directory)):
            path = self.directory / name
            with open(path, "r+b") as f:
                size = os.fstat(f.fileno()).st_size
                last, end = _last_complete_line(f, size)
                if end < size:
                    # A crash cut the last write short: drop the incomplete line, and say so in the log.
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
                    extra.append(chain_record(REPAIR_EVENT, now, file=name, dropped_bytes=size - end))
                st = os.fstat(f.fileno())
            if last is None:
                # Nothing complete in it (a crash while creating it): it holds no record, remove it.
                path.unlink()
                _fsync_dir(self.directory)
                if not any(r.get("file") == name for r in extra):
                    extra.append(chain_record(REPAIR_EVENT, now, file=name, dropped_bytes=0))
                continue
            day = file_day(name)
            assert day is not None  # list_log_files only returns dated names
            parsed = parse_line(last, self._crypto_for)
            if parsed is not None and parsed.mac_ok:
                next_seq, prev = parsed.seq + 1, self._crypto_for(parsed.algorithm).hash(last)
                sealed = parsed.record.get("event") == SEAL_EVENT
            else:
                # Someone changed the last record. `verify` will name it; the log itself carries on
                # (writing resumes by itself) and says when the writer found it.
                next_seq, prev, sealed = self._seq_after_damage(path) + 1, self._crypto.hash(last), False
                extra.append(
                    chain_record(DAMAGED_EVENT, now, file=name, found="the last record does not match its MAC")
                )
                log.error("audit.tail.damaged file=%s", path)
            tail = _Tail(
                name=name,
                day=day,
                ino=st.st_ino,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                next_seq=next_seq,
                prev=prev,
                sealed=sealed,
            )
            return tail, extra
        return None, extra

    def _seq_after_damage(self, path: Path) -> int:
        """The ``seq`` the damaged last line should have had: the last valid one plus the lines after it.

        Only a record with a valid MAC is believed: an edited line could claim any ``seq``.
        """
        lines = path.read_bytes().split(b"\n")[:-1]
        for back, line in enumerate(reversed(lines)):
            parsed = parse_line(line, self._crypto_for)
            if parsed is not None and parsed.mac_ok:
                return parsed.seq + back
        return len(lines) - 1

    def _append_locked(self, records: Sequence[Mapping[str, object]], now: datetime) -> list[bytes]:
        tail, extra = self._current_tail(now)
        today = self.day_of(now)
        if tail is None and not records and not extra:
            return []
        if (
            tail is not None
            and not records
            and not extra
            and not tail.sealed
            and not tail.vanished
            and tail.day >= today
        ):
            self._tail = tail
            return []
        crypto = self._crypto
        # Per file, the lines to append, in order.
        plan: list[tuple[str, list[bytes]]] = []
        if tail is None:
            seq, prev, cur_name, cur_day, sealed = 0, GENESIS, None, today, True
        else:
            seq, prev, cur_name, cur_day, sealed = tail.next_seq, tail.prev, tail.name, tail.day, tail.sealed
        vanished = tail is not None and tail.vanished
        lines: list[bytes] = []
        if cur_name is None or sealed or vanished or cur_day < today:
            if cur_name is not None and not sealed and not vanished:
                # Art. 20: a closed day ends with a seal, so a truncated or deleted day is found.
                line = seal_line(seal_record(now, cur_name), seq, prev, crypto, sign=True)
                seq, prev = seq + 1, crypto.hash(line)
                plan.append((cur_name, [line]))
            # Sealed but not yet past its day (only if the clock went back): the next file is the next day's.
            fresh = cur_name is None or vanished or today > cur_day
            new_day = max(today, cur_day) if fresh else _next_day(cur_day)
            new_name = file_name(new_day)
            line = seal_line(link_record(now, new_name, cur_name), seq, prev, crypto)
            seq, prev = seq + 1, crypto.hash(line)
            lines.append(line)
            cur_name, cur_day = new_name, new_day
        seq, prev = seal_lines((*extra, *records), seq, prev, crypto, lines)
        plan.append((cur_name, lines))
        written = self._write_plan(plan, head_line(Head(cur_name, seq - 1, prev), now, crypto))
        st = os.stat(self.directory / cur_name)
        self._tail = _Tail(
            name=cur_name,
            day=cur_day,
            ino=st.st_ino,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            next_seq=seq,
            prev=prev,
            sealed=False,
        )
        return written

    def _write_plan(self, plan: list[tuple[str, list[bytes]]], head: bytes) -> list[bytes]:
        """Append each file's lines and fsync, then replace the head anchor; on any failure cut every
        touched file back and raise (the anchor is replaced last, so it never names a record not written)."""
        done: list[tuple[Path, int | None]] = []  # path, size before (None: we created it)
        written: list[bytes] = []
        try:
            for name, lines in plan:
                path = self.directory / name
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
                try:
                    before = os.fstat(fd).st_size
                    done.append((path, before))
                    if before == 0:
                        done[-1] = (path, None)
                    data = b"\n".join((*lines, b""))
                    view = memoryview(data)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if before == 0:
                    _fsync_dir(self.directory)
                written.extend(lines)
            replace_file(self.directory / HEAD_NAME, head)
        except OSError as exc:
            self._undo(done)
            raise AuditWriteFailed(f"cannot write audit records to {self.directory}: {exc}") from exc
        return written

    def _undo(self, done: list[tuple[Path, int | None]]) -> None:
        for path, before in reversed(done):
            try:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    os.truncate(path, before)
            except OSError:
                # Left as is: the next append re-reads the tail and cuts any incomplete line.
                continue


def _next_day(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temporary file, fsync, rename, fsync the folder).

    The rename is the commit point: an error before it leaves ``path`` as it was (and is raised); once
    the new content is in place, a failing fsync of the folder is only logged, because callers treat a
    raised error as "not written" and would undo what the new content already vouches for.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    try:
        _fsync_dir(path.parent)
    except OSError as exc:
        log.error("audit.fsync.failed dir=%s error=%s", path.parent, exc)


def fsync_dir(directory: Path) -> None:
    """Make a rename or new file in ``directory`` durable."""
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_complete_line(f: BinaryIO, size: int) -> tuple[bytes | None, int]:
    """The last newline-terminated line of an open binary file and the offset just after it."""
    chunk = _TAIL_CHUNK
    while True:
        start = max(0, size - chunk)
        f.seek(start)
        data = f.read(size - start)
        end_nl = data.rfind(b"\n")
        if end_nl < 0:
            if start == 0:
                return None, 0
            chunk *= 2
            continue
        begin = data.rfind(b"\n", 0, end_nl)
        if begin < 0 and start > 0:
            chunk *= 2
            continue
        return data[begin + 1 : end_nl], start + end_nl + 1
