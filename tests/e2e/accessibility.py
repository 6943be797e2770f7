"""axe-core in a real browser: the accessibility check the gate's pages must pass.

axe-core (Deque's engine, the npm package ``axe-core``) is installed by ``scripts/setup --test`` into
``.venv/tools/axe``. It is run in the page through the DevTools protocol (``page.evaluate``), which the pages'
``Content-Security-Policy`` (no scripts at all) does not govern, so the page is checked exactly as served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / ".venv" / "tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
FAILING = ("minor", "moderate", "serious", "critical")  # every impact: none is acceptable on the gate's pages


def axe_source() -> str:
    if not AXE.is_file():
        raise AssertionError(f"axe-core is not installed at {AXE}: run scripts/setup --test")
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Page, source: str) -> list[dict[str, Any]]:
    """Every violation axe-core finds on ``page`` (all of its rules but the experimental ones)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    result: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                          nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
        }""")
    return result


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(f"{v['impact']}: {v['id']} ({v['help']})\n    " + "\n    ".join(v["nodes"]) for v in violations)
