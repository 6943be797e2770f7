"""The ``Content-Type`` header read as a browser reads it (``govgate.core.mime``): the type that decides whether a
body is rewritten, and the charset it is scanned in. Judged by Chromium: each value below is served with a page, and
the type and encoding Chromium takes must be the gateway's.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mitmproxy.test import taddons
from playwright.sync_api import Request, Route, sync_playwright

from govgate.addons.outbound_links import OutboundLinks, _mime
from govgate.core.charset import sniff_encoding, sniff_xml_encoding
from govgate.core.mime import extract_mime_type, parse_mime_type, split_header_values
from tests.runtime import InProcessRuntime

from .test_rewrite_cache import flow_with, serve

# A security review found each of the first ten read otherwise by the gateway than by Chromium: a page streamed
# untouched that Chromium renders as HTML, or scanned in an encoding Chromium does not decode it in.
VALUES = [
    'text/html; x=";charset=utf-16;"',
    "text/html ; charset = utf-16",
    "text/html; charset=utf-16\x0b",
    'text/html; charset="utf-16',
    'text/html; charset="utf\\-16"',
    "text/html; charset=utf-16, text/html",
    "text/plain, text/html",
    "application/json, text/html",
    "foo, text/html",
    "text/plain; charset=utf-8, text/html",
    # and the ordinary ones
    "text/html", "text/html; charset=gbk", "TEXT/HTML;CHARSET=GBK", 'text/html;charset="gb2312"',
    "text/html;;charset=big5", "text/html; charset=gbk; charset=utf-8", "text/plain", "application/xhtml+xml",
    "text/html, text/plain", "text/html;charset=gbk, text/html", 'text/html; charset="a,b", text/plain',
]


def test_values_are_read_as_the_fetch_standard_reads_them() -> None:
    assert _mime("text/plain, text/html") == "text/html"
    assert _mime("text/plain; charset=utf-8, text/html") == "text/html"
    assert _mime("*/*") == ""
    assert _mime("nonsense") == ""
    assert split_header_values('a; q="x,y", b') == ['a; q="x,y"', "b"]
    mime = extract_mime_type("text/html; charset=gbk, text/html")
    assert mime is not None
    assert mime.charset == "gbk"  # the same essence keeps the charset
    assert parse_mime_type('text/html; charset="utf\\-16') is not None
    assert sniff_encoding(b"<p>x", 'text/html; x=";charset=utf-16;"').name == "windows-1252"
    assert sniff_encoding(b"<p>x", 'text/html; charset="utf-16').name == "UTF-16LE"


@given(st.text())
def test_any_value_parses_without_error(value: str) -> None:
    extract_mime_type(value)


@pytest.mark.browser
def test_chromium_takes_the_type_and_encoding_the_gateway_does() -> None:
    body = b"<p>x</p>"
    seen: dict[str, tuple[str, str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        for n, value in enumerate(VALUES):
            def serve(route: Route, _request: Request, value: str = value) -> None:
                route.fulfill(body=body, headers={"content-type": value})
            url = f"http://content-type.test/{n}"
            tab.route(url, serve)
            tab.goto(url)
            seen[value] = tab.evaluate("[document.contentType, document.characterSet]")
        browser.close()
    for value in VALUES:
        content_type, charset = seen[value]
        sniff = sniff_xml_encoding if _mime(value) == "application/xhtml+xml" else sniff_encoding  # XML: UTF-8
        assert (_mime(value) or "text/html", sniff(body, value).name) == (content_type, charset), value


@pytest.mark.parametrize("value", ["text/plain, text/html", "application/json, text/html", "foo, text/html",
                                   "text/plain; charset=utf-8, text/html"])
def test_a_page_a_list_types_as_html_is_rewritten(runtime: InProcessRuntime, value: str) -> None:
    addon = OutboundLinks(runtime)
    with taddons.context(addon):
        out = serve(addon, flow_with(b'<a href="http://evil.example/">x</a>', {"content-type": value}))
    assert b"/__govgate/leave?url=http://evil.example/" in out
