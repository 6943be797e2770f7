"""The shape of a request the gate reads: what it refuses with 400 rather than guess at, and the headers only it sets.

The rules judge a normalised path, host and method, but the portal receives the request as sent. Anything the two
could read differently is refused before it is judged (``docs/decisions.md`` §4): a request target that is not
plain origin-form (``valid_target``), an odd method, version or Host (``valid_request_line``), control
characters in a header value or a header name that is not a token (``valid_headers``), a body on a ``GET`` or
``HEAD`` that a portal might read as the next request (``body_allowed``). And the client never speaks for the gate:
the headers a portal might trust for identity, address or path are removed in any spelling
(``only_the_gate_sets``, ``docs/decisions.md`` §1).

Pure functions of bytes and strings; ``govgate.addons.context`` applies them to each request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

# Headers the portal might trust for identity, client address, its own name, the path it serves (IIS and
# some frameworks honour X-Original-URL/X-Rewrite-URL over the request line) or the method (X-HTTP-Method-Override
# turns a POST the rules judged into a DELETE): only the gate sets any of them. Compared with every
# non-alphanumeric character removed, so ``X.Real_IP`` or ``Remote_User`` go too.
SPOOFABLE_HEADERS = ("forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto",
                     "x-forwarded-for", "x-client-ip", "true-client-ip", "client-ip", "x-cluster-client-ip",
                     "x-original-forwarded-for", "x-forwarded-server", "x-forwarded-prefix", "x-forwarded-user",
                     "x-forwarded-email", "x-forwarded-groups", "remote-user", "x-remote-user", "x-remote-group",
                     "x-auth-user", "x-auth-request-user", "x-auth-request-email", "x-authenticated-user",
                     "x-user", "x-username", "x-original-url", "x-rewrite-url", "x-original-uri", "x-forwarded-uri",
                     "x-forwarded-path", "x-forwarded-scheme", "x-forwarded-ssl", "x-url-scheme", "front-end-https",
                     "x-original-host", "x-host",
                     # the method a framework serves instead of the request's (rules may name methods)
                     "x-http-method-override", "x-http-method", "x-method-override", "x-original-method")
_TOKEN_PUNCTUATION = b"!#$%&'*+-.^_`|~"  # all a header name (an RFC 9110 token) may hold besides letters and digits
_SPOOFABLE_KEYS = frozenset(name.encode().translate(None, _TOKEN_PUNCTUATION) for name in SPOOFABLE_HEADERS)


def only_the_gate_sets(name: bytes) -> bool:
    """A header name only the gate may send the portal: ``X-GovGate-*`` or one of ``SPOOFABLE_HEADERS``, in any
    spelling (``X_GovGate_User`` reaches CGI/WSGI portals as the same variable, ``X.GovGate.User`` or
    ``X-GovGateUser`` may reach others)."""
    key = name.lower().translate(None, _TOKEN_PUNCTUATION)
    return key.startswith(b"xgovgate") or key in _SPOOFABLE_KEYS


# Connection options a proxy keeps (RFC 9110 §7.6.1); any other names a header the next hop must drop.
_CONNECTION_KEPT = frozenset({b"close", b"keep-alive", b"upgrade"})
# Never dropped for a client's Connection option: without its length the body of a request would reach the portal
# as the next request, one the gate never judged (request smuggling; found in review of the first version).
_NEVER_HOP_BY_HOP = frozenset({b"content-length", b"transfer-encoding", b"host"})


def connection_options(value: bytes) -> tuple[frozenset[bytes], bytes | None]:
    """A client's ``Connection`` header value read as a proxy must (RFC 9110 §7.6.1): the header names it lists,
    lower-case (hop-by-hop: not forwarded; never ``Content-Length``, ``Transfer-Encoding`` or ``Host``, which
    frame and address the request), and the value to forward, its ``close``, ``keep-alive`` and ``upgrade`` only
    (None: nothing left). A client must not make a proxy between the gate and the portal drop the gate's own
    headers (``Connection: close, X-Forwarded-For``)."""
    tokens = [t.strip().lower() for t in value.split(b",")]
    named = frozenset(t for t in tokens if t and t not in _CONNECTION_KEPT and t not in _NEVER_HOP_BY_HOP)
    kept = [t for t in tokens if t in _CONNECTION_KEPT]
    return named, b", ".join(kept) if kept else None


_TARGET = re.compile(rb"/[\x21\x22\x24-\x7e]*")  # printable ASCII without "#"
_DOT_SEGMENT = re.compile(rb"(?:^|/)(?:\.|%2e){1,2}(?:[/;]|$)", re.IGNORECASE)


def valid_target(raw: bytes) -> bool:
    """An origin-form request target of printable ASCII without fragment or dot-segments.

    The rules judge a normalised path, but the portal receives the path as sent, so anything the two
    could read differently is refused rather than guessed at: absolute- and asterisk-form targets, raw
    non-ASCII bytes, a ``#`` (never sent by browsers), and ``.``/``..`` segments, plain or
    percent-encoded (browsers resolve those before sending: ``/oa/../news/`` would be judged as
    ``/news/`` while a portal routing on the raw prefix serves ``/oa/``).
    """
    if _TARGET.fullmatch(raw) is None:
        return False
    path = raw.split(b"?", 1)[0]
    if path.startswith(b"//"):
        # A URL parser reads ``//news/oa/x`` as host ``news``, path ``/oa/x`` (Node's ``new URL(req.url, base)``,
        # the JDK's HttpServer, PHP's ``parse_url``), while the rules would judge ``/news/oa/x``: a public rule
        # would let a staff page through. Browsers never send one (``//x`` is a link to another host).
        return False
    if _DOT_SEGMENT.search(path) is not None:
        return False
    return b"%" not in path or _decoded_segments_ok(path)


_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")
_OVERLONG = re.compile(rb"[\xc0\xc1][\x80-\xbf]|\xe0[\x80-\x9f][\x80-\xbf]|\xf0[\x80-\x8f][\x80-\xbf]{2}")


def _lenient(data: bytes) -> str:
    """``data`` as a lenient decoder reads it: overlong UTF-8 forms of ASCII become that ASCII."""
    def ascii_of(m: re.Match[bytes]) -> bytes:
        seq = m.group()
        cp = 0
        for i, byte in enumerate(seq):
            cp = (cp << 6) | (byte & (0x3F if i else (0x1F, 0x0F, 0x07)[len(seq) - 2]))
        return bytes([cp]) if cp < 0x80 else b"?"

    return _OVERLONG.sub(ascii_of, data).decode("utf-8", "replace")


def _decoded_segments_ok(path: bytes) -> bool:
    """No segment may decode, in any way a portal might decode it, to a dot-segment or hide a slash.

    Nor may it be encoded twice: what a portal that decodes twice reads is not what the rules judged.
    Portals decode in different ways: overlong UTF-8 (``%c0%ae`` for ".", ``%c0%af`` for "/"), an
    encoded ``;`` before path parameters are cut (``..%3b``, Tomcat's ``..;``), or Unicode
    compatibility forms (``%ef%bc%8e``, FULLWIDTH FULL STOP) could all turn a segment the gate read
    as a name into ``..`` for the portal. Escapes that are simply not UTF-8 (a legacy portal's GBK
    file names) stay allowed.
    """
    for segment in path.split(b"/"):
        if b"%" not in segment:
            continue
        once = unquote_to_bytes(segment)
        if _ESCAPE.search(once):
            return False  # encoded twice (``%25%32%66``, ``%252f``): a portal that decodes twice reads another path
        text = _lenient(once)
        if "/" in text or "\\" in text or "\x00" in text:
            return False  # a slash, or a NUL in any spelling (``%c0%80``, as ``%00``): names a portal cuts
        if unicodedata.normalize("NFKC", text.split(";", 1)[0]).strip() in (".", ".."):
            return False
    return True


_BAD_FIELD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}")  # an RFC 9110 token
# reg-name or IP literal, optional port; browsers send IDNs as punycode
_AUTHORITY = re.compile(rb"(?:[A-Za-z0-9._~-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")
HTTP_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3"})


def valid_request_line(method: bytes, http_version: str, host: str | None) -> bool:
    """A token method, a version we speak and an ASCII host: anything else is refused with a 400 (never
    passed on, and never let into the rules, the page links or the audit log as odd text)."""
    if _METHOD.fullmatch(method) is None or http_version not in HTTP_VERSIONS:
        return False
    if host is None:
        return http_version == "HTTP/1.0"  # HTTP/1.1 requires Host (RFC 9112 §3.2); HTTP/2 has :authority
    try:
        raw = host.encode("ascii")
    except UnicodeEncodeError:  # mitmproxy keeps bytes that are not UTF-8 as lone surrogates
        return False
    if not raw and http_version != "HTTP/1.0":
        return False  # an empty Host (RFC 9112 §3.2: a server must answer 400; an http URI has a host)
    return _AUTHORITY.fullmatch(raw) is not None


_BODYLESS_METHODS = frozenset({"GET", "HEAD"})


def body_allowed(method: str, *, has_bytes: bool, transfer_encoding: bool, content_lengths: Iterable[str]) -> bool:
    """A ``GET`` or ``HEAD`` carries no body (no ``Transfer-Encoding``, no ``Content-Length`` other than 0, no
    bytes): portals that ignore such a body would read it as the next request (request smuggling)."""
    if method.upper() not in _BODYLESS_METHODS:
        return True
    if has_bytes or transfer_encoding:
        return False
    return all(value.strip() == "0" for value in content_lengths)


# Header names joined by NUL (which no name may hold): a byte outside an RFC 9110 token, or an empty name.
_BAD_FIELD_NAMES = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z\x00]|\x00\x00|\A\x00|\x00\Z")


def valid_headers(fields: tuple[tuple[bytes, bytes], ...]) -> bool:
    """No control characters (NUL, CR, LF…) in header values (RFC 9110 §5.5), and every header name a token (RFC 9110
    §5.1): refuse, don't pass them on. A name with a space before its colon (``Cookie : …``, which mitmproxy reads
    as the name ``Cookie ``) is one the gate would not read as the header a lenient portal takes it for (RFC 9112
    §5.1: a server must refuse it)."""
    if not fields:
        return True
    names = b"\x00".join(name for name, _ in fields)
    if not names or names.count(b"\x00") != len(fields) - 1 or _BAD_FIELD_NAMES.search(names):
        return False  # an empty name, a NUL in one, or a byte no token has
    return not any(_BAD_FIELD_VALUE.search(value) for _, value in fields)
