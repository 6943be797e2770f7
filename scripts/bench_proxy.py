#!/usr/bin/env python3
"""Proxy throughput, measured side by side in one run: wrk (HTTP/1.1, 50 connections) and h2load (HTTP/2).

By default TLS is on both sides, for the gateway and for bare mitmdump alike (client → proxy, proxy → a TLS
sample portal whose certificate comes from a CA made for the run). Prints requests/s and p50/p99 latency for:
  bare      `mitmdump -q --mode reverse:UPSTREAM` in front of the sample portal (its default addons)
  public    the gateway's public path in front of the same portal (a static file; an HTML page with links)
  HTTP/2    both again over HTTP/2 (h2load; ALPN h2 towards the proxy, HTTP/1.1 to the portal)
  staff     a staff path with a valid session (memory store), and with Redis if redis-server exists,
            against a public path served by the same portal handler (/echo/public/x vs /echo/x)
and the ratios issue 11 sets targets for (docs/performance.md). Rounds alternate between targets so drift
hits all alike.

    python scripts/bench_proxy.py [--seconds 8] [--rounds 2] [--plain] [--no-redis] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import yaml
from benchlib import cpu_seconds, free_port, make_tls, stop_processes, wait_for_port

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # the environment this script runs in (govgate importable, mitmdump beside it)
MITMDUMP = str(Path(sys.executable).parent / "mitmdump")
GOVGATE = [PYTHON, str(REPO / "scripts" / "bench_gateway.py")]  # `govgate`, trusting the bench's upstream CA


@dataclass
class Figure:
    """One load run: requests/s and latency percentiles in milliseconds (None when the tool gave none)."""

    rps: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int = 0
    cpu_ms: float | None = None  # the proxy process's CPU time per request (user + system, all its threads)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


# wrk asks for the URL's path with a query of its own each time (per thread: t=<thread>&n=<count>): a page the
# gateway has not rewritten under that URL before, so its rewrite cache misses (docs/outbound-links.md, "Cache").
FRESH_URLS_LUA = """
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
function request() n = n + 1; return wrk.format(nil, wrk.path .. "?t=" .. tid .. "&n=" .. n) end
"""


def wrk(url: str, seconds: int, cookie: str | None = None, connections: int = 50, *, fresh: bool = False) -> Figure:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    if fresh:
        script = Path(tempfile.gettempdir()) / "govgate-bench-fresh-urls.lua"
        script.write_text(FRESH_URLS_LUA, encoding="utf-8")
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"    warning: {non2xx.group(1)} non-2xx responses from {url}", file=sys.stderr)
    assert m, out
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    done = re.search(r"(\d+) requests in", out)
    return Figure(float(m.group(1)), pct.get("50"), pct.get("99"), int(done.group(1)) if done else 0)


def h2load(url: str, seconds: int, connections: int = 50, streams: int = 1) -> Figure:
    """HTTP/2 over TLS (ALPN h2) with h2load: ``connections`` x ``streams`` requests in flight."""
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        cmd = ["h2load", "-t2", f"-c{connections}", f"-m{streams}", f"-D{seconds}", f"--log-file={log.name}", url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
        assert m, out
        if not re.search(r"Application protocol: h2", out):
            raise SystemExit(f"h2load did not speak HTTP/2 to {url}:\n{out}")
        failed = re.search(r"(\d+) failed, (\d+) errored", out)
        if failed and (int(failed.group(1)) or int(failed.group(2))):
            print(f"    warning: {failed.group(0)} from {url}", file=sys.stderr)
        times = sorted(int(line.split()[2]) / 1000 for line in log if line.strip())
    p50 = times[len(times) // 2] if times else None
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else None
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    return Figure(float(m.group(1)), p50, p99, int(done.group(1)) if done else 0)


def policy_for(workdir: Path, upstream: str, port: int, redis: str | None, cert: Path | None) -> Path:
    gateway: dict[str, object] = {"listen": f"127.0.0.1:{port}", "upstream": upstream, "public_hosts": ["127.0.0.1"],
                                  "key_file": str(workdir / "gateway.key")}
    if cert is None:
        gateway["insecure"] = True
    else:
        gateway["tls"] = {"cert": str(cert)}
    data: dict[str, object] = {
        "version": 1,
        "gateway": gateway,
        "geoip": {"database": str(REPO / "geoip" / "GeoLite2-Country-Test.mmdb"), "home_countries": ["CN"]},
        "networks": {"loopback": ["127.0.0.0/8"]},
        "accounts_file": str(workdir / "accounts.yaml"),
        "access": [
            {"name": "public", "paths": ["/static/**", "/", "/echo/public/**"], "allow": "public"},
            {"name": "staff", "paths": ["/echo/**"], "allow": "staff", "networks": ["loopback"]},
            {"name": "rest", "paths": ["/**"], "allow": "deny"},
        ],
        "audit": {"dir": str(workdir / "audit"), "retention_days": 365},
    }
    if redis:
        data["state"] = {"redis": redis}
    path = workdir / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


PASSWORD = "Quick-brown-fox-93!"


def policy_version(base: str, verify: str | bool) -> int:
    """The gateway's data version: a reload of the accounts file bumps it."""
    return int(httpx.get(base + "/__govgate/health", timeout=10, verify=verify).json()["data_version"])


