"""Where the links are in an HTML or XHTML document's bytes: the scanner behind outbound-link warnings (Art. 15).

Owns finding, in the raw bytes, every ``a``/``area`` ``href``, ``form`` ``action``,
``button``/``input`` ``formaction``, ``<meta http-equiv=refresh>`` URL and ``<iframe srcdoc>``
document that an HTML parser would see (``ScanState.targets``, as byte offsets), and the document's
first ``<base href>``. What the values mean (resolving, classifying, replacing) is ``link_rewrite``'s job.

Why a hand-written scanner: a DOM library re-serialises the page (not byte-exact) and is slow.
The HTML tokenizer's structure is small enough to follow with compiled regular expressions over
bytes: tags (quoted, single-quoted, unquoted attributes; a tag only ends at a ``>`` outside a
quoted value), comments (with ``<!-->`` and ``--!>``), bogus comments (``<!``, ``<?``, ``</x``),
raw text (``script`` with its escape states, ``style``, ``xmp``, ``iframe``, ``noembed``,
``noframes``, ``noscript`` as Chromium parses it with scripting on), RCDATA (``textarea``,
``title``), ``plaintext``, foreign content (``svg``/``math``, where those are ordinary elements and
``<![CDATA[`` is a real section; left only where the tree builder surely leaves it) and
``template`` (its contents scanned: inert in current browsers, live in Internet Explorer, which has none; a
declarative shadow root's are live everywhere). Internet Explorer's conditional comments are read both ways
(``_conditional``).
Text and tags that cannot matter are jumped over inside the regex engine (``_FAST``), a tag's name
told plain by a trie of byte classes (``_plain_names_trie``); the same jumps are made in C when
``govgate._jumps`` is built (``Scanners.step``), stopping exactly where the patterns stop.
Nesting (``srcdoc`` in ``srcdoc``) is capped at ``MAX_NESTING``; past it, and wherever the scan cannot tell what
the browser does, ``RewriteRefused`` is raised so the caller fails closed.
``noscript`` content is additionally scanned as markup, so a browser with scripting off is
protected too; with scripting on it is text and the change is invisible. Where the two readings part (a
``<base>`` in it, or its first ``</noscript`` hidden from the markup reading), the scan refuses.

``scan_xml`` walks XHTML by XML rules, conservatively. ``unescape_attr`` decodes character
references in an attribute value as the tokenizer does.

In every encoding a browser treats as ASCII-compatible for markup (UTF-8, GBK, GB18030, Big5,
Shift_JIS, EUC-*, single-byte), the bytes ``< > " ' = /`` and whitespace are never part of a
multi-byte character, so scanning bytes is exact; other encodings are transcoded by the caller.
"""

from __future__ import annotations

import functools
import html.entities
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

try:
    from govgate._jumps import Jumps, script_end, table_or_select
except ImportError:  # not built (no C compiler at install): the patterns alone, slower, the same result
    Jumps = None  # type: ignore[assignment,misc]
    script_end = None  # type: ignore[assignment]
    table_or_select = None  # type: ignore[assignment]
JUMPS_IN_C = Jumps is not None  # whether ``govgate._jumps`` is built (``serve`` warns when it is not)


class LinkKind(StrEnum):
    HREF = "href"
    ACTION = "action"
    FORMACTION = "formaction"
    REFRESH = "refresh"
    SRCDOC = "srcdoc"  # <iframe srcdoc>: a whole document whose links are rewritten in turn


# ---------------------------------------------------------------- tokenizer patterns (bytes)

_WSC = rb"\t\n\f\r "
_NAME = rb"[^\t\n\f\r />][^\t\n\f\r />=]*+"
_VAL = rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)"
# After a name, a "=" always starts its value (the tokenizer's "after attribute name" state): a value left open (a
# quote with no end before the scan's ``stop``) fails the attribute, so a bounded scan runs off there, rather than
# taking that "=" as the start of another attribute's name (which only a "=" before any name can be).
_ATTR = rb"(?>" + _NAME + rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VAL + rb"|(?![\t\n\f\r ]*+=)))"
# attributes then ">"; group "tail" holds the separator before ">" (ends with "/" ⇔ self-closing)
_ATTRS_END = rb"(?:[\t\n\f\r /]*+" + _ATTR + rb")*+(?P<tail>[\t\n\f\r /]*+)>"
_TAGNAME = rb"[A-Za-z][^\t\n\f\r />]*+"

_SPECIAL_NAMES = (
    rb"a|area|form|button|input|meta|base|script|style|textarea|title|xmp|iframe|noembed|noframes|noscript"
    rb"|plaintext|template|svg|math|select|isindex"
)


