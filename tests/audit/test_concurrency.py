"""Several writers at once: CLI admin events beside the gateway's writer; backups taken while it writes."""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from govgate.audit.admin import record_admin_event
from govgate.audit.backup import backup_dir
from govgate.audit.verify import verify_dir
from govgate.audit.writer import AuditWriter
from govgate.core.audit_event import AuditEvent
from govgate.core.keys import GatewayKeys
from govgate.core.policy.model import Policy
from govgate.files import load_key_file
from tests import policies
from tests.runtime import Clock
from tests.waiting import wait_for

from .conftest import TZ, access_event, audit_config

MakeWriter = Callable[..., AuditWriter]


def admin_process(policy: Policy, worker: int, count: int) -> None:
    from datetime import datetime

    for n in range(count):
        event = AuditEvent(
            event="account.unlock",
            time=datetime.now(TZ),
            account=f"user{n}",
            decision="admin",
            article="Art. 30",
            extra={"worker": worker, "n": n},
        )
        record_admin_event(policy, event)


def test_admin_events_from_other_processes_interleave_safely_with_the_writer(
    tmp_path: Path, make_writer: MakeWriter
) -> None:
    policy = policies.policy(tmp_path)  # its audit log in tmp_path / "audit", its key in tmp_path / "secrets"
    keys = load_key_file(policy.gateway.key_file)  # creates it, as `govgate run` would
    writer = AuditWriter(policy.audit, keys, TZ, flush_interval=0.001, batch_size=16)
    writer.start()
    stop = threading.Event()

    def gateway_traffic() -> None:
        from datetime import datetime

        n = 0
        while not stop.is_set() or n < 500:
            writer.emit(access_event(n, datetime.now(TZ)))
            n += 1
            if n % 16 == 0:
                wait_for(lambda: writer.queued < 64)

    traffic = threading.Thread(target=gateway_traffic)
    traffic.start()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=admin_process, args=(policy, w, 60)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    stop.set()
    traffic.join(30)
    assert writer.close(timeout=10)
    report = verify_dir(tmp_path / "audit", keys)
    files = sorted((tmp_path / "audit").glob("audit-*.jsonl"))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    admin = [r for r in lines if r["event"] == "account.unlock"]
    assert sorted((r["worker"], r["n"]) for r in admin) == [(w, n) for w in range(2) for n in range(60)]
    assert report.count == len(lines)
    # The admin records really were interleaved with the writer's batches, not all at the end.
    first_admin = min(i for i, r in enumerate(lines) if r["event"] == "account.unlock")
    last_access = max(i for i, r in enumerate(lines) if r["event"] == "access")
    assert first_admin < last_access


def test_a_backup_taken_while_the_gateway_writes_verifies(
    tmp_path: Path, keys: GatewayKeys, clock: Clock, make_writer: MakeWriter
) -> None:
    source, dest = tmp_path / "audit", tmp_path / "backup"
    writer = make_writer(audit_config(source), flush_interval=0.001, batch_size=8)
    writer.start()
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            writer.emit(access_event(n, clock.now))
            n += 1
            if n % 200 == 0:
                clock.advance(timedelta(hours=7))  # days roll over while backups run
            if n % 8 == 0:
                wait_for(lambda: writer.queued < 32)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_for(lambda: writer.written > 50)
        counts = []
        for _ in range(8):
            report = backup_dir(source, dest, keys)
            counts.append(report.count)
        wait_for(lambda: len(list(source.glob("audit-*.jsonl"))) >= 2)
        counts.append(backup_dir(source, dest, keys).count)
    finally:
        stop.set()
        thread.join(30)
    assert writer.close(timeout=10)
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]
    assert verify_dir(dest, keys).count == counts[-1]
    assert verify_dir(source, keys).count >= counts[-1]