def login(base: str, policy: Path, verify: str | bool) -> str:
    before = policy_version(base, verify)
    added = subprocess.run([PYTHON, "-m", "govgate", "account", "add", "bench", "--groups", "staff", "--password-stdin",
                            "-p", str(policy)], input=PASSWORD + "\n", capture_output=True, text=True)
    if added.returncode != 0:
        raise SystemExit(f"govgate account add failed: {added.stdout}{added.stderr}")
    out = added.stdout
    secret = pyotp.parse_uri(re.search(r"otpauth://\S+", out).group(0)).secret  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while policy_version(base, verify) == before:  # the gateway reloads the accounts file within a second
        if time.monotonic() > deadline:
            raise SystemExit("the gateway did not pick up the bench account")
        time.sleep(0.1)
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10, verify=verify) as c:
        page = c.get("/__govgate/login?next=/echo/x").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        r = c.post("/__govgate/login", data={"username": "bench", "password": PASSWORD,
                                             "csrf": csrf, "next": "/echo/x"})
        assert r.status_code == 303, r.text
        page = c.get("/__govgate/mfa").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        r = c.post("/__govgate/mfa", data={"code": pyotp.TOTP(secret).now(), "csrf": csrf})
        assert r.status_code == 303, r.text
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items() if "session" in k)
        assert c.get("/echo/x", headers={"Cookie": cookie}).status_code == 200
        return cookie


# (numerator, denominator, target): the ratios issue 11 sets targets for.
RATIOS: list[tuple[str, str, float]] = [
    ("gateway public", "bare mitmdump", 1.5),
    ("gateway public, HTML", "bare mitmdump, HTML", 1.5),
    ("gateway public, HTML, new URL each time", "bare mitmdump, HTML, new URL each time", 1.5),
    ("gateway staff (memory)", "gateway public, echo", 0.90),
    ("gateway staff (redis)", "gateway public, echo (redis)", 0.85),
    ("gateway public, HTTP/2", "bare mitmdump, HTTP/2", 1.0),
]
# Figures for comparison, without a target: what HTTP/2 costs against HTTP/1.1 on the same path.
INFO_RATIOS: list[tuple[str, str]] = [
    ("bare mitmdump, HTTP/2", "bare mitmdump"),
    ("gateway public, HTTP/2", "gateway public"),
]