def _names_trie(names: list[bytes]) -> bytes:
    """A regex matching exactly ``names``, ASCII case-insensitively, as a trie of character classes.

    The same language as ``(?i:n1|n2|...)``, but the engine rejects a name at its first differing
    letter instead of trying every alternative. The scan itself uses its complement (``_plain_names_trie``);
    this one is the plain statement of the special names that the tests check that complement against.
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


_ANY_END = _ATTRS_END.replace(b"?P<tail>", b"?:")
# The common shape of a tag's rest (` name="v"`, ` name='v'`, ` name=v`, ` name`, then `>` or `/>`): a strict
# subset of the grammar above that ends the tag at the same `>`, tried first because it is cheaper. (The name's
# class is spelled out: the same bytes as ``[-\w:.]`` in a bytes pattern, but a range test, not a category one.)
_SIMPLE_END = (
    rb"(?:[\t\n\f\r ]++[A-Za-z_:][-A-Za-z0-9_:.]*+(?:=(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'=<`]++))?+)*+"
    rb"[\t\n\f\r ]*+/?>"
)
# Cheaper still, tried before it: double-quoted values only, the text between them taken as runs instead of
# attribute by attribute (the regex engine's cost is per repetition, not per byte). Exact by the tokenizer's
# states: a "=" is a value's only after an attribute name, so the run before it holds a name character and no
# "/" (after "/" or a closing quote, or with only whitespace before it, a "=" starts a name); quotes and "<"
# send the tag to the grammars below. What follows the last value (names, whitespace, "/") ends at the first ">".
_RUN_END = (
    rb"(?:[\t\n\f\r ]*+[^\"'=<>/\t\n\f\r ][^\"'=<>/]*+=\"[^\"]*+\")*+[^\"'=<>]*+>"
)
_TAG_ENDS = rb"(?:" + _RUN_END + rb"|" + _SIMPLE_END + rb"|" + _ANY_END + rb")"
def _plain_names_trie(special: list[bytes], prefix: bytes = b"") -> bytes:
    """A regex matching a whole tag name (``[A-Za-z][^\\t\\n\\f\\r />]*``) that is none of ``special`` (ASCII
    case-insensitively), as a trie of character classes: the complement of ``_names_trie``'s language.

    At each node the name goes on to a child, or leaves every special name with a character no child starts
    with (and is then plain whatever follows), or ends there if the node itself is not special. Only positive
    character classes, so the engine's branch test skips a wrong alternative at its first byte, and no lookahead
    (the former ``(?!trie)`` cost about 120 ns per ``<span``).
    """
    children = sorted({n[len(prefix):len(prefix) + 1].lower() for n in special
                       if n.startswith(prefix) and len(n) > len(prefix)})
    cases = b"".join(c + c.upper() for c in children)
    if prefix:
        alternatives = [b"[^" + cases + rb"\t\n\f\r />][^\t\n\f\r />]*+"]  # leaves every special name
    else:
        letters = bytes(c for c in b"abcdefghijklmnopqrstuvwxyz" if bytes([c]) not in children)
        alternatives = [b"[" + letters + letters.upper() + rb"][^\t\n\f\r />]*+"]
    # Children in the order of common plain names (span, td, p, img, b...); the order changes no match.
    children.sort(key=lambda c: (b"stpibafmnx".find(c) % 99, c))
    alternatives += [b"[" + c + c.upper() + b"]" + _plain_names_trie(special, prefix + c) for c in children]
    if prefix and prefix not in special:
        alternatives.append(rb"(?=[\t\n\f\r />])")  # the name ends here
    return b"(?:" + b"|".join(alternatives) + b")"


# Start tags that cannot matter (their names are not special), after the "<".
_PLAIN_START = _plain_names_trie(_SPECIAL_NAMES.split(b"|")) + _TAG_ENDS
# End tags that cannot matter, after the "<".
_PLAIN_END = rb"/" + _plain_names_trie([b"template", b"svg", b"math", b"select"]) + rb"(?:>|" + _ANY_END + rb")"
# Jump over text and every tag that cannot matter, inside the regex engine (text runs unrolled; the "<" is
# taken once, so that each alternative is told apart by its first byte).
_SKIP = re.compile(rb"[^<]*+(?:<(?:" + _PLAIN_END + rb"|" + _PLAIN_START + rb"|(?![A-Za-z!/?]))[^<]*+)*+")
_TAG_OPEN = re.compile(rb"<(/?)(" + _TAGNAME + rb")")
_TAG_REST = re.compile(_ATTRS_END)
_ATTR_ITER = re.compile(
    rb"[\t\n\f\r /]*+(?:(?P<name>" + _NAME + rb")(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+"
    rb"(?:\"(?P<dq>[^\"]*+)\"|'(?P<sq>[^']*+)'|(?P<uq>(?![\"'])[^\t\n\f\r >]*+))|(?![\t\n\f\r ]*+=)))?"
)


# A double-quoted value that cannot leave the base's host (see ``link_rewrite._SAME_HOST``), marked by group ``s``.
# Past the part that decides, the rest of the value is one ``[^"]*+``: the regex engine runs a single-byte loop
# for that, where a class of several bytes costs a call per byte (about 5 ns: most of a link's time in the scan).
_SAFE_DQ = (
    rb"[\x00-\x20]*+(?:[?#][^\"]*+"
    rb"|/(?![/\\\t\n\r&])[^\"]*+"
    rb"|[^\":/?#\\\t\n\r&\x00-\x20][^\":/?#\\\t\n\r&]*+(?:[/?#][^\"]*+)?+)?+"
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
        + rb"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)|(?![\t\n\f\r ]*+=)))?+" + rest
    )


_FIRST_HREF = re.compile(_first_attr_src(b"href"))
_FIRST_ACTION = re.compile(_first_attr_src(b"action"))
_FIRST_FORMACTION = re.compile(_first_attr_src(b"formaction"))
_FIRST_SRCDOC = re.compile(_first_attr_src(b"srcdoc"))
_TARGET_PATTERNS: dict[bytes, tuple[re.Pattern[bytes], LinkKind]] = {}
# The hot path: skip to the next tag that matters and, when it is <a>/<area>, take it whole in one call.
_A_TAG = _first_attr_src(b"href", _TAG_ENDS, safe=True)
_FAST = re.compile(_SKIP.pattern + rb"(?P<a><(?i:a|area)(?=[\t\n\f\r />])" + _A_TAG + rb")?")
# An <a>/<area> whose first href is a double-quoted value that cannot leave the base's host (``_SAFE_DQ``), after
# the "<". Tried first: href as the first attribute (the common spelling), then the general case; atomic, so that
# a value that is not safe (a link the scan stops at) is not tested twice.
_SAFE_A = (
    rb"[aA](?:[rR][eE][aA])?+(?>[\t\n\f\r ]++(?=[Hh][Rr][Ee][Ff][\t\n\f\r =])"
    rb"|(?=[\t\n\f\r />])(?:[\t\n\f\r /]*+(?!(?i:href)[\t\n\f\r />=])" + _ATTR + rb")*+[\t\n\f\r /]*+)"
    rb"(?i:href)[\t\n\f\r ]*+=[\t\n\f\r ]*+\"" + _SAFE_DQ + rb"\""
    + _TAG_ENDS
)
# ``_FAST`` that also jumps over those <a>/<area> tags, inside the regex engine: most of a portal's links
# are paths on its own site, and with an internal base they need no look at all. Only valid when the
# base turns out to be an internal http(s) URL (``link_rewrite._Resolver.fast``); ``link_rewrite._plan``
# scans again otherwise.
# Its jumps alone (``_SKIP`` over those <a>/<area> tags too): where ``govgate._jumps``'s same-host jumps stop.
_SKIP_SAME_HOST = re.compile(
    _SKIP.pattern.replace(b"<(?:" + _PLAIN_END + b"|", b"<(?:" + _SAFE_A + b"|" + _PLAIN_END + b"|", 1))
_FAST_SKIP_SAME_HOST = re.compile(
    _SKIP_SAME_HOST.pattern
    # An <a> the jumps stop at is one ``_SAFE_A`` did not take: its value is not tested for safety again.
    + rb"(?P<a><(?i:a|area)(?=[\t\n\f\r />])" + _A_TAG.replace(_SAFE_DQ, rb"(?!)") + rb")?"
)
assert _FAST_SKIP_SAME_HOST.pattern.count(_SAFE_DQ) == 1, "the value test is only in the jumps over <a>"
assert _FAST_SKIP_SAME_HOST.pattern != _FAST.pattern, "the <a> alternative was not added"
assert _FAST_SKIP_SAME_HOST.groupindex == _FAST.groupindex
_S = _FAST.groupindex["s"]
_A = _FAST.groupindex["a"]
_V = _FAST.groupindex["v"]


@dataclass(frozen=True, slots=True)
class Scanners:
    """The hot path's patterns (``_FAST`` and ``_FAST_SKIP_SAME_HOST``, or the same with more "safe" values) and the
    same jumps in C (``govgate._jumps``), when built: ``scan_html`` jumps with those and reads on with the patterns
    from where they stop, which is where the patterns' own jumps stop (tests/outbound/test_native_jumps.py)."""

    fast: re.Pattern[bytes]
    skip_same_host: re.Pattern[bytes]
    jumps: Jumps | None = None

    def step(self, same_host: bool) -> Step:
        """One step of the scan's hot loop: the jumps, then the <a>/<area> the pattern takes there (``Step``)."""
        if self.jumps is not None:
            return self.jumps.same_host_link if same_host else self.jumps.plain_link
        return _pattern_step(self.skip_same_host if same_host else self.fast)


# (buf, pos, stop) -> (end, value start, value end, safe): text and tags jumped over from ``pos``, then the <a>/<area>
# there, with its first href's value (without quotes; start -1 when it has none) and whether the pattern took that
# value for safe (its group ``s``). Start -2: no <a>/<area> taken (stopped before what needs a closer look, or at
# ``stop``), ``end`` where the jumps stopped.
type Step = Callable[[bytes, int, int], tuple[int, int, int, bool]]


def _pattern_step(pattern: re.Pattern[bytes]) -> Step:
    """``Step`` by ``pattern`` (``_FAST`` or alike) alone: what ``govgate._jumps`` does in C."""
    match = pattern.match

    def step(buf: bytes, pos: int, stop: int) -> tuple[int, int, int, bool]:
        f = match(buf, pos, stop)
        assert f is not None  # every part of the pattern is optional
        if f.start(_A) < 0:
            return f.end(), -2, 0, False
        vs, ve = f.span(_V)
        if ve > vs >= 0 and buf[vs] in _QUOTES:
            vs += 1
            ve -= 1
        return f.end(), vs, ve, f.start(_S) >= 0

    return step


# One DNS-style label (letters, digits, inner hyphens, no IDNA "xn--" prefix): the C jumps spell it out (``label``).
_LABEL = rb"(?![Xx][Nn]--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


@dataclass(frozen=True, slots=True)
class PlainHosts:
    """Hosts a classifier calls internal when spelled plainly (``HostClassifier.plain_internal_hosts``), lower case:
    these ``exact`` hosts; up to 16 labels then one of the ``suffixes``; 1 to 17 labels then one of the ``wild``
    (``*.example.cn`` is ``example.cn`` here). A label is ``_LABEL``."""

    exact: tuple[bytes, ...] = ()
    suffixes: tuple[bytes, ...] = ()
    wild: tuple[bytes, ...] = ()

    def pattern(self) -> bytes:
        """A regex (bytes) matching, as a whole, exactly these hosts, ASCII case-insensitively; nothing if none."""
        def lit(name: bytes) -> bytes:
            return rb"(?i:" + re.escape(name) + rb")"

        labels = rb"(?:" + _LABEL + rb"\.){0,16}"

        def ends_with(name: bytes) -> bytes:
            # The whole run of host characters ends with the suffix: checked before the labels are tried one
            # by one, so that a host under no suffix (most external links) is refused at once.
            return rb"(?=[A-Za-z0-9.-]*+(?<=" + lit(name) + rb"))"

        parts = [lit(h) for h in self.exact]
        parts += [ends_with(s) + labels + lit(s) for s in self.suffixes]
        parts += [ends_with(w) + labels + _LABEL + rb"\." + lit(w) for w in self.wild]
        return b"|".join(parts) if parts else rb"(?!)"


