"""Client-side TLS (Art. 29, 第二十九条: access must use secure connections): every browser connection gets
the gateway's own context (``govgate.tls_server.ServerTls``, Mozilla "intermediate"), built once per policy
load. Registered before mitmproxy's ``tlsconfig``, which then only handles TLS towards the portal; inside a
stock mitmproxy, where ``tlsconfig`` comes first, it replaces the connection ``tlsconfig`` made
(``replace_mitmproxy_tls``).

Session resumption: OpenSSL drops a session from its cache when the connection is freed without a TLS
shutdown, and browsers (and mitmproxy, on a client's EOF) often just close the socket. As nginx does, a
connection that ended without a TLS error is marked shut down when the client disconnects, so its session
stays resumable.

Plain-HTTP trial mode (``insecure: true``) has no context: nothing is done here.
"""

from __future__ import annotations

import weakref

from mitmproxy import connection, ctx, tls
from mitmproxy.addons.tlsconfig import AppData
from OpenSSL import SSL

from govgate.runtime import Runtime


class ClientTls:
    def __init__(self, runtime: Runtime, *, replace_mitmproxy_tls: bool = False) -> None:
        self.runtime = runtime
        self.replace_mitmproxy_tls = replace_mitmproxy_tls
        self._open: weakref.WeakKeyDictionary[connection.Client, SSL.Connection] = weakref.WeakKeyDictionary()

    def tls_start_client(self, data: tls.TlsData) -> None:
        if data.ssl_conn is not None and not self.replace_mitmproxy_tls:
            return
        server_tls = self.runtime.server_tls
        if server_tls is None:
            return
        conn = server_tls.connection()
        conn.set_app_data(AppData(client_alpn=data.conn.alpn, server_alpn=data.context.server.alpn,
                                  http2=bool(ctx.options.http2)))
        conn.set_accept_state()
        data.ssl_conn = conn
        if isinstance(data.conn, connection.Client):
            self._open[data.conn] = conn

    def client_disconnected(self, client: connection.Client) -> None:
        conn = self._open.pop(client, None)
        if conn is not None and client.tls_established and not client.error:
            conn.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)
