"""Turns each request into a ``RequestContext``: request id, client address and country, client-sent host,
client certificate; and owns how the gate answers (``respond``, ``redirect``) and audits (``request_event``).

Runs first. It also does the header hygiene every later step relies on (``docs/decisions.md`` §1):
client-sent ``X-GovGate-*`` and other headers a portal might trust are removed, and ``X-Forwarded-For``
towards the upstream becomes the chain the gate believes, never an unverified client value. Requests the rules
and the portal could read differently get a 400 (``govgate.core.request_shape``). Plain-HTTP requests are
redirected to HTTPS unless the policy is ``insecure`` (Art. 29: secure connections).
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from ipaddress import IPv6Address, ip_address

from mitmproxy import http

from govgate.addons.tls import device_certificate
from govgate.cookies import (
    GateCookie,
    cookie_part_name,
    cookie_parts,
    is_gate_cookie,
    parse_cookie_headers,
    read_cookie,
)
from govgate.core import request_shape
from govgate.core.audit_event import AuditDecision, AuditEvent, AuditValue
from govgate.core.client_address import client_address, forwarded_chain
from govgate.core.device_certs import DeviceCertificate
from govgate.core.hosts import split_host_port
from govgate.core.https_redirect import https_location
from govgate.core.policy.model import IPAddress
from govgate.pages.layout import Page
from govgate.pages.refusal import bad_request, wants_json
from govgate.runtime import PolicySnapshot, Runtime

logger = logging.getLogger(__name__)

METADATA_KEY = "govgate"
LOCAL_KEY = "govgate.local"  # set when the gate answered the request itself

@dataclass(frozen=True, slots=True)
class RequestContext:
    """The facts about one request that every addon reads; one per flow under ``flow.metadata['govgate']``."""

    request_id: str
    client: IPAddress
    country: str | None  # the client's country by the snapshot's GeoIP database; None: unknown
    host: str  # the client-sent Host in canonical form (``govgate.core.hosts``), no port; "" when none
    path: str  # path and query as sent
    snapshot: PolicySnapshot  # the policy this request is judged by, from start to end
    device_cert: DeviceCertificate | None  # the client certificate presented, as examined at the TLS handshake
    as_json: bool  # the client asked for JSON


AUDIT_PATH_LENGTH = 1024  # characters of a path kept in an audit record


def request_event(ctx: RequestContext | None, flow: http.HTTPFlow, event: str, decision: AuditDecision, *,
                  time: datetime, reason: str | None = None, rule: str | None = None, account: str | None = None,
                  device: str | None = None, article: str | None = None,
                  extra: Mapping[str, AuditValue] | None = None) -> AuditEvent:
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


type CookiePairs = tuple[tuple[str, str], ...]


def _cookie_values(request: http.Request) -> list[str]:
    """The request's ``Cookie`` header values, decoded as mitmproxy's ``Headers.get_all`` decodes them."""
    return [value.decode("utf-8", "surrogateescape") for name, value in request.headers.fields
            if name.lower() == b"cookie"]


def request_cookies(request: http.Request) -> CookiePairs:
    """The request's cookies as (name, value) pairs in their order (``govgate.cookies.parse_cookie_headers``, over
    every ``Cookie`` header), read once for every question the gate asks of them."""
    values = _cookie_values(request)
    return tuple(parse_cookie_headers(values)) if values else ()


def strip_gate_cookies(request: http.Request, pairs: CookiePairs | None = None,
                       added: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """The gate's cookies (session id, device token, CSRF id, pending login) never reach the portal.
    ``pairs``: the request's cookies as ``request_cookies`` read them (read here when not given). ``added``: fields
    set in the same rebuild of the headers, any field of their names removed (the gate's identity headers).

    Every part of every ``Cookie`` header (``govgate.cookies.cookie_parts``: split at each ``;``, quotes or not)
    whose name is a gate cookie's is removed; the other parts go on as they came, joined by ``"; "`` in one header
    where the first ``Cookie`` was; none left → no ``Cookie`` header."""
    if pairs is None:
        pairs = request_cookies(request)
    strip = any(is_gate_cookie(name) for name, _ in pairs)
    if not strip and not added:
        return
    removed = {name.lower() for name, _ in added}
    cookie: bytes | None = None
    if strip:
        removed.add(b"cookie")
        kept = [part for part in cookie_parts(_cookie_values(request)) if not is_gate_cookie(cookie_part_name(part))]
        if kept:
            cookie = "; ".join(kept).encode("utf-8", "surrogateescape")
    fields: list[tuple[bytes, bytes]] = []
    for field in request.headers.fields:
        name = field[0].lower()
        if name not in removed:
            fields.append(field)
        elif cookie is not None and name == b"cookie":
            fields.append((field[0], cookie))
            cookie = None
    request.headers.fields = (*fields, *added)


def gate_cookie(flow: http.HTTPFlow, ctx: RequestContext, cookie: GateCookie,
                pairs: CookiePairs | None = None) -> str | None:
    """The value of one of the gate's cookies in this request (``govgate.cookies``), under the request's policy: the
    first of its name; None when absent or empty. ``pairs``: the request's cookies as ``request_cookies`` read them
    (read here when not given)."""
    return read_cookie(request_cookies(flow.request) if pairs is None else pairs, cookie,
                       insecure=ctx.snapshot.policy.gateway.insecure)


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


READ_HEADERS = frozenset({b"accept", b"x-forwarded-for", b"content-length", b"transfer-encoding"})


def read_headers(fields: tuple[tuple[bytes, bytes], ...]) -> dict[bytes, list[str]]:
    """The values of the headers in ``READ_HEADERS`` (by lower-case name, in order, decoded as mitmproxy's
    ``Headers.get_all`` decodes them), in one pass over the fields instead of one per header."""
    found: dict[bytes, list[str]] = {}
    for name, value in fields:
        key = name.lower()
        if key in READ_HEADERS:
            found.setdefault(key, []).append(value.decode("utf-8", "surrogateescape"))
    return found


def strip_client_headers(headers: http.Headers) -> None:
    """Remove every client-sent header the gate owns or a portal might trust: ``X-GovGate-*`` and the
    headers a portal might trust for identity, address, path or method, in any spelling
    (``govgate.core.request_shape``). A ``Connection`` header keeps only ``close``, ``keep-alive`` and ``upgrade``;
    the headers it named (hop-by-hop) go too (RFC 9110 §7.6.1)."""
    fields = headers.fields
    gate_sets = request_shape.only_the_gate_sets
    kept = fields
    for name, _ in fields:
        if gate_sets(name):  # each such field goes, in whatever case or spelling its name was sent
            kept = tuple(field for field in fields if not gate_sets(field[0]))
            break
    for name, _ in kept:
        if len(name) == 10 and name.lower() == b"connection":
            kept = _without_connection_options(kept)
            break
    if kept is not fields:
        headers.fields = kept


def _without_connection_options(fields: tuple[tuple[bytes, bytes], ...]) -> tuple[tuple[bytes, bytes], ...]:
    named: set[bytes] = set()
    for name, value in fields:
        if name.lower() == b"connection":
            named |= request_shape.connection_options(value)[0]
    if not named:
        return fields  # `Connection: keep-alive` (or close, upgrade): forwarded as it came
    out: list[tuple[bytes, bytes]] = []
    for name, value in fields:
        key = name.lower()
        if key == b"connection":
            forwarded = request_shape.connection_options(value)[1]
            if forwarded is not None:
                out.append((name, forwarded))
        elif key not in named:
            out.append((name, value))
    return tuple(out)


def context_of(flow: http.HTTPFlow) -> RequestContext | None:
    ctx = flow.metadata.get(METADATA_KEY)
    return ctx if isinstance(ctx, RequestContext) else None


@functools.lru_cache(maxsize=4096)
def _address(raw: str) -> IPAddress:
    """A peer's address as the rules read it (a pure function of the text: memoised, a flood of addresses only
    evicts); ``ValueError`` when it is not one."""
    addr = ip_address(raw.split("%", 1)[0])  # without an IPv6 zone id
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _peer_address(flow: http.HTTPFlow) -> IPAddress:
    peer = flow.client_conn.peername
    return _address(peer[0] if peer else "0.0.0.0")  # noqa: S104 (a placeholder address, nothing binds to it)


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
        headers = request.headers
        read = read_headers(headers.fields)  # one pass for the few headers read here, before any is changed
        accept = read.get(b"accept")
        as_json = wants_json(", ".join(accept) if accept is not None else None)

        try:
            peer = _peer_address(flow)
        except ValueError:
            respond(flow, bad_request(request_id, as_json=as_json))
            return
        xff = read.get(b"x-forwarded-for", [])
        trusted = policy.gateway.trusted_proxies
        client = client_address(peer, xff, trusted)

        # Identity headers come only from the gate; XFF is the chain the gate believes (docs/decisions.md §1).
        strip_client_headers(headers)
        chain = ", ".join(str(a) for a in forwarded_chain(peer, xff, trusted))
        # Both names were just stripped (they are among the spoofable ones): added at the end, as setting them would.
        headers.fields = (*headers.fields, (b"X-Forwarded-For", chain.encode()),
                          (b"X-Forwarded-Proto", b"http" if policy.gateway.insecure else b"https"))

        device_cert = device_certificate(flow.client_conn)

        # One reading of the Host for the rules, redirects and links (None: not a host; refused below).
        host_header = request.host_header
        authority = split_host_port(host_header) if host_header else None
        ctx = RequestContext(
            request_id=request_id,
            client=client,
            country=snapshot.geoip.country(client),
            host=authority[0] if authority is not None else "",
            path=request.path,
            snapshot=snapshot,
            device_cert=device_cert,
            as_json=as_json,
        )
        flow.metadata[METADATA_KEY] = ctx

        origin_form = not (request.http_version.startswith("HTTP/1") and request.data.authority)
        if (not origin_form or not request_shape.valid_target(request.data.path)
                or not request_shape.valid_headers(request.headers.fields)):
            respond(flow, bad_request(request_id, as_json=as_json, what="request target"))
            return
        if (not request_shape.valid_request_line(request.data.method, request.http_version, host_header)
                or (host_header and authority is None)):
            respond(flow, bad_request(request_id, as_json=as_json, what="method, version or host"))
            return
        if not request_shape.body_allowed(request.method, has_bytes=bool(request.raw_content),
                                          transfer_encoding=b"transfer-encoding" in read,
                                          content_lengths=read.get(b"content-length", ())):
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
