"""The rewriter judged by a second browser reading: the HTML parsing of 2017, as html5lib implements it.

Chromium (``test_browser_differential``) parses as HTML does since 2025, where a ``<select>`` holds any content.
Before that, and still in Firefox, Safari and the browsers built on older Chromium, a select ignores most start
tags: ``<style>``, ``<xmp>``, ``<iframe>``, ``<title>``, ``<plaintext>``, ``<svg>``... Its tokenizer then reads on
as markup where the newer one reads raw text, and a ``</select>`` inside that "raw text" frees the links after it.
Art. 15 (第十五条) holds for every user's browser: each page here is either refused or, parsed the older way, holds
no live link to an external host that does not go through the leave page.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from xml.etree.ElementTree import Element

import ada_url
import html5lib
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from govgate.core.link_rewrite import RefusalReason, RewriteRefused, RewriteResult
from govgate.core.outbound import HostClassifier

from .browser_corpus import MARKUP_CASES
from .conftest import DOC_URL, PREFIX
from .test_scan_memo import PIECES

ORIGIN = "https://portal.example.gov.cn"
EVIL = '<a href="http://evil.example/">x</a>'

type Rewrite = Callable[[bytes], RewriteResult]

# Each was a live link to evil.example, unrewritten, for an older parser (checked below on the page as written).
SELECT_CASES: list[str] = [
    f"<select><style></select>{EVIL}</style>",
    f"<select><xmp></select>{EVIL}</xmp>",
    f"<select><iframe></select>{EVIL}</iframe>",
    f"<select><noembed></select>{EVIL}</noembed>",
    f"<select><noframes></select>{EVIL}</noframes>",
    f"<select><noscript></select>{EVIL}</noscript>",
    f"<select><title></select>{EVIL}</title>",
    f"<select><plaintext></select>{EVIL}",
    f"<select><option><style></select>{EVIL}</style>",
    f"<select><optgroup><option><xmp></select>{EVIL}</xmp>",
    f"<SELECT name=q><STYLE></SELECT>{EVIL}</STYLE>",
    f"<select/><style></select>{EVIL}</style>",
    f"<table><tr><td><select><style></select>{EVIL}</style>",
    f"<table><tr><td><select><iframe></td>{EVIL}</iframe>",
    f'<select><iframe srcdoc="x"></select>{EVIL}</iframe>',
    f"<select><style></select><p>{EVIL}</p></style><style>p{{}}</style>",
    # the select closed and opened again, a template in it: the scan keeps reading both ways to the end
    f"<select></select><select><style></select>{EVIL}</style>",
    f"<form><select><option>1</select></form><div><select><xmp></select>{EVIL}</xmp></div>",
    # html5lib ignores a template in a select (HTML says a select takes it as in the head): read as live either way
    f"<select><template><mi></select>{EVIL}",
]

# A </select> the older parsers ignore (in a template) or may read as text (in a <noscript>): still in the select.
SELECT_STAYS_OPEN: list[str] = [
    f"<select><template></select></template><style></select>{EVIL}</style>",
    f"<select><template><noscript></select></noscript></template><style></select>{EVIL}</style>",
]

# The two readings part (refused): the end of the raw text is not an end tag when read as markup; or an <svg> the
# older parser ignores, whose CDATA section is a bogus comment to the first ">" for it.
SELECT_REFUSED: list[tuple[str, RefusalReason]] = [
    ('<select><style></select><a title="</style>" href="http://evil.example/">x</a></style>', RefusalReason.SELECT),
    (f"<select><style><!--</style>{EVIL}-->", RefusalReason.SELECT),
    (f"<select><xmp><!--</xmp></select>{EVIL}-->", RefusalReason.SELECT),
    ("<select><title><a title='</title>' href=http://evil.example/>x</a></title>", RefusalReason.SELECT),
    # An older parser ignores a <base> in a select: the second one is the document's base there.
    ("<select><base href=/ok/></select><base href=//evil.example/><a href=/r>r</a>", RefusalReason.AMBIGUOUS_BASE),
    ('<select><base href="foo://x/"></select><a href="//evil.example/">x</a>', RefusalReason.AMBIGUOUS_BASE),
    (f"<select><svg><![CDATA[ ></select>{EVIL} ]]>", RefusalReason.FOREIGN),
    (f"<select><math><![CDATA[ ></select>{EVIL} ]]>", RefusalReason.FOREIGN),
]

# After an end tag in an integration point that an older parser may take as leaving it (back in SVG/MathML there): what
# that reading makes of a CDATA section, a <noscript> or a <base> parts from the current one (an eighth review).
ISLAND_REFUSED: list[tuple[str, RefusalReason]] = [
    (f"<svg><g><desc></g><![CDATA[ > <!-- ]]><p>{EVIL} -->", RefusalReason.FOREIGN),
    (f"<math><mrow><mi></mrow><![CDATA[ > <!-- ]]><p>{EVIL} -->", RefusalReason.FOREIGN),
    (f"<svg><g><desc></g><noscript><![CDATA[ > <!-- ]]><p>{EVIL} --></noscript>", RefusalReason.FOREIGN),
    ('<svg><g><desc></g><base href="/"></svg><base href="http://evil.example/"><a href="x">x</a>',
     RefusalReason.AMBIGUOUS_BASE),
]

# Pages with a select that must still pass as they are (nothing refused, nothing that is not a link rewritten).
SELECT_PASSES: list[str] = [
    # after the </select>: an SVG icon whose CDATA style holds ">", a style with a comment left open
    '<form><select name="t"><option>1</option></select></form>'
    '<svg viewBox="0 0 9 9"><style><![CDATA[.a > .b{fill:red}]]></style><path d="M0 0"/></svg>',
    "<select></select><style><!-- .a{} </style>",
    '<form action="/search"><select name="t"><option value="1">全部</option></select><input name="q"></form>'
    '<style>a > b { color: red }</style><iframe src="/map.html"></iframe><noscript><img src="/p.gif"></noscript>',
    "<select><option>1</option></select><textarea></select></textarea><title>站内搜索</title>",
]


# Markup that only older parsers make links of (a sixth review): <isindex> became a form, and SVG before version 2
# followed xlink:href whatever href said.
OLDER_LINKS: list[str] = [
    '<isindex action="http://evil.example/">',
    '<isindex formaction="http://evil.example/">',
    '<svg><a href="/ok" xlink:href="//evil.example/">x</a></svg>',
    # An integration point closed by an end tag naming an SVG element around it (found by the generated documents):
    # back in SVG for an older parser, where <script> and <style> are ordinary elements; ignored by current ones.
    "<svg><script><title></script><script></select><a href=http://evil.example/>",
    "<svg><g><desc></g><style><a href=http://evil.example/>x</a></style></svg>",
    '<svg><g><desc></g><a xlink:href="http://evil.example/">x</a></svg>',
]


def _live(node: Element, in_template: bool = False) -> Iterator[tuple[Element, bool]]:
    yield node, in_template
    for child in node:
        yield from _live(child, in_template or node.tag == "template")


# The attributes that navigate, by element (html5lib names an SVG element by its namespace in braces).
_SVG = "{http://www.w3.org/2000/svg}"
_LINK_ATTRS: dict[str, tuple[str, ...]] = {
    "a": ("href",), "area": ("href",), "form": ("action",), "button": ("formaction",), "input": ("formaction",),
    f"{_SVG}a": ("href", "{http://www.w3.org/1999/xlink}href"),
}


def escaping_links(page: bytes, classifier: HostClassifier, *, scripting: bool) -> list[str]:
    """The live links of ``page`` (read by the older parser) that lead to an external host not via the leave page."""
    doc = html5lib.parse(page, namespaceHTMLElements=False, scripting=scripting, transport_encoding="utf-8")
    nodes = list(_live(doc))
    base = DOC_URL
    for node, inert in nodes:
        if node.tag == "base" and not inert and node.get("href") is not None:
            with contextlib.suppress(ValueError):  # the document's URL then
                base = ada_url.join_url(DOC_URL, node.get("href", "").strip())
            break
    found = []
    for node, inert in nodes:
        if inert or not isinstance(node.tag, str):
            continue
        for attr in _LINK_ATTRS.get(node.tag, ()):
            value = node.get(attr)
            if value is None or (value == "" and attr != "href"):
                continue  # an empty action or formaction: the document's own URL
            try:
                url = ada_url.join_url(base, value.strip(" \t\n\f\r"))
            except ValueError:
                continue
            if not url.startswith(("http:", "https:")) or url.startswith(ORIGIN + PREFIX + "/"):
                continue
            if classifier.is_external(ada_url.URL(url).hostname):
                found.append(f"<{node.tag} {attr}={value!r}>")
    return found


@pytest.mark.parametrize("markup", SELECT_CASES)
def test_a_select_does_not_hide_links_from_an_older_parser(rw: Rewrite, classifier: HostClassifier,
                                                           markup: str) -> None:
    page = markup.encode()
    assert escaping_links(page, classifier, scripting=True), "the case must be a live link as written"
    out = rw(page).body
    assert escaping_links(out, classifier, scripting=True) == []
    assert escaping_links(out, classifier, scripting=False) == []


@pytest.mark.parametrize("markup", SELECT_STAYS_OPEN)
def test_a_select_end_tag_older_parsers_ignore_leaves_it_open(rw: Rewrite, markup: str) -> None:
    # (html5lib's templates are not HTML's, so the rewritten page is checked here, not by html5lib.)
    assert b"/__govgate/leave?url=http://evil.example/" in rw(markup.encode()).body


@pytest.mark.parametrize("markup", OLDER_LINKS)
def test_links_only_older_parsers_make_are_rewritten(rw: Rewrite, classifier: HostClassifier, markup: str) -> None:
    page = markup.encode()
    assert escaping_links(page, classifier, scripting=True), "the case must be a live link as written"
    assert escaping_links(rw(page).body, classifier, scripting=True) == []


@pytest.mark.parametrize(("markup", "reason"), SELECT_REFUSED)
def test_markup_after_a_select_whose_readings_part_is_refused(rw: Rewrite, classifier: HostClassifier, markup: str,
                                                              reason: RefusalReason) -> None:
    with pytest.raises(RewriteRefused) as info:
        rw(markup.encode())
    assert info.value.reason is reason


@pytest.mark.parametrize(("markup", "reason"), ISLAND_REFUSED)
def test_markup_an_older_parser_reads_back_in_foreign_content_is_refused(rw: Rewrite, classifier: HostClassifier,
                                                                         markup: str, reason: RefusalReason) -> None:
    assert escaping_links(markup.encode(), classifier, scripting=True), "the case must be a live link as written"
    with pytest.raises(RewriteRefused) as info:
        rw(markup.encode())
    assert info.value.reason is reason


@pytest.mark.parametrize("markup", SELECT_PASSES)
def test_an_ordinary_select_changes_nothing(rw: Rewrite, markup: str) -> None:
    result = rw(markup.encode())
    assert result.body == markup.encode()


@pytest.mark.parametrize(("label", "markup"), MARKUP_CASES, ids=[label for label, _ in MARKUP_CASES])
def test_the_browser_corpus_read_by_an_older_parser(rw: Rewrite, classifier: HostClassifier, label: str,
                                                    markup: str) -> None:
    page = markup.encode()
    try:
        out = rw(page).body
    except RewriteRefused:
        return  # forwarded to no one
    assert escaping_links(out, classifier, scripting=True) == []
    assert escaping_links(out, classifier, scripting=False) == []


# html5lib's templates are not HTML's (``<p><template></p>`` closes the template there): documents without them.
_FILLER = st.lists(st.sampled_from([p for p in PIECES.elements if "template" not in p]), max_size=3).map("".join)
# Something that may change how what follows is read (a select, foreign content, <noscript>), something that one
# reading takes as raw text or a comment and another may not, something that may end either, then a link.
_OPENS = st.sampled_from(["<select>", "<svg>", "<math>", "<select><option>", "<table><td><select>", "<noscript>",
                          "<svg></p>", "<math><mi>", "<svg><desc>"])
_HIDES = st.sampled_from(["<style>", "<xmp>", "<title>", "<iframe>", "<noembed>", "<noframes>", "<plaintext>",
                          "<textarea>", "<![CDATA[", "<!--", "<script>"])
_ENDS = st.sampled_from(["</select>", "</p>", "</br>", "</svg>", "</math>", "</mi>", ">", "</div>", "-->", ""])
_LINKS = st.sampled_from(["<a href=http://evil.example/>", "<svg><a href=//evil.example/>",
                          "<form action=//evil.example/>", "<a href='//evil.example/'>"])
_DOCUMENTS = st.tuples(_FILLER, _OPENS, _FILLER, _HIDES, _FILLER, _ENDS, _LINKS, _FILLER).map(
    lambda parts: "".join(parts).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_DOCUMENTS)
def test_generated_documents_read_by_an_older_parser(rw: Rewrite, classifier: HostClassifier, page: bytes) -> None:
    # About one in twelve of these was a live external link for html5lib before the select and </p> fixes.
    try:
        out = rw(page).body
    except RewriteRefused:
        return
    for scripting in (True, False):
        try:
            escaping = escaping_links(out, classifier, scripting=scripting)
        except AssertionError:  # html5lib's own assertion on a few broken tables: no reading to judge by
            assume(False)
        assert escaping == []
