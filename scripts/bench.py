#!/usr/bin/env python3
"""Every GovGate benchmark in one run, one table (docs/performance.md explains each row).

    python scripts/bench.py [--quick] [--baseline] [--compare DIR] [--skip NAME ...]

Runs, one after the other on this machine:
  proxy      scripts/bench_proxy.py (in process): bare mitmdump vs the gateway, public / staff (memory, Redis) /
             HTTP/2, TLS on both sides, rounds alternating between targets; req/s, p50/p99, CPU per request
  decide     scripts/bench_decide.py --json   (decision time)
  audit      scripts/bench_audit.py --json    (audit writer)
  rewrite    scripts/bench_rewrite.py --json  (outbound link rewriting)
  login      scripts/bench_login.py --json    (Argon2id verification)
  h2soak     scripts/bench_h2_soak.py --json  (one long HTTP/2 connection: memory growth), short
  workers    scripts/bench_workers.py --json  (2 workers / 1 worker; the sample portal, then nginx)
  clientcert scripts/bench_client_cert.py --json  (staff path with a device certificate / without)
A script that is missing, has no ``--json`` yet or fails gives a row saying "not available" (and why).

Prints one table (per row: what, figure, p50/p99 where it applies, the ratio that matters, its target, met or
not) and writes it as JSON to ``scripts/results/bench-<UTC time>.json``; ``--baseline`` also writes
``scripts/results/baseline.json`` (the committed reference). Ratios are only meaningful within one run: the
machine is shared, so compare rows of the same file, never against a remembered figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
RESULTS = SCRIPTS / "results"
sys.path.insert(0, str(SCRIPTS))

WORKERS_TARGET = 1.6  # issue 11: 2 workers give at least 1.6 x the throughput of 1
SOAK_TARGET_RATIO = 0.10  # memory growth on one long HTTP/2 connection: at most a tenth of bare mitmdump's


@dataclass
class Row:
    what: str
    figure: str  # the measured figure with its unit, or "not available"
    p50: str = ""
    p99: str = ""
    ratio: float | None = None  # the ratio that matters for this row
    ratio_of: str = ""  # what the ratio is
    target: str = ""  # e.g. "≥ 1.50"
    met: bool | None = None
    note: str = ""


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from mitmproxy.version import VERSION as mitmproxy_version
    except ImportError:
        mitmproxy_version = "?"
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "mitmproxy": mitmproxy_version, "platform": platform.platform(),
            "load_average": os.getloadavg()}


def run_json(script: str, args: list[str], timeout: float) -> tuple[Any, str]:
    """Run ``scripts/<script> --json ARGS``; (its JSON, "") or (None, why not)."""
    path = SCRIPTS / script
    if not path.exists():
        return None, f"{script} does not exist yet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, str(path), "--json", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        return None, f"{script} took longer than {timeout:.0f} s"
    if done.returncode != 0 and done.stdout.strip().startswith("{"):
        try:  # a script that missed its target exits 1 and still prints its figures
            return json.loads(done.stdout), ""
        except json.JSONDecodeError:
            pass
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        if "unrecognized arguments: --json" in done.stderr:
            return None, f"{script} has no --json yet"
        return None, f"{script} failed: {tail[:120]}"
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError:
        # The JSON may follow progress lines: take the last line that parses.
        for line in reversed(done.stdout.strip().splitlines()):
            try:
                return json.loads(line), ""
            except json.JSONDecodeError:
                continue
        return None, f"{script} --json printed no JSON"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def generic_rows(label: str, data: Any) -> list[Row]:
    """Rows from another script's JSON: a ``rows`` list of dicts (what, figure/value, unit, p50, p99, ratio,
    target, met) when it has one, else one row per top-level number."""
    rows: list[Row] = []
    items = data.get("rows") if isinstance(data, dict) else None
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            value = item.get("figure", item.get("value", ""))
            unit = item.get("unit", "")
            figure = f"{value:,.2f} {unit}".strip() if _num(value) is not None else str(value)
            target = item.get("target")
            rows.append(Row(what=f"{label}: {item.get('what', '?')}", figure=figure,
                            p50=str(item.get("p50", "")), p99=str(item.get("p99", "")),
                            ratio=_num(item.get("ratio")), target="" if target is None else str(target),
                            met=item.get("met") if isinstance(item.get("met"), bool) else None))
        return rows
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict) and key != "rounds":  # one level of sections (bench_rewrite's mixes)
                rows += [r for r in generic_rows(f"{label} {key}", value) if r.figure != "not available"]
            elif _num(value) is not None:
                rows.append(Row(what=f"{label}: {key}", figure=f"{value:,.3g}"))
            elif isinstance(value, bool) and key in ("met", "ok"):
                rows.append(Row(what=f"{label}: target met", figure=str(value), met=value))
    return rows or [Row(what=label, figure="not available", note="its JSON has no figures bench.py can read")]


def proxy_rows(quick: bool, compare: Path | None) -> tuple[list[Row], Any]:
    import bench_proxy

    out = bench_proxy.measure(3 if quick else 8, 1 if quick else 3, compare=compare)
    rows: list[Row] = []
    for name, r in out["rows"].items():
        cpu = f"; {r['cpu_ms']:.2f} ms CPU/req" if r.get("cpu_ms") else ""
        rows.append(Row(what=f"proxy: {name}", figure=f"{r['rps']:,.0f} req/s{cpu}",
                        p50="" if r["p50_ms"] is None else f"{r['p50_ms']:.1f} ms",
                        p99="" if r["p99_ms"] is None else f"{r['p99_ms']:.1f} ms"))
    for ratio in out["ratios"]:
        by_cpu = f"by CPU/request: {ratio['cpu_ratio']:.2f}" if ratio.get("cpu_ratio") else ""
        rows.append(Row(what=f"proxy ratio: {ratio['what']}", figure="", ratio=ratio["ratio"],
                        ratio_of="req/s", target="" if ratio["target"] is None else f"≥ {ratio['target']:.2f}",
                        met=ratio["met"], note=by_cpu))
    return rows, out


def decide_rows(data: Any) -> list[Row]:
    """The decision's median against its budget (issue 11: ≤ 10 µs with 10,000 CIDRs and 1,000 grants), then each
    kind of request's median and p99."""
    median, p99, target = float(data["median_us"]), float(data["p99_us"]), float(data["target_us"])
    rows = [Row(what=f"decision: {int(data['cidrs']):,} CIDRs, {int(data['grants']):,} grants, all kinds",
                figure=f"{int(data['decisions']):,} decisions", p50=f"{median:.2f} µs", p99=f"{p99:.1f} µs",
                ratio=median / target, ratio_of="median / budget", target="≤ 1.00", met=median <= target,
                note=f"budget {target:.0f} µs")]
    for kind, figures in data.get("kinds", {}).items():
        rows.append(Row(what=f"decision: {kind}", figure=f"{int(figures['n']):,} decisions",
                        p50=f"{float(figures['median_us']):.2f} µs", p99=f"{float(figures['p99_us']):.1f} µs"))
    return rows


