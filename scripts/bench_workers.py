#!/usr/bin/env python3
"""Public-path throughput of `govgate run --workers 1` and `--workers 2`, side by side in one run, with wrk.

Both gateways run at once on one policy (with a real Redis, which `--workers 2` needs; the public path does not
touch it) in front of the same portal; rounds alternate between them so that drift on a shared machine hits both
alike, and the medians are compared. Prints requests/s for each and the ratio two/one (issue 11's target on a
2-core machine: ≥ 1.6). The portal is, in turn, the sample portal (Python) and nginx answering the same bytes
(``--portal``): nginx leaves more of the two cores to the gateway, as a production web server would. wrk, the
portal and the gateways share the machine's cores, so the ratio is a floor of what the workers give on a machine
where the gateway has the cores to itself. It also prints the ratio's ceiling on this machine from the CPU each
process used per request (``ceiling``), and how busy the machine was in each configuration.

    .venv/bin/python scripts/bench_workers.py [--seconds 8] [--rounds 5] [--connections 50]
                                              [--portal sample|nginx|both] [--json]

Another script can call ``measure(seconds=…, rounds=…, portal_kind=…)``, which returns one portal's figures as
``--json`` prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from benchlib import free_port, stop_processes, wait_for_port

REPO = Path(__file__).resolve().parents[1]
PATH = "/static/app.css"  # a public page: the gate decides, writes its audit record, forwards


WRK_CPU = [0.0]  # CPU seconds wrk has used so far (``wrk`` adds each run's)


def wrk(url: str, seconds: int, connections: int) -> tuple[float, int]:
    """Requests/s, and how many answers were not 2xx/3xx."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped in between
    WRK_CPU[0] += after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"no figure in wrk's output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(m.group(1)), int(bad.group(1)) if bad else 0


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes ``pids`` have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def write_policy(workdir: Path, upstream: str, redis: str) -> Path:
    data: dict[str, object] = {
        "version": 1,
        "gateway": {"listen": "127.0.0.1:0", "upstream": upstream, "public_hosts": ["127.0.0.1"],
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
        "state": {"redis": redis},
    }
    path = workdir / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /static/app.css {{ default_type text/css; return 200 "body{{font-family:sans-serif}}\n"; }}
        location / {{ return 404; }}
    }}
}}
"""


def start_nginx(tmp: Path, port: int) -> subprocess.Popen[Any]:
    """nginx (one worker process) answering ``PATH`` with the sample portal's bytes: a portal server that costs
    less CPU per request than the sample portal, so that less of the machine's two cores goes to the upstream."""
    if not shutil.which("nginx"):
        raise RuntimeError("nginx is needed for --portal nginx (Debian: apt-get install nginx-light)")
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port), encoding="utf-8")
    return subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stdout=subprocess.DEVNULL)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc), e.g. nginx's worker."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text(encoding="ascii")
        found.extend(int(c) for c in text.split())
    return found


def start_gateway(policy: Path, workers: int, log: Path) -> tuple[subprocess.Popen[str], str, list[int]]:
    """`govgate run --workers N` (this interpreter, so the checkout it runs from); its URL once it listens, and the
    pids of the processes that serve (the workers, or the one gateway)."""
    out = log.open("w", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "govgate", "run", "-p", str(policy), "--workers", str(workers)],
                            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"govgate: listening on (\S+?)/ .*?(?:pids ([\d ]+)\))?$", log.read_text(encoding="utf-8"),
                      flags=re.MULTILINE)
        if m:
            return proc, m.group(1), [int(p) for p in m.group(2).split()] if m.group(2) else [proc.pid]
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"`govgate run --workers {workers}` did not start:\n{log.read_text(encoding='utf-8')}")


def ceiling(ms: dict[str, float | None], cpus: int) -> float | None:
    """The highest ratio two/one these CPU costs per request allow on ``cpus`` cores.

    One worker serves at most one core's worth, 1 / gateway_1 requests per ms. Two workers, the portal and wrk
    together use at most all the cores, cpus / (gateway_2 + portal_2 + wrk_2). The ratio of the two is the best
    the benchmark can show on this machine, however fast the gateway is: the faster the gateway, the larger the
    share of wrk and the portal, and the lower this ceiling.
    """
    g1, g2, p2, w2 = (ms.get(k) for k in ("gateway_1", "gateway_2", "portal_2", "wrk_2"))
    if not g1 or not g2 or p2 is None or w2 is None:
        return None
    return cpus * g1 / (g2 + p2 + w2)


