"""The core never imports mitmproxy or redis, and never reads the clock itself (STYLE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "govgate" / "core"


def test_core_modules_import_neither_mitmproxy_nor_redis() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import govgate.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'govgate.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'mitmproxy', 'redis'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
               ("time", "time"), ("time", "monotonic"), ("time", "time_ns"), ("time", "perf_counter")}


def test_core_never_reads_the_clock() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                base = node.func.value
                name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
                if (name, node.func.attr) in CLOCK_CALLS:
                    offenders.append(f"{path.relative_to(CORE)}:{node.lineno}: {name}.{node.func.attr}()")
    assert offenders == []