def audit_rows(data: Any) -> list[Row]:
    """The audit writer's records per second against its target (median of three logs), and a record's cost on the
    request path (the emit, whose writing and fsync happen on the writer's thread)."""
    rate, target = float(data["throughput_per_s"]), float(data["throughput_target_per_s"])
    emit_target = float(data["emit_p99_target_us"])
    return [Row(what="audit writer: chained, MACed, fsync'd records", figure=f"{rate:,.0f} records/s",
                ratio=rate / target, ratio_of="rate / target", target="≥ 1.00", met=rate >= target,
                note=f"target {target:,.0f}/s; {float(data['throughput_per_cpu_s']):,.0f} per CPU second; "
                     f"{float(data['bytes_per_record']):.0f} bytes a record"),
            Row(what="audit: a record's cost on the request path (emit)", figure="",
                p50=f"{float(data['emit_p50_us']):.2f} µs", p99=f"{float(data['emit_p99_us']):.2f} µs",
                ratio=float(data["emit_p99_us"]) / emit_target, ratio_of="p99 / budget", target="≤ 1.00",
                met=float(data["emit_p99_us"]) <= emit_target, note=f"budget {emit_target:.0f} µs at p99"),
            Row(what="audit: verification", figure=f"{float(data['verify_per_s']):,.0f} records/s")]


