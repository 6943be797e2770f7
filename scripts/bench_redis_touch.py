#!/usr/bin/env python3
"""The Redis session lookup measured alone: ``RedisStore.touch_session`` against a real redis-server.

    python scripts/bench_redis_touch.py [--calls 5000] [--inflight 50] [--rounds 3] [--json] [--compare DIR]

One redis-server on a free loopback port (nothing persisted), one session in it; each measurement runs
in its own Python process (``PYTHONPATH`` = the source tree measured) that makes ``--calls`` lookups with
``--inflight`` of them in flight at once (1 = one at a time) and reports, per call: the gateway process's
CPU time (``time.process_time``), redis-server's CPU time (``/proc/<pid>/stat``) and the wall time.
With ``--compare DIR`` the tree at DIR (e.g. ``git archive main | tar -x -C /tmp/before``) is measured in
the same rounds, alternating; the medians of the rounds are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.redis_server import RedisServer  # noqa: E402

CHILD = r"""
import asyncio, json, sys, time
from datetime import UTC, datetime, timedelta
from govgate.core.policy.model import SessionLimits
from govgate.store.base import Session
from govgate.store.redis import RedisStore

url, calls, inflight, redis_pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def redis_cpu() -> float:
    with open(f"/proc/{redis_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks of 10 ms

async def main() -> None:
    store = RedisStore.from_url(url, timedelta(seconds=5))
    limits = SessionLimits()
    t0 = datetime.now(UTC)
    session = Session("bench-session-id", "zhangsan", None, "192.0.2.1", t0, t0)
    await store.create_session(session, limits)
    now = t0 + timedelta(seconds=1)
    async def worker(n: int) -> None:
        for _ in range(n):
            lookup = await store.touch_session(session.id, now, limits)
            assert lookup.session is not None
    await asyncio.gather(*(worker(200 // inflight + 1) for _ in range(inflight)))  # warm-up
    per = calls // inflight
    cpu0, rcpu0, wall0 = time.process_time(), redis_cpu(), time.perf_counter()
    await asyncio.gather(*(worker(per) for _ in range(inflight)))
    cpu1, rcpu1, wall1 = time.process_time(), redis_cpu(), time.perf_counter()
    n = per * inflight
    await store.close()
    print(json.dumps({"cpu_us": (cpu1 - cpu0) / n * 1e6, "redis_cpu_us": (rcpu1 - rcpu0) / n * 1e6,
                      "wall_us": (wall1 - wall0) / n * 1e6}))

asyncio.run(main())
"""


def run_child(tree: Path, url: str, calls: int, inflight: int, redis_pid: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, url, str(calls), str(inflight), str(redis_pid)],
                         env=env, cwd=tree, check=True, capture_output=True, text=True, timeout=600)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--inflight", type=int, nargs="+", default=[50, 1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", type=Path, help="also measure the source tree at DIR (rows marked [before])")
    args = ap.parse_args()
    trees = [("", ROOT)] + ([(" [before]", args.compare.resolve())] if args.compare else [])
    samples: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        assert server._process is not None
        pid = server._process.pid
        for _ in range(args.rounds):
            for inflight in args.inflight:
                for tag, tree in trees:
                    samples.setdefault(f"touch_session, {inflight} in flight{tag}", []).append(
                        run_child(tree, server.url, args.calls, inflight, pid))
    rows: dict[str, Any] = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]} for name, runs in samples.items()
    }
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'row':42} {'gateway CPU/call':>17} {'redis CPU/call':>15} {'wall/call':>10}  (medians of {args.rounds})")
    for name, r in rows.items():
        print(f"{name:42} {r['cpu_us']:14.1f} µs {r['redis_cpu_us']:12.1f} µs {r['wall_us']:7.1f} µs")


if __name__ == "__main__":
    main()
