"""Rewrite links to non-government sites in an HTML document, byte for byte (Art. 15).

Owns the rewrite: ``rewrite_html`` and ``rewrite_xhtml`` take each navigation attribute value the
scanner found, resolve it as a browser does (character references, the document's first
``<base href>``, WHATWG URL parsing by ``ada_url``, the document's encoding for queries, and where
the spec rejects a URL that Chromium still follows, Chromium's reading), ask the ``HostClassifier``
whether its host is external, and replace the value of each external one with the signed leave
URL. Nothing else changes. Only http(s) destinations are signed. A form's target (``form action``,
``formaction``) may get a URL of its own kind (``make_form_url``, given the encoding the page submits
its fields in): a GET submission replaces a URL's query, so the signed destination must not live there.
Also the URL of a ``Refresh`` value (``refresh_url``) and the host of a serialised URL (``host_of_href``).

The work is split in three modules:

- ``html_scan``: where the links are in the bytes (the HTML tokenizer, the XML scan for XHTML);
- ``chromium_urls``: where Chromium goes for a URL the spec's parser rejects;
- ``link_rewrite`` (this one): resolving, classifying and replacing; the public API. It re-exports
  the scanner's types that its results and refusals carry (``LinkKind``, ``RewriteRefused``,
  ``RefusalReason``, ``MAX_NESTING``), so callers import the rewriter from here only.

Scanning bytes is exact in every ASCII-compatible encoding (see ``html_scan``). UTF-16 is
transcoded to UTF-8 for scanning and the offsets mapped back; ISO-2022-JP (stateful) is decoded and
re-encoded as a whole.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import ada_url

from govgate.core.charset import DEFAULT_ENCODING, Encoding, EncodingSource, sniff_encoding, sniff_xml_encoding
from govgate.core.chromium_urls import chromium_reading
from govgate.core.html_scan import (
    DEFAULT_SCANNERS,
    MAX_NESTING,
    LinkKind,
    RefusalReason,
    RewriteRefused,
    ScanState,
    scan_html,
    scan_xml,
    scanners_for,
    unescape_attr,
)
from govgate.core.leave_link import LeaveLinks
from govgate.core.outbound import HostClassifier
from govgate.core.scan_memo import ScanMemo

__all__ = [
    "MAX_NESTING",
    "LinkKind",
    "RefusalReason",
    "ResolvedLink",
    "RewriteRefused",
    "RewriteResult",
    "host_of_href",
    "plain_absolute_href",
    "refresh_url",
    "rewrite_html",
    "rewrite_xhtml",
]

# ---------------------------------------------------------------- URLs in attribute values

_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def _percent_encode_bytes(data: bytes) -> str:
    """WHATWG "percent-encode after encoding" with the special-query set: ASCII bytes of a multi-byte
    character (GB18030 digits, a Shift_JIS or Big5 trail byte such as "\\") stay as they are."""
    if min(data) >= 0x80:
        return "%" + data.hex("%").upper()
    return "".join(f"%{b:02X}" if b < 0x21 or b > 0x7E or b in b"\"#<>'" else chr(b) for b in data)


# Stateless codecs in which every ASCII character is its own byte and the ASCII bytes inside a multi-byte character
# (trail bytes 0x30-0x39, 0x40-0x7E) are none of those ``_percent_encode_bytes`` escapes (controls, space, '"#<>).
_TRAIL_SAFE_CODECS = frozenset({"gbk", "gb18030", "big5"})
_TRAIL_SAFE_ENCODERS = {codec: codecs.lookup(codec).encode for codec in _TRAIL_SAFE_CODECS}  # see ``_decoder``
_ESCAPE_HIGH_BYTES = [chr(b) if b < 0x80 else f"%{b:02X}" for b in range(256)]  # latin-1 text -> bytes >= 0x80 escaped


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
    encode = _TRAIL_SAFE_ENCODERS.get(codec)
    if encode is not None:
        try:
            data = encode(query)[0]
        except UnicodeEncodeError:
            pass  # unmappable characters: the general path below
        else:
            # Every byte of a non-ASCII character's encoding percent-encoded, as ``_percent_encode_bytes`` does:
            # its ASCII trail bytes are never in the escaped set, so every ASCII byte stays, wherever it came from.
            return url[: q + 1] + data.decode("latin-1").translate(_ESCAPE_HIGH_BYTES) + url[end:]

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


# ``bytes.decode`` and ``str.encode`` look a codec up by its name on every call, but for UTF-8, ASCII and Latin-1
# (about 0.35 µs for GBK, more than the decoding of a link's value): the rewriter, which decodes every link and
# encodes every query that is not ASCII, looks them up once (``_TRAIL_SAFE_ENCODERS`` for the queries).
# ``_decoder`` gives None for a codec that ``bytes.decode`` finds at once. The same functions ``bytes.decode`` and
# ``str.encode`` call (``codecs.lookup``).
_NAMED_AT_ONCE = frozenset({"utf-8", "ascii", "latin-1"})


@functools.lru_cache(maxsize=64)
def _decoder(codec: str) -> Callable[[bytes, str], tuple[str, int]] | None:
    return None if codec in _NAMED_AT_ONCE else codecs.lookup(codec).decode


_WS = "\t\n\f\r "

# ISO-2022-JP as the WHATWG decoder reads it without an error: ASCII text (no SO, SI, ESC or byte above 0x7F), then
# runs each opened by one of the four escapes it knows and holding at least one character: ASCII or JIS X 0201 Roman
# ("ESC ( B", "ESC ( J") text as before, or JIS X 0208 ("ESC $ @", "ESC $ B") pairs of bytes 0x21-0x7E. (Katakana,
# "ESC ( I", Python's codec does not read: refused as well.) Two escapes in a row, a broken or unknown one, a newline
# inside a two-byte run: each is an error for the browser, and not one Python's codec makes the same way.
_ISO_2022_JP_TEXT = rb"[\x00-\x0d\x10-\x1a\x1c-\x7f]"
_ISO_2022_JP_WELL_FORMED = re.compile(
    _ISO_2022_JP_TEXT + rb"*+(?:\x1b\([BJ]" + _ISO_2022_JP_TEXT + rb"++|\x1b\$[@B](?:[\x21-\x7e][\x21-\x7e])++)*+"
    rb"(?:\x1b\([BJ])?+"  # back to ASCII at the very end: no error
)


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
# scheme; nor a backslash, tab, newline or character reference that could hide or make one). Only that
# start decides: whatever follows it is path, query or fragment on the base's host (the URL parser's
# "relative slash" and "path" states never go back to the authority).
# ``html_scan._SAFE_DQ`` is the same test inside a double-quoted value, for the scan's own jumps.
_SAME_HOST = re.compile(
    rb"[\x00-\x20]*+(?:"
    rb"[?#].*"
    rb"|/(?![/\\\t\n\r&]).*"
    rb"|[^:/?#\\\t\n\r&\x00-\x20][^:/?#\\\t\n\r&]*+(?:[/?#].*)?"
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
_FORM_KINDS = frozenset({LinkKind.ACTION, LinkKind.FORMACTION})  # a form's target: submitted, not followed
_AT_INSERTION = frozenset({LinkKind.REFRESH, LinkKind.SRCDOC})  # resolved against the base in force when inserted
# The encoding a form submits its fields in is the document's, except that UTF-16 documents submit UTF-8
# (WHATWG HTML, "pick an encoding for the form"; and a "replacement" document has no forms to submit).
_FORM_CHARSET_UTF8 = frozenset({"UTF-16LE", "UTF-16BE", "replacement"})
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


# An absolute http(s) URL that the WHATWG parser serialises as written but for the case of its scheme and host
# (``plain_absolute_href``): a plainly spelled host (lower-case letters, digits and inner hyphens per label, no
# "xn--" label, the last label starting with a letter, so no IPv4 reading), no userinfo, no port, then a path,
# query and fragment of characters that none of their percent-encode sets touch, with no "." segment ("/." and
# "%2e" send the URL to the parser). Tabs, newlines, spaces, backslashes and non-ASCII are not in any set.
# Spelled without backtracking (a label is a maximal run not ending in "-"; each part stops where the next
# one's first character is), which costs about half as much as the same language spelled with it.
_PLAIN_ABSOLUTE = re.compile(
    r"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?+)://"
    r"(?P<host>(?:[A-Za-z0-9][A-Za-z0-9-]*+(?<!-)\.)*+[A-Za-z][A-Za-z0-9-]*+(?<!-))"
    r"(?P<path>/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*+)?+"
    r"(?P<rest>(?:\?[!$%&()*+,\-./0-9:;=?@A-Z\[\]^_`a-z{|}~]*+)?+(?:#[!#-&'()*+,\-./0-9:;=?@A-Z\[\\\]^_a-z{|}~]*+)?+)"
)


def plain_absolute_href(url_text: str) -> tuple[str, str] | None:
    """(WHATWG serialisation, host) of ``url_text`` without the URL parser, or None when it is not that plain.

    For the commonest external link (``http://www.example.com/path?q=1``) the serialisation is the text with
    its scheme and host lower-cased and "/" for an empty path: one regex instead of a parse. Anything else
    returns None and goes to ``ada_url`` (``test_fast_paths`` checks the two agree).
    """
    m = _PLAIN_ABSOLUTE.fullmatch(url_text)
    if m is None:
        return None
    scheme, written, path = m.group(1, 2, 3)
    host = written.lower()
    if "xn--" in host:
        return None
    if path is None:
        path = "/"
    elif "/." in path or "%2e" in path or "%2E" in path:
        return None
    elif host == written and (scheme == "http" or scheme == "https"):
        return url_text, host  # already its serialisation (the commonest spelling)
    return f"{scheme.lower()}://{host}{path}{m.group(4)}", host


type MakeFormUrl = Callable[[str, str], str]  # (destination, the page's form encoding) -> the form target


class _Resolver:
    __slots__ = ("base", "cache", "classifier", "codec", "collect", "decode", "depth", "document_url", "dq_tested",
                 "fast", "form_charset", "leave_attr", "make_form_url", "make_leave_url", "out_codec", "plain_hosts",
                 "url_codec")

    def __init__(self, base: str | None, classifier: HostClassifier, make_leave_url: Callable[[str], str],
                 codec: str, url_codec: str, document_url: str = "", collect: bool = False, depth: int = 0,
                 make_form_url: MakeFormUrl | None = None, form_charset: str = "UTF-8",
                 cache: dict[tuple[LinkKind, bytes], tuple[bytes | None, ResolvedLink | None]] | None = None) -> None:
        self.base = base
        self.make_form_url = make_form_url
        self.form_charset = form_charset
        self.depth = depth
        self.document_url = document_url
        self.classifier = classifier
        self.make_leave_url = make_leave_url
        # A ``LeaveLinks`` gives a link's new attribute value in one call (escaped and encoded).
        self.leave_attr = make_leave_url.attr if isinstance(make_leave_url, LeaveLinks) else None
        self.codec = codec
        self.decode = _decoder(codec)
        self.url_codec = url_codec
        self.collect = collect
        self.out_codec = "gb18030" if codec == "gb18030" else codec  # bytes written back into the page
        # Each distinct (kind, raw value) once per page; across pages when the caller keeps ``cache`` for a setting
        # that gives the same results (``_plan``, ``ScanMemo.link_results``).
        self.cache: dict[tuple[LinkKind, bytes], tuple[bytes | None, ResolvedLink | None]] = (
            cache if cache is not None else {})
        # Plainly spelled hosts (``_PLAIN_HOST``) as written -> external: a page names a few hosts in many links.
        self.plain_hosts: dict[bytes, bool] = {}
        self.fast = False
        # Set by ``_plan`` when the scan that found the targets jumped over this base's links (``_quick``).
        self.dq_tested = False
        if base is not None:
            try:
                b = ada_url.URL(base)
            except ValueError:
                b = None
            self.fast = b is not None and b.protocol in ("http:", "https:") and not classifier.is_external(b.hostname)

    def resolve(self, url_text: str) -> tuple[str | None, str]:
        if self.url_codec != "utf-8" and not url_text.isascii():
            url_text = _percent_encode_query(url_text, self.url_codec)
        plain = plain_absolute_href(url_text)
        if plain is not None:
            return plain
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
            if self.dq_tested and kind is LinkKind.HREF and buf[start - 1] == 0x22:
                # A double-quoted href: the scan's jumps (``html_scan._SAFE_A``, with the plainly spelled internal
                # hosts) have tried both tests below on it already, where they stopped at its <a>/<area>, and let it
                # through: most often a link elsewhere, so not tried again. (Where the scan read the tag another
                # way, the full parse gives the same answer, only later.)
                return None
            # The two patterns match no value in common (``_PLAIN_HOST``'s start with "//" or "http(s)://", which
            # ``_SAME_HOST`` refuses), so their order changes nothing: a plainly spelled host first, because a value
            # that reaches here past the scan's own jumps is most often a link elsewhere.
            m = _PLAIN_HOST.match(buf, start, end)
            if m is not None:
                host = m.group(1)
                external = self.plain_hosts.get(host)
                if external is None:
                    external = self.plain_hosts[host] = self.classifier.is_external(host.decode("ascii").lower())
                return None if external else (None, self._quick_info(kind, buf, start, end))
            if _SAME_HOST.match(buf, start, end):
                return None, self._quick_info(kind, buf, start, end)
        return None

    def _srcdoc(self, value: str) -> bytes | None:
        """Rewrite the document inside ``<iframe srcdoc>`` (its URL is about:srcdoc, its fallback base ours)."""
        inner = value.encode("utf-8", "surrogatepass")
        enc = Encoding(name="UTF-8", codec="utf-8", source=EncodingSource.HTTP)
        plan = _plan(inner, 0, enc, "utf-8", "about:srcdoc", self.classifier, self.make_leave_url, False,
                     fallback_base=self.base, depth=self.depth + 1, make_form_url=self.make_form_url)
        if not plan.replacements:
            return None
        text = _apply(inner, plan.replacements).decode("utf-8", "surrogatepass")
        # Written back as an attribute value: escaped so that any quoting (or none) reads back the same.
        escaped = "".join(_ATTR_ESCAPES.get(ch, ch) for ch in text)
        return escaped.encode(self.out_codec, "xmlcharrefreplace")

    def _quick_info(self, kind: LinkKind, buf: bytes, start: int, end: int) -> ResolvedLink | None:
        if not self.collect:
            return None
        return ResolvedLink(kind, unescape_attr(buf[start:end].decode(self.codec, "replace")), None, "", False, False)

    def _info(self, kind: LinkKind, value: str, href: str | None, host: str, external: bool) -> ResolvedLink | None:
        return ResolvedLink(kind, value, href, host, external, external) if self.collect else None

    def _handle(self, kind: LinkKind, raw: bytes) -> tuple[bytes | None, ResolvedLink | None]:
        value = raw.decode(self.codec, "replace") if self.decode is None else self.decode(raw, "replace")[0]
        if "&" in value or "\x00" in value:
            value = unescape_attr(value)
        time_text = ""
        url_text = value
        if kind is not LinkKind.HREF:  # <a>/<area> href, the commonest, needs none of these
            if kind is LinkKind.SRCDOC:
                return self._srcdoc(value), None
            if kind is LinkKind.REFRESH:
                parsed = refresh_url(value)
                if parsed is None:
                    return None, self._info(kind, value, None, "", False)
                time_text, url_text = parsed
            elif value == "":  # ACTION, FORMACTION
                # HTML form submission: an empty action means the document's own URL (not the base URL).
                url_text = self.document_url
        href, host = self.resolve(url_text)
        # Only http(s) destinations are ever signed: others (javascript:, data:, ftp:, ws:...) stay as written.
        if href is None or not host or not href.startswith(("http:", "https:")):
            return None, self._info(kind, value, href, host, False)
        # Art. 15 (第十五条): a link that leaves for a non-government site goes through the warning page.
        if not self.classifier.is_external(host):
            return None, self._info(kind, value, href, host, False)
        if kind is LinkKind.HREF or self.make_form_url is None or kind not in _FORM_KINDS:
            if self.leave_attr is not None and kind is not LinkKind.REFRESH:
                return self.leave_attr(href), self._info(kind, value, href, host, True) if self.collect else None
            new = self.make_leave_url(href)
        else:
            new = self.make_form_url(href, self.form_charset)
        if kind is LinkKind.REFRESH:
            new = f"{time_text or '0'};url={new}"
        # "&" written as "&amp;" so that the browser reads back exactly ``new``, whatever the quoting.
        return new.replace("&", "&amp;").encode("ascii"), self._info(kind, value, href, host, True)


# Encodings that bind the browser (confidence "certain"): an HTTP charset or a BOM. A <meta> found by the prescan and
# the default leave it "tentative": Chromium still honours a <meta charset> further into the head, and browsers guess.
_UNFIXED = frozenset({EncodingSource.META, EncodingSource.DEFAULT})
# The escapes the WHATWG ISO-2022-JP decoder acts on: two-byte JIS X 0208 (hides ASCII as kanji), katakana (hides it
# too), JIS X 0201 Roman (a backslash becomes "¥", so "http://www.gov.cn<backslash>@evil.example/" leaves), ASCII. Any
# other ESC is an error that changes no state: U+FFFD, and the bytes after it read as before.
_ISO_2022_JP_ESCAPE = re.compile(rb"\x1b(?:\$[@B]|\([BJI])")


def rewrite_html(body: bytes, *, content_type: str | None, document_url: str, classifier: HostClassifier,
                 make_leave_url: Callable[[str], str], collect: bool = False,
                 encoding: Encoding | None = None, make_form_url: MakeFormUrl | None = None,
                 scan_memo: ScanMemo | None = None, scan_key: str = "", link_setting: object = None) -> RewriteResult:
    """Rewrite every external navigation URL in ``body``; all other bytes stay as they were.

    ``document_url`` is the URL the browser loaded the page from; its host counts as internal.
    ``make_leave_url(href)`` returns the (ASCII) warning-page URL for an absolute destination;
    ``make_form_url(href, charset)``, when given, the one for a form's target (``action``, ``formaction``),
    told the WHATWG name of the encoding the page submits its fields in; without it forms get
    ``make_leave_url``'s.
    With ``collect`` the result lists every navigation attribute examined (for tests and diagnostics).
    ``scan_memo``: where the scan of the page last rewritten under ``scan_key`` is kept, so that a page differing
    from it in places is scanned only there (``govgate.core.scan_memo``; the result is the same). With it,
    ``link_setting`` (when not None) stands for what ``make_leave_url`` and ``make_form_url`` give and for the
    policy behind ``classifier``: equal settings must give equal results. Under it, what each link value of the
    page was rewritten to is kept for the next page under ``scan_key`` (``ScanMemo.link_results``).
    """
    enc = encoding or sniff_encoding(body, content_type)
    if enc.name == "replacement":
        if enc.source is not EncodingSource.META:
            return RewriteResult(body, 0, enc.name)  # the browser shows one U+FFFD: nothing to follow
        # A <meta> binds nothing: Chromium looks for it as its tokenizer reads, so not inside <title>, <script>,
        # <textarea>..., where the prescan finds it too. Such a page may be windows-1252 to the browser: scanned so.
        enc = DEFAULT_ENCODING
    if enc.source in _UNFIXED and b"\x1b" in body and _ISO_2022_JP_ESCAPE.search(body):
        # Art. 15 (第十五条): of the encodings a browser may still switch such a page to, ISO-2022-JP alone reads
        # markup otherwise than ASCII does, and only after one of its escapes. Without one, every reading agrees. A
        # page a <meta> declares ISO-2022-JP is refused too: the browser may not take that <meta> (in raw text).
        raise RewriteRefused(RefusalReason.UNFIXED_ENCODING)
    try:
        doc_host = ada_url.URL(document_url).hostname
    except ValueError:
        doc_host = ""
    if doc_host:
        classifier = classifier.with_internal(doc_host)
    if enc.byte_scannable:
        plan = _plan(body, enc.bom_length, enc, enc.codec, document_url, classifier, make_leave_url, collect,
                     make_form_url=make_form_url, memo=(scan_memo, scan_key) if scan_memo is not None else None,
                     link_setting=link_setting)
        out = _apply(body, plan.replacements) if plan.replacements else body
        return RewriteResult(out, len(plan.replacements), enc.name, plan.links, True, plan.base, plan.found)
    if enc.name == "ISO-2022-JP":
        # Only well-formed ISO-2022-JP: where the bytes are not, Python's decoder and the browser's recover
        # differently (which escape ends a run, what follows a broken one; Python even accepts escapes the WHATWG
        # decoder rejects), so they could disagree about everything after, links included. Such a page is refused,
        # not guessed at (fail closed).
        if not _ISO_2022_JP_WELL_FORMED.fullmatch(body, enc.bom_length):
            raise RewriteRefused(RefusalReason.MALFORMED_ENCODING)
        try:
            text = body[enc.bom_length:].decode(enc.codec)
        except UnicodeDecodeError:  # e.g. a two-byte code that JIS X 0208 leaves unassigned
            raise RewriteRefused(RefusalReason.MALFORMED_ENCODING) from None
    else:
        errors = "surrogatepass" if enc.name.startswith("UTF-16") else "replace"
        text = body[enc.bom_length:].decode(enc.codec, errors)
    utf8 = text.encode("utf-8", "surrogatepass")
    plan = _plan(utf8, 0, enc, "utf-8", document_url, classifier, make_leave_url, collect, make_form_url=make_form_url)
    if not plan.replacements:
        return RewriteResult(body, 0, enc.name, plan.links, True, plan.base, plan.found)
    if enc.name.startswith("UTF-16"):
        out = _apply_utf16(utf8, body, enc, plan.replacements)
        return RewriteResult(out, len(plan.replacements), enc.name, plan.links, True, plan.base, plan.found)
    # ISO-2022-JP is stateful: re-encode the whole document (same text, possibly different escapes).
    reencoded = _apply(utf8, plan.replacements).decode("utf-8", "surrogatepass").encode(enc.codec, "xmlcharrefreplace")
    return RewriteResult(body[: enc.bom_length] + reencoded, len(plan.replacements), enc.name, plan.links, False,
                         plan.base, plan.found)


_XML_STYLESHEET = re.compile(rb"<\?xml-stylesheet(?:[^?]|\?(?!>))*+(?:\?>)?+", re.IGNORECASE)
_CSS_TYPE = re.compile(rb"""\stype\s*=\s*(["'])text/css\1""")


def rewrite_xhtml(body: bytes, *, content_type: str | None, document_url: str, classifier: HostClassifier,
                  make_leave_url: Callable[[str], str], collect: bool = False,
                  make_form_url: MakeFormUrl | None = None) -> RewriteResult:
    """``rewrite_html`` for XML documents (``application/xhtml+xml``, SVG, ``text/xml``...): the same rewriting over
    a conservative XML scan.

    Raises ``RewriteRefused`` for what it cannot vouch for (a non-ASCII-compatible encoding, markup
    that is not well-formed, an internal DTD subset, two ``base`` elements, an ``xml-stylesheet`` that is not
    CSS): fail closed.
    """
    enc = sniff_xml_encoding(body, content_type)
    if not enc.byte_scannable:
        raise RewriteRefused(RefusalReason.XHTML)
    for m in _XML_STYLESHEET.finditer(body):
        if not _CSS_TYPE.search(m.group()):
            # Art. 15 (第十五条): an XSLT stylesheet makes the page the browser shows, links and all, from the data:
            # nothing the scan reads here. Only CSS stylesheets pass.
            raise RewriteRefused(RefusalReason.XHTML)
    try:
        doc_host = ada_url.URL(document_url).hostname
    except ValueError:
        doc_host = ""
    if doc_host:
        classifier = classifier.with_internal(doc_host)
    plan = _plan(body, enc.bom_length, enc, enc.codec, document_url, classifier, make_leave_url, collect, xml=True,
                 make_form_url=make_form_url)
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
          depth: int = 0, xml: bool = False, make_form_url: MakeFormUrl | None = None,
          memo: tuple[ScanMemo, str] | None = None, link_setting: object = None) -> _Plan:
    if depth > MAX_NESTING:
        # Deeper srcdoc documents than any real page has: refused rather than risk the stack (fail closed).
        raise RewriteRefused(RefusalReason.NESTING)
    state = ScanState()
    # Same-host <a href="..."> values are jumped over in the scan when that is sure to be sound (see below).
    skip_same_host = not (xml or collect)
    if xml:
        scan_xml(buf, start, len(buf), state)
    elif skip_same_host:
        # Links to the internal hosts the classifier can name plainly are jumped over in the scan as well.
        scanners = scanners_for(classifier.plain_internal_hosts())
        if memo is not None:
            state = memo[0].scan(memo[1], buf, start, skip_same_host=True, scanners=scanners)
        else:
            scan_html(buf, start, len(buf), state, skip_same_host=True, scanners=scanners)
    else:
        scan_html(buf, start, len(buf), state)
    base: str | None = fallback_base or document_url
    try:
        ada_url.URL(fallback_base or document_url)
    except ValueError:
        base = None
    initial_base = base
    if state.base is not None:
        # The frozen base URL: <base href> resolved against the document's URL; on failure, the document URL.
        probe = _Resolver(base, classifier, make_leave_url, codec, enc.url_codec)
        href, _ = probe.resolve(unescape_attr(state.base.decode(codec, "replace")))
        if href is not None:
            base = href
    form_charset = "UTF-8" if enc.name in _FORM_CHARSET_UTF8 else enc.name
    results = None
    if memo is not None and link_setting is not None and not collect:
        # Everything a link's result depends on besides its kind and raw value (``_Resolver._handle``).
        results = memo[0].link_results(memo[1], (link_setting, base, codec, enc.url_codec, document_url,
                                                 form_charset, make_form_url is not None))
    resolver = _Resolver(base, classifier, make_leave_url, codec, enc.url_codec, document_url, collect, depth,
                         make_form_url, form_charset, results)
    # A meta refresh or an iframe's srcdoc before the document's <base>: Chromium resolves it when it is inserted,
    # against the base in force then (the page's URL, or the parent's base for a srcdoc document): it went to
    # evil.example past a later <base href="foo://x/"> (a seventh review).
    early = (_Resolver(initial_base, classifier, make_leave_url, codec, enc.url_codec, document_url, collect, depth,
                       make_form_url, form_charset) if state.base is not None and base != initial_base else None)
    results_before = len(results) if results is not None else 0
    # The scan above jumped over the links to this base's host and to the plainly spelled internal hosts.
    resolver.dq_tested = skip_same_host and resolver.fast
    if skip_same_host and not resolver.fast:
        # The base is not an internal http(s) URL, so a relative href may leave: every link must be looked at.
        if memo is not None:
            state = memo[0].scan(memo[1], buf, start, skip_same_host=False, scanners=DEFAULT_SCANNERS)
        else:
            state = ScanState()
            scan_html(buf, start, len(buf), state)
    found: list[ResolvedLink] = []
    replacements: list[tuple[int, int, bytes]] = []
    handle = resolver.handle
    fast = resolver.fast and not collect
    try:
        # Template contents too: inert in current browsers until a script clones them (then live, and warned), live
        # in Internet Explorer, which has no templates (the compatibility mode of 360, QQ...). Art. 15 (第十五条).
        for kind, start, end, flag in state.targets:
            if flag and fast and kind is LinkKind.HREF:
                continue  # a path or query on this (internal) host
            if early is not None and not flag and kind in _AT_INSERTION:
                new, info = early.handle(kind, buf, start, end)
            else:
                new, info = handle(kind, buf, start, end)
            if info is not None:
                found.append(info)
            if new is not None:
                replacements.append((start, end, new))
    finally:
        if results is not None and memo is not None:
            memo[0].links_added(memo[1], results, results_before)  # counted in the memo's bound
    return _Plan(replacements, len(state.targets), base, tuple(found))


def _apply(buf: bytes, replacements: list[tuple[int, int, bytes]]) -> bytes:
    # Views of ``buf``, not slices: the page's bytes are copied once, into the result (a 750 KB page's slices and
    # their join were 0.3 ms).
    view = memoryview(buf)
    pieces: list[bytes | memoryview] = []
    last = 0
    for start, end, new in replacements:
        pieces.append(view[last:start])
        pieces.append(new)
        last = end
    pieces.append(view[last:])
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
