"""Transport security on the way out (Art. 29, 第二十九条: access must use secure connections).

HSTS on every response over TLS (never over plain HTTP: RFC 6797 §7.2); the upstream's TLS name (SNI) is the
upstream host even though the client's Host header is kept for the portal.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from mitmproxy import http
from mitmproxy.proxy import server_hooks

from govgate.addons.context import LOCAL_KEY
from govgate.cookies import sets_gate_cookie
from govgate.runtime import Runtime

HSTS = "max-age=63072000; includeSubDomains"  # two years, as Mozilla recommends
_HSTS_NAME = b"strict-transport-security"
_HSTS_VALUE = HSTS.encode()
logger = logging.getLogger(__name__)


def strip_gate_set_cookies(response: http.Response) -> None:
    """Drop every ``Set-Cookie`` from the portal that would set one of the gate's cookies (session, CSRF,
    pending login, device): only the gate sets those (Art. 30). ``__Host-`` keeps sibling hosts out, not
    the origin's own upstream, so a portal page with a header-injection bug could otherwise fix a victim's
    session or CSRF id."""
    values = response.headers.get_all("set-cookie")
    if not values:
        return
    keep = [v for v in values if not sets_gate_cookie(v)]
    if len(keep) != len(values):
        logger.warning("upstream.set_cookie.dropped count=%d (a gate cookie name)", len(values) - len(keep))
        response.headers.set_all("set-cookie", keep)


class SecurityHeaders:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _harden(self, flow: http.HTTPFlow) -> None:
        # HSTS only over TLS: RFC 6797 §7.2 (a plain-HTTP answer, such as the 308 to HTTPS, must not carry it).
        if flow.response is None or not flow.client_conn.tls_established:
            return
        headers = flow.response.headers
        fields = headers.fields
        present = [value for name, value in fields if name.lower() == _HSTS_NAME]
        if present == [_HSTS_VALUE]:  # set at ``responseheaders`` already (this hook runs again at ``response``)
            return
        if present:  # the portal's own: ours replaces it
            headers["Strict-Transport-Security"] = HSTS
        else:  # as setting it would: added at the end, in one step
            headers.fields = (*fields, (b"Strict-Transport-Security", _HSTS_VALUE))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and not flow.metadata.get(LOCAL_KEY):  # the portal's, not the gate's own
            strip_gate_set_cookies(flow.response)
        self._harden(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._harden(flow)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        upstream = urlsplit(self.runtime.policy.gateway.upstream)
        if upstream.scheme == "https" and upstream.hostname:
            data.server.sni = upstream.hostname