def _jumps(hosts: PlainHosts) -> Jumps | None:
    return None if Jumps is None else Jumps(hosts.exact, hosts.suffixes, hosts.wild)


DEFAULT_SCANNERS = Scanners(_FAST, _FAST_SKIP_SAME_HOST, _jumps(PlainHosts()))


@functools.lru_cache(maxsize=32)
def scanners_for(hosts: PlainHosts) -> Scanners:
    """``_FAST`` and ``_FAST_SKIP_SAME_HOST`` whose "safe" values also include a double-quoted http(s) or
    scheme-relative URL whose plainly spelled host is one of ``hosts`` (which the caller vouches for: each is
    internal, as ``link_rewrite._PLAIN_HOST`` reads it), so a portal's links to its own government sites are jumped
    over without a look too (``docs/outbound-links.md``, "Speed"). Built once per set of internal hosts."""
    # The same shape as ``link_rewrite._PLAIN_HOST``, inside a double-quoted value: the host ends at a port,
    # "/", "?", "#", or the value's end (after C0 controls or spaces, which the URL parser strips).
    # Spelled as two alternatives (with a scheme, scheme-relative) that each start with a plain byte class, so
    # that the engine rejects either at a value's first byte.
    rest = rb"(?:" + hosts.pattern() + rb")(?::[0-9]*+)?+(?:[/?#][^\"]*+|[\x00-\x20]*+(?=\"))"
    internal = rb"[Hh][Tt][Tt][Pp][Ss]?+://" + rest + rb"|//" + rest
    safe_dq = _SAFE_DQ.replace(rb"[\x00-\x20]*+(?:", rb"[\x00-\x20]*+(?:" + internal + rb"|", 1)
    assert safe_dq != _SAFE_DQ, "the internal-host alternative was not added"
    fast = re.compile(_FAST.pattern.replace(_SAFE_DQ, safe_dq))
    skip = re.compile(_FAST_SKIP_SAME_HOST.pattern.replace(_SAFE_DQ, safe_dq))
    assert fast.groupindex == _FAST.groupindex
    assert skip.groupindex == _FAST.groupindex
    return Scanners(fast, skip, _jumps(hosts))

_COMMENT_END = re.compile(rb"--!?>")
_SCRIPT_DATA = re.compile(rb"</(?i:script)[\t\n\f\r />]|<!--")
_SCRIPT_ESCAPED = re.compile(rb"-->|</(?i:script)[\t\n\f\r />]|<(?i:script)[\t\n\f\r />]")
_SCRIPT_DOUBLE = re.compile(rb"-->|</(?i:script)[\t\n\f\r />]")
_RAW_END = {
    name: re.compile(rb"</(?i:" + name + rb")[\t\n\f\r />]")
    for name in (b"style", b"xmp", b"iframe", b"noembed", b"noframes", b"noscript", b"textarea", b"title")
}
_QUOTES = (0x22, 0x27)
_TABLE_OR_SELECT = re.compile(rb"<(?i:table|select)[\t\n\f\r />]")
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
# HTML and MathML text integration points, by the namespace of the foreign content they are in: an <svg> or <math>
# inside the other (with no integration point between) is an element of the outer one's namespace, and so is
# everything in it. ``annotation-xml`` only with an HTML ``encoding`` (``_html_annotation``).
_INTEGRATION = {
    b"svg": frozenset(b"foreignobject desc title".split()),
    b"math": frozenset(b"mi mo mn ms mtext annotation-xml".split()),
}
_NO_INTEGRATION: frozenset[bytes] = frozenset()
_MATHML_TEXT = frozenset(b"mi mo mn ms mtext".split())  # MathML text integration points


def _integration_points(foreign: list[bytes]) -> frozenset[bytes]:
    """The integration points of the foreign content the open roots ``foreign`` make: the outermost root's namespace's
    (an <svg> in <math>, or a <math> in <svg>, with no integration point between, is an element of the outer
    namespace; the one exception, an <svg> right in an <annotation-xml>, is refused by the scan)."""
    return _INTEGRATION.get(foreign[0], _NO_INTEGRATION)


_RAW_TEXT_NAMES = frozenset(b"style xmp iframe noembed noframes noscript textarea title script".split())
_TARGET_PATTERNS.update({
    b"a": (_FIRST_HREF, LinkKind.HREF),
    b"area": (_FIRST_HREF, LinkKind.HREF),
    b"base": (_FIRST_HREF, LinkKind.HREF),
    b"isindex": (_FIRST_ACTION, LinkKind.ACTION),
    b"form": (_FIRST_ACTION, LinkKind.ACTION),
    b"button": (_FIRST_FORMACTION, LinkKind.FORMACTION),
    b"input": (_FIRST_FORMACTION, LinkKind.FORMACTION),
})


# (kind, value start, value end, flag): a plain tuple, made thousands of times per page. (Whether it is inside a
# <template> is not kept: template contents are rewritten too, live in Internet Explorer.)
# The flag: for an <a>/<area> href, the value cannot leave the base's host if the base is an internal http(s) URL;
# for a meta refresh and an iframe's srcdoc, the document's <base> came before it (Chromium resolves those when
# they are inserted, against the base in force then: ``link_rewrite._plan``).
type _Target = tuple[LinkKind, int, int, bool]


MAX_NESTING = 32  # <iframe srcdoc> documents within documents


class RefusalReason(StrEnum):
    NESTING = "nesting"  # srcdoc nested deeper than MAX_NESTING
    AMBIGUOUS_BASE = "ambiguous_base"  # a <base href> the browser may or may not honour
    XHTML = "xhtml"  # an XHTML document the conservative XML scan cannot vouch for
    # A <noscript> whose end a browser with scripting off finds elsewhere than one with scripting on (a "</noscript>"
    # inside an attribute value, a comment or a textarea of its markup): the two would read different documents.
    NOSCRIPT = "noscript"
    # In SVG/MathML, a raw-text element (<style>, <script>, <textarea>...) whose first end tag, where a browser back in
    # HTML would end it, is inside a value, comment or CDATA section as the scan reads it.
    FOREIGN = "foreign_content"
    # An ISO-2022-JP page that is not well-formed (a broken or unknown escape sequence, a byte out of range): Python's
    # decoder and the browser's recover from such bytes differently, and may see different markup after them.
    MALFORMED_ENCODING = "malformed_encoding"
    # A page whose encoding no HTTP charset or BOM fixes (a <meta> in its first 1024 bytes, or none) holding one of
    # ISO-2022-JP's escapes: a browser may still read it as ISO-2022-JP (Chromium honours a <meta charset> later in
    # the head, Firefox and Chromium guess unlabelled pages), where an escape hides markup or shows it.
    UNFIXED_ENCODING = "unfixed_encoding"
    # After a <select>, a raw-text element (<style>, <xmp>, <iframe>, <title>...) whose first end tag is inside a value
    # or comment as markup reads it: a parser that ignores that start tag in a select (HTML before 2025, as in Firefox,
    # Safari and older Chromium) reads it as markup, one that honours it (Chromium 135 on) as raw text.
    SELECT = "select"
    # An Internet Explorer conditional comment (``<!--[if IE]>…<![endif]-->``) whose readings part: markup to IE in
    # document modes up to 9 (the compatibility mode of 360, QQ and other browsers), a comment to every other browser.
    # Its content, as markup, runs off (into a tag, comment or raw text left open), holds a <noscript>, or ends
    # otherwise than at one "<![endif]-->"; or it sits in SVG/MathML.
    CONDITIONAL_COMMENT = "conditional_comment"


