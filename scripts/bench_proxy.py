#!/usr/bin/env python3
"""Proxy throughput, measured side by side in one run with wrk (50 connections).

Prints requests/s for:
  bare      `mitmdump --mode reverse:UPSTREAM` (quiet) in front of the sample portal
  public    the gateway's public path in front of the same portal
  staff     a staff path with a valid session (memory store), and with Redis if redis-server exists,
            against a public path served by the same portal handler (/echo/public/x vs /echo/x)
and the ratios the issues set targets for: public/bare ≥ 0.90 (issue 3), staff-memory/public ≥ 0.85 and
staff-redis/public ≥ 0.70 (issue 4). Rounds alternate between targets so drift hits all alike.

    .venv/bin/python scripts/bench_proxy.py [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyotp
import yaml
from benchlib import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"


def wrk(url: str, seconds: int, cookie: str | None = None) -> float:
    cmd = ["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency"]
    if cookie:
        cmd += ["-H", f"Cookie: {cookie}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        print(f"    warning: {non2xx.group(1)} non-2xx responses from {url}", file=sys.stderr)
    assert m, out
    return float(m.group(1))


def policy_for(workdir: Path, upstream: str, port: int, redis: str | None) -> Path:
    data: dict[str, object] = {
        "version": 1,
        "gateway": {"listen": f"127.0.0.1:{port}", "upstream": upstream, "public_hosts": ["127.0.0.1"],
                    "insecure": True, "key_file": str(workdir / "gateway.key")},
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


def policy_version(base: str) -> int:
    return int(httpx.get(base + "/__govgate/health", timeout=10).json()["policy_version"])


def login(base: str, policy: Path) -> str:
    before = policy_version(base)
    added = subprocess.run([str(BIN / "govgate"), "account", "add", "bench", "--groups", "staff", "--password-stdin",
                            "-p", str(policy)], input=PASSWORD + "\n", capture_output=True, text=True)
    if added.returncode != 0:
        raise SystemExit(f"govgate account add failed: {added.stdout}{added.stderr}")
    out = added.stdout
    secret = pyotp.parse_uri(re.search(r"otpauth://\S+", out).group(0)).secret  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while policy_version(base) == before:  # the gateway reloads the accounts file within a second
        if time.monotonic() > deadline:
            raise SystemExit("the gateway did not pick up the bench account")
        time.sleep(0.1)
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as c:
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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (scripts/setup --test installs it)")
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="govgate-bench-"))
    try:
        up_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "govgate.sample_portal", str(up_port)],
                                      stdout=subprocess.DEVNULL, cwd=REPO))
        wait_for_port(up_port)
        upstream = f"http://127.0.0.1:{up_port}"

        bare_port = free_port()
        procs.append(subprocess.Popen([str(BIN / "mitmdump"), "-q", "--mode", f"reverse:{upstream}@{bare_port}",
                                       "--set", f"confdir={tmp / 'mitm'}"], stdout=subprocess.DEVNULL))
        gw_port = free_port()
        mem_dir = tmp / "mem"
        mem_dir.mkdir()
        procs.append(subprocess.Popen([str(BIN / "govgate"), "run", "-p", str(policy_for(mem_dir, upstream, gw_port,
                                                                                         None))],
                                      stdout=subprocess.DEVNULL))
        targets: dict[str, tuple[str, str | None]] = {}
        wait_for_port(bare_port)
        wait_for_port(gw_port)
        targets["bare mitmdump"] = (f"http://127.0.0.1:{bare_port}/static/app.css", None)
        targets["gateway public"] = (f"http://127.0.0.1:{gw_port}/static/app.css", None)
        # An HTML page goes through the Art. 15 link rewriting as well (the sample home page has 5 links).
        targets["bare mitmdump, HTML"] = (f"http://127.0.0.1:{bare_port}/", None)
        targets["gateway public, HTML"] = (f"http://127.0.0.1:{gw_port}/", None)
        # Staff against public on the same portal handler (/echo builds JSON of the request), so that the
        # ratio is the gate's own staff-path work, not the portal's.
        targets["gateway public, echo"] = (f"http://127.0.0.1:{gw_port}/echo/public/x", None)
        targets["gateway staff (memory)"] = (f"http://127.0.0.1:{gw_port}/echo/x",
                                             login(f"http://127.0.0.1:{gw_port}", mem_dir / "policy.yaml"))
        if shutil.which("redis-server"):
            redis_port = free_port()
            procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
            wait_for_port(redis_port)
            redis_dir = tmp / "redis"
            redis_dir.mkdir()
            gw2 = free_port()
            pol = policy_for(redis_dir, upstream, gw2, f"redis://127.0.0.1:{redis_port}/0")
            procs.append(subprocess.Popen([str(BIN / "govgate"), "run", "-p", str(pol)], stdout=subprocess.DEVNULL))
            wait_for_port(gw2)
            targets["gateway public, echo (redis)"] = (f"http://127.0.0.1:{gw2}/echo/public/x", None)
            targets["gateway staff (redis)"] = (f"http://127.0.0.1:{gw2}/echo/x", login(f"http://127.0.0.1:{gw2}", pol))
        for url, cookie in targets.values():  # warm up
            wrk(url, 1, cookie)
        results: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, cookie) in targets.items():
                results[name].append(wrk(url, args.seconds, cookie))
        print(f"\nwrk -t2 -c50, {args.rounds} rounds x {args.seconds}s, {os.cpu_count()} cores "
              "(gateway, mitmdump, upstream and wrk share them)")
        med = {name: statistics.median(v) for name, v in results.items()}
        for name, v in results.items():
            print(f"  {name:26s} {med[name]:8.0f} req/s   (rounds: {', '.join(f'{x:.0f}' for x in v)})")

        def ratio(a: str, b: str, target: float) -> None:
            if a in med and b in med:
                r = med[a] / med[b]
                print(f"  {a} / {b}: {r:.2f}  (target ≥ {target:.2f}: {'met' if r >= target else 'NOT met'})")

        print()
        ratio("gateway public", "bare mitmdump", 0.90)
        ratio("gateway public, HTML", "bare mitmdump, HTML", 0.90)
        ratio("gateway staff (memory)", "gateway public, echo", 0.85)
        ratio("gateway staff (redis)", "gateway public, echo (redis)", 0.70)
        if "gateway staff (memory)" in med:  # for comparison with earlier runs: against the static page
            static = med["gateway staff (memory)"] / med["gateway public"]
            print(f"  (staff (memory) / the static public page: {static:.2f}; the portal does more work for /echo)")
        return 0
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
