"""The audit event every part of the gateway emits, and the sink it goes to (Art. 20).

Field names are the public record format (docs/audit.md), for SIEMs and auditors. Emitting never blocks: a sink
only enqueues. The tamper-evident chain itself lives in ``govgate.core.audit_chain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

# What an event's extra fields may hold: JSON scalars, a list of strings (``listen`` of ``gateway.start``) or a
# small object of scalars (``grant``: its index and reason).
type AuditScalar = str | int | bool | None
type AuditValue = AuditScalar | Sequence[str] | Mapping[str, AuditScalar]


class AuditDecision(StrEnum):
    """What the gateway did, as the ``decision`` of a record says it (the JSON holds the value)."""

    ALLOW = "allow"  # let through: a request forwarded, a login completed, a leave page shown
    REFUSE = "refuse"  # refused: a 403 or 429 page, a failed login or MFA step, a refused policy file
    LOGIN = "login"  # sent to the login page: no valid session, or the session just expired
    OK = "ok"  # done as asked: the password step, a logout, a policy load or reload, an admin command
    UNAVAILABLE = "unavailable"  # failed closed: the state store or the audit log is down (503)
    ERROR = "error"  # the portal could not be reached or did not answer in time (502, 504)
    WARN = "warn"  # an off-site redirect sent through the leave page (Art. 15)
    PASSED = "pass"  # an HTML page passed on with its off-site links not rewritten (too large, streamed)
    DENY = "deny"  # a page not shown because its off-site links could not be rewritten (502)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event: str  # e.g. "access", "login.success", "login.failure", "mfa.failure", "lockout", "leave.view"
    time: datetime  # aware
    request_id: str | None = None
    client: str | None = None
    country: str | None = None
    device: str | None = None
    account: str | None = None
    method: str | None = None
    host: str | None = None
    path: str | None = None
    rule: str | None = None
    decision: str | None = None  # "allow" | "refuse" | "login" | ...
    reason: str | None = None
    article: str | None = None  # e.g. "Art. 19"
    extra: Mapping[str, AuditValue] = field(default_factory=dict)

    def to_record(self) -> dict[str, object]:
        """The JSON object written for this event (the documented field names; extra fields after)."""
        record: dict[str, object] = {
            "time": self.time.isoformat(),
            "event": self.event,
            "request_id": self.request_id,
            "client": self.client,
            "country": self.country,
            "device": self.device,
            "account": self.account,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "rule": self.rule,
            "decision": self.decision,
            "reason": self.reason,
            "article": self.article,
        }
        for key, value in self.extra.items():
            if key not in record:
                record[key] = value
        return record


class AuditSink(Protocol):
    """Where events go. ``emit`` must not block the caller (it enqueues)."""

    def emit(self, event: AuditEvent) -> None: ...


class ListSink:
    """An in-process sink that keeps events in a list: for tests and `explain`-style dry runs."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)
