"""Enrolment → approval → access → revocation, as a staff member and an administrator do it: a real headless
Chromium over real TLS to ``govgate run``, and the real ``govgate device`` command (Art. 19: staff functions
from allowed devices; Art. 30: account–device binding).

The staff member logs in at the office and enrols the browser at ``/__govgate/enroll``; from outside every
network (an address in China, ``X-Forwarded-For`` from the trusted loopback) the office system refuses the
browser while it is pending, admits it within 2 s of ``govgate device approve``, and refuses it again within
2 s of ``govgate device revoke``. The enrolment page passes axe-core like every page the gate serves.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.command import GOVGATE
from tests.e2e.accessibility import axe_source, axe_violations, describe
from tests.e2e.harness import CN_ADDRESS, OFFICE_ADDRESS, Gateway, Upstream, add_account, start_gateway, wait_for_record
from tests.e2e.login import fresh_code
from tests.e2e.test_device_certificates import server_tls, tls_policy

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "Enrol-this-browser-7"
DEVICE_COOKIE = "__Host-govgate-device"



@dataclass(frozen=True)
class TlsGateway:
    gw: Gateway
    secrets: dict[str, str]  # account → TOTP secret


@pytest.fixture(scope="module")
def tls_gw(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    workdir = tmp_path_factory.mktemp("enrol-browser")
    _, pem = server_tls(workdir)
    policy = tls_policy(workdir, upstream.url, pem)
    secrets = {name: add_account(policy, name, PASSWORD) for name in ("zhangsan", "lisi")}
    g = start_gateway(policy)
    yield TlsGateway(g, secrets)
    assert g.stop() == 0


def https(gw: Gateway) -> str:
    return "https://localhost:" + gw.url.rsplit(":", 1)[1]


def from_address(context: BrowserContext, address: str) -> None:
    context.set_extra_http_headers({"X-Forwarded-For": address})


def device(gw: Gateway, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*GOVGATE, "device", *args, "-p", str(gw.policy_path)], capture_output=True, text=True,
                          cwd=gw.policy_path.parent, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done


def status_within(page: Page, url: str, want: int, seconds: float) -> None:
    """Load ``url`` until it answers ``want``; fails unless a load started within ``seconds`` gets that answer."""
    start = time.monotonic()
    while True:
        began = time.monotonic() - start
        response = page.goto(url)
        assert response is not None
        if response.status == want:
            assert began <= seconds, f"{url} answered {want} only {began:.1f}s after the change"
            return
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{url} still answers {response.status} after {seconds}s (wanted {want})")
        time.sleep(0.1)


def log_in(page: Page, base: str, name: str, secret: str) -> None:
    page.goto(base + "/oa/")
    assert "/__govgate/login" in page.url
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.fill("#code", fresh_code(secret))
    page.click("button[type=submit]")
    assert page.url == base + "/oa/"


def record(gw: Gateway, what: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The newest audit record matching ``match``, once the gateway has written it."""
    return wait_for_record(gw.policy_path.parent / "audit", what, match)


def test_enrol_approve_reach_revoke_in_a_real_browser(chromium: Browser, tls_gw: TlsGateway, tmp_path: Path) -> None:
    gw, secret = tls_gw.gw, tls_gw.secrets["zhangsan"]
    base = https(gw)
    context = chromium.new_context(ignore_https_errors=True, locale="zh-CN")
    try:
        from_address(context, OFFICE_ADDRESS)
        page = context.new_page()
        log_in(page, base, "zhangsan", secret)

        # Enrol at the office: the form, a name, the device id shown, the signed cookie set.
        page.goto(base + "/__govgate/enroll")
        assert page.locator("h1").inner_text() == "登记此浏览器为设备"
        violations = axe_violations(page, axe_source())
        assert violations == [], describe(violations)
        page.fill("#label", "张三的办公电脑")
        page.click("button[type=submit]")
        # The click waits for the answer's page to start loading, not to be read: on a busy machine its content
        # could still be empty here.
        page.wait_for_load_state()
        found = re.search(r"zhangsan-browser-[0-9a-f]{6}", page.content())
        assert found, page.content()
        device_id = found.group(0)
        page.screenshot(path=str(tmp_path / "enrolled.png"), full_page=True)
        violations = axe_violations(page, axe_source())
        assert violations == [], describe(violations)
        cookie = next(c for c in context.cookies() if c["name"] == DEVICE_COOKIE)
        assert (cookie["secure"], cookie["httpOnly"], cookie["path"]) == (True, True, "/")
        assert "." in cookie["value"]  # token.signature: signed with the gateway key
        assert cookie["expires"] - time.time() > 399 * 86400  # long-lived: the approval's own expiry rules
        # Opening the page again says what this browser is; never a second entry.
        page.goto(base + "/__govgate/enroll")
        assert device_id in page.content()
        listed = device(gw, "list", "--json").stdout
        assert listed.count('"kind": "browser"') == 1
        assert f'"id": "{device_id}"' in listed
        assert '"state": "pending"' in listed

        # From outside every network: pending is not a device yet.
        from_address(context, CN_ADDRESS)
        refused = page.goto(base + "/oa/")
        assert refused is not None
        assert refused.status == 403

        # Approved by the administrator: the same browser reaches the office system within 2 s.
        device(gw, "approve", device_id, "--days", "30")
        status_within(page, base + "/oa/", 200, 2.0)
        assert page.locator("#user").inner_text() == "zhangsan"
        access = record(gw, "the access record", lambda r: r["event"] == "access" and r.get("device") == device_id)
        assert (access["decision"], access["client"]) == ("allow", CN_ADDRESS)

        # Revoked: refused again within 2 s, on the browser's open connection too.
        device(gw, "revoke", device_id)
        status_within(page, base + "/oa/", 403, 2.0)
        assert "network" in page.content()

        for event in ("device.enrolled", "admin.device.approve", "admin.device.revoke"):
            assert record(gw, event, lambda r, e=event: r["event"] == e and r.get("device") == device_id)
    finally:
        context.close()


def test_enrolment_is_refused_from_outside_the_allowed_networks(chromium: Browser, tls_gw: TlsGateway) -> None:
    gw, secret = tls_gw.gw, tls_gw.secrets["lisi"]
    base = https(gw)
    context = chromium.new_context(ignore_https_errors=True, locale="zh-CN")
    try:
        from_address(context, OFFICE_ADDRESS)
        page = context.new_page()
        log_in(page, base, "lisi", secret)
        from_address(context, CN_ADDRESS)
        answer = page.goto(base + "/__govgate/enroll")
        assert answer is not None
        assert answer.status == 403
        assert not any(c["name"] == DEVICE_COOKIE for c in context.cookies())
        refused = record(gw, "device.enrol_refused",
                         lambda r: r["event"] == "device.enrol_refused" and r.get("account") == "lisi")
        assert (refused["reason"], refused["client"]) == ("network", CN_ADDRESS)
    finally:
        context.close()
