"""The evidence per article over a period, gathered from the audit log's records (Art. 15, 19, 20, 25, 29, 30).

`govgate audit report` feeds every record of the period to ``EvidenceCollector.add`` (or, for the bulk of
ordinary admitted accesses, only ``count_allowed_access``, so a million records need not all be parsed),
then adds what the log says about itself (the walk's result, the policy timeline, the kept policies) into a
``Report``, which ``govgate.pages.audit_report`` renders:

- Art. 15 (第十五条): leave warnings shown, invalid leave links refused, the destinations warned about;
- Art. 19 (第十九条): access refused by network and as overseas (and logins refused from where no staff
  rule admits), every access admitted by an overseas grant with that grant, the grants in force;
- Art. 20 (第二十条): the verification result, the first and last record, retention, the backups made,
  gateway starts and stops, policy loads, the log's own warnings (damage, losses, repairs);
- Art. 25/30 (第二十五条/第三十条): logins, failures, lockouts, session timeouts (idle, absolute),
  disabled or expired accounts refused, device refusals and logins on devices, account administration;
- Art. 29 (第二十九条): the TLS settings in force (from the gateway's start records and the policies).

Pure: records in, numbers and lists out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from govgate.core.audit_chain import VerifyReport, record_time
from govgate.core.audit_history import PolicyPeriod
from govgate.core.audit_walk import Finding

MAX_LISTED = 500  # rows listed individually per table; the rest are counted (and `audit show` lists them)


@dataclass(frozen=True, slots=True)
class Row:
    """One record as a report lists it."""

    time: str
    event: str
    account: str | None
    client: str | None
    country: str | None
    detail: str


@dataclass(slots=True)
class Listing:
    """Rows up to ``MAX_LISTED``, and how many there were in all."""

    rows: list[Row] = field(default_factory=list)
    total: int = 0

    def add(self, row: Row) -> None:
        self.total += 1
        if len(self.rows) < MAX_LISTED:
            self.rows.append(row)


@dataclass(slots=True)
class GrantUse:
    """Accesses admitted by one overseas grant for one account from one country (Art. 19)."""

    index: int | None
    reason: str
    account: str | None
    country: str | None
    count: int = 0
    first: str = ""
    last: str = ""


@dataclass(slots=True)
class Evidence:
    since: datetime | None
    until: datetime | None
    records: int = 0  # in the period
    days: Counter[date] = field(default_factory=Counter)  # records per day
    access: Counter[tuple[date, str]] = field(default_factory=Counter)  # (day, allow|refuse|login|…)
    access_total: Counter[str] = field(default_factory=Counter)  # decision → count
    refused_by_reason: Counter[str] = field(default_factory=Counter)  # access refusals by reason
    # Art. 15
    leave_shown: int = 0
    leave_refused: Counter[str] = field(default_factory=Counter)  # invalid links by why
    destinations: Counter[str] = field(default_factory=Counter)
    not_rewritten: Counter[str] = field(default_factory=Counter)  # pages the rewriter could not safely change
    # Art. 19
    network_refused: Listing = field(default_factory=Listing)
    overseas_refused: Listing = field(default_factory=Listing)
    refused_countries: Counter[str] = field(default_factory=Counter)  # country of network/overseas refusals
    login_refused: Counter[str] = field(default_factory=Counter)  # login/mfa .refused by reason (Art. 19)
    granted: Listing = field(default_factory=Listing)  # every access admitted by an overseas grant
    grant_uses: dict[tuple[object, ...], GrantUse] = field(default_factory=dict)
    # Art. 30 / 25
    logins: int = 0
    password_ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # event → count (login.failure, mfa.failure)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    locked_attempts: int = 0
    lockouts: Listing = field(default_factory=Listing)
    timeouts: Counter[str] = field(default_factory=Counter)  # idle | absolute | revoked
    logouts: int = 0
    logins_per_day: Counter[tuple[date, str]] = field(default_factory=Counter)  # (day, success|failure)
    account_refused: Listing = field(default_factory=Listing)  # disabled, expired, deleted accounts refused
    device_refused: Listing = field(default_factory=Listing)  # bind_devices: not on one of its own devices
    device_logins: Counter[str] = field(default_factory=Counter)  # device → logins on it
    admin: Listing = field(default_factory=Listing)  # govgate account / device actions
    # Art. 20 / 29
    starts: Listing = field(default_factory=Listing)
    stops: Listing = field(default_factory=Listing)
    policy_events: Listing = field(default_factory=Listing)
    backups: Listing = field(default_factory=Listing)
    log_warnings: Listing = field(default_factory=Listing)  # audit.damaged, .lost, .repair, .prune
    tls: list[tuple[str, Mapping[str, object]]] = field(default_factory=list)  # (start time, tls settings)


def _s(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _row(record: Mapping[str, object], detail: str) -> Row:
    return Row(str(record.get("time") or ""), str(record.get("event") or ""), _s(record.get("account")),
               _s(record.get("client")), _s(record.get("country")), detail)


def _request(record: Mapping[str, object]) -> str:
    return " ".join(v for v in (_s(record.get("method")) or "", f"{record.get('host') or ''}{record.get('path') or ''}")
                    if v)


class EvidenceCollector:
    """Takes the period's records in log order."""

    def __init__(self, since: datetime | None, until: datetime | None) -> None:
        self.evidence = Evidence(since, until)

    def count_allowed_access(self, day: date, count: int = 1) -> None:
        """Accesses admitted without an overseas grant: only counted (the quick way for the bulk of the log)."""
        ev = self.evidence
        ev.records += count
        ev.days[day] += count
        ev.access[(day, "allow")] += count
        ev.access_total["allow"] += count

    def add(self, record: Mapping[str, object]) -> None:
        ev = self.evidence
        when = record_time(record)
        day = when.date() if when is not None else date.min
        ev.records += 1
        ev.days[day] += 1
        event = str(record.get("event") or "")
        decision = _s(record.get("decision")) or "-"
        reason = _s(record.get("reason")) or "-"
        if event == "access":
            self._access(record, day, decision, reason)
        elif event == "leave.view":
            if decision == "allow":
                ev.leave_shown += 1
                host = _s(record.get("destination_host"))
                if host:
                    ev.destinations[host] += 1
            else:
                ev.leave_refused[reason] += 1
        elif event == "outbound.not_rewritten":
            ev.not_rewritten[reason] += 1
        elif event in ("login.refused", "mfa.refused"):
            ev.login_refused[reason] += 1
        elif event == "login.success":
            ev.logins += 1
            ev.logins_per_day[(day, "success")] += 1
            device = _s(record.get("device"))
            if device:
                ev.device_logins[device] += 1
        elif event == "login.password":
            ev.password_ok += 1
        elif event in ("login.failure", "mfa.failure"):
            ev.failures[event] += 1
            ev.failure_reasons[reason] += 1
            ev.logins_per_day[(day, "failure")] += 1
        elif event in ("login.locked", "mfa.locked"):
            ev.locked_attempts += 1
        elif event == "lockout":
            ev.lockouts.add(_row(record, f"until {record.get('until') or '?'}"))
        elif event == "session.expired":
            ev.timeouts[reason] += 1
        elif event == "logout":
            ev.logouts += 1
        elif event.startswith(("admin.account.", "admin.device.")):
            extra = {k: v for k, v in record.items() if k in ("groups", "expires", "operator", "store",
                                                                 "sessions_ended", "device")}
            ev.admin.add(_row(record, f"{event.removeprefix('admin.')} "
                                      + " ".join(f"{k}={v}" for k, v in sorted(extra.items()) if v not in (None, ""))))
        elif event == "gateway.start":
            tls = record.get("tls")
            listen = record.get("listen")
            urls = ", ".join(map(str, listen)) if isinstance(listen, list) else "-"
            ev.starts.add(_row(record, f"version {record.get('version')} · policy "
                                       f"{str(record.get('policy_sha256'))[:12]} · listen {urls}{_worker(record)}"))
            if isinstance(tls, Mapping):
                ev.tls.append((str(record.get("time")), tls))
        elif event == "gateway.stop":
            ev.stops.add(_row(record, f"{reason} after {record.get('uptime_seconds')} s{_worker(record)}"))
        elif event.startswith("policy."):
            ev.policy_events.add(_row(record, f"{decision} {str(record.get('policy_sha256') or '')[:12]} "
                                              f"{'' if reason == '-' else reason}".strip()))
        elif event == "audit.backup":
            ev.backups.add(_row(record, f"to {record.get('dest')}: {record.get('records')} records, last seq "
                                        f"{record.get('last_seq')}"))
        elif event in ("audit.damaged", "audit.lost", "audit.repair", "audit.prune"):
            detail = record.get("found") or record.get("lost") or record.get("dropped_bytes") or record.get("files")
            ev.log_warnings.add(_row(record, f"{event}: {detail}"))

    def _access(self, record: Mapping[str, object], day: date, decision: str, reason: str) -> None:
        ev = self.evidence
        ev.access[(day, decision)] += 1
        ev.access_total[decision] += 1
        if decision == "refuse":
            ev.refused_by_reason[reason] += 1
            country = _s(record.get("country")) or "??"
            row = _row(record, f"{_request(record)} rule={record.get('rule') or '-'}")
            if reason == "network":
                ev.network_refused.add(row)
                ev.refused_countries[country] += 1
            elif reason == "overseas":
                ev.overseas_refused.add(row)
                ev.refused_countries[country] += 1
            elif reason == "account":
                ev.account_refused.add(row)
            elif reason == "device":
                ev.device_refused.add(row)
        grant = record.get("grant")
        if decision == "allow" and isinstance(grant, Mapping):
            index = grant.get("index")
            why = str(grant.get("reason") or "")
            ev.granted.add(_row(record, f"grant #{index} {why} · {_request(record)}"))
            key = (index, why, record.get("account"), record.get("country"))
            use = ev.grant_uses.get(key)
            if use is None:
                use = ev.grant_uses[key] = GrantUse(index if isinstance(index, int) else None, why,
                                                    _s(record.get("account")), _s(record.get("country")))
            use.count += 1
            stamp = str(record.get("time") or "")
            use.first = use.first or stamp
            use.last = stamp


