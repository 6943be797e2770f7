"""Regenerate the screenshots in docs/screenshots/ from real gateway runs.

    .venv/bin/python scripts/screenshots.py            # every page, then the audit report
    .venv/bin/python scripts/screenshots.py --pages    # only the pages people meet: docs/screenshots/<page>.png
    .venv/bin/python scripts/screenshots.py --report   # only docs/screenshots/audit-report*.png

The pages: tests/e2e/page_tour.py starts a gateway in front of the sample portal and one in front of a portal
that misbehaves (with an unreachable Redis), and drives headless Chromium (Debian's /usr/bin/chromium via
Playwright) to each page the gate serves — the login steps, sign-out, the Art. 15 warnings, every refusal and
error page — the same tour tests/e2e/test_pages_accessible.py checks with axe-core. A page is photographed only
if the gate answered with the status it should, the page logged no error (a Content-Security-Policy violation
is one) and axe-core finds nothing on it; otherwise the script says why and exits 1.

The audit report: it starts the sample portal and `govgate run` (tests/e2e/harness.py), drives a short working
day through it (office logins, refusals from abroad and from an unknown country, a traveller on an overseas
grant, a failed login and a lockout, a leave warning, a policy reload, a backup), stops the gateway, writes
`govgate audit report --out` and opens it in headless Chromium, refusing to write a screenshot if the page logs
an error or requests anything. The same checks run in the test suite
(tests/e2e/test_audit_evidence_e2e.py::test_the_report_renders_in_a_browser_with_no_errors_and_no_requests).

Needs `scripts/setup --test`.
"""

from __future__ import annotations

import argparse
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
from tests.e2e.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.e2e.harness import (  # noqa: E402
    CN_ADDRESS,
    GB_ADDRESS,
    GOVGATE,
    OFFICE_ADDRESS,
    US_ADDRESS,
    add_account,
    start_gateway,
    start_upstream,
    wait_for_record,
    write_policy,
)
from tests.e2e.login import Browser, wrong_code  # noqa: E402
from tests.policies import policy_data  # noqa: E402

OUT = REPO / "docs" / "screenshots"
PASSWORD = "Screenshot-day-at-work-2026"
TZ = ZoneInfo("Asia/Shanghai")


def working_day(workdir: Path, upstream: str) -> Path:
    """Drive a short day through a real gateway; returns the policy file (its audit log is next to it)."""
    now = datetime.now(TZ)
    data = policy_data(workdir, upstream)
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
        subprocess.run([*GOVGATE, "audit", "backup", str(workdir / "backup"), "-p", str(policy)], check=True,
                       capture_output=True)
    finally:
        gw.stop()
    return policy


def pages(upstream: str) -> list[str]:
    """Photograph every page of the tour; returns the problems found (nothing is written for such a page)."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.accessibility import axe_source, axe_violations, describe
    from tests.e2e.page_tour import PageTour

    problems: list[str] = []
    source = axe_source()
    with tempfile.TemporaryDirectory(prefix="govgate-pages-") as tmp, PageTour(Path(tmp), upstream) as tour, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for stop in tour.stops():
            context = browser.new_context(locale="zh-CN", viewport={"width": 900, "height": 700})
            errors: list[str] = []
            statuses: list[int] = []
            context.on("response", lambda r, s=statuses: s.append(r.status) if r.request.is_navigation_request()
                       else None)
            # Errors the page itself logs (a CSP violation is one). "Failed to load resource" is Chromium noting an
            # error status, which is what an error page is (and the favicon probe, which the policy denies).
            context.on("console", lambda m, e=errors: e.append(m.text)
                       if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            page = stop.visit(context)
            page.wait_for_load_state("load")
            found = [f"the gate answered {statuses}, not {stop.status}"] if statuses[-1:] != [stop.status] else []
            found += errors
            violations = axe_violations(page, source)
            if violations:
                found.append(describe(violations))
            if found:
                problems.append(f"{stop.name}: " + "; ".join(found))
            else:
                page.screenshot(path=str(OUT / f"{stop.name}.png"), full_page=True)
                print(f"wrote {OUT / stop.name}.png  ({stop.description})")
            context.close()
        browser.close()
    return problems


def report(upstream_url: str) -> int:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="govgate-screenshots-") as tmp:
        workdir = Path(tmp)
        (workdir / "secrets").mkdir()
        policy = working_day(workdir, upstream_url)
        report = workdir / "report.html"
        subprocess.run([*GOVGATE, "audit", "report", "-p", str(policy), "--since", "1d", "--out", str(report)],
                       check=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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
    print(f"wrote {OUT / 'audit-report.png'} and {OUT / 'audit-report-art19.png'}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", action="store_true", help="only the pages people meet")
    parser.add_argument("--report", action="store_true", help="only the audit report")
    args = parser.parse_args(argv)
    both = not (args.pages or args.report)
    OUT.mkdir(parents=True, exist_ok=True)
    upstream = start_upstream()
    try:
        if args.pages or both:
            problems = pages(upstream.url)
            if problems:
                print("screenshots: not written for these pages:", *problems, sep="\n  ")
                return 1
        if args.report or both:
            return report(upstream.url)
    finally:
        upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
