"""mitmproxy test flows as the gateway receives them, for the addon tests (``tflow`` under the hood).

``request_flow`` is a request as a browser sends it to the gateway: origin-form, a Host header, no body on a
GET (tflow's default GET carries one, which the gate refuses: a GET must not), from ``client`` (the TCP peer),
over TLS unless ``tls=False``. ``judged`` runs the context addon on it under a runtime, as the gateway does
first, and returns the ``RequestContext`` later addons read. ``response_to`` gives a flow its portal answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from mitmproxy import http
from mitmproxy.test import tflow

from govgate.addons.context import RequestContext, RequestContextAddon, context_of
from govgate.runtime import Runtime

PORTAL_HOST = "portal.example.gov.cn"
OFFICE_CLIENT = "10.1.2.3"  # in the test policy's office network


def request_flow(method: str = "GET", path: str = "/", *, client: str = OFFICE_CLIENT, host: str | None = PORTAL_HOST,
                 headers: Iterable[tuple[str, str]] = (), body: bytes = b"", tls: bool = True,
                 http_version: str = "HTTP/1.1", sockname: tuple[str, int] = ("10.0.0.1", 443)) -> http.HTTPFlow:
    request = http.Request.make(method, f"https://{PORTAL_HOST}{path}", body)
    request.http_version = http_version
    request.path = path  # as sent: Request.make would have parsed it as part of a URL
    if not body:
        request.headers.pop("content-length", None)
    if host is not None:
        request.headers["host"] = host
    for name, value in headers:
        request.headers.add(name, value)
    flow = tflow.tflow(req=request)
    flow.client_conn.peername = (client, 50000)
    flow.client_conn.sockname = sockname
    if not tls:
        flow.client_conn.timestamp_tls_setup = None  # what ``tls_established`` reads
    return flow


def judged(runtime: Runtime, flow: http.HTTPFlow) -> RequestContext:
    """Run the context addon on ``flow`` (it must let the request through) and return its context."""
    RequestContextAddon(runtime).request(flow)
    ctx = context_of(flow)
    assert ctx is not None, "the context addon did not take the request"
    return ctx


def response_to(flow: http.HTTPFlow, status: int = 200, body: bytes = b"",
                headers: dict[str, str] | None = None) -> http.HTTPFlow:
    """``flow`` with the portal's answer."""
    flow.response = http.Response.make(status, body, headers or {})
    return flow