@dataclass(frozen=True, slots=True)
class GrantInForce:
    """An overseas grant of a policy in force during the period whose window meets the period (Art. 19)."""

    index: int
    account: str | None
    devices: tuple[str, ...]
    countries: tuple[str, ...] | None
    start: datetime
    end: datetime
    daily: str | None
    reason: str
    policies: tuple[str, ...]  # SHA-256 (first 12) of the policies that held it


@dataclass(slots=True)
class Report:
    directory: Path
    since: datetime | None
    until: datetime | None
    generated: datetime
    checked_with: str
    evidence: Evidence
    verify: VerifyReport
    findings: list[Finding]
    unverified: int  # lines no signature vouches for (exported key only)
    periods: list[PolicyPeriod]
    texts_missing: list[str]
    grants: list[GrantInForce]
    retention_days: int | None
    prune: bool | None
    oldest_day: date | None
    newest_day: date | None
    files: int
    tls_policy: list[tuple[str, Mapping[str, object]]] = field(default_factory=list)  # (policy sha, settings)
    last_start_tls: tuple[str, Mapping[str, object]] | None = None  # the start record in force at the period's start

    @property
    def verified(self) -> bool:
        return not self.findings and not self.unverified


def _worker(record: Mapping[str, object]) -> str:
    """`` · worker K`` for a record of one of `govgate run --workers N` (docs/audit.md, "Several processes")."""
    worker = record.get("worker")
    if not isinstance(worker, int):
        return ""
    restarts = record.get("restarts")
    again = f", restarted {restarts}×" if isinstance(restarts, int) and restarts else ""
    return f" · worker {worker}{again}"