class RewriteRefused(Exception):
    """The document cannot be rewritten safely; the caller must not pass it on as it is (fail closed)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(slots=True)
class ScanState:
    targets: list[_Target] = field(default_factory=list)
    base: bytes | None = None  # raw value of the first <base href>
    base_seen: bool = False
    # The scan reached its ``stop`` inside a token, comment, raw text or RCDATA (nothing closed it): what a
    # <noscript>'s markup reading is checked for (``scan_html``); meaningless otherwise.
    ran_off: bool = False
    # A <select> may be open for the older parsers: a raw-text start tag may be ignored (``scan_html``). Set at every
    # <select>; cleared only by a </select> outside templates and <noscript> (``scan_html``).
    select: bool = False
    # Where the first "<table" or "<select" of the buffer starts, once found (-1 until then; after a resume with
    # one before, a position before the resume point); none starts before ``table_free_to``
    # (``_table_or_select_before``).
    table_at: int = -1
    table_free_to: int = 0


def _ended(state: ScanState, nested: int, foreign: list[bytes], templates: list[bool]) -> int:
    """A scan's end (-1) at ``stop`` between tokens. In <noscript> (``nested``) SVG/MathML or a template left open
    counts as running off: with scripting off the browser stays in it past the "</noscript", where one with scripting
    on (and this scan) reads raw text as raw text."""
    if nested and (foreign or templates):
        state.ran_off = True
    return -1


class _RawChecks:
    """What one scan's raw-text checks (``_raw_text_agrees``) have done, so that their work stays linear in the page.

    ``probed``: the ends checked (each is checked once). ``found[name]``: (from, limit, end) of the last search for an
    end of ``name``: from any position in [from, limit] the search finds the same end (for a raw-text element, the
    first end tag, so limit = end; for a script, whose end follows from its first "</script" or "<!--", limit is that
    first one). ``budget``: bytes the searches and checks may still read, a bound for any page that defeats both.
    """

    __slots__ = ("budget", "found", "probed")

    def __init__(self, size: int) -> None:
        self.probed: set[int] = set()
        self.found: dict[bytes, tuple[int, int, int]] = {}
        self.budget = 8 * size + 65536


def _raw_text_agrees(buf: bytes, name: bytes, pos: int, stop: int, foreign: tuple[bytes, ...], doubt: bool,
                     checks: _RawChecks, select: bool) -> int:
    """In foreign content the scan reads ``<style>``, ``<script>``, ``<textarea>``... as ordinary elements; a browser
    that is back in HTML (doubt), or reads the namespace otherwise, reads raw text up to their first end tag. From
    there on the two readings agree only if that end tag is one in the scan's reading too (not inside a value, a
    comment, a CDATA section): checked by scanning up to it as the scan reads it; else refused (fail closed).
    The same after a ``<select>`` (``select``), where the scan reads ``<style>``, ``<xmp>``... as ordinary elements,
    as a parser that ignores them there does, and one that honours them reads raw text (foreign empty: refused as
    ``select``). Returns where what it read ends."""
    last = checks.found.get(name)
    if last is not None and last[0] <= pos <= last[1] and last[2] >= pos:
        end = last[2]
    else:
        if name == b"script":
            first = _SCRIPT_DATA.search(buf, pos, stop)
            end = _SCRIPT_END(buf, pos, stop)
            limit = stop if first is None else first.start()
        else:
            m = _RAW_END[name].search(buf, pos, stop)
            end = limit = stop if m is None else m.start()
        checks.found[name] = (pos, limit, end)
        checks.budget -= end - pos
    if checks.budget < 0:  # only a page built to make the checks read it again and again: fail closed
        raise RewriteRefused(RefusalReason.FOREIGN if foreign else RefusalReason.SELECT)
    if end >= stop:
        return end  # no end tag: raw text to the end of the page for the browser, nothing after it to read otherwise
    if end not in checks.probed:
        # Once per end: a check from a later start tag that ends at the same place reads the same tokens from there
        # (the scan's own reading, which a check follows), so it would agree too; and a check does not check the
        # raw-text elements inside what it reads (the scan will, when it reaches them). Linear, not quadratic.
        checks.probed.add(end)
        checks.budget -= end - pos
        if checks.budget < 0:
            raise RewriteRefused(RefusalReason.FOREIGN if foreign else RefusalReason.SELECT)
        state = ScanState(select=select)  # what it finds is the main scan's to find: only whether it runs off is kept
        scan_html(buf, pos, end, state, in_foreign=(foreign, doubt), probe=True)
        if state.ran_off:
            raise RewriteRefused(RefusalReason.FOREIGN if foreign else RefusalReason.SELECT)
    return end + len(name) + 3  # "</" + name + one byte: what the check read (``hold`` in ``scan_html``)


# An Internet Explorer conditional's start, after the "<!--" (``<!--[if …]>``) or the "<!" (``<![if …]>``); its end
# (IE ends its content at the first one).
_CONDITIONAL = re.compile(rb"\[[\t\n\f\r ]*+(?i:if)")
_ENDIF = re.compile(rb"<!\[[\t\n\f\r ]*+(?i:endif)")
_ENDIF_EXACT = re.compile(rb"<!\[(?i:endif)\]-->")
_NOSCRIPT_START = re.compile(rb"<(?i:noscript)")


def _conditional(buf: bytes, pos: int, comment_end: int, stop: int, state: ScanState, nested: int,
                 skip_same_host: bool, scanners: Scanners) -> int:
    """Read the conditional comment at ``pos`` (``<!--[if …]>…<![endif]-->``) as Internet Explorer does in document
    modes up to 9, as well as the comment every other browser reads to ``comment_end`` (Art. 15: 360, QQ and other
    browsers show legacy portals in IE's compatibility mode). Its content's links are recorded in ``state`` (rewriting
    them inside a comment changes nothing for the other browsers). Returns the end of what was read (the end of the
    "<![endif]-->"), before which no scan state may be kept.

    IE reads the content as markup when the condition holds, skips it when not; both go on after the "<![endif]-->"
    in the data state. So the content, read as markup, must end between tokens with nothing open (no tag, comment,
    raw text, SVG/MathML or template; no <noscript>, which IE reads as raw text or markup by its scripting); where
    the comment ends before the "<![endif]" (``<!--[if !IE]><!-->…<!--<![endif]-->``), that markup reading must reach
    the comment's end between tokens, and what follows, markup to every browser, must reach the "<![endif]" so too.
    Otherwise the readings part: ``RewriteRefused`` (``conditional_comment``).
    """
    refused = RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)
    opened = buf.find(b"]>", pos + 5, comment_end)
    if opened < 0:
        raise refused  # no "]>" inside the comment: IE's reading of what follows is not the comment's
    content = opened + 2
    endif = _ENDIF.search(buf, content, stop)
    if endif is None or not _ENDIF_EXACT.match(buf, endif.start(), stop):
        raise refused
    end = endif.start() + 12  # len(b"<![endif]-->")
    if comment_end > end or _NOSCRIPT_START.search(buf, content, endif.start()):
        raise refused
    # Where the markup reading must be between tokens: at the "<![endif]", or before a "<!--" right in front of it
    # (``<!--<![endif]-->``, the usual close of ``<!--[if !IE]><!-->``: a comment to the same "-->" either way).
    until = endif.start()
    if buf.startswith(b"<!--", until - 4) and until - 4 >= content:
        until -= 4
    if state.select and _SELECT_END.search(buf, content, until):
        raise refused  # a </select> that IE skips when the condition is false: the select stays open for it
    ie_end = min(comment_end, until)  # IE's markup reading of what the other browsers read as a comment
    was_off, state.ran_off = state.ran_off, False
    scan_html(buf, content, ie_end, state, nested=nested + 1, skip_same_host=skip_same_host, scanners=scanners)
    if state.ran_off:
        raise refused
    if comment_end < until:
        # Markup to every browser from the comment's end; to IE with the condition false, skipped to the "<![endif]".
        _span_agrees(buf, comment_end, until, state)
    state.ran_off = was_off
    return end


# The last span read for IE (``_revealed``, ``_ie_comment``): (where IE's end starts, or the page's end when there is
# none; the select state it was read in; the end of what was read, a ``hold`` for the scan).
type _Checked = tuple[int, bool, int]
_REVEALED_END = re.compile(rb"<!\[[\t\n\f\r ]*+(?i:endif)[\t\n\f\r ]*+\]>")
_SELECT_END = re.compile(rb"</(?i:select)")


def _span_agrees(buf: bytes, start: int, end: int, state: ScanState) -> None:
    """Art. 15 (第十五条), in Internet Explorer's compatibility mode too. What every browser but IE reads as markup from
    ``start`` to ``end``, where IE (skipping it, or reading a comment) is back in the data state: it must end there
    between tokens with nothing open and hold no ``<base>`` or, in a select, ``</select>``; else ``RewriteRefused``
    (``conditional_comment``). Its links are the main scan's."""
    if state.select and _SELECT_END.search(buf, start, end):
        raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)
    probe = ScanState(select=state.select)
    try:
        scan_html(buf, start, end, probe, nested=1, probe=True)  # nested: a <base> in it is refused
    except RewriteRefused as exc:
        raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT) from exc
    if probe.ran_off:
        raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)


