"""Synchronous audit appends for CLI processes (`govgate account ...`, `govgate device ...`) (Art. 20).

Art. 20 (第二十条): every admin action is part of the access log. A CLI process appends with the
same "lock, read the chain's tail, append, fsync" step as the gateway's writer thread, so both can
write the same files at once without breaking the chain. Also helpers for policy events, which
carry the policy file's sha256.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from govgate.audit.log_dir import AuditDir
from govgate.core.audit_chain import event_record
from govgate.core.audit_event import AuditEvent
from govgate.core.keys import load_key_file
from govgate.core.policy.model import Policy


def record_admin_event(policy: Policy, event: AuditEvent) -> None:
    """Append ``event`` to the policy's audit log now (fsynced when this returns).

    Raises ``AuditWriteFailed`` when it cannot be written, ``KeyFileError`` when the key cannot be read:
    an admin command whose action cannot be recorded should say so (and fail).
    """
    keys = load_key_file(policy.gateway.key_file)
    directory = AuditDir(policy.audit.dir, keys, policy.audit.algorithm, policy.gateway.timezone)
    try:
        now = datetime.now(policy.gateway.timezone)
        directory.append([event_record(event, keys)], now)
    finally:
        directory.close()


def file_sha256(path: Path) -> str | None:
    """Hex SHA-256 of a file's bytes (for policy load/reload/refusal events); None if unreadable."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def policy_event(
    kind: str, source: Path, sha256: str | None, time: datetime, *, error: str | None = None
) -> AuditEvent:
    """An event for a policy ``load``, ``reload`` or ``refused`` (``event`` = ``policy.<kind>``)."""
    extra: dict[str, str | int | bool | None] = {"policy": str(source), "policy_sha256": sha256}
    if error is not None:
        extra["error"] = error[:2000]
    return AuditEvent(
        event=f"policy.{kind}",
        time=time,
        decision="refuse" if kind == "refused" else None,
        article="Art. 20",
        extra=extra,
    )
