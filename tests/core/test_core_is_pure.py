"""The core never imports mitmproxy, redis or the files layer, never touches the filesystem or reads the
clock itself, and does no costly work at import (STYLE.md); govgate's modules import one another without
cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "govgate" / "core"
PACKAGES = ("govgate", "addons")
# What the core must never reach, directly or through another module: the proxy, the Redis client, and the
# thin layer that reads and writes files (govgate.files, govgate.accounts_file).
FORBIDDEN_IN_CORE = ("mitmproxy", "redis", "govgate.files", "govgate.accounts_file")


def module_paths() -> dict[str, Path]:
    """Every module of the project's packages by dotted name (a package by its own name)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported_names(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules ``name`` imports anywhere in its text (function-level and TYPE_CHECKING imports too):
    project modules by their dotted name, other packages by their top-level name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in known else module)
    return {n if n in known else n.split(".")[0] for n in found} - {name}


def import_graph() -> dict[str, set[str]]:
    paths = module_paths()
    known = set(paths)
    return {name: imported_names(name, path, known) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue  # another package
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` imports directly or indirectly, each with the module that imports it."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        current = todo.pop()
        for nxt in graph.get(current, ()):
            if nxt not in seen and nxt != start:
                seen[nxt] = current
                todo.append(nxt)
    return seen


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    hidden = tmp_path / "b.py"
    hidden.write_text("def f():\n    from pkg import a\n", encoding="utf-8")
    known = {"pkg.a", "pkg.b", "pkg.c"}
    graph = {"pkg.a": {"pkg.b"}, "pkg.b": imported_names("pkg.b", hidden, known), "pkg.c": {"pkg.a"}}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_core_reaches_neither_mitmproxy_nor_redis_nor_the_files_layer() -> None:
    graph = import_graph()
    offenders = []
    for name in sorted(graph):
        if name == "govgate.core" or name.startswith("govgate.core."):
            for target, via in reachable(graph, name).items():
                if target in FORBIDDEN_IN_CORE:
                    offenders.append(f"{name} reaches {target} (imported by {via})")
    assert offenders == []


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


def test_importing_the_core_does_no_costly_work() -> None:
    # The dummy password hash (tens of milliseconds of Argon2id) is made on first use, not at import.
    code = (
        "import importlib, pkgutil\n"
        "import govgate.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'govgate.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "from govgate.core.passwords import dummy_hash\n"
        "print(dummy_hash.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "0"


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


FILE_METHODS = {"read_bytes", "read_text", "write_bytes", "write_text", "open", "mkdir", "rmdir", "unlink", "rename",
                "touch", "stat", "lstat", "exists", "is_file", "is_dir", "iterdir", "glob", "rglob",
                "chmod", "fsync", "listdir", "scandir", "remove", "makedirs", "open_database"}
OS_CALLS_ALLOWED = {"urandom"}
FILE_MODULES = {"shutil", "tempfile", "fcntl", "glob", "mmap", "govgate.files", "govgate.accounts_file"}


def test_core_never_touches_the_filesystem() -> None:
    # Reading and writing files is the files layer's (govgate.files, govgate.accounts_file); the core gets bytes.
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(CORE)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "open":
                    offenders.append(f"{where}: open()")
                elif isinstance(func, ast.Attribute) and func.attr in FILE_METHODS:
                    offenders.append(f"{where}: .{func.attr}()")
                elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "os"
                      and func.attr not in OS_CALLS_ALLOWED):
                    offenders.append(f"{where}: os.{func.attr}()")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders.extend(f"{where}: import {n}" for n in names if n in FILE_MODULES)
    assert offenders == []