def rewrite_rows(data: Any) -> list[Row]:
    """The rewriter in process (MB/s on the 748 KiB GBK page, each mix against its target) and through the gateway
    (a rewritten page served against the same bytes untouched, for the three kinds of page)."""
    rows: list[Row] = []
    # The judgement (which figure counts, met or not) is bench_rewrite.py's: its ``ratio`` and ``meets_target``.
    for mix, what in (("portal", "portal mix"), ("worst", "worst mix, every destination new")):
        r = data[mix]
        target = float(r["target_mb_s"])
        other = (f"{float(r['mb_s']):.0f} MB/s when the page repeats" if mix == "worst"
                 else f"{float(r['fresh_mb_s']):.0f} MB/s with every destination new")
        page_ms = float(r["fresh_median_ms"] if mix == "worst" else r["median_ms"])
        rows.append(Row(what=f"rewrite: {what}, {int(r['page_bytes']) / 1024:.0f} KiB GBK page",
                        figure=f"{float(r['ratio']) * target:.1f} MB/s", p50=f"{page_ms:.2f} ms",
                        ratio=float(r["ratio"]), ratio_of="MB/s / target", target="≥ 1.00",
                        met=bool(r["meets_target"]), note=f"target {target:.0f} MB/s; {other}"))
    gateway = data.get("gateway")
    if isinstance(gateway, dict):
        target = float(gateway["target_ratio"])
        cpu = gateway.get("cpu_ms_per_page", {})
        for key, met, what, cpu_key in (
                ("ratio", "meets_target", "a page changed in places", "cold"),
                ("ratio_warm", "meets_target_warm", "the same page again (rewrite cache)", "warm"),
                ("ratio_new", "meets_target_new", "a page different throughout", "new")):
            rows.append(Row(what=f"rewrite: served / untouched, {what}", figure=f"{float(cpu[cpu_key]):.2f} vs "
                            f"{float(cpu['untouched']):.2f} ms CPU a page" if cpu_key in cpu else "",
                            ratio=float(gateway[key]), ratio_of="pages/s", target=f"≥ {target:.2f}",
                            met=bool(gateway[met]), note=f"by CPU: {float(gateway['cpu_' + key]):.2f}"))
    proxy = data.get("proxy")
    if isinstance(proxy, dict):
        rows.append(Row(what="rewrite: mitmproxy with / without the link addon",
                        figure=f"{float(proxy['with_rewriting_pages_s']):,.0f} vs "
                               f"{float(proxy['without_pages_s']):,.0f} pages/s",
                        ratio=float(proxy["ratio"]), ratio_of="pages/s"))
    return rows


def login_rows(data: Any) -> list[Row]:
    verify, target = float(data["verify_ms"]), float(data["target_ms"])
    return [Row(what="login: Argon2id verification", figure=f"{verify:.1f} ms (median)", ratio=verify / target,
                ratio_of="of the budget", target="≤ 1.00", met=verify <= target),
            Row(what="login: unknown account (dummy hash)", figure=f"{float(data['dummy_ms']):.1f} ms",
                ratio=float(data["dummy_ms"]) / verify, ratio_of="dummy / real", note="equal work: about 1")]


def soak_rows(data: Any) -> list[Row]:
    """Resident memory growth per 1,000 streams on one HTTP/2 connection, the gateway's against bare mitmdump's
    (which keeps every stream's state: the retention govgate/addons/connections.py drops). Both curves include
    the allocator's and caches' warm-up, so the target is the ratio, not an absolute figure."""
    growth = {t["name"]: float(t["growth_kib_per_1000"]) for t in data["targets"]}
    rows = [Row(what=f"h2 soak: {t['name']}, {data['streams']:,} streams on one connection",
                figure=f"{float(t['growth_kib_per_1000']):.1f} KiB per 1,000 streams", note=t["finished"][:60])
            for t in data["targets"]]
    if growth.get("bare mitmdump") and "gateway" in growth:
        ratio = growth["gateway"] / growth["bare mitmdump"]
        rows.append(Row(what="h2 soak ratio: gateway growth / bare mitmdump growth", figure="", ratio=ratio,
                        ratio_of="KiB per 1,000 streams", target=f"≤ {SOAK_TARGET_RATIO:.2f}",
                        met=ratio <= SOAK_TARGET_RATIO))
    return rows


def workers_rows(data: Any) -> list[Row]:
    """One row per portal measured (``bench_workers.py --json``: the first portal's figures at the top level, every
    portal's under ``portals``)."""
    portals = data.get("portals") if isinstance(data, dict) else None
    if not isinstance(portals, dict):
        portals = {str(data.get("portal", "sample")) if isinstance(data, dict) else "sample": data}
    rows: list[Row] = []
    for portal, result in portals.items():
        what = f"workers: 2 workers / 1 worker, {WORKERS_PORTALS.get(portal, portal)}"
        ratio = _num(result.get("ratio")) if isinstance(result, dict) else None
        if ratio is None:
            why = result.get("error") if isinstance(result, dict) else None
            rows.append(Row(what=what, figure="not available", note=str(why or "no ratio in the figures")[:120]))
            continue
        one, two = _num(result.get("workers_1")), _num(result.get("workers_2"))
        figure = f"{one:,.0f} → {two:,.0f} req/s" if one is not None and two is not None else ""
        cap = _num(result.get("ceiling"))
        note = (f"the CPU costs measured allow at most {cap:.2f} here (wrk and the portal share the cores)"
                if cap else "")
        rows.append(Row(what=what, figure=figure, ratio=ratio, ratio_of="req/s", target=f"≥ {WORKERS_TARGET:.2f}",
                        met=ratio >= WORKERS_TARGET, note=note))
    return rows