def _revealed(buf: bytes, pos: int, stop: int, state: ScanState, checked: _Checked) -> _Checked:
    """IE's downlevel-revealed conditional at ``pos`` (``<![if !IE]>…<![endif]>``): markup to every other browser (and
    to IE when the condition holds), skipped by IE to its first ``<![endif]>`` when not. That span must end between
    tokens with nothing open (``_span_agrees``), and its end be spelled ``<![endif]>``. Returns what was read
    (``_Checked``). An opener before the last one's end has the same end (the first after that opener is the first
    after this one): it is not looked for again, and the span, a suffix of the last one read alike, is read again
    only in another select state (where a ``</select>`` in it is refused): linear in the page."""
    end, select, read_to = checked
    if pos < end:
        if end < stop and select != state.select:
            opened = buf.find(b">", pos + 2, stop)
            if opened < 0 or opened > end:
                raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)
            _span_agrees(buf, opened + 1, end, state)
            return end, state.select, read_to
        return checked
    opened = buf.find(b">", pos + 2, stop)
    endif = _ENDIF.search(buf, pos + 2, stop)
    if opened < 0 or endif is None:
        # No end: IE skips the rest of the page (it shows less), the others read it as the scan does. Nothing after
        # it is kept for a later scan, which may find an end there (``hold``), nor looked for again.
        return stop, state.select, stop
    spelled = _REVEALED_END.match(buf, endif.start(), stop)
    if endif.start() < opened or spelled is None:
        raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)
    _span_agrees(buf, opened + 1, endif.start(), state)
    return endif.start(), state.select, spelled.end()  # the check read its spelling: held to its end


def _ie_comment(buf: bytes, pos: int, ended: int, stop: int, state: ScanState, checked: _Checked) -> _Checked:
    """A comment at ``pos`` that the others end at ``ended`` without "-->" (``<!-->``, ``<!--->``, ``--!>``): IE's older
    parser ends comments only at "-->", so for it the comment goes on to the next one, where what the others read as
    markup up to there must be between tokens (``_span_agrees``). Returns what was read (``_Checked``; the last
    span's end is not looked for again, as in ``_revealed``)."""
    end, select, _ = checked
    if pos + 4 <= end - 3:  # the first "-->" after the last one's start is the first after this one's
        if end < stop and select != state.select and not _one_comment(buf, ended, end):
            _span_agrees(buf, ended, end, state)
            return end, state.select, end
        return checked
    ie = buf.find(b"-->", pos + 4, stop)
    if ie < 0:
        return stop, state.select, stop  # IE's comment runs to the end of the page: it shows less (as in _revealed)
    if ie + 3 <= ended:
        return checked
    if not _one_comment(buf, ended, ie + 3):
        _span_agrees(buf, ended, ie + 3, state)
    return ie + 3, state.select, ie + 3


def _one_comment(buf: bytes, start: int, end: int) -> bool:
    """Whether ``buf[start:end]`` is one comment to every browser but IE (``<!-->``, ``<!--->``, ``<!-- … -->``): then
    nothing there is markup to anyone, and both readings are between tokens at ``end``."""
    if not buf.startswith(b"<!--", start):
        return False
    if end - start in (5, 6) and buf.startswith(b">" if end - start == 5 else b"->", start + 4):
        return True
    m = _COMMENT_END.search(buf, start + 4, end)
    return m is not None and m.end() == end


_TABLE_TAG_LENGTH = 8  # the longest match of ``_TABLE_OR_SELECT``
_TABLE_SEARCH_STEP = 64 * 1024


def _table_or_select_at(buf: bytes, pos: int, stop: int) -> int:
    """Where the first ``<table`` or ``<select`` tag of ``buf[pos:stop]`` starts, or -1."""
    m = _TABLE_OR_SELECT.search(buf, pos, stop)
    return -1 if m is None else m.start()


# The same, in C when built (``govgate._jumps.table_or_select``; tests/outbound/test_native_jumps.py checks the two).
_TABLE_OR_SELECT_AT = table_or_select if table_or_select is not None else _table_or_select_at


def _table_or_select_before(buf: bytes, state: ScanState, pos: int) -> bool:
    """Whether a ``<table`` or ``<select`` of ``buf`` starts before ``pos``.

    Looked for only as far as asked, in steps of at least 64 KiB: a rescan resumed near the end of a page (the scan
    memo) does not search the whole page again (it was 0.5 ms of a 750 KB page without a table)."""
    if state.table_at >= 0:
        return state.table_at < pos
    if pos <= state.table_free_to:
        return False
    end = min(len(buf), max(pos, state.table_free_to + _TABLE_SEARCH_STEP) + _TABLE_TAG_LENGTH)
    at = _TABLE_OR_SELECT_AT(buf, state.table_free_to, end)
    if at >= 0:
        state.table_at = at  # the first: none starts before where this search began
        return at < pos
    # Every match starting before ``end - _TABLE_TAG_LENGTH + 1`` would have ended by ``end``.
    state.table_free_to = len(buf) if end == len(buf) else end - _TABLE_TAG_LENGTH + 1
    return False


def _ran_off(state: ScanState) -> int:
    """A scan's end (-1) at ``stop`` inside something left open; noted in ``state.ran_off``."""
    state.ran_off = True
    return -1


# What the scan carries from one token to the next outside foreign content: (open inert templates, the open
# templates (True when inert), doubt, ``ScanState.base``, ``ScanState.base_seen``, ``ScanState.select``, whether a
# <table> or <select> came before). With the
# bytes from a position on, it decides everything the scan finds from there (``ScanTrace``; ``govgate.core.scan_memo``).
type ScanPoint = tuple[int, tuple[bool, ...], bool, bytes | None, bool, bool, bool]
_NEVER = 1 << 62  # a position no buffer reaches: the mark of a scan without a trace
MAX_TRACED_TEMPLATES = 8  # open templates past which no state is saved (each saved state holds the stack)
SYNC_WINDOW = 16 * 1024  # bytes into the shared end within which a rescan looks for the old scan's state


