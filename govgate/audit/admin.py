"""Synchronous audit appends for CLI processes (`govgate account ...`, `govgate device ...`) (Art. 20).

Art. 20 (第二十条): every admin action is part of the access log. A CLI process appends with the
same "lock, read the chain's tail, append, fsync" step as the gateway's writer thread, so both can
write the same files at once without breaking the chain. (Policy load/reload/refusal records come
from the running gateway: ``LiveRuntime``.)
"""

from __future__ import annotations

from datetime import datetime

from govgate.audit.log_dir import AuditDir
from govgate.core.audit_chain import event_record
from govgate.core.audit_event import AuditEvent
from govgate.core.policy.model import Policy
from govgate.files import load_key_file


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
