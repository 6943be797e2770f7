"""The scan memo (``govgate.core.scan_memo``): a page scanned against the last one under the same key gives exactly
what a whole scan gives, whatever was edited where; the shared bytes are not scanned again; the byte bound holds; and
the addon keeps nothing of a page that is not shared-cacheable.

The hypothesis tests run the memo with a resume point at every token boundary and a margin of just past the scan's
stated reach (``REACH + 1``), so that a step that looked further than that would show up as a difference.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy.test import taddons

from govgate.addons.outbound_links import OutboundLinks
from govgate.core.html_scan import (
    DEFAULT_SCANNERS,
    MAX_TRACED_TEMPLATES,
    SYNC_WINDOW,
    RewriteRefused,
    Scanners,
    ScanState,
    scan_html,
    scanners_for,
)
from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_form_url, leave_url
from govgate.core.link_rewrite import rewrite_html
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Outbound, RedirectMode
from govgate.core.scan_memo import MAX_LINK_RESULTS, REACH, ScanMemo, common_prefix, common_suffix
from tests.outbound.test_rewrite_cache import flow_with, serve
from tests.outbound.test_rewrite_properties import pages
from tests.outbound.test_scan_jumps import TAGS
from tests.runtime import InProcessRuntime

CLASSIFIER = HostClassifier(Outbound(("gov.cn",), ("*.partner.cn",), RedirectMode.WARN), ("portal.example.gov.cn",))
JUMPING = scanners_for(CLASSIFIER.with_internal("portal.example.gov.cn").plain_internal_hosts())

# Pieces that change the scan's state or stop it: raw text and its ends, comments, foreign content, templates,
# <base>, unterminated constructs; an edit can open one before the shared end and close it after.
PIECES = st.sampled_from([
    "text", "中文", "<", "</", ">", '"', "'", "=", " ", "\n", "-", "--", "!",
    "<p>", "</p>", "<div class=x>", "<br/>", "<a href=/x>", '<a href="/rel">', "<a href=http://evil.example/>",
    '<a href="https://www.gov.cn/a">', "<a href='//evil.example/'>", "</a>", "<area href=//evil.example/>",
    "<!--", "-->", "--!>", "<!-->", "<!-- x -->", "<!x>", "<?x>", "</x y>",
    "<script>", "</script>", "<script>var s='<a href=//evil.example/>';</script>", "<!--<script>", "</script >",
    "<style>", "</style>", "<textarea>", "</textarea>", "<title>", "</title>", "<xmp>", "</xmp>",
    "<noscript>", "</noscript>", "<noscript><a href=//evil.example/></noscript>", "<iframe>", "</iframe>",
    "<template>", "</template>", "<template shadowrootmode=open>", "<svg>", "</svg>", "<math>", "</math>",
    "<foreignObject>", "</foreignObject>", "<![CDATA[", "]]>", "<font color=red>", "<b>",
    "<base href=//evil.example/>", "<base href=/x/>", "<base>", "<plaintext>",
    "<meta http-equiv=refresh content='0;url=//evil.example/'>", "<form action=//evil.example/>",
    "<iframe srcdoc='<a href=//evil.example/>x</a>'>", "<button formaction=https://evil.example/>",
    "<select>", "</select>", "<option>", "<table>", "<tr><td>",
    # Internet Explorer's readings (conditional comments, comment ends): spans read up to an end a later edit may add.
    "<!--[if IE]>", "<![endif]-->", "<![if !IE]>", "<![endif]>", "<!--[if !IE]><!-->", "<!--<![endif]-->",
])
DOCUMENTS = st.lists(st.one_of(PIECES, TAGS), max_size=30).map(lambda parts: "".join(parts).encode("utf-8"))


@st.composite
def edits(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` with one stretch replaced: anywhere, by nothing or by a few pieces."""
    at = draw(st.integers(0, len(body)))
    cut = draw(st.integers(0, min(40, len(body) - at)))
    new = "".join(draw(st.lists(st.one_of(PIECES, TAGS), max_size=3))).encode("utf-8")
    return body[:at] + new + body[at + cut:]


def whole(body: bytes, skip: bool, scanners: Scanners) -> ScanState | str:
    state = ScanState()
    try:
        scan_html(body, 0, len(body), state, skip_same_host=skip, scanners=scanners)
    except RewriteRefused as exc:
        return exc.reason.value
    return state


def memoised(memo: ScanMemo, body: bytes, skip: bool, scanners: Scanners) -> ScanState | str:
    try:
        return memo.scan("page", body, 0, skip_same_host=skip, scanners=scanners)
    except RewriteRefused as exc:
        return exc.reason.value


