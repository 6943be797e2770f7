"""Fixtures for the audit log tests: a fixed key, a settable clock (from 2026-11-23 09:00), real directories in
tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from govgate.audit.log_dir import AuditDir
from govgate.audit.writer import AuditWriter
from govgate.core.audit_event import AuditEvent
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Audit, AuditAlgorithm
from tests.runtime import Clock, fixed_keys

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


def access_event(n: int, when: datetime, **kw: object) -> AuditEvent:
    fields: dict[str, object] = {
        "event": "access",
        "time": when,
        "request_id": f"req-{n}",
        "client": f"10.0.{n % 256}.{n % 200 + 1}",
        "country": "CN",
        "account": "zhangsan" if n % 2 else "lisi",
        "method": "GET",
        "host": "portal.example.gov.cn",
        "path": f"/oa/doc/{n}",
        "rule": "office system",
        "decision": "allow" if n % 3 else "refuse",
        "reason": None if n % 3 else "network",
        "article": "Art. 19",
    }
    fields.update(kw)
    return AuditEvent(**fields)  # type: ignore[arg-type]


@pytest.fixture
def keys() -> GatewayKeys:
    return fixed_keys()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


def audit_config(directory: Path, **kw: object) -> Audit:
    values: dict[str, object] = {"dir": directory, "retention_days": 365}
    values.update(kw)
    return Audit(**values)  # type: ignore[arg-type]


def write_days(
    directory: Path,
    keys: GatewayKeys,
    days: int = 3,
    per_day: int = 5,
    algorithm: AuditAlgorithm = AuditAlgorithm.HMAC_SHA256,
    start: datetime = START,
) -> list[str]:
    """A log over ``days`` days with ``per_day`` access records each; returns the file names."""
    log = AuditDir(directory, keys, algorithm, TZ)
    n = 0
    try:
        for d in range(days):
            now = start + timedelta(days=d)
            from govgate.core.audit_chain import event_record

            records = [event_record(access_event(n + i, now), keys) for i in range(per_day)]
            n += per_day
            log.append(records, now)
    finally:
        log.close()
    return sorted(p.name for p in directory.glob("audit-*.jsonl"))


@pytest.fixture
def make_writer(keys: GatewayKeys, clock: Clock) -> Iterator[Callable[..., AuditWriter]]:
    writers: list[AuditWriter] = []

    def make(audit: Audit, **kw: object) -> AuditWriter:
        writer = AuditWriter(audit, keys, TZ, clock=clock, **kw)  # type: ignore[arg-type]
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close(timeout=5)
