"""The rewriter's shortcuts skip the full WHATWG parse; hypothesis checks they never change an answer."""

from __future__ import annotations

import re

import ada_url
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.html_scan import _SAFE_DQ, _SPECIAL_NAMES, _names_trie, unescape_attr
from govgate.core.link_rewrite import _PLAIN_HOST, _SAME_HOST, RewriteRefused, host_of_href, rewrite_html
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Outbound, RedirectMode

BASE = "https://portal.example.gov.cn/a/b/page.html?x=1"
CLASSIFIER = HostClassifier(Outbound(("gov.cn",), ("*.partner.cn",), RedirectMode.WARN), ("portal.example.gov.cn",))
ALPHABET = st.sampled_from([*"/\\:?#&;@.%x1aA=-_ \t\n\r\x00\x01\x0c\x0b\u00a0中\u3000\uff0f\uff1a",
                            "&#47;", "&sol;", "&#58;", "&#x2f;", "&#9;", "http", "//", "&Tab;", "&NewLine;", "&bsol;",
                            "&#92;", "&colon;", "&#x3a", "&#47", "evil.com", "javascript"])
values = st.lists(ALPHABET, max_size=12).map("".join)
# What the same-host test takes is decided by a value's start alone (``link_rewrite._SAME_HOST``): values that start
# with a safe prefix and go on with anything, the characters that must not matter there included.
safe_starts = st.sampled_from(["/a", "?", "#", "a/", "a", " /x", "\x01/x", "/x&", "x?"])
prefixed = st.tuples(safe_starts, values).map("".join)
# And values built to leave: what the URL parser removes, or reads as "/", or a reference to either, between or
# instead of the two slashes of a scheme-relative URL, or hiding a scheme's ":".
RISKY = ["/", "\\", "\t", "\n", "\r", "&#47;", "&sol;", "&bsol;", "&#92;", "&Tab;", "&NewLine;", "&#x2f;", "&#47",
         "&#58;", "&colon;", ":"]
leaving = st.tuples(st.sampled_from(["", " ", "\x01", "http", "a", "/"]), st.lists(st.sampled_from(RISKY), min_size=1,
                    max_size=3).map("".join), st.sampled_from(["evil.com", "/evil.com", "x/"]), values).map("".join)
SAFE_DQ = re.compile(_SAFE_DQ + rb'"')
SETTINGS = settings(max_examples=600, deadline=None)


def resolved_host(value: str) -> str | None:
    try:
        return ada_url.URL(unescape_attr(value), BASE).hostname
    except ValueError:
        return None


# Each leaves the base's host, each one way the pattern must refuse; checked every run, not left to chance.
LEAVING = ["//evil.com", " //evil.com", "\x01//evil.com", "/\\evil.com", "\\/evil.com", "/\t/evil.com", "/\n/evil.com",
           "/\r/evil.com", "/&#47;evil.com", "/&sol;evil.com", "/&bsol;evil.com", "/&#92;evil.com", "/&Tab;/evil.com",
           "/&NewLine;/evil.com", "/&#x2f;evil.com", "/&#47evil.com", "h\tttp://evil.com", "ht&#116;p://evil.com",
           "a&colon;//evil.com", "a&#58;//evil.com", "http://evil.com"]


def test_values_that_leave_are_not_taken_as_same_host() -> None:
    for value in LEAVING:
        assert resolved_host(value) not in ("portal.example.gov.cn", None), value  # each really leaves
        assert not _SAME_HOST.match(value.encode()), value
        assert not SAFE_DQ.match(value.encode() + b'"'), value


@SETTINGS
@given(st.one_of(values, prefixed, leaving))
def test_values_taken_as_same_host_do_resolve_to_the_base_host(value: str) -> None:
    raw = value.encode("utf-8")
    if _SAME_HOST.match(raw):
        assert resolved_host(value) in ("portal.example.gov.cn", None)
    if b'"' not in raw and SAFE_DQ.match(raw + b'"'):
        assert _SAME_HOST.match(raw)


hosts = st.sampled_from(["www.gov.cn", "WWW.GOV.CN", "www.gov.cn.", "evilgov.cn", "gov.cn.evil.com", "a.partner.cn",
                         "partner.cn", "portal.example.gov.cn", "127.0.0.1", "0x7f.1", "xn--zfr164b", "x-.gov.cn",
                         "a..gov.cn", ".gov.cn", "1.gov.cn", "gov.cn.1"])
tails = st.sampled_from(["", "/", "/p?q", ":8080/", ":/", "?x", "#f", " ", "\t", "\\", "@evil.com/", ".", ":x/"])
schemes = st.sampled_from(["http://", "https://", "HTTP://", "//", " //", "\x01https://", "ftp://"])


