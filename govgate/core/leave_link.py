"""Signed leave-page URLs (Art. 15): ``{prefix}/leave?url=<percent-encoded>&sig=<base64url HMAC>`` for links,
and ``{prefix}/leave-form/<charset>/<base64url URL>/<sig>`` for the targets of forms.

Owns making and checking the ``sig``: an HMAC-SHA256 over the UTF-8 bytes of the destination URL
(its WHATWG serialisation) under the gateway key derived for ``Purpose.LEAVE_LINK``. Only URLs the
gateway itself rewrote carry a valid ``sig``, so the leave page is never an open redirect.

A form's target cannot carry its destination in the query: a browser submitting a form by GET
replaces the action URL's query with the form's fields (WHATWG HTML, "mutate action URL"), so
``leave?url=…&sig=…`` would arrive as ``leave?q=…`` and be refused. The form target therefore
carries the destination in its path, base64url-encoded, with the encoding the page submits its
fields in (the page's, which the warning page needs to pass posted fields on unchanged) and a
``sig`` over both under its own key (``Purpose.LEAVE_FORM``): a link's ``sig`` is no form's, and a
form's is no link's. The query stays the browser's: the fields a GET form submitted.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping
from urllib.parse import parse_qs, quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from govgate.core.keys import GatewayKeys, Purpose

MAX_URL_LENGTH = 8192  # longer destinations are refused rather than signed or shown


@functools.lru_cache(maxsize=8)
def _mac_template(key: bytes) -> HMAC:
    # Keyed once per gateway key; each signature copies it (a page may carry thousands of links). cryptography's
    # HMAC, not the standard library's: its copy is one call into OpenSSL, where ``hmac.HMAC.copy`` and ``digest``
    # add about 0.5 µs of Python to every signature. The same HMAC-SHA256 as ``GatewayKeys.mac`` (which checks it).
    return HMAC(key, hashes.SHA256())


def _link_key(keys: GatewayKeys) -> bytes:
    # The memos below are keyed by the derived key's bytes, not by ``keys``: a bytes object keeps its hash, where
    # ``GatewayKeys.__hash__`` is a Python call (0.15 µs) on every lookup.
    return keys.derive(Purpose.LEAVE_LINK)


def _sig(key: bytes, message: bytes) -> str:
    mac = _mac_template(key).copy()
    mac.update(message)
    # ``base64.urlsafe_b64encode`` without its two Python calls; 32 bytes: 43 characters and one "=", cut off.
    return binascii.b2a_base64(mac.finalize(), newline=False).translate(_URLSAFE)[:43].decode("ascii")


def sign_leave(url: str, keys: GatewayKeys) -> str:
    """The base64url (unpadded) HMAC-SHA256 of ``url`` under the ``LEAVE_LINK`` key."""
    return _sig(_link_key(keys), url.encode("utf-8", "surrogatepass"))


_URLSAFE = bytes.maketrans(b"+/", b"-_")


# Percent-encode all but unreserved characters and ":/?@=,", which are safe inside a query value and keep
# the link readable; "&", "#", "+", "%", quotes and everything else are encoded.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:/?@=,-]")


# The same escapes for ASCII text in one pass (``str.translate``): what ``quote(ch, safe="")`` gives each character,
# indexed by code point (a list: a dict table would raise and catch a KeyError for every character kept).
_ASCII_ESCAPES = [f"%{c:02X}" if _UNSAFE.fullmatch(chr(c)) else chr(c) for c in range(128)]


def encode_url_param(url: str) -> str:
    """``url`` percent-encoded for the ``url`` query parameter (decodes back with ``parse_qs``)."""
    if url.isascii():
        # A WHATWG serialisation is ASCII: one pass, each character escaped once, "%" included.
        return url.translate(_ASCII_ESCAPES)
    found = set(_UNSAFE.findall(url))
    if not found:
        return url
    if "%" in found:  # first, so that the escapes added below are not escaped again
        url = url.replace("%", "%25")
        found.discard("%")
    for ch in found:
        url = url.replace(ch, quote(ch, safe=""))
    return url


# An ASCII URL whose only characters to escape are "%" and "&" (a WHATWG serialisation with a query, most often) is
# escaped by two replacements, "%" first; any other by the table (``test_leave_link_memo`` checks both against
# ``encode_url_param``).
_UNSAFE_BUT_PCT_AMP = re.compile(r"[^A-Za-z0-9_.~:/?@=,%&-]")


def _escape_ascii(url: str) -> str:
    if _UNSAFE_BUT_PCT_AMP.search(url) is None:
        return url.replace("%", "%25").replace("&", "%26")
    return url.translate(_ASCII_ESCAPES)


# Longer destinations are signed afresh each time, not kept in ``_signed``'s memo: an entry holds the URL and its
# escaped form (up to three times as long), so the memo holds about 9 MB at most (4,096 entries).
MEMO_URL_LENGTH = 512


@functools.lru_cache(maxsize=4096)
def _signed(url: str, key: bytes) -> tuple[str, str]:
    # (``url`` escaped for the query, its ``sig``): a function of its arguments only (an HMAC under ``key``, the
    # ``LEAVE_LINK`` key, and an escape), so it is memoised: a page names the same destinations each time it is served
    # (4,096 at most, each at most MEMO_URL_LENGTH characters long).
    if url.isascii():
        # The common case (a WHATWG serialisation is ASCII) escaped without ``encode_url_param``'s tests: a page whose
        # every destination is new pays this once per link (``test_leave_link_memo`` checks that both agree).
        return _escape_ascii(url), _sig(key, url.encode("ascii"))
    return encode_url_param(url), _sig(key, url.encode("utf-8", "surrogatepass"))


def _escaped_and_signed(url: str, keys: GatewayKeys) -> tuple[str, str]:
    """``_signed`` of an http(s) URL under the ``LEAVE_LINK`` key of ``keys``; raises ``ValueError`` for any other
    scheme (Art. 15: only web destinations are ever signed)."""
    # A WHATWG serialisation (what the rewriter passes) has its scheme in lower case: tested as it is first.
    if not url.startswith(("https://", "http://")) and not url[:8].lower().startswith(("http://", "https://")):
        raise ValueError("only http(s) destinations are signed")
    if len(url) > MEMO_URL_LENGTH:
        return _signed.__wrapped__(url, _link_key(keys))
    return _signed(url, _link_key(keys))


def leave_url(prefix: str, url: str, keys: GatewayKeys) -> str:
    """The path (under the gate's ``prefix``) of the warning page for ``url``, an http(s) URL.

    Raises ``ValueError`` for any other scheme: only web destinations are ever signed (Art. 15).
    """
    escaped, sig = _escaped_and_signed(url, keys)
    return f"{prefix}/leave?url={escaped}&sig={sig}"


class LeaveLinks:
    """The maker of absolute leave URLs on one origin: ``LeaveLinks(origin, prefix, keys)(url)`` is
    ``origin + leave_url(prefix, url, keys)``. ``attr(url)`` is the same URL as the ASCII bytes written into an
    HTML attribute value, its "&" as "&amp;" (what ``link_rewrite`` writes for a link), in one call."""

    __slots__ = ("_attr_head", "_key", "keys", "origin", "prefix")

    def __init__(self, origin: str, prefix: str, keys: GatewayKeys) -> None:
        self.origin = origin
        self.prefix = prefix
        self.keys = keys
        self._key = _link_key(keys)
        # The escaped destination holds no "&" (it is "%26") and the sig none: only the fixed parts need "&amp;".
        self._attr_head = f"{origin}{prefix}/leave?url=".replace("&", "&amp;")

    def __call__(self, url: str) -> str:
        return self.origin + leave_url(self.prefix, url, self.keys)

    def attr(self, url: str) -> bytes:
        """``self(url)`` escaped for an attribute value (whatever its quoting) and encoded."""
        # ``_escaped_and_signed`` written inline for its commonest case (a link's every new destination pays it).
        if url.startswith(("https://", "http://")) and len(url) <= MEMO_URL_LENGTH:
            escaped, sig = _signed(url, self._key)
        else:
            escaped, sig = _escaped_and_signed(url, self.keys)
        return f"{self._attr_head}{escaped}&amp;sig={sig}".encode("ascii")


def verify_leave(url: str, sig: str, keys: GatewayKeys) -> bool:
    """Constant-time check that ``sig`` was made by ``sign_leave`` for exactly ``url``."""
    # Art. 15 (第十五条): the warning page only ever names destinations the gateway itself rewrote.
    if not url or not sig or len(url) > MAX_URL_LENGTH or len(sig) > 128 or not sig.isascii():
        return False
    try:
        tag = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    except (binascii.Error, ValueError):
        return False
    try:
        message = url.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return keys.verify_mac(Purpose.LEAVE_LINK, message, tag)


def leave_params(query: Mapping[str, str] | str) -> tuple[str, str] | None:
    """``(url, sig)`` from a query string or mapping; None unless each appears exactly once."""
    if isinstance(query, str):
        try:
            parsed = parse_qs(query.lstrip("?"), keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            return None
        urls, sigs = parsed.get("url", []), parsed.get("sig", [])
        if len(urls) != 1 or len(sigs) != 1:
            return None
        return urls[0], sigs[0]
    get_all = getattr(query, "get_all", None)  # mitmproxy's MultiDictView: refuse repeated parameters
    if callable(get_all):
        urls, sigs = get_all("url"), get_all("sig")
        if len(urls) != 1 or len(sigs) != 1:
            return None
        return str(urls[0]), str(sigs[0])
    url, sig = query.get("url"), query.get("sig")
    if url is None or sig is None:
        return None
    return url, sig



# -- form targets --------------------------------------------------------------------------------------

FORM_PAGE = "leave-form"
_CHARSET_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")  # WHATWG encoding names: UTF-8, GBK, Shift_JIS, windows-1252…


def _form_message(url: str, charset: str) -> bytes:
    return charset.encode("ascii") + b"\n" + url.encode("utf-8", "surrogatepass")


def leave_form_url(prefix: str, url: str, charset: str, keys: GatewayKeys) -> str:
    """The path (under ``prefix``) a form whose target is ``url``, an http(s) URL, is pointed at instead. ``charset``
    is the WHATWG name of the encoding the page submits its fields in (``UTF-8``, ``GBK``…).

    Raises ``ValueError`` for any other scheme, or a charset that is not an encoding name.
    """
    if not url[:8].lower().startswith(("http://", "https://")):
        raise ValueError("only http(s) destinations are signed")
    if not _CHARSET_NAME.fullmatch(charset):
        raise ValueError(f"not an encoding name: {charset!r}")
    encoded = base64.urlsafe_b64encode(url.encode("utf-8", "surrogatepass")).rstrip(b"=").decode("ascii")
    tag = keys.mac(Purpose.LEAVE_FORM, _form_message(url, charset))
    sig = base64.urlsafe_b64encode(tag).rstrip(b"=").decode("ascii")
    return f"{prefix}/{FORM_PAGE}/{charset}/{encoded}/{sig}"


def verify_leave_form(rest: str, keys: GatewayKeys) -> tuple[str, str] | None:
    """``(url, charset)`` from the part of a form target's path after ``{prefix}/leave-form/``, when its ``sig`` is
    ours for exactly them (checked in constant time); else None."""
    # Art. 15 (第十五条): the warning page only ever names destinations the gateway itself rewrote.
    parts = rest.split("/")
    if len(parts) != 3:
        return None
    charset, encoded, sig = parts
    if not _CHARSET_NAME.fullmatch(charset) or not encoded or len(encoded) > MAX_URL_LENGTH * 2:
        return None
    if not sig or len(sig) > 128 or not sig.isascii() or not encoded.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        tag = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        url = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not url or len(url) > MAX_URL_LENGTH:
        return None
    if not keys.verify_mac(Purpose.LEAVE_FORM, _form_message(url, charset), tag):
        return None
    return url, charset