def measure(seconds: int = 8, rounds: int = 2, *, tls: bool = True, h2: bool = True,
            redis: bool = True, compare: Path | None = None) -> dict[str, Any]:
    """Run every target side by side (rounds alternate between them); returns the medians and the ratios as
    a JSON-able dict: ``{"setup": ..., "rows": {name: {rps, p50_ms, p99_ms, rounds}}, "ratios": [...]}``.
    ``compare``: another source tree of the gateway (e.g. ``git archive main``) run beside this one, its rows
    and ratios marked `` [before]``, so that a change is measured side by side in the same run."""
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (scripts/setup --test installs it)")
    h2 = h2 and tls and shutil.which("h2load") is not None
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="govgate-bench-"))
    try:
        ca, cert = make_tls(tmp / "tls") if tls else (None, None)
        verify: str | bool = str(ca) if ca else True
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        if ca:
            env["GOVGATE_BENCH_UPSTREAM_CA"] = str(ca)
        scheme = "https" if tls else "http"
        up_port = free_port()
        procs.append(subprocess.Popen([PYTHON, "-m", "govgate.sample_portal", str(up_port),
                                       *(["--tls", str(cert)] if cert else [])],
                                      stdout=subprocess.DEVNULL, cwd=REPO, env=env))
        wait_for_port(up_port)
        upstream = f"{scheme}://127.0.0.1:{up_port}"

        bare_port = free_port()
        procs.append(subprocess.Popen([MITMDUMP, "-q", "--mode", f"reverse:{upstream}@{bare_port}",
                                       "--set", f"confdir={tmp / 'mitm'}",
                                       # as the gateway: lazy, so that mitmdump offers HTTP/2 to clients (eager,
                                       # it would mirror the portal's lack of ALPN and speak HTTP/1.1 only)
                                       "--set", "connection_strategy=lazy",
                                       *(["--set", f"ssl_verify_upstream_trusted_ca={ca}"] if ca else [])],
                                      stdout=subprocess.DEVNULL, env=env))
        pids: dict[str, int] = {f"127.0.0.1:{bare_port}": procs[-1].pid}  # host:port -> the proxy's process
        targets: dict[str, tuple[str, str | None, str]] = {}  # name: (url, cookie, tool)
        wait_for_port(bare_port)
        bare = f"{scheme}://127.0.0.1:{bare_port}"
        targets["bare mitmdump"] = (f"{bare}/static/app.css", None, "wrk")
        # An HTML page goes through the Art. 15 link check as well (the sample home page has 5 links).
        targets["bare mitmdump, HTML"] = (f"{bare}/", None, "wrk")
        # The same page under a new URL each time: the gateway rewrites it every time (its cache misses).
        targets["bare mitmdump, HTML, new URL each time"] = (f"{bare}/", None, "wrk-fresh")
        if h2:
            targets["bare mitmdump, HTTP/2"] = (f"{bare}/static/app.css", None, "h2load")
        redis_url = None
        if redis and shutil.which("redis-server"):
            redis_port = free_port()
            procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
            wait_for_port(redis_port)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"

        def gateways(suffix: str, code: Path) -> None:
            """Start the gateway (memory store, and Redis) from the source tree ``code``; add its targets."""
            gw_env = {**env, "PYTHONPATH": os.pathsep.join([str(code), env["PYTHONPATH"]])}
            for store, db in (("memory", None), ("redis", redis_url)):
                if store == "redis" and db is None:
                    continue
                workdir = tmp / f"{store}{suffix.replace(' ', '-')}"
                workdir.mkdir()
                port = free_port()
                pol = policy_for(workdir, upstream, port, db and f"{db[:-1]}{1 if suffix else 0}", cert)  # own db
                procs.append(subprocess.Popen([*GOVGATE, "run", "-p", str(pol)], stdout=subprocess.DEVNULL,
                                              env=gw_env))
                pids[f"127.0.0.1:{port}"] = procs[-1].pid
                wait_for_port(port)
                gw = f"{scheme}://127.0.0.1:{port}"
                if store == "memory":
                    targets[f"gateway public{suffix}"] = (f"{gw}/static/app.css", None, "wrk")
                    targets[f"gateway public, HTML{suffix}"] = (f"{gw}/", None, "wrk")
                    targets[f"gateway public, HTML, new URL each time{suffix}"] = (f"{gw}/", None, "wrk-fresh")
                    if h2:
                        targets[f"gateway public, HTTP/2{suffix}"] = (f"{gw}/static/app.css", None, "h2load")
                # Staff against public on the same portal handler (/echo builds JSON of the request), so that
                # the ratio is the gate's own staff-path work, not the portal's.
                tag = "" if store == "memory" else " (redis)"
                targets[f"gateway public, echo{tag}{suffix}"] = (f"{gw}/echo/public/x", None, "wrk")
                targets[f"gateway staff ({store}){suffix}"] = (f"{gw}/echo/x", login(gw, pol, verify), "wrk")

        gateways("", REPO)
        if compare is not None:
            gateways(" [before]", compare)

        def run(url: str, cookie: str | None, tool: str, secs: int) -> Figure:
            pid = pids[url.split("/")[2]]
            before = cpu_seconds(pid)
            figure = h2load(url, secs) if tool == "h2load" else wrk(url, secs, cookie, fresh=tool == "wrk-fresh")
            if figure.requests:
                figure.cpu_ms = (cpu_seconds(pid) - before) * 1000 / figure.requests
            return figure

        for url, cookie, tool in targets.values():  # warm up
            run(url, cookie, tool, 1)
        results: dict[str, list[Figure]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (url, cookie, tool) in targets.items():
                results[name].append(run(url, cookie, tool, seconds))

        def med(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return statistics.median(known) if known else None

        rows = {name: {"rps": statistics.median(f.rps for f in figs), "p50_ms": med([f.p50_ms for f in figs]),
                       "p99_ms": med([f.p99_ms for f in figs]), "cpu_ms": med([f.cpu_ms for f in figs]),
                       "rounds": [round(f.rps) for f in figs],
                       "tool": targets[name][2]}
                for name, figs in results.items()}
        before = [(a + " [before]", b if b.startswith("bare") else b + " [before]", t) for a, b, t in RATIOS]
        ratios = [{"what": f"{a} / {b}", "ratio": rows[a]["rps"] / rows[b]["rps"], "target": target,
                   "met": rows[a]["rps"] / rows[b]["rps"] >= target}
                  for a, b, target in [*RATIOS, *before] if a in rows and b in rows]
        ratios += [{"what": f"{a} / {b}", "ratio": rows[a]["rps"] / rows[b]["rps"], "target": None, "met": None}
                   for a, b in INFO_RATIOS if a in rows and b in rows]
        for r in ratios:  # the same ratio from the proxies' CPU per request: steadier on a shared machine
            a, _, b = r["what"].partition(" / ")
            ca, cb = rows[a]["cpu_ms"], rows[b]["cpu_ms"]
            r["cpu_ratio"] = cb / ca if ca and cb else None
        setup = {"seconds": seconds, "rounds": rounds, "tls": tls, "cores": os.cpu_count(),
                 "load": "wrk -t2 -c50 (HTTP/1.1); h2load -t2 -c50 -m1 (HTTP/2)"}
        return {"setup": setup, "rows": rows, "ratios": ratios}
    finally:
        stop_processes(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--plain", action="store_true", help="plain HTTP on both sides instead of TLS (no HTTP/2 rows)")
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--compare", type=Path, metavar="DIR",
                    help="also run the gateway from this source tree (rows marked [before]), e.g. "
                         "mkdir /tmp/before && git archive main | tar -x -C /tmp/before")
    args = ap.parse_args()
    out = measure(args.seconds, args.rounds, tls=not args.plain, redis=not args.no_redis, compare=args.compare)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    s = out["setup"]
    print(f"\n{s['load']}, {s['rounds']} rounds x {s['seconds']}s, TLS {'on both sides' if s['tls'] else 'off'}, "
          f"{s['cores']} cores (gateway, mitmdump, upstream and the load tool share them)")
    for name, row in out["rows"].items():
        lat = f"p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms" if row["p50_ms"] is not None else ""
        cpu = f"{row['cpu_ms']:.2f} ms CPU/req" if row["cpu_ms"] is not None else ""
        print(f"  {name:36s} {row['rps']:7.0f} req/s  {lat:30s} {cpu:16s} "
              f"(rounds: {', '.join(map(str, row['rounds']))})")
    print()
    for r in out["ratios"]:
        verdict = f"(target ≥ {r['target']:.2f}: {'met' if r['met'] else 'NOT met'})" if r["target"] else ""
        by_cpu = f"[by CPU/request: {r['cpu_ratio']:.2f}]" if r.get("cpu_ratio") else ""
        print(f"  {r['what']}: {r['ratio']:.2f} {by_cpu} {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
