"""Errors mitmproxy answers itself get the gate's own page, with the same security headers (Art. 29).

When the upstream cannot be reached, or a request cannot be parsed at all, mitmproxy's HTTP layers
answer below every addon hook, with a page that names the upstream address, the raw error text and
mitmproxy's version, and without HSTS. mitmproxy has no hook for that response, so this addon
replaces the three functions that build it (``_http1.make_error_response`` and ``format_error`` as
imported by ``_http1``/``_http2``/``_http3``) with ones that render ``govgate.pages.refusal.proxy_error``.
``tests/e2e/test_gateway_tls.py`` checks the result over HTTP/1.1 and HTTP/2, so a mitmproxy upgrade
that moves these functions fails the suite instead of silently bringing the old page back.
The details stay in the operator's log (``upstream.error``), with the request id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from h11._receivebuffer import ReceiveBuffer
from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from addons.context import METADATA_KEY, RequestContext
from addons.security_headers import HSTS
from govgate.live_runtime import LiveRuntime
from govgate.pages.refusal import proxy_error

logger = logging.getLogger(__name__)
_CLIENT_GONE = ("Client disconnected", "Connection killed")  # flow errors that say nothing about the portal


def _install(hsts: Callable[[], bool]) -> None:
    def format_error(status_code: int, message: str) -> bytes:
        return proxy_error(status_code).body

    def make_error_response(status_code: int, message: str = "") -> bytes:
        page = proxy_error(status_code)
        fields = [("Connection", "close"), ("Content-Type", page.content_type), *page.headers]
        if hsts():
            fields.append(("Strict-Transport-Security", HSTS))
        headers = http.Headers([(k.encode(), v.encode()) for k, v in fields])
        assembled: bytes = http1.assemble_response(  # type: ignore[no-untyped-call]
            http.Response.make(status_code, page.body, headers))
        return assembled

    for module in (_http1, _http2, _http3):
        if not hasattr(module, "format_error"):
            logger.warning("proxy_errors: mitmproxy %s has no format_error: its own error pages are in use",
                           module.__name__)
            continue
        module.format_error = format_error  # type: ignore[attr-defined]
    if hasattr(_http1, "make_error_response"):
        _http1.make_error_response = make_error_response
    else:
        logger.warning("proxy_errors: mitmproxy has no make_error_response: its own error pages are in use")
    _limit_request_heads()


MAX_REQUEST_HEAD = 64 * 1024  # bytes of request line and headers (nginx allows 4 x 8 KiB by default)
_HEAD_END = re.compile(rb"\n\r?\n")  # the blank line ending a head (h11 accepts bare LF too)


def _limit_request_heads() -> None:
    """Answer 431 and close when an HTTP/1 request's head grows past ``MAX_REQUEST_HEAD`` unfinished.

    mitmproxy 12 buffers a request head without limit ("FIXME: protect against header size DoS" in its
    ``Http1Server.read_headers``): one client streaming an endless header line grows the gateway by
    gigabytes. HTTP/2 is limited by its own settings. Wrapped once (``_govgate_limited`` marks it).
    """
    server = _http1.Http1Server
    original = server.read_headers
    if getattr(original, "_govgate_limited", False):
        return

    def read_headers(self: _http1.Http1Server, event: events.ConnectionEvent) -> layer.CommandGenerator[None]:
        # The data just received is already in self.buf: a head that does not end within the limit is refused,
        # whether it is still coming or arrived whole.
        if (isinstance(event, events.DataReceived) and len(self.buf) > MAX_REQUEST_HEAD
                and _HEAD_END.search(bytes(self.buf), 0, MAX_REQUEST_HEAD) is None):
            self.buf = ReceiveBuffer()
            self.state = self.done
            yield commands.SendData(self.conn, _http1.make_error_response(431))
            yield commands.CloseConnection(self.conn)
            return
        yield from original(self, event)

    read_headers._govgate_limited = True  # type: ignore[attr-defined]
    server.read_headers = read_headers  # type: ignore[method-assign]


class ProxyErrors:
    def __init__(self, runtime: LiveRuntime) -> None:
        self.runtime = runtime
        _install(lambda: not runtime.policy.gateway.insecure)

    def error(self, flow: http.HTTPFlow) -> None:
        # The detail mitmproxy would have shown the client (upstream address, OS error) is for the operator.
        if flow.error is None or flow.response is not None:
            return
        ctx = flow.metadata.get(METADATA_KEY)
        request_id = ctx.request_id if isinstance(ctx, RequestContext) else "-"
        if flow.error.msg.startswith(_CLIENT_GONE):  # the browser went away: routine, not worth a warning each
            logger.debug("request.aborted request_id=%s error=%s", request_id, flow.error.msg)
            return
        logger.warning("upstream.error request_id=%s error=%s", request_id, flow.error.msg)
