"""Internet Explorer's readings (Art. 15): 360, QQ and other browsers show legacy portals in IE's compatibility mode.

In document modes up to 9 IE reads a conditional comment (``<!--[if IE]>…<![endif]-->``) as markup when its condition
holds and skips it when not; every other browser reads a comment. IE has no ``<template>``: its contents are live and a
``<base>`` in one counts. The rewriter reads both ways (``docs/outbound-links.md``); where the readings part, it refuses
the page (``conditional_comment``, ``ambiguous_base``). IE itself cannot run here: these cases follow its documented
syntax, and Chromium checks (the browser corpus) that what it shows changes by leave URLs only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from govgate.core.link_rewrite import RewriteRefused, RewriteResult

type Rewrite = Callable[[bytes], RewriteResult]

LEAVE = b"/__govgate/leave?url=http://evil.example/"


@pytest.mark.parametrize("body", [
    b'<!--[if IE]><a href="http://evil.example/">x</a><![endif]-->',
    b'<!--[if lt IE 9]><a href="http://evil.example/">x</a><![endif]-->',
    b'<!--[if (gt IE 5)&(lt IE 7)]><a href=http://evil.example/>x</a><![endif]-->',
    b'<!--[ IF IE ]><a href=http://evil.example/>x</a><![ENDIF]-->',
    b'<!--[if !IE]><a href=http://evil.example/>x</a><![endif]-->',  # false in IE: harmless to rewrite
    b'<!--[if IE]><form action="http://evil.example/"></form><![endif]-->',
    b'<!--[if IE]><meta http-equiv=refresh content="0;url=http://evil.example/"><![endif]-->',
    b'<!--[if IE]><a href=http://evil.example/>x</a><!--<![endif]--><a href=/ok>',
    b'<!--[if lt IE 9]><script src="/html5shiv.js"></script><a href=http://evil.example/>x</a><![endif]-->',
    # Template contents: inert in current browsers until a script clones them (then live), live in IE.
    b"<template><a href=http://evil.example/></template>",
    b"<template><template></template><a href=http://evil.example/></template>",
    b"<template><form action=http://evil.example/></form></template>",
    b'<template><meta http-equiv=refresh content="0;url=http://evil.example/"></template>',
])
def test_links_ie_may_follow_are_rewritten(rw: Rewrite, body: bytes) -> None:
    result = rw(body)
    assert result.rewritten == 1
    assert b"http://evil.example/" not in result.body.replace(b"url=http://evil.example/", b"")


def test_the_usual_revealed_idiom_is_read_once(rw: Rewrite) -> None:
    """``<!--[if !IE]><!-->…<!--<![endif]-->``: markup to every browser between, each link rewritten once."""
    body = (b'<!--[if gt IE 8]><!--><html class="modern"><!--<![endif]-->'
            b'<!--[if !IE]><!--><a href="http://evil.example/">x</a><!--<![endif]--><a href=/ok>ok</a>')
    result = rw(body)
    assert result.rewritten == 1
    assert result.body.count(LEAVE) == 1
    assert result.body.startswith(b'<!--[if gt IE 8]><!--><html class="modern"><!--<![endif]-->')


def test_a_page_of_conditional_comments_keeps_everything_else(rw: Rewrite) -> None:
    body = (b'<!DOCTYPE html><!--[if IE 8]><html class="ie8"><![endif]--><head>'
            b'<!--[if lt IE 9]><script src="/js/html5shiv.js"></script><link rel=stylesheet href="/ie.css">'
            b'<![endif]--></head><body><a href="/news/">news</a></body>')
    result = rw(body)
    assert result.rewritten == 0
    assert result.body == body


CC = "conditional_comment"


@pytest.mark.parametrize(("body", "reason"), [(body, CC) for body in [
    # IE's markup reading of the content ends inside something the other browsers' reading does not share.
    b'<!--[if IE]><a title="--><a href=http://evil.example/>"<![endif]-->',
    b'<!--[if IE]><a title="<![endif]-->" href=http://evil.example/>x</a>',
    b'<!--[if IE]><style><![endif]--><a href=http://evil.example/>x</a></style>',
    b'<!--[if IE]><script><![endif]--><a href=http://evil.example/>x</a></script>',
    b'<!--[if IE]><a href=/x <![endif]--> href=http://evil.example/>x</a>',
    b'<!--[if IE]><!-- <![endif]--><a href=http://evil.example/>x</a>-->',
    b'<!--[if IE]><svg><![endif]--><style><a href=http://evil.example/>x</a></style>',
    b'<!--[if IE]><template><![endif]--><a href=http://evil.example/>x</a>',
    # Skipped by IE when false: markup to the others up to the "<![endif]" must end there with nothing open.
    b'<!--[if !IE]><!--><style><!--<![endif]--><a href=http://evil.example/>x</a></style>',
    b'<!--[if !IE]><!--><textarea><![endif]--><a href=http://evil.example/>x</a></textarea>',
    # <noscript>: raw text or markup by IE's scripting.
    b'<!--[if IE]><noscript><a title="</noscript><a href=http://evil.example/>"></noscript><![endif]-->',
    # No end IE would find, or one spelled otherwise.
    b'<!--[if IE]><a href=http://evil.example/>x</a>-->',
    b'<!--[if IE]><a href=http://evil.example/>x</a><![endif]>-->',
    b'<!--[if IE]><a href=http://evil.example/>x</a><![ endif ]-->',
    b'<!--[if IE --><a href=http://evil.example/>x</a><![endif]-->',
    # In SVG/MathML, where what IE reads on into may be a CDATA section to the others.
    b'<svg><!--[if IE]><a href=http://evil.example/>x</a><![endif]--></svg>',
    b'<svg><!--><![CDATA[ --> <a href=http://evil.example/ xlink:href=http://evil.example/>x</a> ]]></svg>',
    b'<svg><!-- --!><![CDATA[ --> <a href=http://evil.example/ xlink:href=http://evil.example/>x</a> ]]></svg>',
    b'<svg><![if !IE]><![CDATA[<![endif]><a href=http://evil.example/ xlink:href=http://evil.example/>x</a>]]></svg>',
    # A span read in one select state answers nothing for another.
    b'<![if IE]><select><![if !IE]></select><![endif]><style></select><a href=http://evil.example/>x</a></style>',
    # A </select> IE skips when the condition is false: the select stays open for it.
    b'<select><!--[if !IE]><!--></select><!--<![endif]--><style></select><a href="http://evil.example/">x</a></style>',
    # Downlevel-revealed (<![if …]>…<![endif]>): skipped by IE when false, markup to the others up to its end.
    b'<![if !IE]><textarea><![endif]><a href="http://evil.example/">x</a></textarea>',
    b'<![if !IE]><a title="<![endif]><a href=http://evil.example/>x</a>">y</a>',
    b'<![if !IE]><!--<![endif]><a href="http://evil.example/">x</a>-->',
    b'<![if !IE]><script><![endif]><a href="http://evil.example/">x</a></script>',
    b'<![if !IE]><base href="/"><![endif]><base href="http://evil.example/"><a href="x">x</a>',
    b'<![if !IE]><p>x</p><![endif]--><a href=/ok>',
    # IE's older parser ends a comment only at "-->": a "--!>", "<!-->" or "<!--->" end is no end to it.
    b'<!-- --!><textarea> --><a href="http://evil.example/">x</a></textarea>',
    b'<!--><textarea>--><a href="http://evil.example/">x</a></textarea>',
    b'<!---><style>--><a href="http://evil.example/">x</a></style>',
    b'<!--[if IE]><!-- x --!><textarea>--><a href="http://evil.example/">x</a></textarea><![endif]-->',
]] + [(body, "ambiguous_base") for body in [
    # A base only IE takes: the first base to IE, none to the others.
    b'<!--[if IE]><base href="http://evil.example/"><![endif]--><a href=x>x</a>',
    b'<template><base href="http://evil.example/"></template><a href=x>x</a>',
    b'<div><template shadowrootmode=open><base href="http://evil.example/"></template></div><a href=x>x</a>',
]])
def test_pages_whose_readings_in_ie_and_elsewhere_part_are_refused(rw: Rewrite, body: bytes, reason: str) -> None:
    with pytest.raises(RewriteRefused, match=reason):
        rw(body)


def test_a_base_in_a_template_after_the_documents_base_changes_nothing(rw: Rewrite) -> None:
    body = b'<base href="/b/"><template><base href="http://evil.example/"></template><a href=x>x</a>'
    assert rw(body).body == body


def test_template_contents_are_rewritten_with_the_documents_base(rw: Rewrite) -> None:
    body = b'<base href="http://evil.example/d/"><template><a href=x>x</a></template>'
    result = rw(body)
    assert result.rewritten == 1
    assert b"/__govgate/leave?url=http://evil.example/d/x" in result.body


@pytest.mark.parametrize("body", [
    b'<![if !IE]><p class="modern">x</p><![endif]><a href="/ok">ok</a>',
    b'<![IF IE]><p>old</p><![ENDIF]><![if !IE]><p>new</p><![endif]>',
    b"<![if !IE]><p>no end: IE skips the rest of the page</p>",
    b"<!--><p>x</p><!-- a comment that ends alike -->",
    b"<!-- x --!><p>y</p><!-- z -->",
])
def test_ie_readings_that_meet_again_change_nothing(rw: Rewrite, body: bytes) -> None:
    assert rw(body).body == body


@pytest.mark.parametrize("opener", [b"<![if x]><p>", b"<!-- --!><p>"])
def test_many_openers_before_one_end_are_read_once(rw: Rewrite, opener: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear in the page: a span ending where the last one did is a suffix of it, not read again."""
    from govgate.core import html_scan

    calls: list[tuple[int, int]] = []
    real = html_scan._span_agrees

    def counted(buf: bytes, start: int, end: int, state: html_scan.ScanState) -> None:
        calls.append((start, end))
        real(buf, start, end, state)

    monkeypatch.setattr(html_scan, "_span_agrees", counted)
    body = opener * 2000 + (b"<![endif]>" if opener.startswith(b"<![") else b"-->")
    assert rw(body).body == body
    assert len(calls) == 1


