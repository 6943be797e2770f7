"""Turns each request into a ``RequestContext``: request id, client address, client-sent host, device.

Runs first. It also does the header hygiene every later step relies on (contract §4.1, §4.7):
client-sent ``X-GovGate-*`` headers are removed, and ``X-Forwarded-For`` towards the upstream becomes
the chain the gate believes, never an unverified client value. Plain-HTTP requests are redirected to
HTTPS unless the policy is ``insecure`` (Art. 29: secure connections).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address

from mitmproxy import http

from govgate.core.client_address import client_address, forwarded_chain
from govgate.core.policy.model import IPAddress
from govgate.live_runtime import LiveRuntime, Snapshot
from govgate.pages.layout import Page
from govgate.pages.refusal import bad_request, wants_json

logger = logging.getLogger(__name__)

METADATA_KEY = "govgate"
LOCAL_KEY = "govgate.local"  # set when the gate answered the request itself
IDENTITY_HEADERS = ("x-govgate-user", "x-govgate-groups", "x-govgate-device")
DEVICE_COOKIE = "govgate-device"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The facts about one request that every addon reads; one per flow under ``flow.metadata['govgate']``."""

    request_id: str
    client: IPAddress
    host: str  # as the client sent it: lower-case, no port, no trailing dot
    path: str  # path and query as sent
    snapshot: Snapshot  # the policy this request is judged by, from start to end
    cert_sha256: bytes | None  # SHA-256 of the client certificate's DER, if one was presented
    as_json: bool  # the client asked for JSON


def normalise_host(host_header: str | None) -> str:
    if not host_header:
        return ""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host.rstrip(".")


def cookie_name(base: str, insecure: bool) -> str:
    # `__Host-` cookies must be Secure, so plain-HTTP trial mode uses the bare name.
    return base if insecure else f"__Host-{base}"


def set_cookie(name: str, value: str, *, insecure: bool, max_age: int | None = None) -> str:
    parts = [f"{cookie_name(name, insecure)}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if not insecure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def clear_cookie(name: str, *, insecure: bool) -> str:
    return set_cookie(name, "", insecure=insecure, max_age=0)


def get_cookie(flow: http.HTTPFlow, name: str, insecure: bool) -> str | None:
    value = flow.request.cookies.get(cookie_name(name, insecure))
    return value if value else None


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


_TARGET = re.compile(rb"/[\x21-\x7e]*")


def valid_target(raw: bytes) -> bool:
    """An origin-form request target of printable ASCII (RFC 9112 §3.2.1; browsers percent-encode the rest).

    Absolute-form and asterisk-form targets have no business at a reverse proxy, and raw non-ASCII
    bytes (invalid UTF-8 or not) would reach rules and the portal in some guessed decoding.
    """
    return _TARGET.fullmatch(raw) is not None


_BAD_FIELD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def valid_headers(fields: tuple[tuple[bytes, bytes], ...]) -> bool:
    """No control characters (NUL, CR, LF…) in header values (RFC 9110 §5.5): refuse, don't pass them on."""
    return not any(_BAD_FIELD_VALUE.search(value) for _, value in fields)


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
    def __init__(self, runtime: LiveRuntime) -> None:
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

        # Contract §4.7: identity headers come only from the gate; XFF is the chain the gate believes.
        for name in IDENTITY_HEADERS:
            request.headers.pop(name, None)
        request.headers["X-Forwarded-For"] = ", ".join(str(a) for a in forwarded_chain(peer, xff, trusted))
        request.headers["X-Forwarded-Proto"] = "http" if policy.gateway.insecure else "https"

        certs = flow.client_conn.certificate_list
        cert_sha256 = None
        if certs:
            from cryptography.hazmat.primitives.serialization import Encoding

            cert_sha256 = hashlib.sha256(certs[0].to_cryptography().public_bytes(Encoding.DER)).digest()

        ctx = RequestContext(
            request_id=request_id,
            client=client,
            host=normalise_host(request.host_header),
            path=request.path,
            snapshot=snapshot,
            cert_sha256=cert_sha256,
            as_json=as_json,
        )
        flow.metadata[METADATA_KEY] = ctx

        if not valid_target(request.data.path) or not valid_headers(request.headers.fields):
            respond(flow, bad_request(request_id, as_json=as_json, what="request target"))
            return
        # Art. 29 (第二十九条): access must use secure connections.
        if not policy.gateway.insecure and not flow.client_conn.tls_established:
            # Redirect only to a name the portal is known by, never to whatever Host the client sent.
            host = ctx.host if ctx.host in policy.gateway.public_hosts else next(iter(policy.gateway.public_hosts), "")
            location = f"https://{host}{request.path}" if host else "/"
            redirect(flow, location, status=308)