class ScanTrace:
    """The resume points of one top-level ``scan_html``, for ``govgate.core.scan_memo``.

    ``points`` holds ``(position, targets found before it, ScanPoint)`` at token boundaries at least ``spacing``
    bytes apart, in order. Resuming the scan at such a position with that state (``scan_html(..., resume=point)``)
    finds what the whole scan finds from there on: the scan reads forward only, and what it carries between tokens
    is the ``ScanPoint``.

    With ``sync`` (position -> (index into another scan's ``points``, that scan's ``ScanPoint`` there)) the scan also
    looks, at every boundary from ``sync_from`` on, for a position of the other scan holding the same state; at the
    first one it stops (``scan_html`` returns the position) and ``synced`` says which. The caller vouches that from
    ``sync_from`` on both buffers hold the same bytes, so from there on both scans find the same. It looks within
    ``SYNC_WINDOW`` bytes of ``sync_from`` only, then scans on to the end. No state is saved or looked for deeper
    than ``MAX_TRACED_TEMPLATES`` open templates (each saved state holds their stack), which bounds what a point holds.
    """

    __slots__ = ("next_record", "points", "spacing", "sync", "sync_from", "sync_until", "synced")

    def __init__(self, spacing: int = 2048, *, start: int = 0, sync: dict[int, tuple[int, ScanPoint]] | None = None,
                 sync_from: int = _NEVER) -> None:
        self.spacing = spacing
        self.points: list[tuple[int, int, ScanPoint]] = []
        self.next_record = start
        self.sync = sync
        self.sync_from = sync_from if sync else _NEVER
        # Looked for this far into the shared end at most: a page whose scan does not meet the old one's there (a
        # comment opened before it and closed much later, another <base>) costs a look at every boundary until then.
        self.sync_until = self.sync_from + SYNC_WINDOW if sync else _NEVER
        self.synced: tuple[int, int] | None = None  # (position, index into the other scan's points)

    def mark(self, buf: bytes, pos: int, found: int, template: int, templates: list[bool], doubt: bool,
             state: ScanState) -> int:
        """Called by the scan at a token boundary ``pos``; returns the next position to be called at, or -1: stop."""
        if pos >= self.sync_until:
            self.sync_from = self.sync_until = _NEVER  # not met again this far into the shared end: scanned to the end
        if len(templates) > MAX_TRACED_TEMPLATES:
            # A state this deep in templates is neither saved nor looked for: its copy grows with the nesting.
            return pos + 1 if pos >= self.sync_from else min(pos + self.spacing, self.sync_from)
        # Whether a <table> or <select> came before: a second <base> after one is refused (``scan_html``), so two
        # scans that differ in it do not go on alike (a review found a memoised rescan missing that refusal).
        point: ScanPoint = (template, tuple(templates), doubt, state.base, state.base_seen, state.select,
                            _table_or_select_before(buf, state, pos))
        if pos >= self.sync_from:
            assert self.sync is not None
            other = self.sync.get(pos)
            if other is not None and other[1] == point:
                self.synced = (pos, other[0])
                return -1
        if pos >= self.next_record:
            self.points.append((pos, found, point))
            self.next_record = pos + self.spacing
        if pos >= self.sync_from:
            return pos + 1  # every boundary from here on
        return min(self.next_record, self.sync_from)