@pytest.mark.parametrize("opener", [b"<![if !IE]>", b"<!-- --!>", b"<![if x]><select><![if x]></select>",
                                    b"<!--x--!><select><!--x--!></select>"])
def test_openers_without_an_end_are_not_searched_again(rw: Rewrite, opener: bytes,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """No end after one opener is no end after a later one: the rest of the page is searched once, not per opener."""
    from govgate.core import html_scan

    searched: list[int] = []

    class Counting:
        def __init__(self, pattern: re.Pattern[bytes]) -> None:
            self.pattern = pattern

        def search(self, buf: bytes, pos: int = 0, endpos: int = sys.maxsize) -> re.Match[bytes] | None:
            searched.append(pos)
            return self.pattern.search(buf, pos, endpos)

    monkeypatch.setattr(html_scan, "_ENDIF", Counting(html_scan._ENDIF))
    ended: list[tuple[int, bool, int]] = []
    real = html_scan._ie_comment

    def counted(*args: Any) -> tuple[int, bool, int]:
        result = real(*args)
        ended.append(result)
        return result

    monkeypatch.setattr(html_scan, "_ie_comment", counted)
    body = b"<p>x</p>" + opener * 3000
    assert rw(body).body == body
    assert len(searched) <= 1
    assert all(end == len(body) for end, _select, _read in ended)  # "no end": remembered as the page's end
