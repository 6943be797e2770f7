"""`govgate audit report`: the evidence per article over a period, from the log itself (Art. 15, 19, 20, 25, 29, 30).

One checked walk of the whole log (``scan_log``: every line verified, problems collected): the records of
the period go to an ``EvidenceCollector`` as they pass — an ordinary admitted access (the bulk of any log)
is only counted, from its bytes, everything else is parsed — and the policy timeline comes out of the same
walk. The grants in force and the retention come from the kept policy texts of the period; the TLS
settings from the gateway's start records. Memory stays flat: nothing but counters and capped lists is
kept. The result is a ``govgate.core.audit_report.Report``; rendering (HTML, text) is ``govgate.pages.audit_report``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from govgate.audit.history import PolicyTexts, scan_log
from govgate.audit.verify import Progress, snapshot_with_head
from govgate.core.audit_chain import file_day
from govgate.core.audit_history import PolicyPeriod
from govgate.core.audit_keys import AuditKey
from govgate.core.audit_report import EvidenceCollector, GrantInForce, Report
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Grant, Policy

_ACCESS = b'"event":"access"'
_ALLOW = b'"decision":"allow"'
_GRANT = b'"grant":{'
_START = b'"event":"gateway.start"'


def build_report(directory: Path, key: AuditKey, since: datetime | None, until: datetime | None, *,
                 now: datetime, fallback: Policy | None = None, progress: Progress | None = None) -> Report:
    listing, head = snapshot_with_head(directory)
    in_window = {name for name, _ in listing if _may_hold(name, since, until)}
    collector = EvidenceCollector(since, until)
    count_allowed = collector.count_allowed_access
    add = collector.add
    last_start: list[tuple[str, Mapping[str, object]]] = []

    def visit(name: str, lines: Sequence[bytes], start: int, stop: int, lineno: int, ordinal: int) -> None:
        if name not in in_window:
            for index in range(start, stop):
                if lines[index].find(_START) >= 0:
                    _remember_start(lines[index], last_start)
            return
        day = file_day(name)
        # A file whose whole day lies inside the period needs no time read per line (files are days in the
        # gateway's timezone): its admitted accesses are only counted, here, in a local variable.
        inside = day is not None and (since is None or day > since.date()) and (until is None or day < until.date())
        allowed = 0
        for index in range(start, stop):
            line = lines[index]
            if not inside:
                t = line.find(b'"time":"')
                try:
                    when = datetime.fromisoformat(line[t + 8:line.find(b'"', t + 8)].decode("ascii"))
                except (ValueError, UnicodeDecodeError):
                    continue
                if when.utcoffset() is None or (since is not None and when < since) or \
                        (until is not None and when > until):
                    if since is not None and when.utcoffset() is not None and when < since \
                            and line.find(_START) >= 0:
                        _remember_start(line, last_start)
                    continue
            if line.find(_ACCESS) >= 0 and line.find(_ALLOW) >= 0 and line.find(_GRANT) < 0:
                if inside:
                    allowed += 1
                else:
                    count_allowed(when.date())
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue  # the walk reports it
            if isinstance(record, dict):
                add(record)
        if allowed:
            assert day is not None
            count_allowed(day, allowed)

    scan = scan_log(directory, key, visit=visit, progress=progress, files=(listing, head))
    texts = PolicyTexts(directory, fallback)
    periods = scan.timeline.overlapping(since, until)
    policies = [(p, texts.policy(p)) for p in periods]
    latest = next((pol for _, pol in reversed(policies) if pol is not None), fallback)
    days = [d for name, _ in listing if (d := file_day(name)) is not None]
    unverified = sum(u.end - u.start for u in scan.result.unverified)
    return Report(
        directory=directory, since=since, until=until, generated=now,
        checked_with="the gateway key (MACs and signatures)" if isinstance(key, GatewayKeys)
        else f"the exported audit key {key.key_id} (signatures)",
        evidence=collector.evidence, verify=scan.result.report, findings=scan.findings, unverified=unverified,
        periods=periods, texts_missing=sorted(texts.missing),
        grants=_grants_in_force(policies, since, until),
        retention_days=latest.audit.retention_days if latest is not None else None,
        prune=latest.audit.prune if latest is not None else None,
        oldest_day=min(days) if days else None, newest_day=max(days) if days else None, files=len(days),
        tls_policy=[(p.sha256[:12], _tls_of(pol)) for p, pol in policies if pol is not None],
        last_start_tls=last_start[-1] if last_start else None,
    )


def _remember_start(line: bytes, into: list[tuple[str, Mapping[str, object]]]) -> None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return
    tls = record.get("tls") if isinstance(record, dict) else None
    if isinstance(tls, Mapping):
        into[:] = [(str(record.get("time")), tls)]


def _may_hold(name: str, since: datetime | None, until: datetime | None) -> bool:
    day = file_day(name)
    if day is None:
        return True
    if since is not None and day.toordinal() < since.date().toordinal() - 1:
        return False
    return not (until is not None and day.toordinal() > until.date().toordinal() + 1)


def _tls_of(policy: Policy) -> Mapping[str, object]:
    gw = policy.gateway
    return {"insecure": gw.insecure, "certificate": str(gw.tls_cert) if gw.tls_cert else None,
            "client_certificates": gw.request_client_cert and not gw.insecure,
            "client_ca": str(gw.client_ca) if gw.client_ca else None, "listen": str(gw.listen)}


def _grants_in_force(policies: list[tuple[PolicyPeriod, Policy | None]], since: datetime | None,
                     until: datetime | None) -> list[GrantInForce]:
    found: dict[tuple[object, ...], GrantInForce] = {}
    for period, policy in policies:
        if policy is None:
            continue
        for grant in policy.grants:
            if (until is not None and grant.start > until) or (since is not None and grant.end < since):
                continue
            key = _grant_key(grant)
            old = found.get(key)
            shas = (*old.policies, period.sha256[:12]) if old is not None else (period.sha256[:12],)
            found[key] = GrantInForce(
                grant.index, grant.account, grant.devices,
                tuple(sorted(grant.countries)) if grant.countries is not None else None, grant.start, grant.end,
                f"{grant.daily.start:%H:%M}-{grant.daily.end:%H:%M}" if grant.daily else None, grant.reason,
                tuple(dict.fromkeys(shas)))
    return sorted(found.values(), key=lambda g: (g.start, g.index))


def _grant_key(grant: Grant) -> tuple[object, ...]:
    return (grant.account, grant.devices, grant.countries, grant.start, grant.end, grant.daily, grant.reason)
