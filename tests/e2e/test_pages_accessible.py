"""Every page the gate serves passes axe-core in headless Chromium (Debian's /usr/bin/chromium), as served: the
login steps, sign-out, the Art. 15 warnings for links and forms, and every refusal and error page (403, 400, 404,
405, 429, 502, 503, 504). ``health`` is JSON, for machines. The tour of pages is ``tests/e2e/page_tour.py``,
the one ``scripts/screenshots.py`` photographs.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from tests.e2e.accessibility import axe_source, axe_violations, describe
from tests.e2e.harness import Upstream
from tests.e2e.page_tour import PREFIX, PageTour

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

STOPS = [stop.name for stop in PageTour.__new__(PageTour).stops()]


@pytest.fixture(scope="module")
def tour(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageTour]:
    with PageTour(tmp_path_factory.mktemp("tour"), upstream.url) as t:
        yield t



@pytest.mark.parametrize("name", STOPS)
def test_the_page_passes_axe_core(tour: PageTour, chromium: Browser, name: str) -> None:
    stop = next(s for s in tour.stops() if s.name == name)
    context = chromium.new_context(locale="zh-CN")
    statuses: list[int] = []
    context.on("response", lambda r: statuses.append(r.status) if r.request.is_navigation_request() else None)
    try:
        page = stop.visit(context)
        page.wait_for_load_state("load")
        assert statuses[-1] == stop.status, f"{name}: expected {stop.status}, the gate answered {statuses}"
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        violations = axe_violations(page, axe_source())
        assert violations == [], f"{name} ({stop.description}):\n{describe(violations)}"
    finally:
        context.close()


def test_health_is_json_for_machines(tour: PageTour) -> None:
    r = httpx.get(f"{tour.url}{PREFIX}/health", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    # MaxMind's test database was built years ago: health says so (200, for the operator) and nothing else.
    assert (r.json()["status"], r.json()["reasons"]) == ("degraded", ["geoip_stale"])
