"""Transport security on the way out (Art. 29, 第二十九条: access must use secure connections).

HSTS on every response unless the policy is ``insecure``; the upstream's TLS name (SNI) is the
upstream host even though the client's Host header is kept for the portal.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mitmproxy import http
from mitmproxy.proxy import server_hooks

from govgate.live_runtime import LiveRuntime

HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders:
    def __init__(self, runtime: LiveRuntime) -> None:
        self.runtime = runtime

    def _harden(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or self.runtime.policy.gateway.insecure:
            return
        flow.response.headers["Strict-Transport-Security"] = HSTS

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._harden(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        # Responses the gate made itself skip `responseheaders`.
        self._harden(flow)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        upstream = urlsplit(self.runtime.policy.gateway.upstream)
        if upstream.scheme == "https" and upstream.hostname:
            data.server.sni = upstream.hostname
