"""Turns each request into a ``RequestContext``: request id, client address, client-sent host, device.

Runs first. It also does the header hygiene every later step relies on (``docs/decisions.md`` §1):
client-sent ``X-GovGate-*`` headers are removed, and ``X-Forwarded-For`` towards the upstream becomes
the chain the gate believes, never an unverified client value. Plain-HTTP requests are redirected to
HTTPS unless the policy is ``insecure`` (Art. 29: secure connections).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from ipaddress import IPv6Address, ip_address
from urllib.parse import unquote_to_bytes

from mitmproxy import http

from govgate.cookies import GateCookie, is_gate_cookie, read_cookie
from govgate.core.audit_event import AuditDecision, AuditEvent
from govgate.core.client_address import client_address, forwarded_chain
from govgate.core.hosts import split_host_port
from govgate.core.https_redirect import https_location
from govgate.core.policy.model import IPAddress
from govgate.pages.layout import Page
from govgate.pages.refusal import bad_request, wants_json
from govgate.runtime import PolicySnapshot, Runtime

logger = logging.getLogger(__name__)

METADATA_KEY = "govgate"
LOCAL_KEY = "govgate.local"  # set when the gate answered the request itself
# Headers the portal might trust for identity, client address, its own name or the path it serves (IIS and
# some frameworks honour X-Original-URL/X-Rewrite-URL over the request line): only the gate sets any of
# them. Compared with every non-alphanumeric character removed, so ``X.Real_IP`` or ``Remote_User`` go too.
SPOOFABLE_HEADERS = ("forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto",
                     "x-forwarded-for", "x-client-ip", "true-client-ip", "client-ip", "x-cluster-client-ip",
                     "x-original-forwarded-for", "x-forwarded-server", "x-forwarded-prefix", "x-forwarded-user",
                     "x-forwarded-email", "x-forwarded-groups", "remote-user", "x-remote-user", "x-remote-group",
                     "x-auth-user", "x-auth-request-user", "x-auth-request-email", "x-authenticated-user",
                     "x-user", "x-username", "x-original-url", "x-rewrite-url", "x-original-uri")
_TOKEN_PUNCTUATION = b"!#$%&'*+-.^_`|~"  # all a header name (an RFC 9110 token) may hold besides letters and digits
_SPOOFABLE_KEYS = frozenset(name.encode().translate(None, _TOKEN_PUNCTUATION) for name in SPOOFABLE_HEADERS)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The facts about one request that every addon reads; one per flow under ``flow.metadata['govgate']``."""

    request_id: str
    client: IPAddress
    country: str | None  # the client's country by the snapshot's GeoIP database; None: unknown
    host: str  # the client-sent Host in canonical form (``govgate.core.hosts``), no port; "" when none
    path: str  # path and query as sent
    snapshot: PolicySnapshot  # the policy this request is judged by, from start to end
    cert_sha256: bytes | None  # SHA-256 of the client certificate's DER, if one was presented
    as_json: bool  # the client asked for JSON


AUDIT_PATH_LENGTH = 1024  # characters of a path kept in an audit record


def request_event(ctx: RequestContext | None, flow: http.HTTPFlow, event: str, decision: AuditDecision, *,
                  time: datetime, reason: str | None = None, rule: str | None = None, account: str | None = None,
                  device: str | None = None, article: str | None = None,
                  extra: Mapping[str, str | int | bool | None] | None = None) -> AuditEvent:
    """The audit record of something that happened to this request (Art. 20), its request fields filled the
    one way every addon fills them: request id, client and country from the context, the host as the rules
    read it (canonical, no port), the method, and the path without its query, cut at ``AUDIT_PATH_LENGTH``.
    Without a context (a flow the context addon never saw) only the method and path are known."""
    return AuditEvent(
        event=event, time=time, request_id=ctx.request_id if ctx else None,
        client=str(ctx.client) if ctx else None, country=ctx.country if ctx else None, device=device,
        account=account, method=flow.request.method, host=ctx.host if ctx else None,
        path=flow.request.path.split("?", 1)[0][:AUDIT_PATH_LENGTH], rule=rule, decision=decision, reason=reason,
        article=article, extra=extra or {},
    )