def same(a: ScanState | str, b: ScanState | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return (a.targets, a.base, a.base_seen) == (b.targets, b.base, b.base_seen)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), DOCUMENTS, st.booleans(), st.booleans())
def test_a_page_scanned_against_the_last_one_finds_what_a_whole_scan_finds(
        data: st.DataObject, first: bytes, skip: bool, jumping: bool) -> None:
    scanners = JUMPING if jumping else DEFAULT_SCANNERS
    memo = ScanMemo(spacing=1, margin=REACH + 1, min_bytes=0)
    body = first
    for _ in range(3):  # each page is compared with the one before it, itself perhaps put together from another
        assert same(memoised(memo, body, skip, scanners), whole(body, skip, scanners)), body
        body = data.draw(edits(body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(DOCUMENTS, min_size=2, max_size=4), st.booleans())
def test_pages_that_share_a_long_middle_are_scanned_alike(data: st.DataObject, parts: list[bytes], skip: bool) -> None:
    # A long common stretch with edits at both ends: resumed early, joined up late.
    middle = b"".join(parts) * 3
    memo = ScanMemo(spacing=16, margin=REACH + 1, min_bytes=0)
    for _ in range(3):
        body = data.draw(DOCUMENTS) + middle + data.draw(DOCUMENTS)
        assert same(memoised(memo, body, skip, JUMPING), whole(body, skip, JUMPING)), body


PAD = (b"<a href=/p>" + b"x" * 2100 + b"</a>") * 9  # past the resume points' spacing, so that a rescan joins up


@pytest.mark.parametrize(("first", "second"), [
    # A <table> before a second <base> refuses it (a base in a table moves before it); the rescan must not take the
    # last page's answer, which had no table (an eighth review: live links in Chromium).
    (b"<div><tr><td><base href=/ok/></td></tr>" + PAD + b"<base href=//evil.example/></table><a href=/r>r</a>",
     b"<table><tr><td><base href=/ok/></td></tr>" + PAD + b"<base href=//evil.example/></table><a href=/r>r</a>"),
    # The same with the table in both pages, before the point the rescan resumes at: the resumed scan must know it
    # is there (the point says so) without reading the page's start again.
    (b"<table><tr><td><base href=/ok/></td></tr>" + PAD + b"<p>no second base</p></table><a href=/r>r</a>",
     b"<table><tr><td><base href=/ok/></td></tr>" + PAD + b"<base href=//evil.example/></table><a href=/r>r</a>"),
    # A table the new page adds after that point, before its second base.
    (b"<div><base href=/ok/></div>" + PAD + b"<p>no table</p><a href=/r>r</a>",
     b"<div><base href=/ok/></div>" + PAD + b"<table><tr><td><base href=//evil.example/></table><a href=/r>r</a>"),
    # An IE span whose end the new page adds after the old page's resume points.
    (b"<p><![if !IE]>" + PAD + b"<textarea>" + b"y" * 600 + b"Z" * 34 + b"</textarea>",
     b"<p><![if !IE]>" + PAD + b"<textarea>" + b"y" * 600 + b"<![endif]><a href=http://evil.example/>x</a>"
     + b"</textarea>"),
    (b"<p><!-->" + PAD + b"<textarea>" + b"y" * 600 + b"Z" * 37 + b"</textarea>",
     b"<p><!-->" + PAD + b"<textarea>" + b"y" * 600 + b"--><a href=http://evil.example/>x</a>" + b"</textarea>"),
    # What a check read to decide (here the spelling of an "<![endif]>" 300 spaces long) is held from resume points.
    *[(b"<a href=/p>xxx</a>" * n + b"<![if !IE]><p>hi</p><a href=/p><![" + b" " * 300 + b"endif]><p>end</p>"
       + b"<a href=/p>xxx</a>" * 300,
       b"<a href=/p>xxx</a>" * n + b"<![if !IE]><p>hi</p><a href=/p><![" + b" " * 300
       + b"endif]x><textarea><![endif]><a href=http://evil.example/>IE-only</a></textarea>"
       + b"<a href=/p>xxx</a>" * 300)
      for n in (111, 113)],
])
def test_a_rescan_decides_as_a_whole_scan_where_the_new_page_differs(first: bytes, second: bytes) -> None:
    for skip in (False, True):
        memo = ScanMemo(min_bytes=0)
        assert same(memoised(memo, first, skip, JUMPING), whole(first, skip, JUMPING))
        assert isinstance(whole(second, skip, JUMPING), str)  # refused
        assert same(memoised(memo, second, skip, JUMPING), whole(second, skip, JUMPING))


def test_a_comment_opened_before_the_shared_end_is_followed_into_it() -> None:
    tail = b"".join(b"<p>%d <a href=//evil.example/%d>x</a></p>\n" % (i, i) for i in range(200))
    memo = ScanMemo(spacing=64, min_bytes=0)
    first = b"<html><body>" + b"<p>x</p>" * 50 + tail
    second = b"<html><body>" + b"<p>x</p>" * 50 + b"<!-- " + tail  # the rest is now one unterminated comment
    for body in (first, second, first):
        assert same(memoised(memo, body, False, DEFAULT_SCANNERS), whole(body, False, DEFAULT_SCANNERS))
    assert whole(second, False, DEFAULT_SCANNERS) != whole(first, False, DEFAULT_SCANNERS)


def big_page(counter: int) -> bytes:
    rows = b"".join(b'<li><a href="/news/%d.html">news %d</a> <a href="http://site%d.example/x?i=%d">out</a></li>\n'
                    % (i, i, i % 7, i) for i in range(1500))
    return (b"<!doctype html><html><head><title>t</title><script>var a = '<a href=//evil.example/>';</script>"
            b"</head><body><ul>\n" + rows + b"</ul><p>generated %d</p></body></html>" % counter)


def test_only_the_difference_is_scanned_again() -> None:
    memo = ScanMemo()
    first = big_page(1)
    assert len(first) > 64 * 1024
    memo.scan("/", first, 0, skip_same_host=True, scanners=JUMPING)
    second = big_page(2)
    state = memo.scan("/", second, 0, skip_same_host=True, scanners=JUMPING)
    assert same(state, whole(second, True, JUMPING))
    assert memo.rescanned < 3 * 2048 + 256  # from the point before the difference to the end
    assert memo.reused > len(second) - 8 * 1024
    # A change near the start: scanned from there until the two scans meet again, then joined up.
    third = second.replace(b"news 3<", b"news three<", 1)
    before = memo.rescanned
    state = memo.scan("/", third, 0, skip_same_host=True, scanners=JUMPING)
    assert same(state, whole(third, True, JUMPING))
    assert memo.rescanned - before < 3 * 2048 + 256


def test_small_pages_and_other_keys_are_scanned_whole() -> None:
    memo = ScanMemo()
    small = b"<a href=//evil.example/>x</a>" * 10
    assert same(memo.scan("/", small, 0, skip_same_host=False, scanners=DEFAULT_SCANNERS),
                whole(small, False, DEFAULT_SCANNERS))
    assert len(memo) == 0  # not kept: scanning it costs less than keeping it
    memo.scan("/a", big_page(1), 0, skip_same_host=True, scanners=JUMPING)
    memo.scan("/b", big_page(2), 0, skip_same_host=True, scanners=JUMPING)
    assert (len(memo), memo.rescanned) == (2, 0)  # another key is another page: nothing compared
    # Other scanners (another policy's internal hosts) find other targets: the page is scanned whole.
    memo.scan("/a", big_page(3), 0, skip_same_host=True, scanners=DEFAULT_SCANNERS)
    assert memo.rescanned == 0


def test_the_byte_bound_holds() -> None:
    page = big_page(1)
    memo = ScanMemo(max_bytes=3 * len(page))
    for i in range(10):
        memo.scan(f"/{i}", big_page(i), 0, skip_same_host=True, scanners=JUMPING)
        assert memo.size <= memo.max_bytes
    assert 1 <= len(memo) <= 2
    tiny = ScanMemo(max_bytes=1000)
    tiny.scan("/", page, 0, skip_same_host=True, scanners=JUMPING)
    assert (len(tiny), tiny.size) == (0, 0)  # larger than the whole memo: not kept


@pytest.mark.parametrize("at", [0, 1, 4095, 4096, 4097, 8191, 12_000, 99_999])
def test_common_prefix_and_suffix(at: int) -> None:
    rng = random.Random(at)
    a = bytes(rng.randrange(256) for _ in range(100_000))
    b = bytearray(a)
    b[at] ^= 0xFF
    assert common_prefix(a, bytes(b)) == at
    assert common_suffix(a, bytes(b), len(a)) == len(a) - at - 1
    assert common_suffix(a, bytes(b), 10) == min(10, len(a) - at - 1)
    assert common_prefix(a, a) == common_suffix(a, a, len(a)) == len(a)
    assert common_prefix(a, a[:at]) == at
    assert common_suffix(a, a[at:], len(a) - at) == len(a) - at


@given(st.binary(max_size=64), st.binary(max_size=64), st.binary(max_size=64))
def test_common_prefix_and_suffix_on_short_strings(head: bytes, x: bytes, y: bytes) -> None:
    a, b = head + x, head + y
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert common_prefix(a, b) == n
    limit = min(len(a), len(b)) - n
    m = 0
    while m < limit and a[len(a) - 1 - m] == b[len(b) - 1 - m]:
        m += 1
    assert common_suffix(a, b, limit) == m


KEYS = GatewayKeys.from_bytes(b"k" * 32)


def rewrite(body: bytes, memo: ScanMemo | None, keys: GatewayKeys = KEYS, classifier: HostClassifier = CLASSIFIER,
            charset: str = "utf-8") -> bytes:
    origin = "https://portal.example.gov.cn"
    return rewrite_html(body, content_type=f"text/html; charset={charset}", document_url=origin + "/",
                        classifier=classifier, make_leave_url=lambda u: origin + leave_url("/__govgate", u, keys),
                        make_form_url=lambda u, c: origin + leave_form_url("/__govgate", u, c, keys),
                        scan_memo=memo, scan_key="/", link_setting=(keys, classifier)).body


def test_the_rewrite_with_the_memo_is_the_rewrite_without_it() -> None:
    memo = ScanMemo()
    for counter in (1, 2, 2, 3):
        page = big_page(counter)
        assert rewrite(page, memo) == rewrite(page, None)
    # A <base> added at the start changes every relative link's destination: the rewrite follows it.
    based = b"<base href=http://evil.example/>" + big_page(3)
    assert rewrite(based, memo) == rewrite(based, None) != based


def test_link_results_are_kept_only_for_the_same_setting() -> None:
    memo = ScanMemo()
    other_keys = GatewayKeys.from_bytes(b"o" * 32)
    allowing = HostClassifier(Outbound(("gov.cn",), ("*.partner.cn", "site3.example"), RedirectMode.WARN),
                              ("portal.example.gov.cn",))
    for counter, keys, classifier, charset in ((1, KEYS, CLASSIFIER, "utf-8"), (2, other_keys, CLASSIFIER, "utf-8"),
                                                (3, other_keys, allowing, "utf-8"), (4, other_keys, allowing, "gbk"),
                                                (5, KEYS, CLASSIFIER, "utf-8")):
        page = big_page(counter)
        assert rewrite(page, memo, keys, classifier, charset) == rewrite(page, None, keys, classifier, charset)
    results = memo.link_results("/", object())
    assert results == {}  # another setting: a fresh dict
    assert rewrite(big_page(3), memo, other_keys, allowing).count(b"site3.example/x") > 100  # allowed: left alone


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(pages(), min_size=1, max_size=4), st.sampled_from(["utf-8", "gbk", "windows-1252"]))
def test_rewritten_pages_with_the_memo_are_the_pages_rewritten_afresh(data: st.DataObject, parts: list[bytes],
                                                                       charset: str) -> None:
    memo = ScanMemo(spacing=8, margin=REACH + 1, min_bytes=0)
    body = b"".join(parts) * 2
    for _ in range(3):
        assert rewritten(body, memo, charset) == rewritten(body, None, charset), body
        body = data.draw(edits(body))


