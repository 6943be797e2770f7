"""The policy texts the gateway has loaded, kept in the audit directory by their SHA-256 (Art. 20).

Art. 20 (第二十条): the access log must answer for what happened, and what happened depends on the
policy in force. Every policy text the gateway loads is kept as ``<audit.dir>/policies/<sha256>.yaml``
(the exact bytes, mode 0440, written atomically before the ``policy.load``/``policy.reload`` record that
names it in ``policy_text``). The record carries the hash and is chained, so the kept text is covered
by the chain: ``verify`` checks each named file's SHA-256, ``backup`` copies the folder, and
``govgate audit policy --at TIME`` prints the text that was in force.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from govgate.audit.log_dir import fsync_dir

log = logging.getLogger(__name__)

POLICIES_DIR = "policies"


def kept_name(sha256: str) -> str:
    """The name, relative to the audit directory, of the kept text with this SHA-256."""
    return f"{POLICIES_DIR}/{sha256}.yaml"


def keep_policy_text(audit_dir: Path, data: bytes) -> str:
    """Keep ``data`` (a policy file's exact bytes) in ``audit_dir``; returns its name there. Blocking: call
    it where file I/O is allowed (start-up, or a worker thread). Raises ``OSError`` when it cannot be kept."""
    sha = hashlib.sha256(data).hexdigest()
    name = kept_name(sha)
    path = audit_dir / name
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() == sha:
            return name  # kept already (the same text loaded again, or by another worker)
        log.error("audit.policy_text.altered file=%s (written again from the policy in force)", path)
    except FileNotFoundError:
        pass
    audit_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    path.parent.mkdir(exist_ok=True, mode=0o750)
    # A temporary name of this process's own: the workers of `govgate run --workers N` reload the same text at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o440)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return name


def kept_sha256(audit_dir: Path, name: str) -> str | None:
    """The SHA-256 of the kept text ``name`` as it is now, or None when it is missing or unreadable."""
    try:
        return hashlib.sha256((audit_dir / name).read_bytes()).hexdigest()
    except OSError:
        return None


def read_kept(audit_dir: Path, name: str) -> bytes | None:
    try:
        return (audit_dir / name).read_bytes()
    except OSError:
        return None
