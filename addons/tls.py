"""Client-side TLS (Art. 29, 第二十九条: access must use secure connections): every browser connection gets
the gateway's own context (``govgate.tls_server.ServerTls``, Mozilla "intermediate"), built once per policy
load. Registered before mitmproxy's ``tlsconfig``, which then only handles TLS towards the portal.

Plain-HTTP trial mode (``insecure: true``) has no context: nothing is done here.
"""

from __future__ import annotations

from mitmproxy import ctx, tls
from mitmproxy.addons.tlsconfig import AppData

from govgate.runtime import Runtime


class ClientTls:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def tls_start_client(self, data: tls.TlsData) -> None:
        if data.ssl_conn is not None:
            return
        server_tls = self.runtime.server_tls
        if server_tls is None:
            return
        conn = server_tls.connection()
        conn.set_app_data(AppData(client_alpn=data.conn.alpn, server_alpn=data.context.server.alpn,
                                  http2=bool(ctx.options.http2)))
        conn.set_accept_state()
        data.ssl_conn = conn
