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
from collections.abc import Callable

from mitmproxy import http
from mitmproxy.net.http import http1
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from addons.context import METADATA_KEY, RequestContext
from addons.security_headers import HSTS
from govgate.live_runtime import LiveRuntime
from govgate.pages.refusal import proxy_error

logger = logging.getLogger(__name__)


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


class ProxyErrors:
    def __init__(self, runtime: LiveRuntime) -> None:
        self.runtime = runtime
        _install(lambda: not runtime.policy.gateway.insecure)

    def error(self, flow: http.HTTPFlow) -> None:
        # The detail mitmproxy would have shown the client (upstream address, OS error) is for the operator.
        if flow.error is not None and flow.response is None:
            ctx = flow.metadata.get(METADATA_KEY)
            request_id = ctx.request_id if isinstance(ctx, RequestContext) else "-"
            logger.warning("upstream.error request_id=%s error=%s", request_id, flow.error.msg)