def scan_html(buf: bytes, start: int, stop: int, state: ScanState, *, nested: int = 0,
              skip_same_host: bool = False, scanners: Scanners = DEFAULT_SCANNERS, trace: ScanTrace | None = None,
              resume: ScanPoint | None = None, in_foreign: tuple[tuple[bytes, ...], bool] | None = None,
              probe: bool = False) -> int:
    """Walk buf[start:stop] as the HTML tokenizer would, recording target attribute values.

    Returns -1, or the position at which ``trace`` found the state of its other scan (``ScanTrace``) and stopped.
    ``resume``: the state to start in, from a ``ScanTrace`` of a scan of bytes the same as these up to ``start``
    (and for a few bytes past it); ``state.base`` and ``state.base_seen`` are set from it.

    Foreign content (``svg``/``math``) is left only where the tree builder surely leaves it: the
    matching ``</svg>``/``</math>`` and the breakout start tags (HTML §13.2.6.5). Any other end tag
    there (``</p>`` and ``</br>`` too, which leave it only since 2023) may or may not pop the SVG/MathML
    element, depending on the HTML elements open around it, which a scanner does not track: the scan stays in
    foreign content (where raw-text elements are ordinary, so it reads at least what the browser reads) and, while
    that doubt lasts, refuses a ``<![CDATA[`` whose CDATA and bogus-comment readings end apart and a
    ``<base href>`` it cannot place. Where the browser may be back in HTML (that doubt) or may not be in foreign
    content the way the scan reads it, a raw-text element's first end tag must be one in the scan's reading too
    (``_raw_text_agrees``), else the scan refuses. ``in_foreign``: (open roots, doubt) to start in.
    """
    if nested > MAX_NESTING:
        raise RewriteRefused(RefusalReason.NESTING)
    pos = start
    template = 0  # open inert templates
    templates: list[bool] = []  # open templates, True when inert (not a declarative shadow root)
    foreign: list[bytes] = []  # open svg/math roots, innermost last
    doubt = False  # an end tag in foreign content that the browser may have honoured by leaving it
    if in_foreign is not None:
        foreign, doubt = list(in_foreign[0]), in_foreign[1]
    if resume is not None:
        template, resumed_templates, doubt, state.base, state.base_seen, state.select, table_before = resume
        templates = list(resumed_templates)
        # The bytes before ``start`` are the traced scan's, so is the answer there (only positions from ``start`` on
        # are asked about).
        if table_before:
            state.table_at = start - 1
        else:
            state.table_free_to = max(state.table_free_to, start)
    mark = _NEVER if trace is None else start  # where ``trace`` is told of the next token boundary
    # No resume point before this: a raw-text check in foreign content read the bytes up to it (``_raw_text_agrees``),
    # so a page that differs there must be scanned again from before that element.
    hold = 0
    checks = _RawChecks(stop - start)  # what the raw-text checks (``_raw_text_agrees``) have done
    annotation = False  # an <annotation-xml> seen in this MathML: an <svg> in it may be SVG or MathML
    old_foreign = False  # in an integration point that an older parser may have left for foreign content
    # The ends of the last spans read for IE (``_ie_comment``, ``_revealed``): a later span ending there is a suffix.
    ie_comment: _Checked = (0, False, 0)
    ie_revealed: _Checked = (0, False, 0)
    # integration points: (end tag name, foreign roots to restore, doubt to restore)
    islands: list[tuple[bytes, list[bytes], bool]] = []
    step = scanners.step(skip_same_host)
    targets = state.targets
    while pos < stop:
        if not foreign and not islands:
            if pos >= mark and pos >= hold:
                assert trace is not None
                mark = trace.mark(buf, pos, len(targets), template, templates, doubt, state)
                if mark < 0:
                    return pos
            while True:  # skipped text and tags, then maybe one <a>/<area>
                pos, vs, ve, safe = step(buf, pos, stop)
                if vs == -2:
                    break  # stopped before something that needs a closer look (or at the end)
                if vs >= 0:
                    targets.append((LinkKind.HREF, vs, ve, safe))
                if pos >= mark and pos >= hold:  # a token boundary after the <a>/<area> (and its target)
                    assert trace is not None
                    mark = trace.mark(buf, pos, len(targets), template, templates, doubt, state)
                    if mark < 0:
                        return pos
            if pos >= stop:
                return _ended(state, nested, foreign, templates)
        else:
            lt = buf.find(b"<", pos, stop)
            if lt < 0:
                return _ended(state, nested, foreign, templates)  # text to the end
            pos = lt
        nxt = buf[pos + 1:pos + 2]
        if nxt == b"!":
            if buf.startswith(b"<!--", pos):
                if buf.startswith(b">", pos + 4):
                    ended = pos + 5
                elif buf.startswith(b"->", pos + 4):
                    ended = pos + 6
                else:
                    m = _COMMENT_END.search(buf, pos + 4, stop)
                    if m is None:
                        return _ran_off(state)
                    if _CONDITIONAL.match(buf, pos + 4, stop):
                        if foreign:
                            raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)
                        hold = max(hold, _conditional(buf, pos, m.end(), stop, state, nested, skip_same_host,
                                                      scanners))
                    ended = m.end()
                # "<!-->", "<!--->", "--!>" (not in a span such a check reads: the scan checks those when it gets there)
                if (buf[ended - 3:ended] != b"-->" or ended < pos + 7) and not probe:
                    if foreign:  # IE's comment reads on where a CDATA section may start: not followed here
                        raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)
                    ie_comment = _ie_comment(buf, pos, ended, stop, state, ie_comment)
                    hold = max(hold, ie_comment[2])
                pos = ended
                continue
            if (foreign or islands) and buf.startswith(b"<![CDATA[", pos):
                end = buf.find(b"]]>", pos + 9, stop)
                if doubt or not foreign:
                    # A CDATA section if the browser is still in foreign content, a bogus comment to the first ">" if
                    # it is back in HTML: the two go on from the same place only if that ">" is the one of "]]>". In
                    # an integration point too: a CDATA section while the SVG/MathML element itself is the current
                    # node (``<svg><desc><![CDATA[``), a bogus comment inside an HTML element opened in it (a review).
                    gt = buf.find(b">", pos + 2, stop)
                    if gt >= 0 and gt != end + 2:
                        raise RewriteRefused(RefusalReason.FOREIGN)
                if end < 0:
                    return _ran_off(state)
                pos = end + 3
                continue
            if not probe and _CONDITIONAL.match(buf, pos + 2, stop):
                if foreign:
                    raise RewriteRefused(RefusalReason.CONDITIONAL_COMMENT)
                ie_revealed = _revealed(buf, pos, stop, state, ie_revealed)
                hold = max(hold, ie_revealed[2])
            end = buf.find(b">", pos + 2, stop)
            if end < 0:
                return _ran_off(state)
            pos = end + 1
            continue
        if nxt == b"?":
            end = buf.find(b">", pos + 2, stop)
            if end < 0:
                return _ran_off(state)
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
                    return _ran_off(state)
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
                return _ran_off(state)
            pos = r.end()
            if islands and name == islands[-1][0]:
                # The browser ignores it if an HTML element opened in the island is still open (the island is
                # "special"), which a scanner does not track: back in foreign content, in doubt.
                _, foreign, doubt = islands.pop()
                doubt = doubt or bool(foreign)
                old_foreign = old_foreign and bool(islands)
            elif islands and not foreign and name not in _BREAKOUT:
                # Parsers before the integration points were "special" (html5lib's HTML) close the island at an end tag
                # naming an SVG/MathML element open around it (``<svg><script><title></script>``) and are back in
                # foreign content, where <style> or <script> is no raw text; current ones ignore it. From here on in
                # this island raw-text elements are read both ways (below).
                old_foreign = True
            elif foreign:
                if name == b"template" and templates:
                    # Unless an SVG/MathML element named template is open (not tracked), the browser closes the HTML
                    # template and everything in it, foreign content included: the scan cannot tell which.
                    raise RewriteRefused(RefusalReason.FOREIGN)
                if name in foreign:  # pops up to the innermost open root of that name
                    del foreign[len(foreign) - 1 - foreign[::-1].index(name):]
                else:
                    # Popped only if a matching HTML element is in scope: unknown here. </p> and </br> leave foreign
                    # content since 2023 (HTML §13.2.6.5); before, and in browsers built on older Chromium, they put
                    # an empty <p>/<br> into the SVG and stay in it (its <style> is no raw text there): in doubt too.
                    doubt = True
                if not foreign:
                    doubt = False
            elif name == b"template" and templates and templates.pop():
                template -= 1  # an inert template closed
            elif name == b"select" and not templates and not nested:
                # Closes the select for the older parsers: in a select they take no element but option, optgroup,
                # script and template, so it is in scope. Not inside a template (where they ignore it), nor in the
                # markup reading of a <noscript>, which may be raw text to them.
                state.select = False
            continue
        if not foreign:
            annotation = False
        if not foreign and islands and islands[-1][0] in _MATHML_TEXT and name in (b"mglyph", b"malignmark"):
            # In a MathML text integration point these two stay MathML (HTML §13.2.6, the dispatcher): back in
            # foreign content, in doubt (the scan does not know whether an HTML element opened in the island is
            # the current node, which would make them HTML).
            r = _TAG_REST.match(buf, after_name, stop)
            if r is None:
                return _ran_off(state)
            pos = r.end()
            if not r.group("tail").endswith(b"/"):
                foreign, doubt = [b"math"], True
            continue
        if foreign:
            if foreign[0] == b"math" and name == b"annotation-xml":
                annotation = True
            if name in _BREAKOUT or (name == b"font" and _font_breaks_out(buf, after_name, stop)):
                foreign = []  # the tag is handled below as an HTML tag
                doubt = False
            elif name == b"svg" and annotation and foreign[0] == b"math":
                # An <svg> right in an <annotation-xml> is SVG, elsewhere in MathML it is MathML: which one decides
                # the integration points in it, and the scan does not follow the current element.
                raise RewriteRefused(RefusalReason.FOREIGN)
            elif name in _integration_points(foreign) and (
                    name != b"annotation-xml" or _html_annotation(buf, after_name, stop)):
                r = _TAG_REST.match(buf, after_name, stop)
                if r is None:
                    return _ran_off(state)
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
                return _ran_off(state)
            pos = r.end()
            vs, ve = r.span("v")
            if vs >= 0 and ve > vs and buf[vs] in _QUOTES:
                vs += 1
                ve -= 1
            if name == b"base":
                # Only a base in the document tree counts: not one in a template, nor in a shadow root. Except in
                # Internet Explorer (the compatibility mode of 360, QQ...), which has no templates: there the first
                # one in the bytes is the document's. A template's, before any other, is the base for one and not
                # for the other: refused.
                if templates and r.start("n") >= 0 and not state.base_seen:
                    raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)
                if old_foreign and islands and r.start("n") >= 0 and not state.base_seen:
                    # An SVG/MathML element to a parser back in foreign content (``old_foreign``): no base there.
                    raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)
                if doubt and r.start("n") >= 0 and not state.base_seen and not templates and not nested:
                    raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)
                if nested and r.start("n") >= 0 and not state.base_seen and not templates and (doubt or not foreign):
                    # In <noscript>: the first base for a browser with scripting off, none for one with it on.
                    raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)
                if r.start("n") >= 0 and not templates and (doubt or not foreign):
                    value = buf[vs:ve] if vs >= 0 else b""
                    if state.base_seen:
                        if value != state.base and (state.select or _table_or_select_before(buf, state, after_name)):
                            # The first in the tree is not always the first in the bytes: a <base> in a table is moved
                            # before it (the first one inside it then comes second), one in a select is ignored by the
                            # older parsers. Two that differ, after a table or select: refused.
                            raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)
                    elif state.select:
                        # Ignored in a select by the older parsers, taken by Chromium: two bases for two readings.
                        raise RewriteRefused(RefusalReason.AMBIGUOUS_BASE)
                    elif not foreign and not nested:
                        state.base_seen = True
                        state.base = value
                continue
            if vs >= 0:
                targets.append((kind, vs, ve, False))
            if name == b"a" and (foreign or (old_foreign and islands)):
                # SVG <a xlink:href>: what browsers before SVG 2 follow even beside an href (Chromium 50, Firefox 51)
                _xlink_href(buf, after_name, stop, state)
            elif name == b"isindex":
                # HTML before 2016 (and browsers built on Chromium before 49) made a form of it, with its action and
                # an input with its other attributes: formaction too.
                _isindex(buf, after_name, stop, state)
            continue
        if name == b"meta":
            pos = _meta(buf, after_name, stop, state)
            if pos < 0:
                return _ran_off(state)
            continue
        if name == b"iframe":  # in SVG/MathML srcdoc means nothing: rewriting it anyway is harmless
            r = _FIRST_SRCDOC.match(buf, after_name, stop)
            if r is None:
                return _ran_off(state)
            vs, ve = r.span("v")
            if vs >= 0:
                if ve > vs and buf[vs] in _QUOTES:
                    vs += 1
                    ve -= 1
                targets.append((LinkKind.SRCDOC, vs, ve, state.base_seen))
        else:
            r = _TAG_REST.match(buf, after_name, stop)
            if r is None:
                return _ran_off(state)
        pos = r.end()
        if name == b"select":
            # Art. 15 (第十五条): in a select, HTML before 2025 (Firefox, Safari, older Chromium and the browsers built
            # on it) ignores most start tags, <style>, <xmp>, <iframe>, <title>, <plaintext>, <svg> and <math> among
            # them, so its tokenizer reads on as markup where Chromium 135 on reads raw text or foreign content.
            # From here on the scan reads both ways (below and ``_raw_text_agrees``).
            state.select = True
            continue
        if name in (b"svg", b"math"):
            if not r.group("tail").endswith(b"/"):
                foreign.append(name)
                # Ignored in a select by the older parsers: the browser may still be in HTML (a CDATA section there
                # is a bogus comment), as after an end tag in foreign content.
                doubt = doubt or state.select
            continue
        if foreign:
            if name in _RAW_TEXT_NAMES and not probe:  # "/>" or not: a browser back in HTML ignores it on these
                hold = max(hold, _raw_text_agrees(buf, name, pos, stop, tuple(foreign), doubt, checks, state.select))
            continue
        if old_foreign and islands and name in _RAW_TEXT_NAMES:
            # Raw text in this island, an ordinary element for a parser back in foreign content (above): read as markup,
            # and its end must be an end tag in that reading too (else refused as ``foreign_content``). A <noscript>,
            # read both ways already, would be read as markup in HTML only: refused.
            if name == b"noscript":
                raise RewriteRefused(RefusalReason.FOREIGN)
            if not probe:
                hold = max(hold, _raw_text_agrees(buf, name, pos, stop, tuple(islands[-1][1]), True, checks, False))
            continue
        if name == b"template":
            # A declarative shadow root (shadowrootmode, or Chromium's former shadowroot) is live DOM:
            # its contents are scanned like any markup. An inert template's are scanned too (its targets are marked
            # as in a template; the rewriter rewrites them: live in Internet Explorer), but a <base> in it is not the
            # document's here (``base`` above). After a <select>, none is inert: a parser that ignored the template
            # start tag there would make its contents live.
            inert = (template > 0 or not _is_shadow_root(buf, after_name, stop)) and not state.select
            templates.append(inert)
            template += inert
            continue
        if name == b"script":
            pos = _SCRIPT_END(buf, pos, stop)
            if pos >= stop:
                state.ran_off = True  # no "</script" before ``stop``
        elif name == b"plaintext":
            if state.select or (old_foreign and islands):
                continue  # ignored in a select by the older parsers: read on as markup (the rest is text to others)
            return _ran_off(state)
        elif name in _RAW_END:
            if name == b"noscript" and nested:
                continue  # with scripting off (this scan's reading) an ordinary element: its content is markup
            if state.select and name != b"textarea" and name != b"noscript":
                # Ignored in a select by the older parsers (markup goes on), raw text to the newer: read as markup,
                # so its links are found, and its end must be an end tag in that reading too. A <textarea> closes the
                # select for both; a <noscript>'s content is read both ways below.
                if not probe:
                    hold = max(hold, _raw_text_agrees(buf, name, pos, stop, (), False, checks, True))
                continue
            end_m = _RAW_END[name].search(buf, pos, stop)
            end = stop if end_m is None else end_m.start()
            if end_m is None:
                state.ran_off = True  # nothing closes it before ``stop``
            if name == b"noscript":
                # Scripting off, this is markup: protect those readers too (invisible with scripting on). Both
                # readings must agree where it ends: with scripting on, its text ends at the first "</noscript";
                # read as markup, that must be an end tag, not text inside a value, a comment or a textarea left
                # open (after which a browser with scripting off would read markup this scan reads as text).
                state.ran_off = False
                scan_html(buf, pos, end, state, nested=nested + 1, skip_same_host=skip_same_host, scanners=scanners)
                if state.ran_off and end_m is not None:
                    raise RewriteRefused(RefusalReason.NOSCRIPT)
            pos = end
    return _ended(state, nested, foreign, templates)


