"""Rewrite links to non-government sites in an HTML document, byte for byte (Art. 15).

Owns the scanner: it finds, in the raw bytes, every ``a``/``area`` ``href``, ``form`` ``action``,
``button``/``input`` ``formaction`` and ``<meta http-equiv=refresh>`` URL that an HTML parser
would see, resolves each as a browser does (character references, the document's first
``<base href>``, WHATWG URL parsing by ``ada_url``, the document's encoding for queries), and
replaces the attribute value of each external one with the signed leave URL. Nothing else changes.
Where the spec rejects a URL that Chromium still follows, it is read as Chromium does (``chromium_urls``).

Why a hand-written scanner: a DOM library re-serialises the page (not byte-exact) and is slow.
The HTML tokenizer's structure is small enough to follow with compiled regular expressions over
bytes: tags (quoted, single-quoted, unquoted attributes; a tag only ends at a ``>`` outside a
quoted value), comments (with ``<!-->`` and ``--!>``), bogus comments (``<!``, ``<?``, ``</x``),
raw text (``script`` with its escape states, ``style``, ``xmp``, ``iframe``, ``noembed``,
``noframes``, ``noscript`` as Chromium parses it with scripting on), RCDATA (``textarea``,
``title``), ``plaintext``, foreign content (``svg``/``math``, where those are ordinary elements and
``<![CDATA[`` is a real section; left only where the tree builder surely leaves it) and
``template`` (parsed, its contents left alone, except a declarative shadow root's, which are live).
Nesting (``srcdoc`` in ``srcdoc``, ``noscript`` in ``noscript``) is capped at ``MAX_NESTING``; past
it, and wherever the scan cannot tell what the browser does, ``RewriteRefused`` is raised so the
caller fails closed. Only http(s) destinations are signed.
``noscript`` content is additionally scanned as markup, so a browser with scripting off is
protected too; with scripting on it is text and the change is invisible.

In every encoding a browser treats as ASCII-compatible for markup (UTF-8, GBK, GB18030, Big5,
Shift_JIS, EUC-*, single-byte), the bytes ``< > " ' = /`` and whitespace are never part of a
multi-byte character, so scanning bytes is exact. UTF-16 is transcoded to UTF-8 for scanning and
the offsets mapped back; ISO-2022-JP (stateful) is decoded and re-encoded as a whole.
"""

from __future__ import annotations

import html.entities
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import ada_url

from govgate.core.charset import Encoding, EncodingSource, sniff_encoding, sniff_xml_encoding
from govgate.core.chromium_urls import chromium_reading
from govgate.core.outbound import HostClassifier

# ---------------------------------------------------------------- tokenizer patterns (bytes)

class LinkKind(StrEnum):
    HREF = "href"
    ACTION = "action"
    FORMACTION = "formaction"
    REFRESH = "refresh"
    SRCDOC = "srcdoc"  # <iframe srcdoc>: a whole document whose links are rewritten in turn



_WSC = rb"\t\n\f\r "
_NAME = rb"[^\t\n\f\r />][^\t\n\f\r />=]*+"
_VAL = rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)"
_ATTR = rb"(?>" + _NAME + rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VAL + rb")?+)"
# attributes then ">"; group "tail" holds the separator before ">" (ends with "/" ⇔ self-closing)
_ATTRS_END = rb"(?:[\t\n\f\r /]*+" + _ATTR + rb")*+(?P<tail>[\t\n\f\r /]*+)>"
_TAGNAME = rb"[A-Za-z][^\t\n\f\r />]*+"

_SPECIAL_NAMES = (
    rb"a|area|form|button|input|meta|base|script|style|textarea|title|xmp|iframe|noembed|noframes|noscript"
    rb"|plaintext|template|svg|math"
)


def _names_trie(names: list[bytes]) -> bytes:
    """A regex matching exactly ``names``, ASCII case-insensitively, as a trie of character classes.

    The same language as ``(?i:n1|n2|...)``, but the engine rejects a name at its first differing
    letter instead of trying every alternative (the scan's hot path: ``<span`` is not ``<script``).
    """
    if b"" in names:
        rest = [n for n in names if n]
        return b"(?:" + _names_trie(rest) + b")?" if rest else b""
    by_first: dict[bytes, list[bytes]] = {}
    for n in names:
        by_first.setdefault(n[:1], []).append(n[1:])
    alternatives = [
        (b"[" + first.lower() + first.upper() + b"]" if first.isalpha() else re.escape(first)) + _names_trie(tails)
        for first, tails in sorted(by_first.items())
    ]
    return alternatives[0] if len(alternatives) == 1 else b"(?:" + b"|".join(alternatives) + b")"


_SPECIAL_TRIE = _names_trie(_SPECIAL_NAMES.split(b"|"))
_ANY_END = _ATTRS_END.replace(b"?P<tail>", b"?:")
# The common shape of a tag's rest (` name="v"`, ` name='v'`, ` name=v`, ` name`, then `>` or `/>`): a strict
# subset of the grammar above that ends the tag at the same `>`, tried first because it is cheaper.
_SIMPLE_END = (
    rb"(?:[\t\n\f\r ]++[A-Za-z_:][-\w:.]*+(?:=(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'=<`]++))?+)*+"
    rb"[\t\n\f\r ]*+/?>"
)
# Start tags that cannot matter: names starting with a letter no special name starts with, or else not special.
_PLAIN_START = (
    rb"<(?:[c-eg-hj-loqru-wyzC-EG-HJ-LOQRU-WYZ]|(?!" + _SPECIAL_TRIE + rb"[\t\n\f\r />])[A-Za-z])"
    rb"[^\t\n\f\r />]*+(?:" + _SIMPLE_END + rb"|" + _ANY_END + rb")"
)
_PLAIN_END = (
    rb"</(?:[a-ln-ru-zA-LN-RU-Z]|(?!" + _names_trie([b"template", b"svg", b"math"]) + rb"[\t\n\f\r />])[A-Za-z])"
    rb"[^\t\n\f\r />]*+"
    rb"(?:>|" + _ANY_END + rb")"
)
# Jump over text and every tag that cannot matter, inside the regex engine (text runs unrolled).
_SKIP = re.compile(rb"[^<]*+(?:(?:" + _PLAIN_END + rb"|" + _PLAIN_START + rb"|<(?![A-Za-z!/?]))[^<]*+)*+")
_TAG_OPEN = re.compile(rb"<(/?)(" + _TAGNAME + rb")")
_TAG_REST = re.compile(_ATTRS_END)
_ATTR_ITER = re.compile(
    rb"[\t\n\f\r /]*+(?:(?P<name>" + _NAME + rb")(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+"
    rb"(?:\"(?P<dq>[^\"]*+)\"|'(?P<sq>[^']*+)'|(?P<uq>[^\t\n\f\r >]*+)))?+)?"
)