def strip_gate_cookies(request: http.Request) -> None:
    """The gate's cookies (session id, device token, CSRF id, pending login) never reach the portal."""
    cookies = request.cookies
    names = {name for name in cookies if is_gate_cookie(name)}
    if names:
        for name in names:
            del cookies[name]
        if not cookies:
            request.headers.pop("cookie", None)


def gate_cookie(flow: http.HTTPFlow, ctx: RequestContext, cookie: GateCookie) -> str | None:
    """The value of one of the gate's cookies in this request (``govgate.cookies``), under the request's policy."""
    return read_cookie(flow.request.cookies, cookie, insecure=ctx.snapshot.policy.gateway.insecure)


def respond(flow: http.HTTPFlow, page: Page) -> None:
    """Answer the request from the gate; later addons step aside (``flow.response`` is set)."""
    headers: list[tuple[bytes, bytes]] = [(b"content-type", page.content_type.encode())]
    headers.extend((k.encode(), v.encode()) for k, v in page.headers)
    flow.response = http.Response.make(page.status, page.body, headers)
    flow.metadata[LOCAL_KEY] = True


def redirect(flow: http.HTTPFlow, location: str, *, status: int = 303,
             headers: tuple[tuple[str, str], ...] = ()) -> None:
    """Answer with a redirect made by the gate (never cached)."""
    pairs = [("Location", location), ("Cache-Control", "no-store"), *headers]
    flow.response = http.Response.make(status, b"", [(k.encode(), v.encode()) for k, v in pairs])
    flow.metadata[LOCAL_KEY] = True


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
    if _DOT_SEGMENT.search(path) is not None:
        return False
    return b"%" not in path or _decoded_segments_ok(path)


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

    Portals decode in different ways: overlong UTF-8 (``%c0%ae`` for ".", ``%c0%af`` for "/"), an
    encoded ``;`` before path parameters are cut (``..%3b``, Tomcat's ``..;``), or Unicode
    compatibility forms (``%ef%bc%8e``, FULLWIDTH FULL STOP) could all turn a segment the gate read
    as a name into ``..`` for the portal. Escapes that are simply not UTF-8 (a legacy portal's GBK
    file names) stay allowed.
    """
    for segment in path.split(b"/"):
        if b"%" not in segment:
            continue
        text = _lenient(unquote_to_bytes(segment))
        if "/" in text or "\\" in text:
            return False
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
    return _AUTHORITY.fullmatch(raw) is not None


_BODYLESS_METHODS = frozenset({"GET", "HEAD"})


def body_allowed(request: http.Request) -> bool:
    """A ``GET`` or ``HEAD`` carries no body (no ``Transfer-Encoding``, no ``Content-Length`` other than 0, no
    bytes): portals that ignore such a body would read it as the next request (request smuggling)."""
    if request.method.upper() not in _BODYLESS_METHODS:
        return True
    if request.raw_content or "transfer-encoding" in request.headers:
        return False
    return all(value.strip() == "0" for value in request.headers.get_all("content-length"))


def valid_headers(fields: tuple[tuple[bytes, bytes], ...]) -> bool:
    """No control characters (NUL, CR, LF…) in header values (RFC 9110 §5.5): refuse, don't pass them on."""
    return not any(_BAD_FIELD_VALUE.search(value) for _, value in fields)


def strip_client_headers(headers: http.Headers) -> None:
    """Remove every client-sent header the gate owns or a portal might trust: ``X-GovGate-*`` and the
    ``SPOOFABLE_HEADERS`` in any spelling (``X_GovGate_User`` reaches CGI/WSGI portals as the same variable,
    ``X.GovGate.User`` or ``X-GovGateUser`` may reach others)."""
    doomed = {name for name, _ in headers.fields
              if (key := name.lower().translate(None, _TOKEN_PUNCTUATION)).startswith(b"xgovgate")
              or key in _SPOOFABLE_KEYS}
    for name in doomed:
        headers.pop(name.decode("utf-8", "surrogateescape"), None)


def context_of(flow: http.HTTPFlow) -> RequestContext | None:
    ctx = flow.metadata.get(METADATA_KEY)
    return ctx if isinstance(ctx, RequestContext) else None


def _peer_address(flow: http.HTTPFlow) -> IPAddress:
    peer = flow.client_conn.peername
    raw = peer[0] if peer else "0.0.0.0"  # noqa: S104 (a placeholder address, nothing binds to it)
    raw = raw.split("%", 1)[0]  # IPv6 zone id
    addr = ip_address(raw)
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class RequestContextAddon:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        snapshot = self.runtime.snapshot
        policy = snapshot.policy
        request = flow.request
        request_id = secrets.token_hex(8)
        as_json = wants_json(request.headers.get("accept"))

        try:
            peer = _peer_address(flow)
        except ValueError:
            respond(flow, bad_request(request_id, as_json=as_json))
            return
        xff = request.headers.get_all("x-forwarded-for")
        trusted = policy.gateway.trusted_proxies
        client = client_address(peer, xff, trusted)

        # Identity headers come only from the gate; XFF is the chain the gate believes (docs/decisions.md §1).
        strip_client_headers(request.headers)
        request.headers["X-Forwarded-For"] = ", ".join(str(a) for a in forwarded_chain(peer, xff, trusted))
        request.headers["X-Forwarded-Proto"] = "http" if policy.gateway.insecure else "https"

        certs = flow.client_conn.certificate_list
        cert_sha256 = None
        if certs:
            from cryptography.hazmat.primitives.serialization import Encoding

            cert_sha256 = hashlib.sha256(certs[0].to_cryptography().public_bytes(Encoding.DER)).digest()

        # One reading of the Host for the rules, redirects and links (None: not a host; refused below).
        authority = split_host_port(request.host_header) if request.host_header else None
        ctx = RequestContext(
            request_id=request_id,
            client=client,
            country=snapshot.geoip.country(client),
            host=authority[0] if authority is not None else "",
            path=request.path,
            snapshot=snapshot,
            cert_sha256=cert_sha256,
            as_json=as_json,
        )
        flow.metadata[METADATA_KEY] = ctx

        origin_form = not (request.http_version.startswith("HTTP/1") and request.data.authority)
        if not origin_form or not valid_target(request.data.path) or not valid_headers(request.headers.fields):
            respond(flow, bad_request(request_id, as_json=as_json, what="request target"))
            return
        if (not valid_request_line(request.data.method, request.http_version, request.host_header)
                or (request.host_header and authority is None)):
            respond(flow, bad_request(request_id, as_json=as_json, what="method, version or host"))
            return
        if not body_allowed(request):
            # A body a portal may ignore (CL.0) could carry a second request the gate never judged: refuse it, and
            # close the connection after the answer so nothing after it is read as a request either.
            page = bad_request(request_id, as_json=as_json, what="body on GET/HEAD")
            if request.http_version.startswith("HTTP/1"):  # HTTP/2 frames each request: nothing to desync
                page = replace(page, headers=(*page.headers, ("Connection", "close")))
            respond(flow, page)
            return
        # Art. 29 (第二十九条): access must use secure connections.
        if not policy.gateway.insecure and not flow.client_conn.tls_established:
            # The same port serves TLS: keep the one the client used with a public name, but only the port it
            # reached us on (a made-up one is never sent back).
            public = ctx.host in policy.gateway.public_hosts
            port = authority[1] if public and authority is not None else None
            reached = flow.client_conn.sockname[1]
            location = https_location(ctx.host, request.path, policy.gateway.public_hosts,
                                      reached if port == reached else None)
            if location is None:  # nowhere safe to send it (the validator requires public_hosts; belt and braces)
                respond(flow, bad_request(request_id, as_json=as_json, what="https required"))
                return
            redirect(flow, location, status=308)