_XML_NAME = re.compile(rb"[^\x00-\x20/>=\"'<]++")
_XML_ATTR = re.compile(rb"[\t\n\r ]++([^\x00-\x20/>=\"'<]++)[\t\n\r ]*+=[\t\n\r ]*+(?:\"([^\"<]*+)\"|'([^'<]*+)')")
_XML_TAG_END = re.compile(rb"[\t\n\r ]*+/?>")
_XML_LINKS = frozenset((b"a", b"area", b"form", b"button", b"input"))
_XML_KINDS = {b"href": LinkKind.HREF, b"action": LinkKind.ACTION, b"formaction": LinkKind.FORMACTION}


def scan_xml(buf: bytes, start: int, stop: int, state: ScanState) -> None:
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


def _xml_element(buf: bytes, local: bytes, attrs: list[tuple[bytes, int, int]], state: ScanState) -> None:
    if local in _XML_LINKS:
        for name, vs, ve in attrs:
            kind = _XML_KINDS.get(name) or (LinkKind.HREF if name.endswith(b":href") else None)
            if kind is not None:
                state.targets.append((kind, vs, ve, False))
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
            value = unescape_attr(buf[equiv[0]:equiv[1]].decode("latin-1"))
            if value.strip("\t\n\f\r ").lower() == "refresh":
                state.targets.append((LinkKind.REFRESH, content[0], content[1], state.base_seen))
    elif local == b"iframe":
        for name, vs, ve in attrs:
            if name == b"srcdoc":
                state.targets.append((LinkKind.SRCDOC, vs, ve, state.base_seen))


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


# The same, in C when built (``govgate._jumps.script_end``; tests/outbound/test_native_jumps.py checks the two agree).
_SCRIPT_END = script_end if script_end is not None else _script_end


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


def _html_annotation(buf: bytes, pos: int, stop: int) -> bool:
    """``<annotation-xml encoding="text/html">`` (or ``application/xhtml+xml``): an HTML integration point (HTML
    §13.2.6.5); without that encoding its content stays MathML."""
    attrs, _ = _attrs(buf, pos, stop)
    for attr, start, end, _quote in attrs:
        if attr == b"encoding":
            value = unescape_attr(buf[start:end].decode("latin-1")).lower()
            return value in ("text/html", "application/xhtml+xml")
    return False


def _is_shadow_root(buf: bytes, pos: int, stop: int) -> bool:
    """``<template shadowrootmode>`` (or legacy ``shadowroot``): any value counts, to read more not less."""
    attrs, _ = _attrs(buf, pos, stop)
    return any(name in (b"shadowrootmode", b"shadowroot") for name, *_ in attrs)


def _font_breaks_out(buf: bytes, pos: int, stop: int) -> bool:
    """In foreign content, ``<font>`` with color, face or size leaves SVG/MathML (HTML §13.2.6.5)."""
    attrs, _ = _attrs(buf, pos, stop)
    return any(name in (b"color", b"face", b"size") for name, *_ in attrs)


def _meta(buf: bytes, pos: int, stop: int, state: ScanState) -> int:
    attrs, end = _attrs(buf, pos, stop)
    if end < 0:
        return -1
    equiv = next((a for a in attrs if a[0] == b"http-equiv"), None)
    content = next((a for a in attrs if a[0] == b"content"), None)
    if equiv is None or content is None or content[3] == b"-":
        return end
    value = unescape_attr(buf[equiv[1]:equiv[2]].decode("latin-1"))
    if value.strip("\t\n\f\r ").lower() != "refresh":
        return end
    state.targets.append((LinkKind.REFRESH, content[1], content[2], state.base_seen))
    return end


def _isindex(buf: bytes, pos: int, stop: int, state: ScanState) -> None:
    attrs, _ = _attrs(buf, pos, stop)
    for name, start, end, quote in attrs:
        if name == b"formaction" and quote != b"-":
            state.targets.append((LinkKind.FORMACTION, start, end, False))


def _xlink_href(buf: bytes, pos: int, stop: int, state: ScanState) -> None:
    attrs, _ = _attrs(buf, pos, stop)
    for name, start, end, quote in attrs:
        if name == b"xlink:href" and quote != b"-":
            state.targets.append((LinkKind.HREF, start, end, False))
            return


# ---------------------------------------------------------------- attribute values

_CHARREF = re.compile(r"&(?:#[xX]([0-9A-Fa-f]+);?|#([0-9]+);?|([A-Za-z][A-Za-z0-9]*;?))")
_HTML5 = html.entities.html5
_C1 = {n: bytes([n]).decode("cp1252") for n in range(0x80, 0xA0) if n not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}


def _numeric(num: int) -> str:
    if num == 0 or num > 0x10FFFF or 0xD800 <= num <= 0xDFFF:
        return "\ufffd"
    return _C1.get(num) or chr(num)


def unescape_attr(value: str) -> str:
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
