"""Regression tests for the security review of the outbound-link rewriter (scanner, leave page).

Each case here was a way for a live external link to escape rewriting, or for the leave page to
render a non-web destination. The browser-level confirmations are in ``browser_corpus`` (run by
``test_browser_differential``); these pin the scanner's behaviour without a browser.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import encode_url_param, leave_url, sign_leave
from govgate.core.link_rewrite import (
    MAX_NESTING,
    RefusalReason,
    RewriteRefused,
    RewriteResult,
    rewrite_html,
    rewrite_xhtml,
)
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Policy
from govgate.pages.leave import leave_page

from .conftest import DOC_URL, PREFIX

ORIGIN = "https://portal.example.gov.cn"
LEAVE = b"/__govgate/leave?url=http://evil.example/"

type Rewrite = Callable[[bytes], RewriteResult]


@pytest.fixture
def rw(classifier: HostClassifier, keys: GatewayKeys) -> Rewrite:
    def run(body: bytes) -> RewriteResult:
        return rewrite_html(body, content_type="text/html", document_url=DOC_URL, classifier=classifier,
                            make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, keys))
    return run


@pytest.mark.parametrize("body", [
    b'<div><template shadowrootmode="open"><a href="http://evil.example/">x</a></template></div>',
    b'<div><template shadowrootmode="closed"><a href="http://evil.example/">x</a></template></div>',
    b'<div><template SHADOWROOTMODE=open><p><a href=http://evil.example/>x</a></template></div>',
    b'<div><template shadowroot="open"><a href="http://evil.example/">x</a></template></div>',
    b'<div><template shadowrootmode="open"><template></template><a href="http://evil.example/">x</a>'
    b'</template></div>',
])
def test_declarative_shadow_root_contents_are_rewritten(rw: Rewrite, body: bytes) -> None:
    assert LEAVE in rw(body).body


def test_an_inert_template_closed_inside_a_shadow_root_leaves_the_rest_live(rw: Rewrite) -> None:
    body = (b'<div><template shadowrootmode="open"><template><a href="http://evil.example/no">x</a></template>'
            b'</template></div><a href="http://evil.example/">y</a>')
    out = rw(body).body
    assert b'href="http://evil.example/no"' in out  # still inert: left as written
    assert LEAVE in out


def test_a_base_in_a_shadow_root_is_not_the_document_base(rw: Rewrite) -> None:
    body = (b'<div><template shadowrootmode="open"><base href="/"></template></div>'
            b'<base href="http://evil.example/b/"><a href="x">x</a>')
    assert b"/__govgate/leave?url=http://evil.example/b/x" in rw(body).body


@pytest.mark.parametrize("body", [
    b'<svg></xmp><xmp></svg><a href="http://evil.example/">click</a></xmp>',
    b'<svg></div><textarea></svg><a href="http://evil.example/">click</a></textarea>',
    b'<math></svg><xmp></math><a href="http://evil.example/">click</a></xmp>',
    b'<svg></title><style></svg><a href="http://evil.example/">click</a></style>',
    b'<svg></template><noscript></svg><a href="http://evil.example/">click</a>',
])
def test_html_end_tags_do_not_leave_foreign_content(rw: Rewrite, body: bytes) -> None:
    assert LEAVE in rw(body).body


def test_cdata_after_a_doubtful_end_tag_is_read_as_html_would(rw: Rewrite) -> None:
    # If </div> closed the svg, "<![CDATA[>" is a bogus comment and the link is live.
    body = b'<div><svg></div><![CDATA[><a href="http://evil.example/">x</a>]]>'
    assert LEAVE in rw(body).body


def test_a_base_after_a_doubtful_end_tag_is_refused(rw: Rewrite) -> None:
    body = b'<div><svg></div><base href="http://evil.example/"><a href="/x">x</a>'
    with pytest.raises(RewriteRefused) as info:
        rw(body)
    assert info.value.reason is RefusalReason.AMBIGUOUS_BASE


def test_p_end_tag_still_leaves_foreign_content(rw: Rewrite) -> None:
    body = b'<svg></p><xmp><a href="http://evil.example/no">x</a></xmp>'
    assert rw(body).rewritten == 0


def _nested_srcdoc(levels: int) -> bytes:
    doc = '<a href="http://evil.example/">x</a>'
    for _ in range(levels):
        doc = '<iframe srcdoc="' + doc.replace("&", "&amp;").replace('"', "&quot;") + '"></iframe>'
    return doc.encode()


def test_srcdoc_nested_within_the_cap_is_rewritten_all_the_way_down(rw: Rewrite) -> None:
    assert rw(_nested_srcdoc(5)).rewritten == 1


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 400])
def test_srcdoc_nested_beyond_the_cap_is_refused_not_a_recursion_error(rw: Rewrite, levels: int) -> None:
    with pytest.raises(RewriteRefused) as info:
        rw(_nested_srcdoc(levels))
    assert info.value.reason is RefusalReason.NESTING


def test_noscript_nested_beyond_the_cap_is_refused(rw: Rewrite) -> None:
    body = b"<noscript>" * 2000 + b'<a href="http://evil.example/">x</a>'
    with pytest.raises(RewriteRefused):
        rw(body)


@pytest.mark.parametrize("href", [b"ftp://evil.example/x", b"ws://evil.example/", b"file://evil.example/x",
                                  b"javascript:location='http://evil.example/'"])
def test_only_http_and_https_destinations_are_signed(rw: Rewrite, href: bytes) -> None:
    body = b'<a href="' + href + b'">x</a>'
    assert rw(body).body == body


@pytest.mark.parametrize("url", ["javascript://evil.example/%0aalert(1)", "data:text/html,x", "ftp://evil.example/"])
def test_leave_page_refuses_a_signed_non_http_destination(policy: Policy, keys: GatewayKeys, url: str) -> None:
    view = leave_page(policy, keys, f"url={encode_url_param(url)}&sig={sign_leave(url, keys)}")
    assert view.page.status == 400
    assert not view.valid
    assert view.reason == "bad_url"
    assert b"evil.example" not in view.page.body


@pytest.fixture
def rx(classifier: HostClassifier, keys: GatewayKeys) -> Rewrite:
    def run(body: bytes) -> RewriteResult:
        return rewrite_xhtml(body, content_type="application/xhtml+xml", document_url=DOC_URL,
                             classifier=classifier, make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, keys))
    return run


XHTML = b'<html xmlns="http://www.w3.org/1999/xhtml"><body>'


@pytest.mark.parametrize("markup", [
    b'<xmp><a href="http://evil.example/">x</a></xmp>',
    b'<plaintext><a href="http://evil.example/">x</a></plaintext>',
    b'<h:a xmlns:h="http://www.w3.org/1999/xhtml" href="http://evil.example/">x</h:a>',
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:l="http://www.w3.org/1999/xlink"><a l:href="http://evil.example/"/>'
    b"</svg>",
    b"<form action='http://evil.example/'/>",
    b'<a\n  href = "http://evil.example/">x</a>',
])
def test_xhtml_links_are_found_by_xml_rules(rx: Rewrite, markup: bytes) -> None:
    assert LEAVE in rx(XHTML + markup + b"</body></html>").body


def test_xhtml_cdata_and_comments_are_left_alone(rx: Rewrite) -> None:
    body = XHTML + b'<![CDATA[<a href="http://evil.example/">]]><!-- <a href="http://evil.example/"> --></body></html>'
    assert rx(body).body == body


@pytest.mark.parametrize("body", [
    b'<!DOCTYPE html [<!ENTITY e "x">]>' + XHTML + b"&e;</body></html>",
    XHTML + b'<a href="http://evil.example/" < >x</a>',
    XHTML + b"<a href=http://evil.example/>x</a>",
    XHTML + b'<base href="/"/><base href="http://evil.example/"/><a href="x">x</a>',
])
def test_xhtml_the_scan_cannot_vouch_for_is_refused(rx: Rewrite, body: bytes) -> None:
    with pytest.raises(RewriteRefused):
        rx(body)


def test_xhtml_encoding_comes_from_the_xml_declaration(rx: Rewrite) -> None:
    body = '<?xml version="1.0" encoding="gbk"?><a href="http://evil.example/?q=政务">x</a>'.encode("gbk")
    result = rx(body)
    assert result.encoding == "GBK"
    assert b"/__govgate/leave?url=http://evil.example/?q=%25D5%25FE%25CE%25F1&amp;" in result.body


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:,x", "ftp://evil.example/", "httpx://evil.example/"])
def test_leave_urls_are_never_made_for_non_http_destinations(keys: GatewayKeys, url: str) -> None:
    with pytest.raises(ValueError, match="only http"):
        leave_url(PREFIX, url, keys)
