#!/usr/bin/env python3
"""``govgate run`` for the benchmarks, trusting the benchmark's private upstream CA.

The gateway verifies the portal's certificate against the system's trusted CAs (docs/operations.md); the
benchmarks' TLS portal has a certificate from a CA made for the run (``benchlib.make_tls``), so this wrapper
adds that CA to the gateway's upstream verification (mitmproxy's ``ssl_verify_upstream_trusted_ca``, which bare
mitmdump gets too) and is otherwise ``govgate run`` unchanged. Not for production use.

    GOVGATE_BENCH_UPSTREAM_CA=ca.pem python scripts/bench_gateway.py run -p policy.yaml
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import govgate.serve
from govgate.cli import main

_static_options = govgate.serve.static_options


def _with_upstream_ca(confdir: Path | None = None) -> dict[str, Any]:
    return {**_static_options(confdir), "ssl_verify_upstream_trusted_ca": os.environ["GOVGATE_BENCH_UPSTREAM_CA"]}


if __name__ == "__main__":
    if os.environ.get("GOVGATE_BENCH_UPSTREAM_CA"):
        govgate.serve.static_options = _with_upstream_ca
    sys.exit(main(sys.argv[1:]))