@SETTINGS
@given(schemes, hosts, tails)
def test_plainly_spelled_hosts_classify_as_the_full_parse_does(scheme: str, host: str, tail: str) -> None:
    value = scheme + host + tail
    m = _PLAIN_HOST.match(value.encode())
    if m is None or CLASSIFIER.is_external(m.group(1).decode().lower()):
        return  # the shortcut is only ever used to say "internal"
    full = resolved_host(value)
    assert full is None or not CLASSIFIER.is_external(full), (value, full)


@SETTINGS
@given(st.sampled_from(["http://", "https://", "ftp://", "foo://", "file://", "mailto:", "foo:", "javascript:", "//"]),
       st.sampled_from(["", "user@", "u:p@", "a%40b@", "@"]),
       st.sampled_from(["evil.example", "WWW.GOV.CN.", "[::1]", "[::ffff:1.2.3.4]", "0x7f.1", "例子.政务", "", "a b"]),
       st.sampled_from(["", ":80", ":8080", ":"]), st.sampled_from(["", "/", "/p:q@r", "?a@b:c", "#x@y", "/a?b#c"]))
def test_host_of_href_agrees_with_ada(scheme: str, userinfo: str, host: str, port: str, rest: str) -> None:
    try:
        url = ada_url.URL(scheme + userinfo + host + port + rest, BASE)
    except ValueError:
        return
    assert host_of_href(url.href) == url.hostname


SPECIAL = _SPECIAL_NAMES.split(b"|")
name_variants = st.one_of(
    st.sampled_from(SPECIAL),
    st.builds(lambda n, k: n[:k], st.sampled_from(SPECIAL), st.integers(0, 12)),  # prefixes
    st.builds(lambda n, t: n + t, st.sampled_from(SPECIAL), st.sampled_from([b"x", b"s", b"a", b"-", b"1"])),
    st.text(alphabet="abceimnoprstuvxyAESTV", max_size=10).map(str.encode),
).flatmap(lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(
    lambda ups: bytes(c - 32 if up and 97 <= c <= 122 else c for c, up in zip(n, ups, strict=True))))


@SETTINGS
@given(name_variants)
def test_the_names_trie_matches_exactly_the_case_insensitive_alternation(name: bytes) -> None:
    trie = re.compile(_names_trie(SPECIAL) + rb"\Z")
    alternation = re.compile(rb"(?i:" + _SPECIAL_NAMES + rb")\Z")
    assert bool(trie.match(name)) == bool(alternation.match(name)), name


# Documents that mix same-host links (which the production scan jumps over inside the regex) with
# everything that could make jumping over them wrong: a <base> anywhere, odd quoting, markup in values.
link_values = st.sampled_from(["/a", "b.html", "?q", "#f", "/x?u=http://evil.example/", "//evil.example/",
                               "/\\evil.example", "http://evil.example/", "https://www.gov.cn/", "&#47;/evil.example",
                               "/\t/evil.example",
                               "x:y", "javascript:0", "", " /a", "/a>b", "/a'b", "中/文"])
fragments = st.one_of(
    st.builds(lambda q, v, extra: f"<a{extra} href={q}{v}{q}>l</a>", st.sampled_from(['"', "'"]), link_values,
              st.sampled_from(["", " class=x", " title='>'", ' title=">"', " hreff=1", " HREF=/first", "/"])),
    st.builds(lambda v: f"<AREA Href=\"{v}\">", link_values),
    st.sampled_from(["<base href='http://evil.example/'>", "<base href=/sub/>", "<base href=//www.gov.cn/>",
                     "<template><base href=http://evil.example/></template>", "<svg><a href=/s>s</a></svg>",
                     "<svg><title><base href=http://evil.example/></title></svg>", "<!-- <a href=\"/c\"> -->",
                     "<script>'<a href=\"/s\">'</script>", "<noscript><a href=\"/n\">n</a></noscript>",
                     "<div title=\"<a href='http://evil.example/'>\">", "<textarea><a href=\"/t\"></textarea>",
                     "<p>text</p>", "<a", "</a>", "<iframe srcdoc=\"<a href=/in>\"></iframe>"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(fragments, max_size=10).map("".join), st.sampled_from([
    "https://portal.example.gov.cn/news/i.html", "http://evil.example/page.html", "about:blank"]))
def test_jumping_over_same_host_links_changes_no_output(markup: str, document_url: str) -> None:
    """``collect=True`` scans every link one by one; the production path must give identical bytes."""
    body = markup.encode("utf-8")

    def rewrite(collect: bool) -> tuple[bytes, int] | str:
        try:
            result = rewrite_html(body, content_type="text/html; charset=utf-8", document_url=document_url,
                                  classifier=CLASSIFIER, make_leave_url=lambda u: "/leave?url=" + u, collect=collect)
        except RewriteRefused as exc:  # e.g. a base in a template: both paths refuse it alike
            return exc.reason.value
        return result.body, result.rewritten

    assert rewrite(False) == rewrite(True)
