#!/usr/bin/env python3
"""Benchmark the password step of the login (Art. 30): one Argon2id verification with the parameters
accounts are hashed with (docs/accounts.md), and the dummy verification an unknown account gets.
Prints figures and ratios; not a test (timed tests fail on a busy machine).

    .venv/bin/python scripts/bench_login.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from govgate.core.passwords import PARAMETERS, dummy_hash, hash_password, verify_password

TARGET_MS = 100.0  # a login should not wait noticeably on the hash


def median_ms(password: str, encoded: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        verify_password(password, encoded)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    password = "Correct-horse-battery-9"
    real = median_ms(password, hash_password(password), args.runs)
    dummy = median_ms(password, dummy_hash(), args.runs)
    if args.json:
        print(json.dumps({"verify_ms": real, "dummy_ms": dummy, "target_ms": TARGET_MS, "runs": args.runs}))
        return 0
    print(f"Argon2id m={PARAMETERS.memory_kib} KiB t={PARAMETERS.iterations} p={PARAMETERS.lanes}")
    print(f"  verify (known account)   : {real:7.1f} ms median  (target < {TARGET_MS:.0f} ms; "
          f"ratio {real / TARGET_MS:.2f} of the budget)")
    print(f"  verify (unknown, dummy)  : {dummy:7.1f} ms median  (dummy / real {dummy / real:.2f}: "
          "equal work, so timing does not tell unknown accounts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
