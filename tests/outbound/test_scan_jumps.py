"""The scan's in-regex jumps (``html_scan._FAST`` and the same-host scanners) against the tag-by-tag tokenizer.

The reference scanner jumps over text only, so every tag goes through ``scan_html``'s one-tag-at-a-time path
(``_TAG_OPEN`` and the full attribute grammar): hypothesis checks that the jumps find the same links, the same
``<base>``, and leave out only links the rewriter would itself call internal without a parse.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.html_scan import (
    _FAST,
    _SPECIAL_NAMES,
    DEFAULT_SCANNERS,
    RefusalReason,
    RewriteRefused,
    Scanners,
    ScanState,
    _names_trie,
    _plain_names_trie,
    scan_html,
    scanners_for,
)
from govgate.core.link_rewrite import _Resolver
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Outbound, RedirectMode

# Text skipped, then never a match: every tag is left to the tag-by-tag path (same group numbers as ``_FAST``).
TEXT_ONLY = re.compile(rb"[^<]*+(?:(?!)" + _FAST.pattern + rb")?")
assert TEXT_ONLY.groupindex == _FAST.groupindex
REFERENCE = Scanners(TEXT_ONLY, TEXT_ONLY)
CLASSIFIER = HostClassifier(Outbound(("gov.cn",), ("*.partner.cn",), RedirectMode.WARN), ("portal.example.gov.cn",))

NAMES = st.sampled_from(["a", "A", "area", "ARea", "abbr", "span", "s", "sp", "script", "scrip", "svg", "svgx", "math",
                         "mat", "template", "tem", "b", "base", "basefont", "form", "formx", "button", "input", "i",
                         "iframe", "li", "meta", "title", "textarea", "noscript", "x-y", "p", "中", "a=b", "li\x00"])
SEPARATORS = st.sampled_from(["", " ", "  ", "\t", "\n", "\x0c", "\r", "/", " /", "/ ", "\x0b"])
ATTR_NAMES = st.sampled_from(["href", "HREF", "hreff", "title", "class", "srcdoc", "action", "formaction",
                              "http-equiv", "content", "=", "==", '"', "'", "x'", 'x"', "a/", "x /", "<", "`", "x",
                              "中", "", ""])
INSIDE = st.sampled_from(["", "/x", "?q", "http://evil.example/", "//www.gov.cn/", "https://www.gov.cn/p",
                          "//evil.example/", "/\\evil", "a>b", "<a href=http://evil.example/>", "'", '"', " /a",
                          "\t/a", "&#47;/evil.example", "中", "x=y",
                          *["x><a href=http://evil.example/>", "><a href='//evil.example/'>"] * 8])
VALUES = st.one_of(INSIDE.map(lambda v: '"' + v.replace('"', "") + '"'),
                   INSIDE.map(lambda v: "'" + v.replace("'", "") + "'"),
                   INSIDE.map(lambda v: v.replace(" ", "").replace(">", "")), INSIDE)
ATTRS = st.builds(lambda sep, name, eq, value: sep + name + (eq + value if eq is not None else ""), SEPARATORS,
                  ATTR_NAMES, st.sampled_from([None, "=", "=", "=", " =", "= ", " = ", "\t=\n"]), VALUES)
TAGS = st.builds(lambda close, name, attrs, end: "<" + close + name + "".join(attrs) + end,
                 st.sampled_from(["", "", "/"]), NAMES, st.lists(ATTRS, max_size=4),
                 st.sampled_from([">", ">", "/>", " >", "", "\n>"]))
OTHER = st.sampled_from(["text", "<", "</", ">", "<!--", "-->", "<!-- x -->", "<a href=http://evil.example/>e</a>",
                         '<a href="/rel" title="t">', '<a href="https://www.gov.cn/a.html">', "</a>", "<p>", "中"])
documents = st.lists(st.one_of(TAGS, OTHER), max_size=12).map(lambda parts: "".join(parts).encode("utf-8"))


def scan(body: bytes, **kwargs: object) -> ScanState:
    state = ScanState()
    scan_html(body, 0, len(body), state, **kwargs)  # type: ignore[arg-type]
    return state


def refusal(body: bytes, **kwargs: object) -> RefusalReason | None:
    """Why the scan refuses ``body`` (``RewriteRefused``), or None when it does not."""
    try:
        scan(body, **kwargs)
    except RewriteRefused as exc:
        return exc.reason
    return None


@settings(max_examples=3000, deadline=None)
@given(documents)
def test_the_jumps_find_what_the_tag_by_tag_scan_finds(body: bytes) -> None:
    refused = refusal(body, scanners=REFERENCE)
    assert refusal(body, scanners=DEFAULT_SCANNERS) == refused, body  # a page is refused by both or by neither
    if refused is not None:
        return
    reference = scan(body, scanners=REFERENCE)
    fast = scan(body, scanners=DEFAULT_SCANNERS)
    assert [t[:3] for t in fast.targets] == [t[:3] for t in reference.targets], body
    assert (fast.base, fast.base_seen) == (reference.base, reference.base_seen), body


@settings(max_examples=3000, deadline=None)
@given(documents)
def test_links_jumped_over_are_ones_the_rewriter_calls_internal(body: bytes) -> None:
    classifier = CLASSIFIER.with_internal("portal.example.gov.cn")
    scanners = scanners_for(classifier.plain_internal_hosts())
    refused = refusal(body, scanners=REFERENCE)
    assert refusal(body, skip_same_host=True, scanners=scanners) == refused, body
    if refused is not None:
        return
    reference = scan(body, scanners=REFERENCE)
    jumped = scan(body, skip_same_host=True, scanners=scanners)
    assert (jumped.base, jumped.base_seen) == (reference.base, reference.base_seen), body
    kept = [t[:3] for t in jumped.targets]
    resolver = _Resolver("https://portal.example.gov.cn/a/b.html", classifier, lambda u: u, "utf-8", "utf-8")
    assert resolver.fast
    left_out = []
    for target in reference.targets:
        if kept and kept[0] == target[:3]:
            kept.pop(0)
        else:
            left_out.append(target)
    assert not kept, (body, kept)  # in the same order, nothing the reference scan did not find
    for kind, start, end, _ in left_out:
        assert resolver._quick(kind, body, start, end) is not None, (body, body[start:end])


def test_links_to_plainly_spelled_internal_hosts_are_jumped_over() -> None:
    """The shortcut is used, not only sound: same-host paths and plain internal hosts leave no target behind."""
    classifier = CLASSIFIER.with_internal("portal.example.gov.cn")
    scanners = scanners_for(classifier.plain_internal_hosts())
    jumped = ["/a/b.html", "?q=1", "https://www.gov.cn/x", "//A.B.GOV.CN/", "http://portal.example.gov.cn",
              "https://x.partner.cn/p", "https://a-b.c.gov.cn:8080/p"]
    examined = ["http://www.baidu.com/s", "https://gov.cn.evil.example/", "https://partner.cn/", "//evilgov.cn/",
                "https://www.gov.cnx/", "https://xn--fiqs8s.gov.cn/"]
    for value in jumped + examined:  # an IDNA label is left to the full parse, internal or not
        body = f'<li class="x"><a href="{value}" title="t">t</a></li>'.encode()
        found = [body[start:end].decode() for _, start, end, _ in scan(body, skip_same_host=True,
                                                                            scanners=scanners).targets]
        assert found == ([] if value in jumped else [value]), value


special_names = _SPECIAL_NAMES.split(b"|")
name_variants = st.one_of(
    st.sampled_from(special_names),
    st.builds(lambda n, k: n[:k], st.sampled_from(special_names), st.integers(1, 12)),  # prefixes
    st.builds(lambda n, t: n + t, st.sampled_from(special_names), st.sampled_from([b"x", b"s", b"-", b"1", b"="])),
    st.text(alphabet="abceimnoprstuvxyAESTV-1\x00中", min_size=1, max_size=10).map(str.encode),
).flatmap(lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(
    lambda ups: bytes(c - 32 if up and 97 <= c <= 122 else c for c, up in zip(n, ups, strict=True))))


@settings(max_examples=1500, deadline=None)
@given(name_variants, st.sampled_from([b">", b" ", b"/", b"\t", b"\n", b"\x0c"]))
def test_a_name_is_plain_exactly_when_it_is_not_special(name: bytes, after: bytes) -> None:
    plain = re.compile(_plain_names_trie(special_names) + rb"(?=[\t\n\f\r />])")
    special = re.compile(_names_trie(special_names) + rb"\Z")
    is_tag_name = re.fullmatch(rb"[A-Za-z][^\t\n\f\r />]*", name) is not None
    matched = plain.match(name + after)
    assert bool(matched) == (is_tag_name and not special.match(name)), name
    if matched:
        assert matched.end() == len(name)