def measure(*, seconds: int = 8, rounds: int = 5, connections: int = 50, portal_kind: str = "sample") -> dict[str, Any]:
    """Run the benchmark; returns {"workers_1": req/s, "workers_2": req/s, "ratio": two/one, "rounds": {...}, …}."""
    if not shutil.which("wrk") or not shutil.which("redis-server"):
        raise RuntimeError("wrk and redis-server are needed (scripts/setup --test installs them)")
    procs: list[subprocess.Popen[Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="govgate-bench-workers-"))
    try:
        up_port = free_port()
        if portal_kind == "nginx":
            procs.append(start_nginx(tmp, up_port))
        else:
            procs.append(subprocess.Popen([sys.executable, "-m", "govgate.sample_portal", str(up_port)],
                                          stdout=subprocess.DEVNULL, cwd=REPO))
        redis_port = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        wait_for_port(up_port)
        wait_for_port(redis_port)
        urls: dict[int, str] = {}
        pids: dict[int, list[int]] = {}
        portal = [procs[0].pid, *children(procs[0].pid)]  # nginx: its master and its worker
        load_before = os.getloadavg()[0]
        for count in (1, 2):
            workdir = tmp / f"workers-{count}"
            workdir.mkdir()
            policy = write_policy(workdir, f"http://127.0.0.1:{up_port}", f"redis://127.0.0.1:{redis_port}/0")
            proc, url, pids[count] = start_gateway(policy, count, workdir / "gateway.log")
            procs.append(proc)
            urls[count] = url + PATH
        for url in urls.values():  # warm up
            wrk(url, 2, connections)
        results: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[str, float] = {"gateway_1": 0.0, "gateway_2": 0.0, "portal_1": 0.0, "portal_2": 0.0,
                                 "wrk_1": 0.0, "wrk_2": 0.0}
        requests = {1: 0.0, 2: 0.0}
        refused = 0
        for n in range(rounds):
            for count in ((1, 2) if n % 2 == 0 else (2, 1)):
                gw0, up0, wrk0 = cpu_seconds(pids[count]), cpu_seconds(portal), WRK_CPU[0]
                rate, bad = wrk(urls[count], seconds, connections)
                cpu[f"gateway_{count}"] += cpu_seconds(pids[count]) - gw0
                cpu[f"portal_{count}"] += cpu_seconds(portal) - up0
                cpu[f"wrk_{count}"] += WRK_CPU[0] - wrk0
                requests[count] += rate * seconds
                results[count].append(rate)
                refused += bad
        one, two = statistics.median(results[1]), statistics.median(results[2])
        per_request = {k: 1000 * v / requests[int(k[-1])] if requests[int(k[-1])] else None for k, v in cpu.items()}
        return {"workers_1": one, "workers_2": two, "ratio": two / one if one else 0.0,
                "ceiling": ceiling(per_request, os.cpu_count() or 1),
                # the share of all the machine's cores that the gateway, the portal and wrk used in each
                "machine_busy": {f"workers_{n}": (cpu[f"gateway_{n}"] + cpu[f"portal_{n}"] + cpu[f"wrk_{n}"])
                                 / (rounds * seconds * (os.cpu_count() or 1)) for n in (1, 2)},
                "rounds": {"workers_1": results[1], "workers_2": results[2]}, "non_2xx": refused,
                "cpus": os.cpu_count(), "seconds": seconds, "connections": connections, "path": PATH,
                "load_before": load_before, "load_after": os.getloadavg()[0],
                # CPU milliseconds per request: the gateway's processes (all workers together), the sample portal's,
                # wrk's
                "cpu_ms_per_request": per_request}
    finally:
        stop_processes(procs, timeout=60)  # workers drain before they exit
        shutil.rmtree(tmp, ignore_errors=True)


def report(result: dict[str, Any], portal: str, connections: int, rounds: int, seconds: int) -> None:
    print(f"\nwrk -t2 -c{connections} {PATH}, {rounds} rounds x {seconds}s, {result['cpus']} cores "
          f"(the gateways, the portal, Redis and wrk share them); the portal: {PORTALS[portal]}")
    for count in (1, 2):
        rounds_text = ", ".join(f"{x:.0f}" for x in result["rounds"][f"workers_{count}"])
        print(f"  --workers {count}  {result[f'workers_{count}']:8.0f} req/s   (rounds: {rounds_text})")
    ratio = result["ratio"]
    print(f"  --workers 2 / --workers 1: {ratio:.2f}  (target ≥ 1.60: {'met' if ratio >= 1.6 else 'NOT met'})")
    ms = result["cpu_ms_per_request"]
    print(f"  CPU per request: gateway {ms['gateway_1']:.2f} ms (1 worker), {ms['gateway_2']:.2f} ms (2 workers); "
          f"portal {ms['portal_1']:.2f} / {ms['portal_2']:.2f} ms; wrk {ms['wrk_1']:.2f} / {ms['wrk_2']:.2f} ms")
    busy = result["machine_busy"]
    print(f"  machine busy (gateway, portal and wrk, of all {result['cpus']} cores): {busy['workers_1']:.0%} with 1 "
          f"worker, {busy['workers_2']:.0%} with 2")
    if result["ceiling"] is not None:
        print(f"  the most these costs allow here: {result['ceiling']:.2f} (one worker holds one core; two workers, "
              "the portal and wrk share all of them)")
    print(f"  load average before {result['load_before']:.1f}, after {result['load_after']:.1f} "
          f"(other work on the machine lowers both figures, and the ratio)")
    if result["non_2xx"]:
        print(f"  warning: {result['non_2xx']} answers were not 2xx/3xx", file=sys.stderr)


PORTALS = {"sample": "the sample portal (govgate.sample_portal, Python)",
           "nginx": "nginx, one worker process, answering the same bytes"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)  # five: the median stands on more than one or two turns
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--portal", choices=["sample", "nginx", "both"], default="both",
                    help="the upstream: the sample portal, nginx answering the same bytes, or one after the other "
                         "(default)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    kinds = ["sample", "nginx"] if args.portal == "both" else [args.portal]
    results: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        try:
            results[kind] = measure(seconds=args.seconds, rounds=args.rounds, connections=args.connections,
                                    portal_kind=kind)
        except RuntimeError as exc:
            if len(kinds) == 1:
                raise
            results[kind] = {"error": str(exc)}
    if args.json:
        # The first portal's figures at the top (as before there was a choice), every portal's under "portals".
        print(json.dumps({**results[kinds[0]], "portal": kinds[0], "portals": results}))
        return 0
    for kind, result in results.items():
        if "error" in result:
            print(f"\nthe portal {PORTALS[kind]}: not available ({result['error']})")
        else:
            report(result, kind, args.connections, args.rounds, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
