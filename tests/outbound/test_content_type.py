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

from govgate.addons.outbound_links import OutboundLinks, _is_xml, _mime
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
    # invalid by the standard's steps, yet HTML to Chromium's own parser (an eighth review)
    "text/html x", "text/html(comment)", "text/html (x)", "image/svg+xml", "text/xml",
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
        sniff = sniff_xml_encoding if _is_xml(_mime(value)) else sniff_encoding  # XML: UTF-8
        assert (_mime(value) or "text/html", sniff(body, value).name) == (content_type, charset), value


@pytest.mark.parametrize("value", ["text/plain, text/html", "application/json, text/html", "foo, text/html",
                                   "text/plain; charset=utf-8, text/html"])
def test_a_page_a_list_types_as_html_is_rewritten(runtime: InProcessRuntime, value: str) -> None:
    addon = OutboundLinks(runtime)
    with taddons.context(addon):
        out = serve(addon, flow_with(b'<a href="http://evil.example/">x</a>', {"content-type": value}))
    assert b"/__govgate/leave?url=http://evil.example/" in out


_XHTML_DOC = (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body>'
              b'<a href="https://evil.example/xml">x</a></body></html>')
_SVG_DOC = (b'<svg xmlns="http://www.w3.org/2000/svg"><a href="https://evil.example/svg"><rect width="4" height="2"/>'
            b"</a></svg>")


@pytest.mark.parametrize(("value", "body"), [
    # An eighth review: each was streamed untouched while Chromium 156 showed the link live.
    ("image/svg+xml", _SVG_DOC),  # an SVG document's <a> is a link
    ("text/xml", _XHTML_DOC), ("application/xml", _XHTML_DOC), ("application/rss+xml", _XHTML_DOC),
    (None, _XHTML_DOC), ("unknown/unknown", _XHTML_DOC),  # sniffed as XML from "<?xml"
    (None, b"<p\t><a href='https://evil.example/z'>x</a>"),  # Chromium's signatures are plain prefixes
    (None, b"<article><a href='https://evil.example/z'>x</a>"),
    (None, b"\x0b<p><a href='https://evil.example/z'>x</a>"),  # and "\v" is whitespace to it
    ("text/html x", b"hello <a href='https://evil.example/z'>x</a>"),  # invalid by the standard, HTML to Chromium
    ("text/html(comment)", b"hello <a href='https://evil.example/z'>x</a>"),
    ("text/html, unknown/unknown", b"<article><a href='https://evil.example/q'>x</a>"),
])
def test_documents_chromium_renders_with_live_links_are_rewritten(runtime: InProcessRuntime, value: str | None,
                                                                  body: bytes) -> None:
    addon = OutboundLinks(runtime)
    with taddons.context(addon):
        f = flow_with(body, {"content-type": value} if value else {})
        assert f.response is not None
        if value is None:
            f.response.headers.pop("content-type", None)
        out = serve(addon, f)
    assert b"/__govgate/leave?url=https://evil.example/" in out


def test_an_xml_document_styled_by_xslt_is_refused() -> None:
    # The stylesheet makes the page the browser shows, links and all, from the data: nothing a scan can read.
    from govgate.core.link_rewrite import RefusalReason, RewriteRefused, rewrite_xhtml
    from govgate.core.outbound import HostClassifier

    from .conftest import outbound_policy

    def rewrite(body: bytes) -> bytes:
        return rewrite_xhtml(body, content_type="text/xml", document_url="https://portal.example.gov.cn/rss.xml",
                             classifier=HostClassifier.from_policy(outbound_policy()),
                             make_leave_url=lambda u: "/__govgate/leave?url=" + u).body

    with pytest.raises(RewriteRefused) as info:
        rewrite(b'<?xml version="1.0"?><?xml-stylesheet type="text/xsl" href="/s.xsl"?><rss/>')
    assert info.value.reason is RefusalReason.XHTML
    css = b'<?xml version="1.0"?><?xml-stylesheet type="text/css" href="/s.css"?><rss/>'
    assert rewrite(css) == css
