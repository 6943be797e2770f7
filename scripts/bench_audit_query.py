"""Benchmark the auditor's commands over a large log (Art. 20): `audit show` and `audit report` over 1,000,000
records, with their wall time and peak memory (RSS). Not part of the test suite.

Targets (issue 12): a filtered `show` <= 5 s, `report` <= 15 s, memory flat (the log is streamed, never loaded).

    .venv/bin/python scripts/bench_audit_query.py [--records 1000000] [--days 30] [--keep DIR]

The log is built through the real writer path (``AuditDir.append`` of ``event_record``s: canonical lines, chain,
MACs, signed seals and head anchor, fsync) over ``--days`` days ending today, with policy loads whose texts are
kept (``keep_policy_text``), so `show --overseas` and `report` work from the log alone. A mix like a portal's
day: admitted staff accesses, refusals by network and from abroad, a traveller on an overseas grant, logins,
failures, leave warnings, session timeouts. ``--keep DIR`` builds once into DIR and reuses it next time.
Each command runs as its own `govgate` process; its CPU time and peak RSS come from ``wait4``. On a shared
machine the wall time depends on the load (printed): the CPU time is what the command itself costs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from govgate.audit.kept_policies import keep_policy_text  # noqa: E402
from govgate.audit.log_dir import AuditDir  # noqa: E402
from govgate.core.audit_chain import event_record  # noqa: E402
from govgate.core.audit_event import AuditEvent  # noqa: E402
from govgate.core.keys import GatewayKeys  # noqa: E402
from govgate.core.policy.model import AuditAlgorithm  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
GOVGATE = REPO / ".venv" / "bin" / "govgate"
SHOW_TARGET, REPORT_TARGET = 5.0, 15.0
BATCH = 20_000
GRANT = {"index": 0, "reason": "参加国际会议"}

POLICY = """\
version: 1
gateway:
  listen: "0.0.0.0:8443"
  upstream: "http://127.0.0.1:8080"
  public_hosts: [portal.example.gov.cn]
  tls: {{cert: certs/gateway.pem}}
  timezone: Asia/Shanghai
  key_file: secrets/gateway.key
geoip: {{database: geoip/GeoLite2-Country.mmdb, home_countries: [CN], unknown: {unknown}}}
networks: {{office: [10.0.0.0/8]}}
accounts_file: accounts.yaml
access:
  - {{name: public site, paths: ["/", "/news/**"], allow: public}}
  - {{name: office system, paths: ["/oa/**"], allow: staff, networks: [office]}}
  - {{name: the rest, paths: ["/**"], allow: deny}}
overseas:
  grants:
    - {{account: wangfang, countries: [GB], from: {start}, until: {end}, reason: 参加国际会议}}
audit: {{dir: audit/, retention_days: 365}}
"""


def record(n: int, now: datetime) -> AuditEvent:
    """The n-th record of a working day: mostly admitted office accesses, with the rest of a portal's life."""
    kind = n % 100
    common = {"time": now, "request_id": f"{n:016x}", "method": "GET", "host": "portal.example.gov.cn",
              "rule": "office system", "article": "Art. 19"}
    account = ("zhangsan", "lisi", "wangwu", "zhaoliu")[n % 4]
    if kind < 84:
        return AuditEvent(event="access", client=f"10.{n % 250}.{n % 199}.{n % 97 + 1}", country=None,
                          account=account, path=f"/oa/workflow/{n % 5000}/view", decision="allow", **common)
    if kind < 90:
        return AuditEvent(event="access", client=f"111.235.{n % 200}.{n % 250 + 1}", country="CN", path="/oa/",
                          decision="refuse", reason="network", **common)
    if kind < 92:
        return AuditEvent(event="access", client="216.160.83.57", country="US", path="/oa/", decision="refuse",
                          reason="network", **common)
    if kind < 93:
        return AuditEvent(event="access", client="81.2.69.160", country="GB", account="wangfang",
                          path=f"/oa/minutes/{n % 50}", decision="allow", extra={"grant": GRANT}, **common)
    if kind < 95:
        return AuditEvent(event="leave.view", time=now, request_id=f"{n:016x}", client="10.1.2.3",
                          path="/__govgate/leave", decision="allow", article="Art. 15",
                          extra={"destination_host": ("www.example.com", "docs.python.org")[n % 2]})
    if kind < 97:
        return AuditEvent(event="login.success", time=now, request_id=f"{n:016x}", client="10.1.2.3",
                          account=account, path="/__govgate/mfa", decision="allow", article="Art. 30")
    if kind < 99:
        return AuditEvent(event="login.failure", time=now, request_id=f"{n:016x}", client="10.9.9.9",
                          account=account, path="/__govgate/login", decision="refuse", reason="credentials",
                          article="Art. 30")
    return AuditEvent(event="session.expired", time=now, request_id=f"{n:016x}", client="10.1.2.3", account=account,
                      path="/oa/", decision="login", reason=("idle", "absolute")[n % 2], article="Art. 30")