WORKERS_PORTALS = {"sample": "sample portal", "nginx": "nginx portal"}


def client_cert_rows(data: Any) -> list[Row]:
    with_cert, without = float(data["staff_with_cert_rps"]), float(data["staff_without_cert_rps"])
    return [Row(what="client certificate: staff path over TLS, with / without", figure=f"{with_cert:,.0f} vs "
                f"{without:,.0f} req/s", ratio=float(data["cpu_ratio"]), ratio_of="CPU/request",
                target=f"≥ {float(data['target']):.2f}", met=bool(data["met"]),
                note=f"by req/s: {float(data['ratio']):.2f}; verified once per connection")]


# Each script's rows (with its targets) from its JSON; another script's figures are shown as they come.
ROW_BUILDERS: dict[str, Callable[[Any], list[Row]]] = {
    "decide": decide_rows, "audit": audit_rows, "rewrite": rewrite_rows, "login": login_rows, "h2soak": soak_rows,
    "workers": workers_rows, "clientcert": client_cert_rows,
}


def print_table(rows: list[Row]) -> None:
    width = max(len(r.what) for r in rows)
    print(f"\n{'what':{width}}  {'figure':34} {'p50':>9} {'p99':>9} {'ratio':>6}  {'target':8} met")
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        note = f"  ({r.note})" if r.note else ""
        print(f"{r.what:{width}}  {r.figure:34} {r.p50:>9} {r.p99:>9} {ratio:>6}  {r.target:8} {met}{note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run (minutes): fewer rounds, shorter loads")
    ap.add_argument("--baseline", action="store_true", help="also write scripts/results/baseline.json")
    ap.add_argument("--compare", type=Path, metavar="DIR",
                    help="also run the gateway from this source tree in the proxy rows (marked [before])")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["proxy", "decide", "audit", "rewrite", "login", "h2soak", "workers", "clientcert"])
    args = ap.parse_args()
    started = datetime.datetime.now(datetime.UTC)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    quick = args.quick

    def unavailable(what: str, why: str) -> None:
        rows.append(Row(what=what, figure="not available", note=why))

    if "proxy" not in args.skip:
        try:
            proxy, raw["proxy"] = proxy_rows(quick, args.compare)
            rows += proxy
        except (SystemExit, Exception) as exc:  # a missing tool (wrk) or a failed start: say so, go on
            unavailable("proxy", f"bench_proxy failed: {exc}")
    scripts: list[tuple[str, str, list[str], float]] = [
        ("decide", "bench_decide.py", ["--rounds", "3" if quick else "20"], 900),
        ("audit", "bench_audit.py", ["--records", "20000" if quick else "200000"], 900),
        ("rewrite", "bench_rewrite.py", ["--seconds", "1" if quick else "3", "--proxy"], 900),
        ("login", "bench_login.py", ["--runs", "5" if quick else "20"], 600),
        ("h2soak", "bench_h2_soak.py", ["--streams", "5000" if quick else "20000",
                                        "--interval", "2" if quick else "5"], 1800),
        ("workers", "bench_workers.py", ["--seconds", "3", "--rounds", "1"] if quick else [], 1800),
        ("clientcert", "bench_client_cert.py", ["--seconds", "2" if quick else "5", "--rounds", "2" if quick else "5"],
         600),
    ]
    for name, script, extra, timeout in scripts:
        if name in args.skip:
            continue
        print(f"bench: {script} ...", file=sys.stderr, flush=True)
        data, why = run_json(script, extra, timeout)
        if data is None:
            unavailable(name, why)
            continue
        raw[name] = data
        try:
            build = ROW_BUILDERS.get(name)
            rows += build(data) if build is not None else generic_rows(name, data)
        except (KeyError, TypeError, ValueError) as exc:
            unavailable(name, f"{script} --json gave an unexpected shape: {exc!r}")
    print_table(rows)
    result = {"started": started.isoformat(timespec="seconds"), "quick": quick, "machine": machine(),
              "rows": [asdict(r) for r in rows], "raw": raw}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten to {path.relative_to(REPO)}")
    if args.baseline:
        (RESULTS / "baseline.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                                               encoding="utf-8")
        print("and to scripts/results/baseline.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
