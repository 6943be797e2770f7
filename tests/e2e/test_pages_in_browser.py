"""The gate's pages as a person meets them, in real headless Chromium (Debian's, driven by Playwright).

JavaScript is off, as on a locked-down office machine: the login must work without it. The strict
Content-Security-Policy must not block the page's own stylesheet (a CSP violation is a console error).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from tests.e2e.harness import Gateway, Upstream, start_gateway
from tests.e2e.login import fresh_code
from tests.policies import policy_data, write_policy

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "Browser-login-pass-7"



@pytest.fixture(scope="module")
def gw(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("browser")
    (workdir / "secrets").mkdir()
    policy = workdir / "policy.yaml"
    data = policy_data(workdir, upstream.url)
    data["networks"] = {"office": ["10.0.0.0/8"], "loopback": ["127.0.0.0/8"]}
    data["access"][1]["networks"] = ["office", "loopback"]
    data["gateway"]["trusted_proxies"] = []
    write_policy(policy, data)
    g = start_gateway(policy)
    yield g
    assert g.stop() == 0


def test_a_person_logs_in_without_javascript_and_reaches_the_office_system(
    chromium: Browser, gw: Gateway, tmp_path: Path
) -> None:
    secret = gw.add_account("liming", PASSWORD)
    context = chromium.new_context(java_script_enabled=False, locale="zh-CN")
    page = context.new_page()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(gw.url + "/oa/")
    assert "/__govgate/login" in page.url
    heading = page.locator("h1")
    assert heading.inner_text() == "工作人员登录"
    page.screenshot(path=str(tmp_path / "login.png"), full_page=True)
    page.fill("#username", "liming")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    assert page.url.endswith("/__govgate/mfa")
    page.fill("#code", fresh_code(secret))
    page.click("button[type=submit]")
    assert page.url.endswith("/oa/")
    assert page.locator("#user").inner_text() == "liming"
    # Only the browser's own favicon probe is refused (the policy denies unlisted paths).
    assert [f for f in failed if not f.endswith("/favicon.ico")] == []
    context.close()


def test_pages_render_with_their_styles_under_the_strict_csp(chromium: Browser, gw: Gateway, tmp_path: Path) -> None:
    context = chromium.new_context(locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for path in ("/__govgate/login", "/no/such/page"):
        page.goto(gw.url + path)
        color = page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor")
        assert color == "rgb(181, 18, 27)"
        zh = page.locator("section[lang=zh-CN]").bounding_box()
        en = page.locator("section[lang=en]").bounding_box()
        assert zh is not None
        assert en is not None
        assert zh["y"] < en["y"]  # Chinese first, English below
        page.screenshot(path=str(tmp_path / (path.strip("/").replace("/", "_") + ".png")), full_page=True)
    assert [e for e in errors if "Content Security Policy" in e] == []
    context.close()


# -- forms that leave the site (Art. 15) ---------------------------------------------------------------------

EXTERNAL = ("https://search.example.org/**", "https://partner.example.org/**")
TYPED = {"q": "公积金 提取 😀", "text": "第一行\n第二行 & <b>", "name": "张三 O'Brien"}


@dataclass
class Arrival:
    """A submission as the destination site receives it (Chromium's request, stopped at the network's edge)."""

    method: str
    url: str
    content_type: str
    body: bytes


def _arrivals(context: BrowserContext) -> list[Arrival]:
    arrived: list[Arrival] = []

    def destination(route: Route) -> None:
        request = route.request
        arrived.append(Arrival(request.method, request.url, request.headers.get("content-type", ""),
                               request.post_data_buffer or b""))
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>received</title>")

    for pattern in EXTERNAL:
        context.route(pattern, destination)
    return arrived


def _fill_and_submit(page: Page, form: str) -> None:
    for field in page.locator(f"#{form} input:not([type=hidden]), #{form} textarea").all():
        page.fill(f"#{form} #{field.get_attribute('id')}", TYPED[str(field.get_attribute("name"))])
    page.click(f"#{form} button[type=submit]")


def _comparable(arrival: Arrival) -> tuple[str, str, str, bytes]:
    """The arrival with a multipart boundary (random per submission) made equal."""
    body, ctype = arrival.body, arrival.content_type
    if ctype.startswith("multipart/form-data"):
        boundary = ctype.split("boundary=", 1)[1]
        body, ctype = body.replace(boundary.encode(), b"BOUNDARY"), ctype.replace(boundary, "BOUNDARY")
    return arrival.method, arrival.url, ctype, body


@pytest.mark.parametrize("path", ["/news/forms.html", "/news/forms-gbk.html"])
@pytest.mark.parametrize("form", ["search", "feedback", "signup"])
def test_a_form_leaving_the_site_is_warned_and_reaches_its_destination_unchanged(
        chromium: Browser, gw: Gateway, upstream: Upstream, path: str, form: str) -> None:
    # Without the gateway: what the destination receives when the form is submitted straight from the portal.
    direct = chromium.new_context(java_script_enabled=False, locale="zh-CN")
    straight = _arrivals(direct)
    page = direct.new_page()
    page.goto(upstream.url + path)
    _fill_and_submit(page, form)
    page.wait_for_url("https://*.example.org/**")
    direct.close()
    # Through the gateway, without JavaScript: the warning first, then the same submission.
    context = chromium.new_context(java_script_enabled=False, locale="zh-CN")
    warned = _arrivals(context)
    page = context.new_page()
    page.goto(gw.url + path)
    _fill_and_submit(page, form)
    assert "/__govgate/leave-form/" in page.url
    assert page.locator("h1").inner_text() == "您即将离开本网站"
    host = "search.example.org" if form == "search" else "partner.example.org"
    assert page.locator("p.host").inner_text() == host
    assert page.locator("a.button.secondary").get_attribute("href") == path  # Back: the page the form was on
    assert warned == []  # nothing left before the user chose to
    page.click(".actions :is(a.button:not(.secondary), button[type=submit])")  # 继续访问 / 继续提交 Continue
    page.wait_for_url("https://*.example.org/**")
    context.close()
    assert len(straight) == len(warned) == 1
    assert _comparable(warned[0]) == _comparable(straight[0])
