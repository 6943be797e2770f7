"""``scripts/bench.py``'s one table gives each of issue 11's figures its target and whether it is met (the scripts
it runs are not run here: their JSON shapes are)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench


def rewrite_json(worst_fresh: float, worst_repeated: float, new: float) -> dict[str, Any]:
    """``bench_rewrite.py --json``'s shape, judged as it judges (the worst mix on the fresh figure)."""
    def mix(mb_s: float, fresh: float, target: float, judged: float) -> dict[str, Any]:
        return {"page_bytes": 768_000, "mb_s": mb_s, "fresh_mb_s": fresh, "median_ms": 4.0, "fresh_median_ms": 7.5,
                "target_mb_s": target, "ratio": judged / target, "meets_target": judged >= target}

    return {"portal": mix(180.0, 170.0, 150.0, 180.0),
            "worst": mix(worst_repeated, worst_fresh, 100.0, worst_fresh),
            "gateway": {"target_ratio": 0.5, "ratio": 0.73, "ratio_warm": 1.1, "ratio_new": new,
                        "cpu_ratio": 0.72, "cpu_ratio_warm": 1.09, "cpu_ratio_new": new,
                        "meets_target": True, "meets_target_warm": True, "meets_target_new": new >= 0.5,
                        "cpu_ms_per_page": {"cold": 2.3, "warm": 1.5, "new": 7.4, "untouched": 1.7}},
            "proxy": {"with_rewriting_pages_s": 319.0, "without_pages_s": 454.0, "ratio": 0.70}}


def met(rows: list[bench.Row]) -> dict[str, bool | None]:
    return {r.what: r.met for r in rows}


def test_the_rewrite_rows_carry_the_scripts_judgement() -> None:
    # 110 MB/s when the page repeats does not meet a target defined by new destinations (95 MB/s).
    out = bench.rewrite_rows(rewrite_json(95.0, 110.0, 0.23))
    assert out[1].figure == "95.0 MB/s"
    rows = met(out)
    assert rows["rewrite: worst mix, every destination new, 750 KiB GBK page"] is False
    assert rows["rewrite: portal mix, 750 KiB GBK page"] is True
    assert rows["rewrite: served / untouched, a page different throughout"] is False
    assert rows["rewrite: served / untouched, a page changed in places"] is True
    rows = met(bench.rewrite_rows(rewrite_json(101.0, 90.0, 0.5)))
    assert rows["rewrite: worst mix, every destination new, 750 KiB GBK page"] is True
    assert rows["rewrite: served / untouched, a page different throughout"] is True


def test_the_decision_and_the_audit_writer_have_their_targets() -> None:
    decide = {"cidrs": 10_000, "grants": 1_000, "decisions": 70_000, "median_us": 10.2, "p99_us": 15.0,
              "target_us": 10.0, "kinds": {"public page": {"n": 10, "median_us": 2.8, "p99_us": 3.9}}}
    rows = bench.decide_rows(decide)
    assert rows[0].met is False
    assert rows[0].target == "≤ 1.00"
    assert rows[0].p50 == "10.20 µs"
    assert [r.what for r in rows[1:]] == ["decision: public page"]
    decide["median_us"] = 9.9
    assert bench.decide_rows(decide)[0].met is True
    audit = {"throughput_per_s": 99_000.0, "throughput_target_per_s": 100_000, "throughput_per_cpu_s": 120_000.0,
             "bytes_per_record": 513.0, "emit_p50_us": 0.15, "emit_p99_us": 0.2, "emit_p99_target_us": 50.0,
             "verify_per_s": 469_000.0}
    rows = bench.audit_rows(audit)
    assert rows[0].met is False
    assert rows[1].met is True
    audit["throughput_per_s"] = 134_000.0
    assert bench.audit_rows(audit)[0].met is True


def workers_json(ratio: float, portal: str = "sample") -> dict[str, Any]:
    """``bench_workers.measure``'s shape for one portal."""
    return {"workers_1": 1900.0, "workers_2": 1900.0 * ratio, "ratio": ratio, "ceiling": 1.63, "portal": portal}


def test_the_workers_rows_give_each_portal_its_own_judgement() -> None:
    both = {**workers_json(1.52), "portal": "sample",
            "portals": {"sample": workers_json(1.52), "nginx": workers_json(1.61, "nginx")}}
    rows = met(bench.workers_rows(both))
    assert rows == {"workers: 2 workers / 1 worker, sample portal": False,
                    "workers: 2 workers / 1 worker, nginx portal": True}
    # nginx not installed: its row says so, the sample portal's stands.
    missing = {**both, "portals": {"sample": workers_json(1.61), "nginx": {"error": "nginx is needed"}}}
    out = bench.workers_rows(missing)
    assert [(r.figure, r.met) for r in out] == [("1,900 → 3,059 req/s", True), ("not available", None)]
    assert "nginx is needed" in out[1].note
    # An older run's JSON (one portal, no "portals"): one row, as before.
    assert met(bench.workers_rows(workers_json(1.49))) == {"workers: 2 workers / 1 worker, sample portal": False}
