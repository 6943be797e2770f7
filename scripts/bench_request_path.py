#!/usr/bin/env python3
"""The gateway's own CPU per request, in process: every ``request``, ``responseheaders`` and ``response`` hook of the
addon chain (``govgate.addons.chain``) on prepared flows, without mitmproxy's sockets, TLS or HTTP parsing.

What the proxy rows of ``bench_proxy.py`` cannot separate: how much of a request's CPU is the gateway's own work
(context, decision, session lookup, audit record, identity and security headers, metrics) rather than mitmproxy's.
Three kinds of request, on the test policy (``tests/policies.py``) and its runtime (``tests/runtime.py``: the audit
sink keeps records in memory instead of the writer thread):

  public        GET /static/app.css (a public rule)
  staff         GET /echo/staff/x with a valid session (one login at the start; memory store, or Redis with --redis)
  public_echo   GET /echo/public/x

Each batch times N requests with ``time.process_time``; batches rotate between the kinds, and the figure is the
minimum over the batches (the least disturbed by whatever else the machine runs). ``--compare DIR`` runs the same
in a subprocess for another source tree (e.g. ``git archive main``), alternating with this one.

    .venv/bin/python scripts/bench_request_path.py [--requests 1500] [--batches 5] [--runs 2] [--redis URL]
                                                   [--compare DIR] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


async def measure(requests: int, batches: int, redis: str | None) -> dict[str, float]:
    from mitmproxy import http

    from govgate.core.accounts import Accounts
    from govgate.store.base import Store
    from govgate.store.memory import MemoryStore
    from tests.accounts.builders import PASSWORD, SECRET, make_account
    from tests.addons.flows import request_flow
    from tests.addons.gateway import Browser, InProcessGateway
    from tests.runtime import InProcessRuntime

    store: Store = MemoryStore()
    if redis:
        from govgate.store.redis import RedisStore

        store = RedisStore.from_url(redis, timedelta(seconds=1), session_cache=True)  # as the gateway's
    runtime = InProcessRuntime(accounts=Accounts((make_account("zhangsan"),)), store=store)
    async with InProcessGateway(runtime) as gateway:
        browser = Browser(gateway)
        await browser.login("zhangsan", PASSWORD, SECRET)
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        hooks = {name: [getattr(a, name) for a in gateway.addons if hasattr(a, name)]
                 for name in ("request", "responseheaders", "response")}
        kinds = [("public", "/static/app.css", []), ("staff", "/echo/staff/x", [("cookie", cookie)]),
                 ("public_echo", "/echo/public/x", [])]
        best: dict[str, float] = {}
        for kind, path, headers in [k for _ in range(batches) for k in kinds]:
            flows = [request_flow("GET", path, headers=[*headers, ("user-agent", "wrk"), ("accept", "*/*")])
                     for _ in range(requests)]
            answers = [http.Response.make(200, b"body{}", {"content-type": "text/css"}) for _ in range(requests)]
            for f in flows:
                f.request.timestamp_start = time.time()
            start = time.process_time()
            for f, answer in zip(flows, answers, strict=True):
                for hook in hooks["request"]:
                    result = hook(f)
                    if inspect.isawaitable(result):
                        await result
                if f.response is not None:
                    raise SystemExit(f"{kind}: the gate answered {f.response.status_code} itself")
                f.response = answer
                for hook in (*hooks["responseheaders"], *hooks["response"]):
                    result = hook(f)
                    if inspect.isawaitable(result):
                        await result
            best[kind] = min(best.get(kind, float("inf")), (time.process_time() - start) / requests * 1e6)
            runtime.audit.kept.events.clear()
        return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--runs", type=int, default=2, help="alternating runs per tree (with --compare)")
    ap.add_argument("--redis", metavar="URL", help="the staff path's store: Redis at URL (flushed first: use a "
                                                   "server of its own)")
    ap.add_argument("--compare", type=Path, metavar="DIR", help="another source tree, run alternately")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.requests, args.batches, args.redis))))
        return 0
    trees = {"now": REPO, **({"before": args.compare.resolve()} if args.compare else {})}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.runs):
        for name, tree in trees.items():
            if args.redis:  # a TOTP code is accepted once only: each run logs in on a clean server
                subprocess.run(["redis-cli", "-u", args.redis, "flushdb"], check=True, capture_output=True)
            env = {**os.environ, "PYTHONPATH": str(tree)}
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                                   "--requests", str(args.requests), "--batches", str(args.batches),
                                   *(["--redis", args.redis] if args.redis else [])],
                                  cwd=tree, env=env, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    result: dict[str, Any] = {name: {kind: min(r[kind] for r in rs) for kind in rs[0]} for name, rs in runs.items()}
    if args.json:
        print(json.dumps(result))
        return 0
    store = "Redis" if args.redis else "memory store"
    print(f"the addon chain's CPU per request, µs (minimum of {args.batches} batches x {args.requests} requests, "
          f"{args.runs} run(s) per tree; staff: {store})")
    for name, row in result.items():
        extra = row["staff"] - row["public_echo"]
        print(f"  {name:7s} public {row['public']:7.1f}   staff {row['staff']:7.1f}   public echo "
              f"{row['public_echo']:7.1f}   staff extra {extra:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
