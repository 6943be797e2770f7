"""A page whose encoding nothing binds (no HTTP charset, no BOM) may still be read as ISO-2022-JP by the browser.

Chromium honours a ``<meta charset>`` anywhere in the head, past the 1024 bytes of the prescan the gateway (and the
HTML standard) reads; Firefox and Chromium guess the encoding of an unlabelled page. ISO-2022-JP is the one encoding
they can land on that reads markup otherwise than ASCII does: ``ESC $ B`` turns the bytes after it into kanji, so
``<!--`` there is no comment for the browser while the gateway, reading windows-1252, hides a link in one. Such a page
(one holding an ESC byte) is refused: Art. 15 (第十五条).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Request, Route, sync_playwright

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_url
from govgate.core.link_rewrite import RefusalReason, RewriteRefused, RewriteResult, rewrite_html
from govgate.core.outbound import HostClassifier

from .conftest import DOC_URL, PREFIX

ORIGIN = "https://portal.example.gov.cn"
LEAVE = b"/__govgate/leave?url=http://evil.example/"
# A comment for a windows-1252 reader, two kanji and then a live link for an ISO-2022-JP one.
HIDDEN = b'\x1b$B<!--\x1b(B<a href="http://evil.example/">x</a>-->'
PAD = b"<!-- " + b"p" * 1100 + b" -->"  # past the prescan's 1024 bytes
LATE_META = b"<html><head>" + PAD + b'<meta charset="iso-2022-jp"></head><body>' + HIDDEN + b"</body></html>"

type Rewrite = Callable[[bytes, str], RewriteResult]


@pytest.fixture
def rw(classifier: HostClassifier, keys: GatewayKeys) -> Rewrite:
    def run(body: bytes, content_type: str) -> RewriteResult:
        return rewrite_html(body, content_type=content_type, document_url=DOC_URL, classifier=classifier,
                            make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, keys))
    return run


@pytest.mark.parametrize("body", [
    LATE_META,
    b"<html><head><title>" + b"t" * 1100 + b'</title><meta charset="iso-2022-jp"></head><body>' + HIDDEN,
    b"<!doctype html><title>t</title><body>" + HIDDEN,  # unlabelled: a browser may guess ISO-2022-JP
    b'<meta charset="gbk"><body>' + HIDDEN,  # the prescan's encoding is tentative too
    b'<body>\x1b(J<a href="http://www.gov.cn\\@evil.example/">x</a>',  # JIS X 0201 Roman: the backslash is a yen sign
    b"<body>\x1b(I<!--\x1b(B<a href=http://evil.example/>x</a>-->",  # katakana hides ASCII too
    # declared by a <meta> Chromium does not see (in raw text, where its tokenizer looks for none): it guesses
    b'<title><meta charset=iso-2022-jp></title>\x1b(J<a href="http://evil.example\\@www.gov.cn/">x</a>',
    b'<meta charset="iso-2022-jp"><body>\x1b$B0!\x1b(B<a href="http://evil.example/">x</a>',
])
def test_an_esc_byte_in_a_page_whose_encoding_nothing_binds_is_refused(rw: Rewrite, body: bytes) -> None:
    with pytest.raises(RewriteRefused) as info:
        rw(body, "text/html")
    assert info.value.reason is RefusalReason.UNFIXED_ENCODING


def test_a_page_whose_encoding_is_bound_is_read_in_it(rw: Rewrite) -> None:
    # An HTTP charset binds the browser (a <meta> later changes nothing): read in it, the link is in a comment.
    assert rw(LATE_META, "text/html; charset=windows-1252").rewritten == 0
    # Declared ISO-2022-JP by the HTTP charset: read as such, well-formed, the link is rewritten.
    declared = b'<body>\x1b$B0!\x1b(B<a href="http://evil.example/">x</a>'
    assert LEAVE in rw(declared, "text/html; charset=iso-2022-jp").body
    # An ESC that is none of ISO-2022-JP's escapes (a terminal's colours) changes nothing in its decoder either.
    assert LEAVE in rw(b'<pre>\x1b[31mred\x1b[0m</pre><a href="http://evil.example/">x</a>', "text/html").body
    # No ESC byte: every encoding a browser may pick reads the markup as windows-1252 does.
    assert LEAVE in rw(b'<html><head>' + PAD + b'<meta charset="iso-2022-jp"></head><body><a href="http://evil.'
                       b'example/">x</a>', "text/html").body


@pytest.mark.browser
def test_chromium_honours_a_late_meta_charset_and_not_over_an_http_one() -> None:
    """The premise, in Chromium: the late <meta> makes the hidden link live, an HTTP charset keeps it hidden."""
    seen: dict[str, tuple[str, list[str]]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        for content_type in ("text/html", "text/html; charset=windows-1252"):
            def serve(route: Route, _request: Request, content_type: str = content_type) -> None:
                route.fulfill(body=LATE_META, headers={"content-type": content_type})
            tab.route("http://late-meta.test/*", serve)
            tab.goto(f"http://late-meta.test/{len(seen)}.html")
            seen[content_type] = tab.evaluate("[document.characterSet, Array.from(document.links).map(a => a.href)]")
            tab.unroute("http://late-meta.test/*")
        browser.close()
    assert seen["text/html"] == ["ISO-2022-JP", ["http://evil.example/"]]
    assert seen["text/html; charset=windows-1252"] == ["windows-1252", []]


@pytest.mark.browser
def test_chromium_reads_a_backslash_as_a_yen_sign_after_esc_paren_j() -> None:
    """Why JIS X 0201 Roman counts: the link that stays on www.gov.cn read as ASCII leaves it read as ISO-2022-JP."""
    page = b'<meta charset="iso-2022-jp"><body>\x1b(J<a href="http://www.gov.cn\\@evil.example/">x</a>'
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        tab.route("http://roman.test/*", lambda route, _request: route.fulfill(body=page,
                                                                              headers={"content-type": "text/html"}))
        tab.goto("http://roman.test/page.html")
        host = tab.evaluate("document.links[0].hostname")
        browser.close()
    assert host == "evil.example"


@pytest.mark.parametrize("declaration", [
    b"<title><meta charset=iso-2022-kr></title>", b'<script>"<meta charset=iso-2022-kr>"</script>',
    b"<style><meta charset=hz-gb-2312></style>", b"<textarea><meta charset=replacement></textarea>",
    b"<meta charset=iso-2022-kr>",
])
def test_a_replacement_encoding_from_a_meta_is_scanned_as_windows_1252(rw: Rewrite, declaration: bytes) -> None:
    # The prescan finds a <meta> inside raw text; Chromium, looking with its tokenizer, does not, and reads the page
    # as windows-1252: its links are live (a seventh review). Where the <meta> does count, the browser shows one
    # U+FFFD and nothing to follow: rewritten all the same.
    assert LEAVE in rw(declaration + b'<a href="http://evil.example/">x</a>', "text/html").body
    assert rw(b'<a href="http://evil.example/">x</a>', "text/html; charset=iso-2022-kr").rewritten == 0