# A double-quoted value that cannot leave the base's host (see ``_SAME_HOST``), marked by group ``s``.
_SAFE_DQ = (
    rb"[\x00-\x20]*+(?:[?#][^\"]*+"
    rb"|/(?![/\\\t\n\r&])[^\"?#\\\t\n\r&]*+(?:[?#][^\"]*+)?"
    rb"|[^\":/?#\\\t\n\r&\x00-\x20][^\":/?#\\\t\n\r&]*+(?:/[^\"?#\\\t\n\r&]*+)?(?:[?#][^\"]*+)?)?"
)


def _first_attr_src(attr: bytes, rest: bytes = _ATTRS_END.replace(b"?P<tail>", b"?P<t>"), safe: bool = False) -> bytes:
    """Rest of a start tag, capturing the FIRST ``attr`` (duplicates are dropped by the tokenizer).

    Group ``n``: the attribute name; ``v``: its value with any quotes; ``t``: the separator before ``>``.
    """
    not_it = rb"(?!(?i:" + attr + rb")[\t\n\f\r />=])"
    return (
        rb"(?:[\t\n\f\r /]*+" + not_it + _ATTR + rb")*+[\t\n\f\r /]*+"
        rb"(?:(?P<n>(?i:" + attr + rb"))(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+"
        + (rb"(?P<v>\"(?:" + _SAFE_DQ + rb"(?P<s>\")|[^\"]*+\")" if safe else rb"(?P<v>\"[^\"]*+\"")
        + rb"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+))?+)?+" + rest
    )


_FIRST_HREF = re.compile(_first_attr_src(b"href"))
_FIRST_ACTION = re.compile(_first_attr_src(b"action"))
_FIRST_FORMACTION = re.compile(_first_attr_src(b"formaction"))
_FIRST_SRCDOC = re.compile(_first_attr_src(b"srcdoc"))
_TARGET_PATTERNS: dict[bytes, tuple[re.Pattern[bytes], LinkKind]] = {}
# The hot path: skip to the next tag that matters and, when it is <a>/<area>, take it whole in one call.
_A_TAG = _first_attr_src(b"href", rb"(?:" + _SIMPLE_END + rb"|" + _ANY_END + rb")", safe=True)
_FAST = re.compile(_SKIP.pattern + rb"(?P<a><(?i:a|area)(?=[\t\n\f\r />])" + _A_TAG + rb")?")
# An <a>/<area> whose first href is a double-quoted value that cannot leave the base's host (``_SAFE_DQ``).
_SAFE_A = (
    rb"<(?i:a|area)(?=[\t\n\f\r />])(?:[\t\n\f\r /]*+(?!(?i:href)[\t\n\f\r />=])" + _ATTR + rb")*+"
    rb"[\t\n\f\r /]*+(?i:href)[\t\n\f\r ]*+=[\t\n\f\r ]*+\"" + _SAFE_DQ + rb"\""
    rb"(?:" + _SIMPLE_END + rb"|" + _ANY_END + rb")"
)
# ``_FAST`` that also jumps over those <a>/<area> tags, inside the regex engine: most of a portal's links
# are paths on its own site, and with an internal base they need no look at all. Only valid when the
# base turns out to be an internal http(s) URL (``_Resolver.fast``); ``_plan`` scans again otherwise.
_FAST_SKIP_SAME_HOST = re.compile(
    _SKIP.pattern.replace(b"|<(?![A-Za-z!/?]))", b"|" + _SAFE_A + b"|<(?![A-Za-z!/?]))")
    + rb"(?P<a><(?i:a|area)(?=[\t\n\f\r />])" + _A_TAG + rb")?"
)
assert _FAST_SKIP_SAME_HOST.pattern != _FAST.pattern, "the <a> alternative was not added"
assert _FAST_SKIP_SAME_HOST.groupindex == _FAST.groupindex
_S = _FAST.groupindex["s"]
_A = _FAST.groupindex["a"]
_V = _FAST.groupindex["v"]

_COMMENT_END = re.compile(rb"--!?>")
_SCRIPT_DATA = re.compile(rb"</(?i:script)[\t\n\f\r />]|<!--")
_SCRIPT_ESCAPED = re.compile(rb"-->|</(?i:script)[\t\n\f\r />]|<(?i:script)[\t\n\f\r />]")
_SCRIPT_DOUBLE = re.compile(rb"-->|</(?i:script)[\t\n\f\r />]")
_RAW_END = {
    name: re.compile(rb"</(?i:" + name + rb")[\t\n\f\r />]")
    for name in (b"style", b"xmp", b"iframe", b"noembed", b"noframes", b"noscript", b"textarea", b"title")
}
_QUOTES = (0x22, 0x27)
_BREAKOUT = frozenset(
    b"b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img li listing "
    b"menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul var".split()
)
_FOREIGN_NAMES = frozenset(
    b"a animate animatemotion animatetransform circle clippath defs desc discard ellipse filter foreignobject g "
    b"image line lineargradient marker mask metadata mpath path pattern polygon polyline radialgradient rect "
    b"script set stop style switch symbol text textpath title tspan use view font glyph "
    b"math mi mo mn ms mtext mrow mfrac msqrt mroot msub msup msubsup munder mover munderover mtable mtr mtd "
    b"mlabeledtr mspace mstyle semantics annotation annotation-xml menclose mpadded mphantom merror "
    b"mmultiscripts mprescripts none maction".split()
)
_INTEGRATION = frozenset(b"foreignobject desc title mi mo mn ms mtext annotation-xml".split())
_TARGET_PATTERNS.update({
    b"a": (_FIRST_HREF, LinkKind.HREF),
    b"area": (_FIRST_HREF, LinkKind.HREF),
    b"base": (_FIRST_HREF, LinkKind.HREF),
    b"form": (_FIRST_ACTION, LinkKind.ACTION),
    b"button": (_FIRST_FORMACTION, LinkKind.FORMACTION),
    b"input": (_FIRST_FORMACTION, LinkKind.FORMACTION),
})