def policy_event(event: str, when: datetime, audit: Path, text: bytes) -> dict[str, object]:
    import hashlib

    name = keep_policy_text(audit, text)
    return AuditEvent(event=event, time=when, decision="ok", article="Art. 20", extra={
        "policy_file": "/etc/govgate/policy.yaml", "policy_sha256": hashlib.sha256(text).hexdigest(),
        "policy_version": 1, "policy_text": name}).to_record()


def build(root: Path, records: int, days: int) -> Path:
    """A log of ``records`` records over ``days`` days ending today, through the real append path."""
    audit = root / "audit"
    keys = GatewayKeys.from_bytes(bytes(range(32)))
    (root / "secrets").mkdir(parents=True, exist_ok=True)
    (root / "secrets" / "gateway.key").write_text(bytes(range(32)).hex() + "\n")
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days - 1)
    texts = [POLICY.format(unknown=unknown, start=(first - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
                           end=(today + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")).encode()
             for unknown in ("overseas", "home", "overseas")]
    log = AuditDir(audit, keys, AuditAlgorithm.HMAC_SHA256, TZ)
    per_day = records // days
    n = 0
    started = time.perf_counter()
    try:
        for d in range(days):
            day = first + timedelta(days=d, hours=7)
            extra = []
            if d in (0, days // 3, 2 * days // 3):
                extra.append(policy_event("policy.load" if d == 0 else "policy.reload", day, audit,
                                          texts[[0, days // 3, 2 * days // 3].index(d)]))
            count = per_day if d < days - 1 else records - n
            for b in range(0, count, BATCH):
                now = day + timedelta(seconds=b * 40_000 / max(count, 1))
                size = min(BATCH, count - b)
                batch = [event_record(record(n + i, now), keys) for i in range(size)]
                log.append([*extra, *batch], now)
                extra = []
                n += size
            print(f"\r  built {n:,} records ({d + 1}/{days} days, {time.perf_counter() - started:.0f} s)", end="",
                  flush=True)
    finally:
        log.close()
    print()
    (root / "policy.yaml").write_text(texts[-1].decode() + "", encoding="utf-8")
    return root


def measure(args: list[str], cwd: Path) -> tuple[float, float, int, int, bytes]:
    """(wall seconds, CPU seconds, peak RSS in MiB, exit code, first line of stdout) of one `govgate` process."""
    started = time.perf_counter()
    proc = subprocess.Popen([str(GOVGATE), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    for _ in proc.stdout:
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, proc.returncode, first.strip()[:100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="build the log here once and reuse it next time")
    args = parser.parse_args()
    tmp = None
    if args.keep is not None and (args.keep / "audit" / ".head").exists():
        root = args.keep
        print(f"reusing the log in {root}")
    else:
        root = args.keep or Path(tmp := tempfile.mkdtemp(prefix="govgate-bench-audit-"))
        print(f"building {args.records:,} records over {args.days} days in {root} (AuditDir.append, fsynced) ...")
        build(root, args.records, args.days)
    size = sum(p.stat().st_size for p in (root / "audit").glob("audit-*.jsonl"))
    print(f"log: {size / 2**20:,.0f} MiB in {len(list((root / 'audit').glob('audit-*.jsonl')))} files; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    runs = [
        ("show: from abroad last week (--since 7d --overseas --event access --decision allow)",
         ["audit", "show", "--since", "7d", "--overseas", "--event", "access", "--decision", "allow"], SHOW_TARGET),
        ("show: one account, the whole log (--account wangfang --country GB --json)",
         ["audit", "show", "--account", "wangfang", "--country", "GB", "--json"], SHOW_TARGET),
        ("show: refusals yesterday (--since 1d --decision refuse --csv)",
         ["audit", "show", "--since", "1d", "--decision", "refuse", "--csv"], SHOW_TARGET),
        ("report: 30 days, HTML (--since 30d --out report.html)",
         ["audit", "report", "--since", "30d", "--out", str(root / "report.html")], REPORT_TARGET),
        ("verify: the whole log", ["audit", "verify"], None),
    ]
    worst = 0
    for what, argv, target in runs:
        load = os.getloadavg()[0]
        seconds, cpu, rss, code, first = measure([*argv, "-p", str(root / "policy.yaml")], root)
        verdict = "" if target is None else ("  OK" if seconds <= target else f"  OVER the {target:g} s target")
        worst = max(worst, 0 if target is None or seconds <= target else 1)
        print(f"{what}\n    {seconds:6.2f} s wall, {cpu:5.2f} s CPU (load {load:.1f}), peak RSS {rss:4d} MiB, "
              f"exit {code}{verdict}\n    | {first.decode(errors='replace')}")
    if tmp is not None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