def rewritten(body: bytes, memo: ScanMemo | None, charset: str) -> bytes | str:
    """The rewritten page, or why it was refused (by both alike: an ambiguous <base>, nesting...)."""
    try:
        return rewrite(body, memo, charset=charset)
    except RewriteRefused as exc:
        return exc.reason.value


def served(addon: OutboundLinks, body: bytes, **request_headers: str) -> bytes:
    f = flow_with(body, {"content-type": "text/html; charset=utf-8"}, path="/news.html",
                  request_headers={name.replace("_", "-"): value for name, value in request_headers.items()})
    return serve(addon, f)


def test_the_addon_keeps_scans_of_shared_pages_only(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime)
    plain = OutboundLinks(runtime, cache_bytes=0, scan_memo_bytes=0)
    assert addon.scan_memo is not None
    assert plain.scan_memo is None
    with taddons.context(addon):
        for counter in (1, 2):
            assert served(addon, big_page(counter)) == served(plain, big_page(counter))
        assert len(addon.scan_memo) == 1
        assert addon.scan_memo.reused > 0
        # A page for one account (Authorization, or a staff path: the gate's X-GovGate-User) is neither kept nor
        # compared with another's.
        addon.scan_memo.clear()
        for counter in (3, 4):
            assert served(addon, big_page(counter), authorization="Basic eDp5") == served(plain, big_page(counter))
            assert served(addon, big_page(counter), x_govgate_user="alice") == served(plain, big_page(counter))
        assert len(addon.scan_memo) == 0


