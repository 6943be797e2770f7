"""The scan's jumps in C (``govgate._jumps``) against the patterns they stand for (``html_scan``).

The C code decides nothing of its own: it must stop exactly where ``_SKIP`` (and, in the same-host scan, ``_SKIP``
with ``_SAFE_A``) stops, and take the same <a>/<area> with the same value as ``_FAST`` and the same-host pattern,
for every set of internal hosts. Hypothesis checks that on documents built from the tokenizer's hard cases, at
several starting points and with the scan's ``stop`` before the end; then the whole scan, with and without the C
jumps, on the same documents.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core import html_scan
from govgate.core.html_scan import (
    _SKIP,
    _SKIP_SAME_HOST,
    _SPECIAL_NAMES,
    DEFAULT_SCANNERS,
    PlainHosts,
    Scanners,
    _pattern_step,
    _script_end,
    _table_or_select_at,
    scanners_for,
)
from tests.outbound.test_scan_jumps import ATTRS, CLASSIFIER, OTHER, TAGS
from tests.outbound.test_scan_memo import whole

INTERNAL = CLASSIFIER.with_internal("portal.example.gov.cn")
JUMPING = scanners_for(INTERNAL.plain_internal_hosts())
SCANNER_SETS = [DEFAULT_SCANNERS, JUMPING]

HOSTS = st.sampled_from([
    "www.gov.cn", "gov.cn", "GOV.CN", "a.b.gov.cn", "xn--a.gov.cn", "Xn--ab.gov.cn", "xn-a.gov.cn", "-a.gov.cn",
    "a-.gov.cn", "a..gov.cn", ".gov.cn", "evilgov.cn", "gov.cn.evil", "partner.cn", "x.partner.cn", "a.b.partner.cn",
    "portal.example.gov.cn", "PORTAL.example.gov.cn", "portal.example.gov.cnx", "1.2.3.4", "a" * 63 + ".gov.cn",
    "a" * 64 + ".gov.cn", ".".join(["a"] * 16) + ".gov.cn", ".".join(["a"] * 17) + ".gov.cn",
    ".".join(["a"] * 17) + ".partner.cn", ".".join(["a"] * 18) + ".partner.cn", "", "中.gov.cn"])
SCHEMES = st.sampled_from(["http://", "https://", "HTTPS://", "//", "http:/", "https//", "hTtP://", " http://",
                           "\x01//", "ftp://", "httpss://", "", "/", "?", "\t/"])
AFTER_HOST = st.sampled_from(["", "/", "/x", ":80", ":80/x", ":x", "?q", "#f", " ", "\x00", "@x", "\\x", ":", ":8a",
                              '"', "'", ">", " x=y", "&"])
# Values at the edges of ``_SAFE_DQ``'s alternatives (a path, a query, a plain relative name, and what each refuses).
EDGES = st.sampled_from(["/&x", "/\\x", "/\tx", "/\nx", "/\rx", "//x", "/", "&x", ":x", "\\x", " /&", "?&", "#", "x&y",
                         "x:y", "x\\y", "x/y", "x?y", "x#y", "x\ty", "x y", "\x00x", "\x00/x", "\x1f?", "http:x",
                         "https:/x", "h", "ht", "http", "https", "httpsx://www.gov.cn/", "mailto:x@gov.cn"])
URLS = st.one_of(st.builds(lambda a, b, c: a + b + c, SCHEMES, HOSTS, AFTER_HOST), EDGES)


def _closing(quote: str) -> str:
    return quote[-1:] if quote.endswith(('"', "'")) else ""


A_TAGS = st.builds(
    lambda name, before, sep, eq, url, after, end: "<" + name + before + sep + "href" + eq + url + _closing(eq) + after
    + end,
    st.sampled_from(["a", "A", "area", "AREA", "areax", "ar", "abbr"]), st.lists(ATTRS, max_size=2).map("".join),
    st.sampled_from([" ", "\t", "/", "", " x "]), st.sampled_from(['="', "='", "=", ' = "', "", '"']), URLS,
    st.lists(ATTRS, max_size=2).map("".join), st.sampled_from([">", "/>", " >", "", " x>", " x='>"]))
DOCUMENTS = st.lists(
    st.one_of(TAGS, OTHER, A_TAGS, URLS.map(lambda v: f'<a href="{v}">'),
              URLS.map(lambda v: f'<area x=1 HREF = "{v}" y>'), URLS.map(lambda v: f'<a href="{v}'),
              st.sampled_from(["<table>", "<TABLE ", "<select", "<selectx>", "<tab", "</table>"])),
    max_size=10).map(lambda parts: "".join(parts).encode("utf-8"))


def bounds(body: bytes) -> list[tuple[int, int]]:
    """(pos, stop) pairs: several starting points, with the stop at the end and just before it."""
    return [(pos, stop) for pos in range(0, len(body) + 1, max(1, len(body) // 5))
            for stop in {len(body), max(pos, len(body) - 3)}]


def test_the_c_jumps_are_built() -> None:
    """``scripts/setup`` builds them (a C compiler is part of ``--test``); without them the scan is ~4x slower."""
    assert html_scan.JUMPS_IN_C
    assert html_scan.table_or_select is not None
    assert html_scan._SCRIPT_END is html_scan.script_end
    assert html_scan._TABLE_OR_SELECT_AT is html_scan.table_or_select
    assert all(scanners.jumps is not None for scanners in SCANNER_SETS)


@settings(max_examples=4000, deadline=None)
@given(DOCUMENTS)
def test_the_jumps_stop_where_the_patterns_stop(body: bytes) -> None:
    jumps = DEFAULT_SCANNERS.jumps
    assert jumps is not None
    for pos, stop in bounds(body):
        plain, same_host = _SKIP.match(body, pos, stop), _SKIP_SAME_HOST.match(body, pos, stop)
        assert plain is not None
        assert same_host is not None
        assert jumps.plain(body, pos, stop) == plain.end(), (body, pos, stop)
        assert jumps.same_host(body, pos, stop) == same_host.end(), (body, pos, stop)


@settings(max_examples=4000, deadline=None)
@given(DOCUMENTS)
def test_each_step_takes_the_link_the_patterns_take(body: bytes) -> None:
    """With the internal hosts of a policy too: a link to one of them is jumped over alike, or taken as safe alike."""
    for scanners in SCANNER_SETS:
        for same_host in (False, True):
            native = scanners.step(same_host)
            reference = _pattern_step(scanners.skip_same_host if same_host else scanners.fast)
            for pos, stop in bounds(body):
                assert native(body, pos, stop) == reference(body, pos, stop), (body, pos, stop, same_host)


@settings(max_examples=2000, deadline=None)
@given(DOCUMENTS)
def test_the_scan_finds_the_same_with_and_without_the_c_jumps(body: bytes) -> None:
    for scanners in SCANNER_SETS:
        patterns_only = Scanners(scanners.fast, scanners.skip_same_host)
        for same_host in (False, True):
            assert whole(body, same_host, scanners) == whole(body, same_host, patterns_only), (body, same_host)


@settings(max_examples=2000, deadline=None)
@given(DOCUMENTS)
def test_table_or_select_is_found_where_the_pattern_finds_it(body: bytes) -> None:
    assert html_scan.table_or_select is not None
    for pos, stop in bounds(body):
        assert html_scan.table_or_select(body, pos, stop) == _table_or_select_at(body, pos, stop), (body, pos)


SCRIPT_PARTS = st.sampled_from(["x", "-", "--", "-->", "->", "<", "<!", "<!-", "<!--", "<!-->", "</script>",
                                 "</SCRIPT ", "</script", "</scrip>", "<script>", "<ScRiPt/", "<script", "<scriptx>",
                                 "</script\t", "</scriptx>", "'<a href=x>'", "\n", "中"])
SCRIPTS = st.lists(SCRIPT_PARTS, max_size=14).map(lambda parts: "".join(parts).encode("utf-8"))


@settings(max_examples=4000, deadline=None)
@given(SCRIPTS)
def test_script_data_ends_where_the_patterns_end_it(body: bytes) -> None:
    """``_script_end`` (script data, its escaped and double-escaped states) and the C ``script_end``."""
    assert html_scan.script_end is not None
    for pos, stop in bounds(body):
        assert html_scan.script_end(body, pos, stop) == _script_end(body, pos, stop), (body, pos, stop)


def test_the_hosts_must_be_lower_case_host_names() -> None:
    """What ``PlainHosts`` may hold, and nothing else: a name the C code could read otherwise than the pattern does
    (empty, upper case, outside ``[a-z0-9.-]``) is refused when the jumps are made."""
    assert html_scan.Jumps is not None
    for bad in (b"Www.gov.cn", b"", b"a_b", b"\xc4.cn", b"a b"):
        with pytest.raises(ValueError, match=r"lower case host names|empty name"):
            html_scan.Jumps((bad,), (), ())
        with pytest.raises(ValueError, match=r"lower case host names|empty name"):
            html_scan.Jumps((), (), (bad,))
    with pytest.raises(TypeError):
        html_scan.Jumps(("www.gov.cn",), (), ())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DEFAULT_SCANNERS.jumps.plain("<p>", 0, 3)  # type: ignore[arg-type,union-attr]


@pytest.mark.parametrize("name", [*_SPECIAL_NAMES.split(b"|"), b"/template", b"/svg", b"/math", b"/select"])
def test_no_special_tag_is_jumped_over(name: bytes) -> None:
    """The C code spells the special names out (``SPECIAL_START``, ``SPECIAL_END``): each, in any case, stops the
    jumps, as it stops the patterns, with or without attributes."""
    jumps = DEFAULT_SCANNERS.jumps
    assert jumps is not None
    for spelled in (name, name.upper(), name.capitalize()):
        for tag in (b"<" + spelled + b">", b"<" + spelled + b' x="y">', b"<" + spelled + b"/>"):
            body = b"text" + tag + b"more"
            assert jumps.plain(body, 0, len(body)) == 4, tag
            assert jumps.same_host(body, 0, len(body)) == 4, tag


def test_positions_past_the_ends_are_taken_as_the_patterns_take_them() -> None:
    jumps = DEFAULT_SCANNERS.jumps
    assert jumps is not None
    body = b"text <p class=x> more <a href=//evil.example/>x</a>"
    for pos, stop in ((0, 10**9), (-5, len(body)), (len(body), len(body)), (10**6, 10**7), (3, -1)):
        matched = _SKIP.match(body, pos, stop)
        if matched is None:  # pos past stop: no match, and the scan never asks
            with pytest.raises(ValueError, match="past stop"):
                jumps.plain(body, pos, stop)
            with pytest.raises(ValueError, match="past stop"):
                jumps.plain_link(body, pos, stop)
            continue
        assert jumps.plain(body, pos, stop) == matched.end(), (pos, stop)
        assert jumps.plain_link(body, pos, stop) == _pattern_step(DEFAULT_SCANNERS.fast)(body, pos, stop), (pos, stop)
    assert html_scan.script_end is not None
    for pos, stop in ((0, 10**6), (10**6, 5), (-3, -3)):
        assert html_scan.script_end(body, pos, stop) == _script_end(body, pos, stop), (pos, stop)


def test_plain_hosts_pattern_matches_the_hosts_it_names() -> None:
    hosts = PlainHosts((b"portal.example.gov.cn",), (b"gov.cn",), (b"partner.cn",))
    pattern = re.compile(rb"(?:" + hosts.pattern() + rb")\Z")
    for host, internal in [(b"PORTAL.example.gov.cn", True), (b"gov.cn", True), (b"a.b.gov.cn", True),
                           (b"partner.cn", False), (b"x.partner.cn", True), (b"evilgov.cn", False),
                           (b"xn--fiqs8s.gov.cn", False), (b"a" * 64 + b".gov.cn", False)]:
        assert bool(pattern.match(host)) is internal, host
    assert re.compile(PlainHosts().pattern()).match(b"gov.cn") is None
