"""The rewriter's speed-ups change no answer (``docs/outbound-links.md``, "Speed").

``govgate.core.leave_link.encode_url_param`` escapes an ASCII URL in one pass (``str.translate``); any other text
takes the general path: both give the same text, which ``parse_qs`` reads back. The scan jumps over links to the
internal hosts ``HostClassifier.plain_internal_pattern`` names: every host it matches is internal to the full
parse, and the rewritten page is byte for byte the link-by-link path's. ``link_rewrite.plain_absolute_href``
serialises a plain absolute URL without the parser: only where ada gives the same text and host.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, quote

import ada_url
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.charset import _CODECS
from govgate.core.hosts import host_of
from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import _UNSAFE, LeaveLinks, _escape_ascii, encode_url_param
from govgate.core.link_rewrite import (
    _TRAIL_SAFE_ENCODERS,
    RewriteResult,
    _decoder,
    _percent_encode_bytes,
    _percent_encode_query,
    host_of_href,
    plain_absolute_href,
    rewrite_html,
)
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Outbound, RedirectMode


def per_character(url: str) -> str:
    """The general path: "%" first, then every other unsafe character by ``quote``."""
    found = set(_UNSAFE.findall(url))
    if "%" in found:
        url = url.replace("%", "%25")
        found.discard("%")
    for ch in found:
        url = url.replace(ch, quote(ch, safe=""))
    return url


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60)
       | st.sampled_from(["https://x.example/a b?q=%41&r=+#f", "http://e.example/%%25'\"<>`{}|^\\", ""]))
def test_ascii_escaping_in_one_pass_is_the_per_character_escaping(url: str) -> None:
    encoded = encode_url_param(url)
    assert encoded == per_character(url)
    if url:
        assert parse_qs(f"url={encoded}", keep_blank_values=True)["url"] == [url]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab/:?=.%&#+ 1", max_size=40))
def test_a_url_escaped_by_two_replacements_is_the_per_character_escaping(text: str) -> None:
    """``leave_link._escape_ascii`` escapes a URL whose only unsafe characters are "%" and "&" by two replacements
    (the alphabet mostly draws those; "#", "+" and " " send it to the table)."""
    url = "http://x.example/" + text
    assert _escape_ascii(url) == per_character(url)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(set(_CODECS.values()) | {"gbk", "big5"})), st.binary(max_size=40))
def test_a_codec_looked_up_once_decodes_as_bytes_decode(codec: str, data: bytes) -> None:
    """The rewriter decodes link values with the decoder it looked up once (``link_rewrite._decoder``)."""
    decoder = _decoder(codec)
    text = data.decode(codec, "replace")
    assert (text if decoder is None else decoder(data, "replace")[0]) == text
    encode = _TRAIL_SAFE_ENCODERS.get(codec)
    if encode is not None:
        assert encode(text.replace("\ufffd", ""))[0] == text.replace("\ufffd", "").encode(codec)


def test_text_that_is_not_ascii_keeps_the_general_path() -> None:
    url = "https://例子.example/路径?q=值 1"
    assert encode_url_param(url) == per_character(url)


# ---------------------------------------------------------------- internal hosts jumped over in the scan

KEYS = GatewayKeys.from_bytes(b"k" * 32)
CLASSIFIER = HostClassifier(Outbound(("gov.cn", "12377.cn"), ("*.partner.cn", "www.friend.org"), RedirectMode.WARN),
                            ("portal.example.gov.cn", "127.0.0.1"))
PIECES = st.sampled_from(["www", "WWW", "gov", "cn", "partner", "friend", "org", "xn--zfr164b", "xn--a", "XN--", "a-",
                          "-a", "a--b", "0x7f", "1", "12377", "evil", "例子", "_", "%41", "", "a" * 64])
HOST_TEXT = st.lists(PIECES, min_size=1, max_size=6).map(".".join) | st.sampled_from(
    ["gov.cn", "www.gov.cn.", "www.gov.cn..", ".gov.cn", "evilgov.cn", "gov.cn.evil.com", "a.partner.cn", "partner.cn",
     "www.friend.org", "x.www.friend.org", "127.0.0.1", "127.1", "portal.example.gov.cn", "1.2.3.4.gov.cn"])


@settings(max_examples=800, deadline=None)
@given(HOST_TEXT)
def test_hosts_the_scan_jumps_over_are_internal_to_the_full_parse(text: str) -> None:
    """Every host the classifier's plain pattern matches is one ``host_of`` keeps and ``is_external`` calls internal."""
    pattern = re.compile(CLASSIFIER.plain_internal_pattern())
    if pattern.fullmatch(text.encode("utf-8")):
        assert host_of(text.lower()) == text.lower()
        assert not CLASSIFIER.is_external(text.lower())


LINK_VALUES = st.builds(lambda scheme, host, tail: scheme + host + tail,
                        st.sampled_from(["http://", "https://", "HTTPS://", "//", " //", "\x01http://", "ftp://",
                                         "http:/", "http:\\\\", "https:&#47;/", ""]),
                        HOST_TEXT,
                        st.sampled_from(["", "/", "/p?q=1&amp;r", ":8080/", ":/", ":x/", "?x", "#f", " ", "\t", "\\",
                                         "@evil.com/", "&#64;evil.com", ".", "\"", "%2F"]))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.builds(lambda q, v, extra: f"<a{extra} href={q}{v.replace(q, '')}{q}>l</a>",
                          st.sampled_from(['"', "'"]), LINK_VALUES,
                          st.sampled_from(["", " class=x", " title='>'", " HREF=/first", "/"])),
                max_size=8).map("".join),
       st.sampled_from(["https://portal.example.gov.cn/news/i.html", "http://evil.example/page.html"]),
       st.sampled_from(["utf-8", "gbk"]), st.booleans())