def test_deep_templates_are_neither_saved_nor_copied() -> None:
    # Each saved state holds the open-template stack: past MAX_TRACED_TEMPLATES none is saved, so what a point holds
    # stays bounded however deep a page nests (the review's 300 KB page of <template> held 18 MB of copies).
    memo = ScanMemo(spacing=64, min_bytes=0)
    deep = b"<p>x</p>" * 200 + b"<template>" * 3000 + b"<a href=//evil.example/>" * 10
    deeper = b"<template>" + deep
    for body in (deep, deeper, deep):
        assert same(memoised(memo, body, False, DEFAULT_SCANNERS), whole(body, False, DEFAULT_SCANNERS))
        entry = memo._entries[("page", False)]
        assert entry.points
        assert all(len(point[1]) <= MAX_TRACED_TEMPLATES for _, _, point in entry.points)


def test_a_scan_that_does_not_meet_the_old_one_soon_runs_to_the_end() -> None:
    # A comment opened before the shared end and closed far into it: the scans meet only after SYNC_WINDOW, where
    # the rescan has stopped looking; the result is the whole scan's all the same.
    tail = b"".join(b"<p>%d <a href=//evil.example/%d>x</a></p>\n" % (i, i) for i in range(3000))
    assert len(tail) > 2 * SYNC_WINDOW
    memo = ScanMemo(min_bytes=0)
    first = b"<body>" + b"<p>x</p>" * 100 + tail + b"-->" + tail
    second = b"<body>" + b"<p>x</p>" * 100 + b"<!--" + tail + b"-->" + tail
    for body in (first, second):
        assert same(memoised(memo, body, False, DEFAULT_SCANNERS), whole(body, False, DEFAULT_SCANNERS))
    assert memo.rescanned > len(tail)


