"""Client-side TLS (Art. 29, 第二十九条: access must use secure connections): every browser connection gets
the gateway's own context (``govgate.tls_server.ServerTls``, Mozilla "intermediate"), built once per policy
load. Registered before mitmproxy's ``tlsconfig``, which then only handles TLS towards the portal; inside a
stock mitmproxy, where ``tlsconfig`` comes first, it replaces the connection ``tlsconfig`` made
(``replace_mitmproxy_tls``).

Session resumption: OpenSSL drops a session from its cache when the connection is freed without a TLS
shutdown, and browsers (and mitmproxy, on a client's EOF) often just close the socket. As nginx does, a
connection that ended without a TLS error is marked shut down when the client disconnects, so its session
stays resumable.

Device certificates (Art. 19, Art. 30): a client certificate is examined once, when the connection's TLS is
set up (``tls_established_client``) — its chain to the CAs in use (``gateway.tls.client_ca`` and the gateway's
own device CA), validity and clientAuth usage (``govgate.core.device_certs``) — and the verdict is kept for the
connection; requests read it with ``device_certificate``. A resumed TLS session shows only the leaf: the
verdict on it from a full handshake stands, kept by the leaf's fingerprint and the CAs then in use, and only for a
handshake that really resumed a session (a full handshake is judged on the chain it presents: a leaf verified once
under a CA since removed from ``client_ca`` is not taken on trust).

Plain-HTTP trial mode (``insecure: true``) has no context: nothing is done here.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import Sequence

from cryptography import x509
from mitmproxy import connection, ctx, tls
from mitmproxy.addons.tlsconfig import AppData
from OpenSSL import SSL

from govgate.core.device_certs import DeviceCertificate, examine, fingerprint
from govgate.repeated import REPEATED
from govgate.runtime import Runtime

logger = logging.getLogger(__name__)

_VERDICTS: weakref.WeakKeyDictionary[connection.Client, DeviceCertificate] = weakref.WeakKeyDictionary()
# (leaf fingerprint, the CAs in use) → the verdict of a full handshake that chained to them
_CHAINED_LEAVES: OrderedDict[tuple[bytes, bytes], DeviceCertificate] = OrderedDict()
_CHAINED_LEAVES_KEPT = 4096


def _cas_key(cas: Sequence[x509.Certificate]) -> bytes:
    """Which CAs a verdict was reached under: a verdict kept under others is never used."""
    return hashlib.sha256(b"".join(fingerprint(ca) for ca in cas)).digest()


def resumed(ssl_conn: SSL.Connection | None) -> bool:
    """Whether this handshake resumed an earlier TLS session (the client then shows its leaf alone)."""
    # pyOpenSSL has no method for it; OpenSSL's own answer, as govgate.tls_server reaches OpenSSL for the groups.
    return ssl_conn is not None and SSL._lib.SSL_session_reused(ssl_conn._ssl) == 1  # type: ignore[attr-defined]


def device_certificate(client: connection.Client) -> DeviceCertificate | None:
    """The verdict on the client certificate this connection presented (None: none presented)."""
    return _VERDICTS.get(client)


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

    def tls_established_client(self, data: tls.TlsData) -> None:
        client = data.conn
        if not isinstance(client, connection.Client) or not client.certificate_list:
            return
        server_tls = self.runtime.server_tls
        cas = server_tls.client_cas if server_tls is not None else ()
        chain = [c.to_cryptography() for c in client.certificate_list]
        verdict = examine(chain, cas, self.runtime.now())
        if verdict.chained is not None:
            # Art. 30: a certificate names a device only while it chains to a CA in use (``client_ca``, device CA).
            key = (verdict.sha256, _cas_key(cas))
            if verdict.chained is False and len(chain) == 1 and resumed(data.ssl_conn):
                known = _CHAINED_LEAVES.get(key)  # a resumed session: the leaf alone, its chain verified before
                if known is not None:
                    verdict = known
            elif verdict.chained:
                _CHAINED_LEAVES[key] = verdict
                _CHAINED_LEAVES.move_to_end(key)
            while len(_CHAINED_LEAVES) > _CHAINED_LEAVES_KEPT:
                _CHAINED_LEAVES.popitem(last=False)
        if verdict.chained is False:
            REPEATED.warning(logger, "device.certificate_refused", "device.certificate_refused sha256=%s reason=%s",
                             verdict.sha256.hex()[:16], verdict.problem)
        _VERDICTS[client] = verdict

    def client_disconnected(self, client: connection.Client) -> None:
        conn = self._open.pop(client, None)
        if conn is not None and client.tls_established and not client.error:
            conn.set_shutdown(SSL.SENT_SHUTDOWN | SSL.RECEIVED_SHUTDOWN)
