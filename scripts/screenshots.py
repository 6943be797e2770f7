"""Regenerate the screenshots in docs/screenshots/ from a real gateway run.

    .venv/bin/python scripts/screenshots.py            # writes docs/screenshots/audit-report*.png

It starts the sample portal and `govgate run` (tests/e2e/harness.py), drives a short working day through it
(office logins, refusals from abroad and from an unknown country, a traveller on an overseas grant, a failed
login and a lockout, a leave warning, a policy reload, a backup), stops the gateway, writes
`govgate audit report --out` and opens it in headless Chromium (Debian's /usr/bin/chromium via Playwright),
refusing to write a screenshot if the page logs an error or requests anything. The same checks run in the test
suite (tests/e2e/test_audit_evidence_e2e.py::test_the_report_renders_in_a_browser_with_no_errors_and_no_requests).
Needs `scripts/setup --test`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from govgate.core.leave_link import leave_url  # noqa: E402
from govgate.files import load_key_file  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    CN_ADDRESS,
    GB_ADDRESS,
    GOVGATE,
    OFFICE_ADDRESS,
    US_ADDRESS,
    add_account,
    base_policy,
    start_gateway,
    start_upstream,
    wait_for_record,
    write_policy,
)
from tests.e2e.login import Browser, wrong_code  # noqa: E402
from tests.e2e.test_pages_in_browser import CHROMIUM_ARGS  # noqa: E402

OUT = REPO / "docs" / "screenshots"
PASSWORD = "Screenshot-day-at-work-2026"
TZ = ZoneInfo("Asia/Shanghai")


def working_day(workdir: Path, upstream: str) -> Path:
    """Drive a short day through a real gateway; returns the policy file (its audit log is next to it)."""
    now = datetime.now(TZ)
    data = base_policy(workdir, upstream)
    data["overseas"] = {"grants": [{
        "account": "wangfang", "countries": ["GB"], "from": (now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M"), "reason": "参加国际标准化会议",
    }]}
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    secrets = {name: add_account(policy, name, PASSWORD) for name in ("zhangsan", "lisi", "wangfang")}
    gw = start_gateway(policy)
    try:
        keys = load_key_file(workdir / "secrets" / "gateway.key", create=False)
        for name, address in (("zhangsan", OFFICE_ADDRESS), ("lisi", "10.8.1.20")):
            b = Browser(gw.url, address)
            assert b.login(name, PASSWORD, secrets[name]).status_code == 303
            for path in ("/oa/", "/oa/inbox", "/oa/approvals/2026-118", "/echo/staff/report"):
                b.http.get(path)
            for target in ("https://www.example.com/news", "https://docs.python.org/3/", "https://www.example.com/"):
                b.http.get(leave_url("/__govgate", target, keys))
        Browser(gw.url, CN_ADDRESS).http.get("/")
        for address in (US_ADDRESS, "198.51.100.7", "203.0.113.50"):
            Browser(gw.url, address).http.get("/oa/")
        traveller = Browser(gw.url, GB_ADDRESS)
        assert traveller.login("wangfang", PASSWORD, secrets["wangfang"]).status_code == 303
        for path in ("/oa/", "/oa/inbox", "/oa/minutes"):
            traveller.http.get(path)
        locker = Browser(gw.url, "10.9.9.9")
        for _ in range(3):
            locker.password("lisi", "not-the-password-1")
        mfa = Browser(gw.url, OFFICE_ADDRESS)
        mfa.password("zhangsan", PASSWORD)
        mfa.mfa(wrong_code(secrets["zhangsan"]))
        data["access"][0]["paths"].append("/about/**")  # type: ignore[index]
        write_policy(policy, data)
        wait_for_record(workdir / "audit", "the reload", lambda r: r["event"] == "policy.reload")
        subprocess.run([str(GOVGATE), "audit", "backup", str(workdir / "backup"), "-p", str(policy)], check=True,
                       capture_output=True)
    finally:
        gw.stop()
    return policy


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    upstream = start_upstream()
    try:
        with tempfile.TemporaryDirectory(prefix="govgate-screenshots-") as tmp:
            workdir = Path(tmp)
            (workdir / "secrets").mkdir()
            policy = working_day(workdir, upstream.url)
            report = workdir / "report.html"
            subprocess.run([str(GOVGATE), "audit", "report", "-p", str(policy), "--since", "1d", "--out", str(report)],
                           check=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(locale="zh-CN", viewport={"width": 1100, "height": 900})
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
                page.on("request", lambda r: problems.append(r.url) if r.url != report.as_uri() else None)
                page.goto(report.as_uri())
                page.wait_for_load_state("networkidle")
                if problems:
                    print("screenshots: the report logged errors or made requests:", *problems, sep="\n  ")
                    return 1
                page.screenshot(path=str(OUT / "audit-report.png"), full_page=True)
                page.locator("#art19").screenshot(path=str(OUT / "audit-report-art19.png"))
                browser.close()
    finally:
        upstream.stop()
    print(f"wrote {OUT / 'audit-report.png'} and {OUT / 'audit-report-art19.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