# (kind, value start, value end, inside <template>): a plain tuple, made thousands of times per page
# The last field says the value cannot leave the base's host if the base is an internal http(s) URL.
type _Target = tuple[LinkKind, int, int, bool, bool]


MAX_NESTING = 32  # <iframe srcdoc> documents within documents, <noscript> within <noscript>


class RefusalReason(StrEnum):
    NESTING = "nesting"  # srcdoc/noscript nested deeper than MAX_NESTING
    AMBIGUOUS_BASE = "ambiguous_base"  # a <base href> the browser may or may not honour
    XHTML = "xhtml"  # an XHTML document the conservative XML scan cannot vouch for


class RewriteRefused(Exception):
    """The document cannot be rewritten safely; the caller must not pass it on as it is (fail closed)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(slots=True)
class _ScanState:
    targets: list[_Target] = field(default_factory=list)
    base: bytes | None = None  # raw value of the first <base href>
    base_seen: bool = False


def _scan(buf: bytes, start: int, stop: int, state: _ScanState, *, nested: int = 0,
          skip_same_host: bool = False) -> None:
    """Walk buf[start:stop] as the HTML tokenizer would, recording target attribute values.

    Foreign content (``svg``/``math``) is left only where the tree builder surely leaves it: the
    matching ``</svg>``/``</math>``, ``</p>``, ``</br>`` and the breakout start tags (HTML
    §13.2.6.5). Any other end tag there may or may not pop the SVG/MathML element, depending on the
    HTML elements open around it, which a scanner does not track: the scan stays in foreign content
    (where raw-text elements are ordinary, so it reads at least what the browser reads) and, while
    that doubt lasts, reads ``<![CDATA[`` as the bogus comment HTML would see and refuses a
    ``<base href>`` it cannot place.
    """
    if nested > MAX_NESTING:
        raise RewriteRefused(RefusalReason.NESTING)
    pos = start
    template = 0  # open inert templates
    templates: list[bool] = []  # open templates, True when inert (not a declarative shadow root)
    foreign: list[bytes] = []  # open svg/math roots, innermost last
    doubt = False  # an end tag in foreign content that the browser may have honoured by leaving it
    # integration points: (end tag name, foreign roots to restore, doubt to restore)
    islands: list[tuple[bytes, list[bytes], bool]] = []
    scan_links = (_FAST_SKIP_SAME_HOST if skip_same_host else _FAST).finditer
    targets = state.targets
    while pos < stop:
        if not foreign and not islands:
            in_template = template > 0
            for f in scan_links(buf, pos, stop):  # each match: skipped text/tags, then maybe one <a>/<area>
                pos = f.end()
                if f.start(_A) < 0:
                    break  # stopped before something that needs a closer look (or at the end)
                vs, ve = f.span(_V)
                if vs >= 0:
                    if ve > vs and buf[vs] in _QUOTES:
                        vs += 1
                        ve -= 1
                    targets.append((LinkKind.HREF, vs, ve, in_template, f.start(_S) >= 0))
            if pos >= stop:
                return
        else:
            lt = buf.find(b"<", pos, stop)
            if lt < 0:
                return
            pos = lt
        nxt = buf[pos + 1:pos + 2]
        if nxt == b"!":
            if buf.startswith(b"<!--", pos):
                if buf.startswith(b">", pos + 4):
                    pos += 5
                elif buf.startswith(b"->", pos + 4):
                    pos += 6
                else:
                    m = _COMMENT_END.search(buf, pos + 4, stop)
                    if m is None:
                        return
                    pos = m.end()
                continue
            if foreign and not islands and not doubt and buf.startswith(b"<![CDATA[", pos):
                end = buf.find(b"]]>", pos + 9, stop)
                if end < 0:
                    return
                pos = end + 3
                continue
            end = buf.find(b">", pos + 2, stop)
            if end < 0:
                return
            pos = end + 1
            continue
        if nxt == b"?":
            end = buf.find(b">", pos + 2, stop)
            if end < 0:
                return
            pos = end + 1
            continue
        m = _TAG_OPEN.match(buf, pos, stop)
        if m is None:
            if nxt == b"/":
                if buf.startswith(b">", pos + 2):
                    pos += 3
                    continue
                end = buf.find(b">", pos + 2, stop)
                if end < 0:
                    return
                pos = end + 1
                continue
            pos += 1
            continue
        is_end = bool(m.group(1))
        name = m.group(2).lower()
        after_name = m.end()
        if is_end:
            r = _TAG_REST.match(buf, after_name, stop)
            if r is None:
                return
            pos = r.end()
            if islands and name == islands[-1][0]:
                _, foreign, doubt = islands.pop()
            elif foreign:
                if name in foreign:  # pops up to the innermost open root of that name
                    del foreign[len(foreign) - 1 - foreign[::-1].index(name):]
                elif name in (b"p", b"br"):
                    foreign = []  # HTML §13.2.6.5: </p> and </br> leave foreign content
                else:
                    doubt = True  # popped only if a matching HTML element is in scope: unknown here
                if not foreign:
                    doubt = False
            elif name == b"template" and templates and templates.pop():
                template -= 1  # an inert template closed
            continue
        if foreign:
            if name in _BREAKOUT or (name == b"font" and _font_breaks_out(buf, after_name, stop)):
                foreign = []  # the tag is handled below as an HTML tag
                doubt = False
            elif name in _INTEGRATION:
                r = _TAG_REST.match(buf, after_name, stop)
                if r is None:
                    return
                pos = r.end()
                if not r.group("tail").endswith(b"/"):
                    islands.append((name, foreign, doubt))
                    foreign = []
                    doubt = False
                continue
        pattern_kind = _TARGET_PATTERNS.get(name)
        if pattern_kind is not None:
            pattern, kind = pattern_kind
            r = pattern.match(buf, after_name, stop)
            if r is None:
                return
            pos = r.end()
            vs, ve = r.span("v")
            if vs >= 0 and ve > vs and buf[vs] in _QUOTES:
                vs += 1
                ve -= 1
            if name == b"base":
                # Only a base in the document tree counts: not one in a template, nor in a shadow root.
                if doubt and r.start("n") >= 0 and not state.base_seen and not templates and not nested:
                    raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)
                if r.start("n") >= 0 and not state.base_seen and not templates and not foreign and not nested:
                    state.base_seen = True
                    state.base = buf[vs:ve] if vs >= 0 else b""
                continue
            if vs >= 0:
                targets.append((kind, vs, ve, template > 0, False))
            elif foreign and name == b"a" and r.start("n") < 0:
                _xlink_href(buf, after_name, stop, state, template > 0)  # SVG <a xlink:href>
            continue
        if name == b"meta":
            pos = _meta(buf, after_name, stop, state, template > 0)
            if pos < 0:
                return
            continue
        if name == b"iframe":  # in SVG/MathML srcdoc means nothing: rewriting it anyway is harmless
            r = _FIRST_SRCDOC.match(buf, after_name, stop)
            if r is None:
                return
            vs, ve = r.span("v")
            if vs >= 0:
                if ve > vs and buf[vs] in _QUOTES:
                    vs += 1
                    ve -= 1
                targets.append((LinkKind.SRCDOC, vs, ve, template > 0, False))
        else:
            r = _TAG_REST.match(buf, after_name, stop)
            if r is None:
                return
        pos = r.end()
        if name in (b"svg", b"math"):
            if not r.group("tail").endswith(b"/"):
                foreign.append(name)
            continue
        if foreign:
            continue
        if name == b"template":
            # A declarative shadow root (shadowrootmode, or Chromium's former shadowroot) is live DOM:
            # its contents are scanned like any markup. Only an inert template's contents are left alone.
            inert = template > 0 or not _is_shadow_root(buf, after_name, stop)
            templates.append(inert)
            template += inert
            continue
        if name == b"script":
            pos = _script_end(buf, pos, stop)
        elif name == b"plaintext":
            return
        elif name in _RAW_END:
            end_m = _RAW_END[name].search(buf, pos, stop)
            end = stop if end_m is None else end_m.start()
            if name == b"noscript":
                # Scripting off, this is markup: protect those readers too (invisible with scripting on).
                _scan(buf, pos, end, state, nested=nested + 1, skip_same_host=skip_same_host)
            pos = end


_XML_NAME = re.compile(rb"[^\x00-\x20/>=\"'<]++")
_XML_ATTR = re.compile(rb"[\t\n\r ]++([^\x00-\x20/>=\"'<]++)[\t\n\r ]*+=[\t\n\r ]*+(?:\"([^\"<]*+)\"|'([^'<]*+)')")
_XML_TAG_END = re.compile(rb"[\t\n\r ]*+/?>")
_XML_LINKS = frozenset((b"a", b"area", b"form", b"button", b"input"))
_XML_KINDS = {b"href": LinkKind.HREF, b"action": LinkKind.ACTION, b"formaction": LinkKind.FORMACTION}


def _scan_xml(buf: bytes, start: int, stop: int, state: _ScanState) -> None:
    """Walk an XML (XHTML) document conservatively, recording every attribute that may navigate.

    XML has no raw-text elements, and an element is a link by its namespace, not its spelling: so
    every element whose local name (after any prefix) is ``a``, ``area``, ``form``, ``button`` or
    ``input`` counts, with every ``href``, ``action``, ``formaction`` and ``<prefix>:href``
    attribute. What is not well-formed (a browser shows only what precedes it), an internal DTD
    subset (entities could expand into markup) or a second ``base`` raises ``RewriteRefused``.
    """
    pos = start
    while True:
        lt = buf.find(b"<", pos, stop)
        if lt < 0:
            return
        for opener, closer in ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>")):
            if buf.startswith(opener, lt):
                end = buf.find(closer, lt + len(opener), stop)
                if end < 0:
                    return  # unterminated: nothing after it is rendered
                pos = end + len(closer)
                break
        else:
            if buf.startswith(b"<!", lt) or buf.startswith(b"</", lt):
                end = buf.find(b">", lt, stop)
                if end < 0:
                    return
                if buf.startswith(b"<!", lt) and b"[" in buf[lt:end]:
                    raise RewriteRefused(RefusalReason.XHTML)  # internal DTD subset: entities may add markup
                pos = end + 1
                continue
            m = _XML_NAME.match(buf, lt + 1, stop)
            if m is None:
                raise RewriteRefused(RefusalReason.XHTML)
            local = m.group().rpartition(b":")[2].lower()
            pos = m.end()
            attrs: list[tuple[bytes, int, int]] = []
            while (a := _XML_ATTR.match(buf, pos, stop)) is not None:
                g = 2 if a.start(2) >= 0 else 3
                attrs.append((a.group(1).lower(), a.start(g), a.end(g)))
                pos = a.end()
            e = _XML_TAG_END.match(buf, pos, stop)
            if e is None:
                raise RewriteRefused(RefusalReason.XHTML)
            pos = e.end()
            _xml_element(buf, local, attrs, state)


def _xml_element(buf: bytes, local: bytes, attrs: list[tuple[bytes, int, int]], state: _ScanState) -> None:
    if local in _XML_LINKS:
        for name, vs, ve in attrs:
            kind = _XML_KINDS.get(name) or (LinkKind.HREF if name.endswith(b":href") else None)
            if kind is not None:
                state.targets.append((kind, vs, ve, False, False))
    elif local == b"base":
        href = next(((vs, ve) for name, vs, ve in attrs if name == b"href"), None)
        if href is not None:
            if state.base_seen:
                raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)  # which one the browser takes: unsure
            state.base_seen = True
            state.base = buf[href[0]:href[1]]
    elif local == b"meta":
        equiv = next(((vs, ve) for name, vs, ve in attrs if name == b"http-equiv"), None)
        content = next(((vs, ve) for name, vs, ve in attrs if name == b"content"), None)
        if equiv is not None and content is not None:
            value = _unescape_attr(buf[equiv[0]:equiv[1]].decode("latin-1"))
            if value.strip("\t\n\f\r ").lower() == "refresh":
                state.targets.append((LinkKind.REFRESH, content[0], content[1], False, False))
    elif local == b"iframe":
        for name, vs, ve in attrs:
            if name == b"srcdoc":
                state.targets.append((LinkKind.SRCDOC, vs, ve, False, False))


def _script_end(buf: bytes, pos: int, stop: int) -> int:
    """Where script data ends: the ``</script`` that closes it (HTML §13.2.5.4 ff., escape states)."""
    while True:
        m = _SCRIPT_DATA.search(buf, pos, stop)
        if m is None:
            return stop
        if m.group().startswith(b"</"):
            return m.start()
        pos = m.start() + 2  # escaped dash-dash state: "<!-->" closes at once
        while True:
            e = _SCRIPT_ESCAPED.search(buf, pos, stop)
            if e is None:
                return stop
            token = e.group()
            if token == b"-->":
                pos = e.end()
                break
            if token.startswith(b"</"):
                return e.start()
            d = _SCRIPT_DOUBLE.search(buf, e.end(), stop)  # double-escaped: "</script>" is text
            if d is None:
                return stop
            if d.group() == b"-->":
                pos = d.end()
                break
            pos = d.end()


def _attrs(buf: bytes, pos: int, stop: int) -> tuple[list[tuple[bytes, int, int, bytes]], int]:
    """All attributes of a tag from ``pos``: (lower name, value start, value end, quote); end or -1."""
    out: list[tuple[bytes, int, int, bytes]] = []
    seen: set[bytes] = set()
    while True:
        m = _ATTR_ITER.match(buf, pos, stop)
        assert m is not None  # the pattern can match empty
        pos = m.end()
        if m.start("name") < 0:
            if pos < stop and buf[pos] == 0x3E:
                return out, pos + 1
            return out, -1
        name = m.group("name").lower()
        if name in seen:
            continue
        seen.add(name)
        for g, q in (("dq", b'"'), ("sq", b"'"), ("uq", b"")):
            if m.start(g) >= 0:
                out.append((name, m.start(g), m.end(g), q))
                break
        else:
            out.append((name, m.end(), m.end(), b"-"))  # no value: empty, and nothing to rewrite


def _is_shadow_root(buf: bytes, pos: int, stop: int) -> bool:
    """``<template shadowrootmode>`` (or legacy ``shadowroot``): any value counts, to read more not less."""
    attrs, _ = _attrs(buf, pos, stop)
    return any(name in (b"shadowrootmode", b"shadowroot") for name, *_ in attrs)


def _font_breaks_out(buf: bytes, pos: int, stop: int) -> bool:
    """In foreign content, ``<font>`` with color, face or size leaves SVG/MathML (HTML §13.2.6.5)."""
    attrs, _ = _attrs(buf, pos, stop)
    return any(name in (b"color", b"face", b"size") for name, *_ in attrs)


def _meta(buf: bytes, pos: int, stop: int, state: _ScanState, in_template: bool) -> int:
    attrs, end = _attrs(buf, pos, stop)
    if end < 0:
        return -1
    equiv = next((a for a in attrs if a[0] == b"http-equiv"), None)
    content = next((a for a in attrs if a[0] == b"content"), None)
    if equiv is None or content is None or content[3] == b"-":
        return end
    value = _unescape_attr(buf[equiv[1]:equiv[2]].decode("latin-1"))
    if value.strip("\t\n\f\r ").lower() != "refresh":
        return end
    state.targets.append((LinkKind.REFRESH, content[1], content[2], in_template, False))
    return end


def _xlink_href(buf: bytes, pos: int, stop: int, state: _ScanState, in_template: bool) -> None:
    attrs, _ = _attrs(buf, pos, stop)
    for name, start, end, quote in attrs:
        if name == b"xlink:href" and quote != b"-":
            state.targets.append((LinkKind.HREF, start, end, in_template, False))
            return


# ---------------------------------------------------------------- attribute values

_CHARREF = re.compile(r"&(?:#[xX]([0-9A-Fa-f]+);?|#([0-9]+);?|([A-Za-z][A-Za-z0-9]*;?))")
_HTML5 = html.entities.html5
_C1 = {n: bytes([n]).decode("cp1252") for n in range(0x80, 0xA0) if n not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}


def _numeric(num: int) -> str:
    if num == 0 or num > 0x10FFFF or 0xD800 <= num <= 0xDFFF:
        return "\ufffd"
    return _C1.get(num) or chr(num)


def _unescape_attr(value: str) -> str:
    """Character references as the tokenizer decodes them in an attribute value (legacy-name rule)."""
    if "&" not in value:
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if value.count("&") == value.count("&amp;") and "\x00" not in value:
        return value.replace("&amp;", "&")  # the common case, e.g. "?a=1&amp;b=2"

    def repl(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return _numeric(int(m.group(1), 16)) if len(m.group(1)) <= 8 else "\ufffd"
        if m.group(2) is not None:
            return _numeric(int(m.group(2))) if len(m.group(2)) <= 8 else "\ufffd"
        run = m.group(3)
        for k in range(min(len(run), 32), 1, -1):
            name = run[:k]
            if name in _HTML5:
                if not name.endswith(";"):
                    nxt = run[k] if k < len(run) else value[m.end()] if m.end() < len(value) else ""
                    if nxt == "=" or (nxt.isascii() and nxt.isalnum()):
                        return m.group()  # attribute-value rule: left as written
                return _HTML5[name] + run[k:]
        return m.group()

    return _CHARREF.sub(repl, value).replace("\x00", "\ufffd")


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _percent_encode_bytes(data: bytes) -> str:
    """WHATWG "percent-encode after encoding" with the special-query set: ASCII bytes of a multi-byte
    character (GB18030 digits, a Shift_JIS or Big5 trail byte such as "\\") stay as they are."""
    if min(data) >= 0x80:
        return "%" + data.hex("%").upper()
    return "".join(f"%{b:02X}" if b < 0x21 or b > 0x7E or b in b"\"#<>'" else chr(b) for b in data)


def _percent_encode_query(url: str, codec: str) -> str:
    """Encode a non-ASCII query the way the document's encoding would (WHATWG URL, "encoding")."""
    q = url.find("?")
    h = url.find("#")
    if q < 0 or (0 <= h < q):
        return url
    end = h if h > q else len(url)
    query = url[q + 1:end]
    if query.isascii():
        return url

    def encode_run(m: re.Match[str]) -> str:
        run = m.group()
        try:
            return _percent_encode_bytes(run.encode(codec))
        except UnicodeEncodeError:  # unmappable characters become "&#N;", percent-encoded
            parts = []
            for ch in run:
                try:
                    parts.append(_percent_encode_bytes(ch.encode(codec)))
                except UnicodeEncodeError:
                    parts.append("%80" if ch == "\u20ac" and codec == "gbk" else f"%26%23{ord(ch)}%3B")
            return "".join(parts)

    return url[: q + 1] + _NON_ASCII_RUN.sub(encode_run, query) + url[end:]


_WS = "\t\n\f\r "


def refresh_url(content: str) -> tuple[str, str] | None:
    """HTML "shared declarative refresh steps": (time text, URL text) or None when there is no URL."""
    pos, n = 0, len(content)
    while pos < n and content[pos] in _WS:
        pos += 1
    t0 = pos
    while pos < n and content[pos].isascii() and content[pos].isdigit():
        pos += 1
    if pos == t0 and not content.startswith(".", pos):
        return None
    while pos < n and (content[pos] == "." or (content[pos].isascii() and content[pos].isdigit())):
        pos += 1
    time_text = content[t0:pos]
    if pos < n:
        if content[pos] not in _WS + ";,":
            return None
        while pos < n and content[pos] in _WS:
            pos += 1
        if pos < n and content[pos] in ";,":
            pos += 1
        while pos < n and content[pos] in _WS:
            pos += 1
    if pos >= n:
        return None
    url_start = pos

    def skip_quotes(p: int) -> str:
        quote = ""
        if p < n and content[p] in "'\"":
            quote = content[p]
            p += 1
        rest = content[p:]
        if quote and quote in rest:
            rest = rest[: rest.index(quote)]
        return rest

    if content[pos] in "Uu":
        pos += 1
        if pos < n and content[pos] in "Rr":
            pos += 1
            if pos < n and content[pos] in "Ll":
                pos += 1
                while pos < n and content[pos] in _WS:
                    pos += 1
                if pos < n and content[pos] == "=":
                    pos += 1
                    while pos < n and content[pos] in _WS:
                        pos += 1
                    return time_text, skip_quotes(pos)
        return time_text, content[url_start:]
    return time_text, skip_quotes(pos)


# ---------------------------------------------------------------- rewriting

@dataclass(frozen=True, slots=True)
class ResolvedLink:
    kind: LinkKind
    value: str  # the attribute value as the DOM holds it
    href: str | None  # WHATWG serialisation, None when it does not parse
    host: str  # "" when none
    external: bool
    rewritten: bool


@dataclass(frozen=True, slots=True)
class RewriteResult:
    body: bytes
    rewritten: int  # attribute values replaced
    encoding: str  # WHATWG name of the encoding used
    links: int = 0  # navigation attributes examined one by one (same-host <a href="…"> skipped in bulk: not counted)
    exact: bool = True  # False only when a stateful encoding forced a whole re-encode
    base_url: str | None = None
    found: tuple[ResolvedLink, ...] = ()  # filled when ``collect=True``


# Values that cannot leave the base's host, checked on the raw bytes: after stripping, either only a
# query/fragment, or a path-absolute URL not starting "//" (or "/\\", or "/" + a removable tab or
# newline, or a character reference), or a path-relative one whose first segment has no ":" (no
# scheme). Backslashes and character references before the query send the value to the full path.
_SAME_HOST = re.compile(
    rb"[\x00-\x20]*+(?:"
    rb"[?#].*"
    rb"|/(?![/\\\t\n\r&])[^?#\\\t\n\r&]*+(?:[?#].*)?"
    rb"|[^:/?#\\\t\n\r&\x00-\x20][^:/?#\\\t\n\r&]*+(?:/[^?#\\\t\n\r&]*+)?(?:[?#].*)?"
    rb")?\Z",
    re.DOTALL,
)
# An http(s) or scheme-relative URL whose host is spelled plainly (letters, digits, dots, hyphens) and
# ends at a port, "/", "?", "#" or the end: its host is that text, lower-cased. Only used to say
# "internal" early; anything else, and every external host, goes through the full WHATWG parse.
_PLAIN_HOST = re.compile(
    rb"[\x00-\x20]*+(?:[Hh][Tt][Tt][Pp][Ss]?:)?//([A-Za-z0-9.-]++)(?::[0-9]*+)?(?:[/?#]|[\x00-\x20]*+\Z)"
)
_URL_KINDS = frozenset({LinkKind.HREF, LinkKind.ACTION, LinkKind.FORMACTION})  # values that are one URL
_ATTR_ESCAPES = {"&": "&amp;", '"': "&quot;", "'": "&#39;", "<": "&lt;", ">": "&gt;", "\t": "&#9;", "\n": "&#10;",
                 "\r": "&#13;", "\f": "&#12;", " ": "&#32;"}


def host_of_href(href: str) -> str:
    """The host of a WHATWG-serialised URL ("" if none): one C call to ada instead of three.

    In a serialisation the first ":" ends the scheme, "//" follows it exactly when there is a host,
    and userinfo has "@", "/", "?" and "#" percent-encoded, so the authority is plain to cut out.
    """
    colon = href.find(":")
    if colon < 0 or not href.startswith("//", colon + 1):
        return ""
    start = colon + 3
    end = len(href)
    for ch in "/?#":
        j = href.find(ch, start, end)
        if j >= 0:
            end = j
    at = href.rfind("@", start, end)
    if at >= 0:
        start = at + 1
    if href.startswith("[", start):
        return href[start:href.index("]", start) + 1]
    port = href.rfind(":", start, end)
    return href[start:port if port >= 0 else end]


class _Resolver:
    __slots__ = ("base", "cache", "classifier", "codec", "collect", "depth", "document_url", "fast",
                 "make_leave_url", "out_codec", "url_codec")

    def __init__(self, base: str | None, classifier: HostClassifier, make_leave_url: Callable[[str], str],
                 codec: str, url_codec: str, document_url: str = "", collect: bool = False, depth: int = 0) -> None:
        self.base = base
        self.depth = depth
        self.document_url = document_url
        self.classifier = classifier
        self.make_leave_url = make_leave_url
        self.codec = codec
        self.url_codec = url_codec
        self.collect = collect
        self.out_codec = "gb18030" if codec == "gb18030" else codec  # bytes written back into the page
        self.cache: dict[tuple[LinkKind, bytes], tuple[bytes | None, ResolvedLink | None]] = {}
        self.fast = False
        if base is not None:
            try:
                b = ada_url.URL(base)
            except ValueError:
                b = None
            self.fast = b is not None and b.protocol in ("http:", "https:") and not classifier.is_external(b.hostname)

    def resolve(self, url_text: str) -> tuple[str | None, str]:
        if self.url_codec != "utf-8" and not url_text.isascii():
            url_text = _percent_encode_query(url_text, self.url_codec)
        try:
            href = ada_url.join_url(self.base, url_text) if self.base is not None else ada_url.normalize_url(url_text)
        except ValueError:
            # Rejected by the spec, yet Chromium may go there (a host holding U+FF05). Off the hot path.
            chromium = self._chromium_href(url_text)
            if chromium is None:
                return None, ""
            href = chromium
        return href, host_of_href(href)

    def _chromium_href(self, url_text: str) -> str | None:
        """Where Chromium goes for a URL the spec rejects (``chromium_reading``), or None: it goes nowhere."""
        base = self.base
        chromium = chromium_reading(url_text, base[:base.find(":")] if base is not None else None)
        if chromium is None:
            return None
        try:
            return ada_url.join_url(base, chromium) if base is not None else ada_url.normalize_url(chromium)
        except ValueError:
            return None  # Chromium's reading fails the spec as well (e.g. a bad port): no host is reached

    def handle(self, kind: LinkKind, buf: bytes, start: int, end: int) -> tuple[bytes | None, ResolvedLink | None]:
        key = (kind, buf[start:end])
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = self._quick(kind, buf, start, end) or self._handle(kind, key[1])
        return hit

    def _quick(self, kind: LinkKind, buf: bytes, start: int, end: int) -> tuple[None, ResolvedLink | None] | None:
        """(None, info) when the raw value surely stays on an internal host (no full parse needed), else None."""
        if self.fast and kind in _URL_KINDS:
            if _SAME_HOST.match(buf, start, end):
                return None, self._quick_info(kind, buf, start, end)
            m = _PLAIN_HOST.match(buf, start, end)
            if m is not None and not self.classifier.is_external(m.group(1).decode("ascii").lower()):
                return None, self._quick_info(kind, buf, start, end)
        return None

    def _srcdoc(self, value: str) -> bytes | None:
        """Rewrite the document inside ``<iframe srcdoc>`` (its URL is about:srcdoc, its fallback base ours)."""
        inner = value.encode("utf-8", "surrogatepass")
        enc = Encoding(name="UTF-8", codec="utf-8", source=EncodingSource.HTTP)
        plan = _plan(inner, 0, enc, "utf-8", "about:srcdoc", self.classifier, self.make_leave_url, False,
                     fallback_base=self.base, depth=self.depth + 1)
        if not plan.replacements:
            return None
        text = _apply(inner, plan.replacements).decode("utf-8", "surrogatepass")
        # Written back as an attribute value: escaped so that any quoting (or none) reads back the same.
        escaped = "".join(_ATTR_ESCAPES.get(ch, ch) for ch in text)
        return escaped.encode(self.out_codec, "xmlcharrefreplace")

    def _quick_info(self, kind: LinkKind, buf: bytes, start: int, end: int) -> ResolvedLink | None:
        if not self.collect:
            return None
        return ResolvedLink(kind, _unescape_attr(buf[start:end].decode(self.codec, "replace")), None, "", False, False)

    def _info(self, kind: LinkKind, value: str, href: str | None, host: str, external: bool) -> ResolvedLink | None:
        return ResolvedLink(kind, value, href, host, external, external) if self.collect else None

    def _handle(self, kind: LinkKind, raw: bytes) -> tuple[bytes | None, ResolvedLink | None]:
        value = _unescape_attr(raw.decode(self.codec, "replace"))
        if kind is LinkKind.SRCDOC:
            return self._srcdoc(value), None
        if kind is LinkKind.REFRESH:
            parsed = refresh_url(value)
            if parsed is None:
                return None, self._info(kind, value, None, "", False)
            time_text, url_text = parsed
        else:
            time_text, url_text = "", value
        if kind in (LinkKind.ACTION, LinkKind.FORMACTION) and value == "":
            # HTML form submission: an empty action means the document's own URL (not the base URL).
            url_text = self.document_url
        href, host = self.resolve(url_text)
        # Only http(s) destinations are ever signed: others (javascript:, data:, ftp:, ws:...) stay as written.
        if href is None or not host or not href.startswith(("http:", "https:")):
            return None, self._info(kind, value, href, host, False)
        # Art. 15 (第十五条): a link that leaves for a non-government site goes through the warning page.
        if not self.classifier.is_external(host):
            return None, self._info(kind, value, href, host, False)
        new = self.make_leave_url(href)
        if kind is LinkKind.REFRESH:
            new = f"{time_text or '0'};url={new}"
        # "&" written as "&amp;" so that the browser reads back exactly ``new``, whatever the quoting.
        return new.replace("&", "&amp;").encode("ascii"), self._info(kind, value, href, host, True)


def rewrite_html(body: bytes, *, content_type: str | None, document_url: str, classifier: HostClassifier,
                 make_leave_url: Callable[[str], str], collect: bool = False,
                 encoding: Encoding | None = None) -> RewriteResult:
    """Rewrite every external navigation URL in ``body``; all other bytes stay as they were.

    ``document_url`` is the URL the browser loaded the page from; its host counts as internal.
    ``make_leave_url(href)`` returns the (ASCII) warning-page URL for an absolute destination.
    With ``collect`` the result lists every navigation attribute examined (for tests and diagnostics).
    """
    enc = encoding or sniff_encoding(body, content_type)
    if enc.name == "replacement":
        return RewriteResult(body, 0, enc.name)  # the browser shows one U+FFFD: nothing to follow
    try:
        doc_host = ada_url.URL(document_url).hostname
    except ValueError:
        doc_host = ""
    if doc_host:
        classifier = classifier.with_internal(doc_host)
    if enc.byte_scannable:
        plan = _plan(body, enc.bom_length, enc, enc.codec, document_url, classifier, make_leave_url, collect)
        out = _apply(body, plan.replacements) if plan.replacements else body
        return RewriteResult(out, len(plan.replacements), enc.name, plan.links, True, plan.base, plan.found)
    errors = "surrogatepass" if enc.name.startswith("UTF-16") else "replace"
    text = body[enc.bom_length:].decode(enc.codec, errors)
    utf8 = text.encode("utf-8", "surrogatepass")
    plan = _plan(utf8, 0, enc, "utf-8", document_url, classifier, make_leave_url, collect)
    if not plan.replacements:
        return RewriteResult(body, 0, enc.name, plan.links, True, plan.base, plan.found)
    if enc.name.startswith("UTF-16"):
        out = _apply_utf16(utf8, body, enc, plan.replacements)
        return RewriteResult(out, len(plan.replacements), enc.name, plan.links, True, plan.base, plan.found)
    # ISO-2022-JP is stateful: re-encode the whole document (same text, possibly different escapes).
    reencoded = _apply(utf8, plan.replacements).decode("utf-8", "surrogatepass").encode(enc.codec, "xmlcharrefreplace")
    return RewriteResult(body[: enc.bom_length] + reencoded, len(plan.replacements), enc.name, plan.links, False,
                         plan.base, plan.found)


def rewrite_xhtml(body: bytes, *, content_type: str | None, document_url: str, classifier: HostClassifier,
                  make_leave_url: Callable[[str], str], collect: bool = False) -> RewriteResult:
    """``rewrite_html`` for ``application/xhtml+xml``: the same rewriting over a conservative XML scan.

    Raises ``RewriteRefused`` for what it cannot vouch for (a non-ASCII-compatible encoding, markup
    that is not well-formed, an internal DTD subset, two ``base`` elements): fail closed.
    """
    enc = sniff_xml_encoding(body, content_type)
    if not enc.byte_scannable:
        raise RewriteRefused(RefusalReason.XHTML)
    try:
        doc_host = ada_url.URL(document_url).hostname
    except ValueError:
        doc_host = ""
    if doc_host:
        classifier = classifier.with_internal(doc_host)
    plan = _plan(body, enc.bom_length, enc, enc.codec, document_url, classifier, make_leave_url, collect, xml=True)
    out = _apply(body, plan.replacements) if plan.replacements else body
    return RewriteResult(out, len(plan.replacements), enc.name, plan.links, True, plan.base, plan.found)


@dataclass(frozen=True, slots=True)
class _Plan:
    replacements: list[tuple[int, int, bytes]]
    links: int
    base: str | None
    found: tuple[ResolvedLink, ...]


def _plan(buf: bytes, start: int, enc: Encoding, codec: str, document_url: str, classifier: HostClassifier,
          make_leave_url: Callable[[str], str], collect: bool, *, fallback_base: str | None = None,
          depth: int = 0, xml: bool = False) -> _Plan:
    if depth > MAX_NESTING:
        # Deeper srcdoc documents than any real page has: refused rather than risk the stack (fail closed).
        raise RewriteRefused(RefusalReason.NESTING)
    state = _ScanState()
    # Same-host <a href="..."> values are jumped over in the scan when that is sure to be sound (see below).
    skip_same_host = not (xml or collect)
    if xml:
        _scan_xml(buf, start, len(buf), state)
    else:
        _scan(buf, start, len(buf), state, skip_same_host=skip_same_host)
    base: str | None = fallback_base or document_url
    try:
        ada_url.URL(fallback_base or document_url)
    except ValueError:
        base = None
    if state.base is not None:
        # The frozen base URL: <base href> resolved against the document's URL; on failure, the document URL.
        probe = _Resolver(base, classifier, make_leave_url, codec, enc.url_codec)
        href, _ = probe.resolve(_unescape_attr(state.base.decode(codec, "replace")))
        if href is not None:
            base = href
    resolver = _Resolver(base, classifier, make_leave_url, codec, enc.url_codec, document_url, collect, depth)
    if skip_same_host and not resolver.fast:
        # The base is not an internal http(s) URL, so a relative href may leave: every link must be looked at.
        state = _ScanState()
        _scan(buf, start, len(buf), state)
    found: list[ResolvedLink] = []
    replacements: list[tuple[int, int, bytes]] = []
    handle = resolver.handle
    fast = resolver.fast and not collect
    for kind, start, end, in_template, safe in state.targets:
        if in_template:
            continue  # template contents are inert until a script clones them: left as they are
        if safe and fast:
            continue  # a path or query on this (internal) host
        new, info = handle(kind, buf, start, end)
        if info is not None:
            found.append(info)
        if new is not None:
            replacements.append((start, end, new))
    return _Plan(replacements, len(state.targets), base, tuple(found))


def _apply(buf: bytes, replacements: list[tuple[int, int, bytes]]) -> bytes:
    pieces: list[bytes] = []
    last = 0
    for start, end, new in replacements:
        pieces.append(buf[last:start])
        pieces.append(new)
        last = end
    pieces.append(buf[last:])
    return b"".join(pieces)


def _apply_utf16(utf8: bytes, original: bytes, enc: Encoding, replacements: list[tuple[int, int, bytes]]) -> bytes:
    """Apply replacements found in the UTF-8 transcoding to the original UTF-16 bytes."""
    codec = "utf-16-le" if enc.name == "UTF-16LE" else "utf-16-be"

    def width(a: int, b: int) -> int:
        return len(utf8[a:b].decode("utf-8", "surrogatepass").encode(codec, "surrogatepass"))

    pieces: list[bytes] = []
    src = enc.bom_length
    last = 0
    for start, end, new in replacements:
        keep = width(last, start)
        pieces.append(original[src:src + keep])
        src += keep + width(start, end)
        pieces.append(new.decode("utf-8", "surrogatepass").encode(codec, "surrogatepass"))
        last = end
    pieces.append(original[src:])
    return original[: enc.bom_length] + b"".join(pieces)
