"""The refusals of the browser corpus (``REFUSED_MARKUP``) guard against links Chromium itself would follow.

Each refused page, as written, is loaded in Chromium with JavaScript on and off: in each, in one of the two,
Chromium shows a live link to evil.example that one reading of the page hides (the reason the page is refused).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Request, Route, sync_playwright

from .browser_corpus import MARKUP_CASES, REFUSED_MARKUP

pytestmark = [pytest.mark.browser]

def test_chromium_follows_a_link_in_each_page_refused_for_it() -> None:
    pages = {label: markup for label, markup in MARKUP_CASES if label in REFUSED_MARKUP}
    assert set(pages) == set(REFUSED_MARKUP)
    live: dict[str, bool] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for scripting in (True, False):
            context = browser.new_context(java_script_enabled=scripting)
            tab = context.new_page()
            for n, (label, markup) in enumerate(pages.items()):
                body = f'<!doctype html><meta charset="utf-8"><body>{markup}'.encode()

                def serve(route: Route, _request: Request, body: bytes = body) -> None:
                    route.fulfill(body=body, headers={"content-type": "text/html"})
                url = f"http://refused.test/{scripting}/{n}.html"
                tab.route(url, serve)
                tab.goto(url)
                hosts = tab.evaluate("Array.from(document.querySelectorAll('a[href], area[href], form[action]'),"
                                     " e => new URL(e.href || e.action).hostname)")
                live[label] = live.get(label, False) or "evil.example" in hosts
            context.close()
        browser.close()
    assert [label for label, seen in live.items() if not seen] == []