def test_link_results_are_counted_in_the_bound() -> None:
    memo = ScanMemo(max_bytes=2 * 1024 * 1024, min_bytes=0)
    for k in range(60):
        page = b"".join(b"<a href=//e%d.example/%d>" % (k, i) for i in range(1200))
        assert rewrite(page, memo) == rewrite(page, None)
        memo_bytes = sum(entry.kept_size for entry in memo._entries.values())
        assert memo.size == memo_bytes <= memo.max_bytes
        for entry in memo._entries.values():
            held = len(entry.links[1]) if entry.links is not None else 0
            assert entry.links_bytes >= held * 300
    # A page with more distinct links than MAX_LINK_RESULTS keeps none of them.
    big = b"".join(b"<a href=//e.example/%d>" % i for i in range(MAX_LINK_RESULTS + 10))
    assert rewrite(big, memo) == rewrite(big, None)
    entry = memo._entries[("/", True)]
    assert (entry.links, entry.links_bytes) == (None, 0)
    assert memo.size == sum(entry.kept_size for entry in memo._entries.values()) <= memo.max_bytes


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["x" * 9, "<table>", "<TaBlE ", "<select/", "<tables>", "<sel", "ect>", "<", "\t",
                                 "<SELECT\n", "<tab"]), max_size=30).map(lambda parts: "".join(parts).encode()),
       st.lists(st.integers(0, 400), max_size=12), st.integers(1, 40))
def test_where_a_table_or_select_starts_is_looked_for_as_far_as_asked(buf: bytes, asked: list[int], step: int) -> None:
    """``html_scan._table_or_select_before`` searches in steps (here of ``step`` bytes) as far as it is asked: each
    answer is the one of a search of the whole buffer, in any order of questions."""
    from unittest import mock

    from govgate.core import html_scan

    first = html_scan._TABLE_OR_SELECT.search(buf)
    with mock.patch.object(html_scan, "_TABLE_SEARCH_STEP", step):
        # in the order drawn, then every position in turn (as the scan's resume points ask)
        for questions in (asked, range(len(buf) + 1)):
            state = ScanState()
            for pos in questions:
                pos = min(pos, len(buf))
                expected = first is not None and first.start() < pos
                assert html_scan._table_or_select_before(buf, state, pos) == expected, (buf, pos)