def test_jumping_over_internal_host_links_changes_no_output(markup: str, document_url: str, charset: str,
                                                            signed: bool) -> None:
    """The production path (internal hosts jumped over in the scan) gives the bytes of the link-by-link path, with
    the leave links shown plainly or as the gateway makes them (``LeaveLinks``: its ``attr`` writes a link's value
    in one call, a path only production takes)."""
    body = markup.encode(charset, "xmlcharrefreplace")
    make: Callable[[str], str] = (LeaveLinks("https://portal.example.gov.cn", "/__govgate", KEYS) if signed
                                  else lambda u: "/leave?url=" + u)

    def rewrite(collect: bool) -> RewriteResult:
        return rewrite_html(body, content_type=f"text/html; charset={charset}", document_url=document_url,
                            classifier=CLASSIFIER, make_leave_url=make, collect=collect)

    fast, slow = rewrite(False), rewrite(True)
    assert fast.body == slow.body
    assert fast.rewritten == slow.rewritten


# ---------------------------------------------------------------- plain absolute URLs serialised without the parser

URL_PIECES = st.sampled_from([
    "http://", "https://", "HTTP://", "hTtPs://", "//", "http:", "www", "WWW", ".", "..", "/", "/.", "/..", "%2e",
    "%2E",
    "%41", "%", "?", "#", "&", "=", "'", '"', "`", "^", "|", "{", "}", "[", "]", "\\", "@", ":", ":80", ":8080", "-",
    "_", "~", "!", "$", "(", "*", "+", ",", ";", "0x7f", "1", "12", "a", "b-c", "xn--zfr164b", "xn--a", "Xn--b",
    "example", "com", "cn", " ", "\t", "\n", "\x00", "é", "例", "<", ">", "evil.example", "a" * 64,
])
PLAINISH = st.builds(
    lambda scheme, host, rest: scheme + host + rest,
    st.sampled_from(["http://", "https://", "HTTPS://"]),
    st.lists(st.sampled_from(["www", "a-b", "0", "1", "x1", "xn--a", "EXAMPLE", "com", "cn", "-", ""]), min_size=1,
             max_size=4).map(".".join),
    st.lists(URL_PIECES | st.sampled_from(["/", "/", "a", "?", "#", "=", "&", "x.html", "%41", "'", ".", "/a"]),
             max_size=8).map("".join),
)
URLS = st.lists(URL_PIECES, min_size=1, max_size=12).map("".join) | PLAINISH | PLAINISH  # mostly near-plain URLs


@settings(max_examples=2000, deadline=None)
@given(URLS)
def test_plain_absolute_urls_serialise_as_the_parser_does(text: str) -> None:
    """``plain_absolute_href`` answers only where ada gives the same serialisation and host (Art. 15: the signed
    destination and the classified host are the parser's)."""
    plain = plain_absolute_href(text)
    if plain is None:
        return
    href = ada_url.join_url("https://portal.example.gov.cn/dir/page.html", text)
    assert plain == (href, host_of_href(href)), text


def test_plain_absolute_urls_take_the_fast_path() -> None:
    """The shortcut is taken for the common shapes (the property above would hold vacuously otherwise)."""
    for text, href in [("http://www.baidu.com/s?wd=%D5%FE&i=0", "http://www.baidu.com/s?wd=%D5%FE&i=0"),
                       ("HTTPS://WWW.Example.com", "https://www.example.com/"),
                       ("https://a-b.example/x/y.html#top", "https://a-b.example/x/y.html#top"),
                       ("http://weibo.com?x", "http://weibo.com/?x"),
                       ("HTTP://weibo.com/a?b", "http://weibo.com/a?b"), ("http://Weibo.com/a", "http://weibo.com/a")]:
        assert plain_absolute_href(text) == (href, href.split("/")[2]), text
    for text in ["http://1.2.3.4/", "http://x.0x7f/", "http://xn--zfr164b.cn/", "http://a.com:80/", "http://a.com/./b",
                 "http://a.com/%2e%2E/b", "http://a.com/\\b", " http://a.com/", "http://a.com/a b", "http://u@a.com/",
                 "http://a.com./", "http://例子.cn/"]:
        assert plain_absolute_href(text) is None, text


# ---------------------------------------------------------------- a non-ASCII query encoded in one pass


def query_run_by_run(url: str, codec: str) -> str:
    """The general path of ``_percent_encode_query``: each non-ASCII run encoded and escaped on its own."""
    q, h = url.find("?"), url.find("#")
    if q < 0 or (0 <= h < q):
        return url
    end = h if h > q else len(url)

    def encode_run(m: re.Match[str]) -> str:
        parts = []
        for ch in m.group():
            try:
                parts.append(_percent_encode_bytes(ch.encode(codec)))
            except UnicodeEncodeError:
                parts.append("%80" if ch == "\u20ac" and codec == "gbk" else f"%26%23{ord(ch)}%3B")
        return "".join(parts)

    return url[: q + 1] + re.sub(r"[^\x00-\x7f]+", encode_run, url[q + 1:end]) + url[end:]


QUERY_CHARS = st.sampled_from([*"政务公开€¥é中文繁體字丂亐\ufffd\U00020000 ?#&=%\"'<>\\`~aZ0", "\udc80"])


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(["gbk", "gb18030", "big5", "shift_jis", "euc-kr", "cp1252"]),
       st.lists(QUERY_CHARS, max_size=12).map("".join), st.lists(QUERY_CHARS, max_size=6).map("".join))
def test_a_query_encoded_in_one_pass_is_the_run_by_run_encoding(codec: str, before: str, after: str) -> None:
    url = f"http://evil.example/{before}?{after}"
    assert _percent_encode_query(url, codec) == query_run_by_run(url, codec)
