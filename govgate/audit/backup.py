"""`govgate audit backup DEST`: copy the audit log into a folder and verify the copy (Art. 20).

Art. 20 (第二十条): access logs are backed up. Safe from cron while the gateway writes: the list
of files and their sizes is taken under the directory's lock (so at a point between two appends),
then each file is copied up to that size without holding the lock — writers only ever append, so
those bytes do not change. Each file is written to a temporary name, fsynced and renamed. The kept
policy texts (``policies/``) are copied too; each is written before the record naming it, so every
text a copied record names is there. The copy is then verified on its own, and
``govgate audit verify --dir DEST`` accepts it. A file already in DEST is only ever extended, never
replaced by different content.
"""

from __future__ import annotations

import os
from pathlib import Path

from govgate.audit.kept_policies import POLICIES_DIR
from govgate.audit.log_dir import replace_file
from govgate.audit.verify import Progress, snapshot_with_head, verify_dir
from govgate.core.audit_chain import HEAD_NAME, Tamper, VerifyReport
from govgate.core.audit_keys import AuditKey
from govgate.core.policy.model import AuditAlgorithm
from govgate.errors import AuditChainBroken, GovGateError

_CHUNK = 1 << 20


def backup_dir(source: Path, dest: Path, keys: AuditKey, algorithm: AuditAlgorithm | None = None, *,
               progress: Progress | None = None) -> VerifyReport:
    """Copy ``source``'s daily files into ``dest`` at one consistent point; verify and report the copy."""
    if dest.resolve() == source.resolve():
        raise GovGateError(f"{dest}: the backup folder must not be the audit directory itself")
    files, head = snapshot_with_head(source)
    dest.mkdir(parents=True, exist_ok=True, mode=0o750)
    for name, size in files:
        _check_extends_earlier_backup(source / name, dest / name, size)
    for name, size in files:
        _copy_prefix(source / name, dest / name, size, progress)
    _copy_kept_policies(source, dest)
    if head is not None:
        # Taken with the file sizes, under the lock: it names the copy's newest record.
        replace_file(dest / HEAD_NAME, head)
    else:
        # The source has lost its anchor: an earlier backup's must not vouch for this copy.
        (dest / HEAD_NAME).unlink(missing_ok=True)
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return verify_dir(dest, keys, algorithm, progress=progress)


def _check_extends_earlier_backup(src: Path, dst: Path, size: int) -> None:
    """An earlier backup of a file may only grow: the log is append-only, so a difference is tampering.

    This makes each backup an outside anchor: records removed from (or changed in) the log after
    they were backed up — even the newest ones, which the chain alone cannot vouch for — are found,
    and the good copy is never overwritten.
    """
    try:
        old = dst.read_bytes()
    except FileNotFoundError:
        return
    with open(src, "rb") as f:
        new = f.read(min(size, len(old)))
    if new == old:
        return
    at = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
    line = old[:at].count(b"\n") + 1
    if len(new) < len(old) and new == old[: len(new)]:
        what = f"{Tamper.TRUNCATED}: the log is shorter than the earlier backup in {dst.parent}"
    else:
        what = f"{Tamper.MODIFIED}: the log differs from the earlier backup in {dst.parent}"
    raise AuditChainBroken(str(src), line, what)


def _copy_kept_policies(source: Path, dest: Path) -> None:
    """The policy texts the records name (``policies/<sha256>.yaml``): written once, never changed, so a copy in
    an earlier backup is kept as it is (a source that now differs is reported, not copied over it)."""
    folder = source / POLICIES_DIR
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return
    target = dest / POLICIES_DIR
    target.mkdir(exist_ok=True, mode=0o750)
    for name in names:
        if not name.endswith(".yaml"):
            continue
        src, dst = folder / name, target / name
        data = src.read_bytes()
        try:
            old = dst.read_bytes()
        except FileNotFoundError:
            old = None
        if old is None:
            _copy_prefix(src, dst, len(data))
        elif old != data:
            raise AuditChainBroken(str(src), 1, f"{Tamper.MODIFIED}: the kept policy text differs from the earlier "
                                                f"backup in {dest}")
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_prefix(src: Path, dst: Path, size: int, progress: Progress | None = None) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        remaining = size
        while remaining:
            chunk = fin.read(min(_CHUNK, remaining))
            if not chunk:
                raise GovGateError(f"{src}: the file shrank while being copied")
            fout.write(chunk)
            remaining -= len(chunk)
            if progress is not None:
                progress(len(chunk))
        fout.flush()
        os.fsync(fout.fileno())
    os.chmod(tmp, 0o440)
    os.replace(tmp, dst)
