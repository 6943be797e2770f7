"""Prometheus text-format metrics (``metrics.listen``): decisions, authentication events, health.

Counts come from the audit events themselves (``CountingSink`` wraps the audit sink), so the
metrics and the audit log can never disagree about what happened. Only low-cardinality labels:
event, decision and reason (never accounts, addresses or paths).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from govgate.core.audit_event import AuditEvent, AuditSink


class CountingSink:
    """An ``AuditSink`` that counts each event by (event, decision, reason) and passes it on."""

    def __init__(self, inner: AuditSink) -> None:
        self.inner = inner
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def emit(self, event: AuditEvent) -> None:
        self.counts[(event.event, event.decision or "", event.reason or "")] += 1
        self.inner.emit(event)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(counts: Counter[tuple[str, str, str]], gauges: Iterable[tuple[str, str, float]]) -> str:
    """The exposition text: ``govgate_events_total`` plus the given (name, help, value) gauges."""
    lines = [
        "# HELP govgate_events_total Audit events by type, decision and reason (access, login.*, mfa.*, ...).",
        "# TYPE govgate_events_total counter",
    ]
    for (event, decision, reason), n in sorted(counts.items()):
        lines.append(f'govgate_events_total{{event="{_escape(event)}",decision="{_escape(decision)}",'
                     f'reason="{_escape(reason)}"}} {n}')
    for name, help_text, value in gauges:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {value:g}")
    return "\n".join(lines) + "\n"


type GaugeSource = Callable[[], Iterable[tuple[str, str, float]]]
