"""`govgate run --workers N` (docs/operations.md, "Several worker processes"): each worker process has its own
AuditWriter on the one audit directory. Two such writers in two real processes, writing at once in small batches,
leave one chain that verifies, with every record of both, their batches interleaved (Art. 20)."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

from govgate.audit.verify import verify_dir
from govgate.audit.writer import AuditWriter
from govgate.core.policy.model import Policy
from govgate.files import load_key_file
from tests import policies

from .conftest import TZ, access_event

COUNT = 3000


def worker_process(policy: Policy, worker: int, flushed: Any) -> None:
    """Write COUNT records, flushing every 64; never more than one flush ahead of the other worker, so their
    batches meet at the lock however the machine schedules the two processes."""
    from dataclasses import replace
    from datetime import datetime

    keys = load_key_file(policy.gateway.key_file)
    writer = AuditWriter(policy.audit, keys, TZ, flush_interval=0.001, batch_size=64)
    writer.start()
    other = 1 - worker
    for n in range(COUNT):
        event = access_event(n, datetime.now(TZ))
        writer.emit(replace(event, extra={**event.extra, "worker": worker}))
        if n % 64 == 0:
            writer.flush(10)
            flushed[worker] += 1
            deadline = time.monotonic() + 30
            while flushed[other] < flushed[worker] - 1 and time.monotonic() < deadline:
                time.sleep(0.001)
    flushed[worker] = 1 << 30  # done: the other need not wait any more
    assert writer.close(timeout=30)


def test_two_worker_processes_write_one_chain_that_verifies(tmp_path: Path) -> None:
    policy = policies.policy(tmp_path)
    keys = load_key_file(policy.gateway.key_file)  # made once, as the parent's check of the policy leaves it
    ctx = multiprocessing.get_context("spawn")
    flushed = ctx.Array("i", 2)
    procs = [ctx.Process(target=worker_process, args=(policy, w, flushed)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    report = verify_dir(tmp_path / "audit", keys)
    lines = [json.loads(line) for f in sorted((tmp_path / "audit").glob("audit-*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines()]
    assert report.count == len(lines)
    assert [r["seq"] for r in lines] == list(range(len(lines)))
    access = [r for r in lines if r["event"] == "access"]
    for w in range(2):  # every record of each worker, each once, in the order it emitted them
        assert [r["request_id"] for r in access if r["worker"] == w] == [f"req-{n}" for n in range(COUNT)]
    # Interleaved: the workers took turns at the lock, not one after the other.
    switches = sum(1 for a, b in itertools.pairwise(access) if a["worker"] != b["worker"])
    assert switches > 2, switches
