"""How Chromium reads a URL that the WHATWG URL parser (ada-url) rejects (Art. 15).

Owns one known way the browser departs from the spec, found by the browser differential test:
Chromium maps a host's fullwidth and compatibility forms (UTS 46) and then percent-decodes again, so
a host holding FULLWIDTH PERCENT SIGN (U+FF05, raw or as ``%EF%BC%85``) leads somewhere
(``http://www.gov.cn％2eevil.example/`` to ``www.gov.cn.evil.example``) where the spec's parser
fails. A link or redirect the spec rejects is only safe to leave as written when the browser cannot
follow it either, so the rewriter and the redirect check ask ``chromium_reading`` where it goes and
warn for that destination.
"""

from __future__ import annotations

import re

import ada_url

_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_C0_SPACE = "".join(map(chr, range(0x21)))
_NO_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
_AUTHORITY_END = re.compile(r"[/\\?#]")
_ESCAPE_TAIL = re.compile(r"[0-9A-Fa-f]{2}")
# Host code points neither reading lets through (Chromium fails on these or escapes them, and the
# spec fails): C0 controls, space, DEL, "%" and the delimiters.
_HOST_FORBIDDEN = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")
_IPV6_LITERAL = re.compile(r"\[[0-9A-Fa-f:.]*\]")
_FIRST_PASS_FORBIDDEN = re.compile(r"[\x00-\x20#%/<>?@\\^|\x7f]")


def _unescape_host(text: str, stage: int) -> str | None:
    """One percent-decoding pass of Chromium's host canonicaliser, or None where it fails.

    An escape that is not "%" and two hex digits fails; so does a decoded "%" (``%25``: Chromium
    decodes once per pass and never reads the result as an escape again). In the first pass the
    bytes are UTF-8 (invalid UTF-8 fails); in the second (after IDNA) a decoded non-ASCII byte fails.
    """
    if "%" not in text:
        return text
    parts = text.split("%")
    out = bytearray(parts[0].encode("utf-8"))
    for part in parts[1:]:
        if _ESCAPE_TAIL.match(part) is None:
            return None
        byte = int(part[:2], 16)
        if byte == 0x25 or (stage == 2 and byte >= 0x80):
            return None
        out.append(byte)
        out += part[2:].encode("utf-8")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _chromium_host(host: str) -> str | None:
    """The host Chromium canonicalises ``host`` to when the spec's parser rejects it, else None.

    Only a host that is not ASCII after percent-decoding goes through IDNA in Chromium, and Chromium
    percent-decodes the IDNA output once more: UTS 46 maps FULLWIDTH PERCENT SIGN U+FF05 (and SMALL
    PERCENT SIGN U+FE6A) to "%", so ``％４１.com`` becomes ``%41.com`` and then ``a.com``, where
    the spec fails on the "%". Fullwidth digits in an IPv6 literal (``[::１]``) are mapped the same
    way. Any other mapped delimiter (``／``, ``＠``, ``：``, ``？``...) makes Chromium fail too.
    """
    try:
        host.encode("utf-8")
    except UnicodeEncodeError:
        return None  # a lone surrogate (UTF-16 page): U+FFFD to Chromium, an IDNA error
    decoded = _unescape_host(host, 1)
    if decoded is None or decoded.isascii():
        return None  # no IDNA step: Chromium reads the host as the spec does
    if _FIRST_PASS_FORBIDDEN.search(decoded):
        return None  # "[", "]" and ":" may still make an IPv6 literal (``％5b::1]``), checked below
    mapped = ada_url.idna_to_ascii(decoded)
    text = mapped.decode("ascii", "replace") if isinstance(mapped, bytes) else mapped
    if not text:
        return None  # an IDNA error: Chromium fails as well
    result = _unescape_host(text, 2)
    if result is None or not result.isascii():
        return None
    if _IPV6_LITERAL.fullmatch(result) is None and _HOST_FORBIDDEN.search(result):
        return None
    return result


def chromium_reading(url: str, base_scheme: str | None) -> str | None:
    """``url`` with its host as Chromium reads it, for a URL the spec's parser rejected; else None.

    Art. 15: a link that the WHATWG parser (ada-url) rejects is left as written, which is only safe
    when the browser cannot follow it either. Chromium maps a host's fullwidth/compatibility forms
    (UTS 46) and then percent-decodes again, so a host holding U+FF05, raw or as ``%EF%BC%85``,
    leads somewhere (``http://www.gov.cn％2eevil.example/`` to ``www.gov.cn.evil.example``).
    This finds the authority as the spec does (special schemes only; a scheme-relative URL takes
    ``base_scheme``), splits host and port as Chromium does (the last ":" after any "]"), and puts
    Chromium's host in place; the caller parses the result with ada again. None when the host does
    not take Chromium's IDNA path or Chromium fails on it as well.
    """
    s = url.strip(_C0_SPACE).translate(_NO_TAB_NEWLINE)
    m = _SCHEME.match(s)
    if m is not None:
        scheme = m.group()[:-1].lower()
        if scheme not in _SPECIAL_SCHEMES:
            return None
        pos = m.end()
        if scheme == base_scheme and not (s[pos:pos + 1] in ("/", "\\") and s[pos + 1:pos + 2] in ("/", "\\")):
            return None  # relative to the base: its host is the base's
    elif base_scheme in _SPECIAL_SCHEMES and s[:1] in ("/", "\\") and s[1:2] in ("/", "\\"):
        pos = 0
    else:
        return None
    while pos < len(s) and s[pos] in "/\\":
        pos += 1
    end_m = _AUTHORITY_END.search(s, pos)
    end = end_m.start() if end_m is not None else len(s)
    at = s.rfind("@", pos, end)
    start = at + 1 if at >= 0 else pos  # the host follows the last "@"
    server = s[start:end]
    close = server.rfind("]")
    terminator = close if close >= 0 else (len(server) if server.startswith("[") else -1)
    colon = server.rfind(":")
    host = server[:colon] if colon > terminator else server
    new = _chromium_host(host) if host else None
    if new is None:
        return None
    return s[:start] + new + s[start + len(host):]
