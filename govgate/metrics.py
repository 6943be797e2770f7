"""The gateway's Prometheus metrics (``metrics.listen``), with the ecosystem's library, ``prometheus-client``.

``GatewayMetrics`` owns every metric of one process, in a registry of its own: request latency by outcome,
access decisions by rule and reason, logins, login failures and lockouts, store and audit errors, policy
reloads and refusals, PROXY protocol refusals, and process metrics. ``MetricsSink`` feeds the counters from
the audit events themselves on their way to the log, so the metrics and the audit log (Art. 20) can never
disagree about what happened. ``exposition`` renders the text format, with the state gauges (store reachable,
audit writable and queued, policy and data versions, GeoIP database age) set just before.

Labels take values from fixed vocabularies only: an outcome (``OUTCOMES``), an audit decision, a reason
category (``REASONS``, anything else is ``other``), a rule name (from the policy: bounded by it). Never
accounts, addresses, paths or free text such as a refused policy's problems.

Several processes (``govgate run --workers N``, later): with ``PROMETHEUS_MULTIPROC_DIR`` set in the environment
before the gateway starts, prometheus-client keeps every process's values in files in that folder and
``exposition`` merges them (its multiprocess mode; the folder must be emptied before each start, as its
documentation says). Without it, each process has its own registry — today's one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from govgate.core.audit_event import AuditDecision, AuditEvent, AuditSink

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

OUTCOMES: Final = ("forward", "refuse", "login", "error")
"""What became of a request: forwarded to the portal; refused by the gate (403, 429, 400, 503, the HTTPS
redirect); sent to or answered by the gate's own pages (login, MFA, logout, leave, health, the 303 to login);
an error (the portal unreachable or too slow: 502, 504, or the connection failed)."""

REASONS: Final = frozenset({
    # decide.Reason: the refusal categories of the 403 page (Art. 19, 30)
    "network", "overseas", "device", "group", "account", "locked", "denied",
    # the gate's other reasons
    "session", "store", "audit", "credentials", "csrf", "idle", "absolute", "revoked", "timeout", "unreachable",
    "missing", "bad_signature", "bad_url", "policy",
})

STATE_GAUGES: Final = (
    ("govgate_store_reachable", "1 if the state store answers (staff paths need it)."),
    ("govgate_audit_writable", "1 if audit records are being written (Art. 20)."),
    ("govgate_audit_queued", "Audit records waiting to be written."),
    ("govgate_audit_lost", "Audit records dropped because the queue was full, since start."),
    ("govgate_policy_version", "Policy loads since start (the first counts)."),
    ("govgate_data_version", "Loads of the accounts file and GeoIP database since start (the first counts)."),
    ("govgate_geoip_database_age_seconds", "Seconds since the GeoIP database in use was built (its metadata)."),
    ("govgate_policy_refused", "1 while the last policy reload was refused (the previous policy stays in force)."),
)


def reason_category(reason: str | None) -> str:
    """A label value for ``reason``: itself when it is one of ``REASONS``, ``""`` for none, else ``other``."""
    if not reason:
        return ""
    return reason if reason in REASONS else "other"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


@dataclass(frozen=True, slots=True)
class GatewayState:
    """What the state gauges show at one scrape."""

    store_reachable: bool
    audit_writable: bool
    audit_queued: int
    audit_lost: int
    policy_version: int
    data_version: int
    geoip_age_seconds: float | None
    policy_refused: bool


class GatewayMetrics:
    """Every metric of one gateway process, in ``registry`` (a new one when not given: tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "govgate_request_duration_seconds", "Time from a request's start to the end of its answer, by outcome.",
            ["outcome"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.events = Counter("govgate_events", "Audit events by type, decision and reason category.",
                              ["event", "decision", "reason"], registry=r)
        self.decisions = Counter("govgate_decisions", "Access decisions (Art. 19, 30) by rule, decision and reason.",
                                 ["rule", "decision", "reason"], registry=r)
        self.logins = Counter("govgate_logins", "Completed logins (password and TOTP, Art. 30).", registry=r)
        self.login_failures = Counter("govgate_login_failures",
                                      "Refused login and MFA attempts by step and reason (Art. 30).",
                                      ["stage", "reason"], registry=r)
        self.lockouts = Counter("govgate_lockouts", "Accounts or addresses locked after too many failures (Art. 30).",
                                registry=r)
        self.store_errors = Counter("govgate_store_errors", "State store calls that failed or timed out.", registry=r)
        self.audit_errors = Counter("govgate_audit_errors",
                                    "Audit log problems: a write that failed, a record lost to a full queue.",
                                    ["kind"], registry=r)
        self.policy_reloads = Counter("govgate_policy_reloads",
                                      "Reloads of the policy, or of the accounts file and GeoIP database (data), by "
                                      "result.", ["what", "result"], registry=r)
        self.proxy_protocol_refusals = Counter("govgate_proxy_protocol_refusals",
                                               "Connections closed for their PROXY protocol header, by reason.",
                                               ["reason"], registry=r)
        self.state = {name: Gauge(name, text, registry=r, multiprocess_mode="livemax") for name, text in STATE_GAUGES}
        if multiprocess_dir() is None:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

        # Each request looks up the same few labelled series: kept here once made (prometheus-client's ``labels``
        # validates, takes a lock and builds a key on every call). Series are never removed, so a kept child is
        # always the registry's; the keys are the label values, bounded as the labels are (module docstring).
        self._request_series: dict[str, Histogram] = {}
        self._event_series: dict[tuple[str, str, str], Counter] = {}
        self._decision_series: dict[tuple[str, str, str], Counter] = {}

    # -- fed by the gateway ----------------------------------------------------------------------
    def observe_request(self, outcome: str, seconds: float) -> None:
        series = self._request_series.get(outcome)
        if series is None:
            series = self.request_seconds.labels(outcome if outcome in OUTCOMES else "error")
            if outcome in OUTCOMES:
                self._request_series[outcome] = series
        series.observe(max(seconds, 0.0))

    def count_event(self, event: AuditEvent) -> None:
        decision = event.decision or ""
        reason = reason_category(event.reason)
        name = event.event
        if name.startswith("policy."):
            reason = ""  # a refused policy's reason is free text (its problems); the event says enough
        key = (name, decision, reason)
        series = self._event_series.get(key)
        if series is None:
            series = self._event_series[key] = self.events.labels(name, decision, reason)
        series.inc()
        if name == "access":
            key = (event.rule or "", decision, reason)
            series = self._decision_series.get(key)
            if series is None:
                series = self._decision_series[key] = self.decisions.labels(*key)
            series.inc()
        elif name == "login.success":
            self.logins.inc()
        elif name == "lockout":
            self.lockouts.inc()
        elif name.startswith(("login.", "mfa.")) and decision == AuditDecision.REFUSE:
            self.login_failures.labels(name.partition(".")[0], reason).inc()
        elif name == "policy.reload":
            self.policy_reloads.labels(str(event.extra.get("what") or "policy"), "ok").inc()
        elif name == "policy.refused":
            self.policy_reloads.labels(str(event.extra.get("what") or "policy"), "refused").inc()

    def store_error(self) -> None:
        self.store_errors.inc()

    def audit_error(self, kind: str) -> None:
        self.audit_errors.labels(kind if kind in ("write_failed", "record_lost") else "other").inc()

    def proxy_protocol_refused(self, reason: str) -> None:
        self.proxy_protocol_refusals.labels(reason).inc()

    # -- read by the endpoint --------------------------------------------------------------------
    def exposition(self, state: GatewayState) -> tuple[bytes, str]:
        """The text format (and its content type), with the state gauges set to ``state`` first."""
        values: Mapping[str, float] = {
            "govgate_store_reachable": float(state.store_reachable),
            "govgate_audit_writable": float(state.audit_writable),
            "govgate_audit_queued": float(state.audit_queued),
            "govgate_audit_lost": float(state.audit_lost),
            "govgate_policy_version": float(state.policy_version),
            "govgate_data_version": float(state.data_version),
            "govgate_geoip_database_age_seconds": state.geoip_age_seconds if state.geoip_age_seconds is not None
            else float("nan"),
            "govgate_policy_refused": float(state.policy_refused),
        }
        for name, value in values.items():
            self.state[name].set(value)
        if multiprocess_dir() is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        merged = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # every process's files, this one's included
        ProcessCollector(registry=merged)  # the process answering the scrape (not supported across processes)
        return generate_latest(merged), CONTENT_TYPE_LATEST

    def sample(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """One sample's value (0 when absent): for tests and ``govgate`` itself."""
        value = self.registry.get_sample_value(name, dict(labels or {}))
        return 0.0 if value is None else value


class MetricsSink:
    """An ``AuditSink`` that counts each event in ``metrics`` and passes it on to ``inner``."""

    def __init__(self, inner: AuditSink, metrics: GatewayMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def emit(self, event: AuditEvent) -> None:
        self.metrics.count_event(event)
        self.inner.emit(event)

