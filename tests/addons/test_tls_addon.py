"""The client-TLS addon in process: every browser connection gets the gateway's own TLS context (Art. 29) —
before mitmproxy's ``tlsconfig`` under ``govgate run``, in place of the one it made under a stock mitmproxy — and
nothing is done in plain-HTTP trial mode. (The handshake itself, judged by sslyze and OpenSSL:
``tests/e2e/test_tls_profile.py``.)"""

from __future__ import annotations

from pathlib import Path

from mitmproxy import options, tls
from mitmproxy.proxy import context
from mitmproxy.test import taddons, tflow
from OpenSSL import SSL

from govgate.addons.tls import ClientTls
from govgate.tls_server import ServerTls
from tests.pki import TestCA
from tests.policies import policy, policy_data
from tests.runtime import InProcessRuntime


def tls_runtime(tmp_path: Path) -> InProcessRuntime:
    pem = TestCA().server("portal.example.gov.cn").write_key_and_chain(tmp_path / "gateway.pem")
    gateway = {**policy_data()["gateway"], "insecure": False, "tls": {"cert": str(pem)}}
    served = policy(tmp_path, gateway=gateway)
    return InProcessRuntime(policy=served, server_tls=ServerTls.load(served))


def client_hello() -> tls.TlsData:
    client = tflow.tclient_conn()
    return tls.TlsData(client, context.Context(client, options.Options()))


def test_a_browser_gets_the_gateways_own_context(tmp_path: Path) -> None:
    addon = ClientTls(tls_runtime(tmp_path))
    with taddons.context(addon):
        data = client_hello()
        addon.tls_start_client(data)
        assert isinstance(data.ssl_conn, SSL.Connection)
        assert data.ssl_conn.get_certificate() is not None


def test_a_connection_another_addon_already_set_up_is_left_to_it_unless_told_to_replace_it(tmp_path: Path) -> None:
    runtime = tls_runtime(tmp_path)
    theirs = SSL.Connection(SSL.Context(SSL.TLS_METHOD))
    with taddons.context():
        data = client_hello()
        data.ssl_conn = theirs
        ClientTls(runtime).tls_start_client(data)
        assert data.ssl_conn is theirs  # govgate run: registered before tlsconfig, so this is someone else's
        ClientTls(runtime, replace_mitmproxy_tls=True).tls_start_client(data)
        assert data.ssl_conn is not theirs  # a stock mitmproxy: tlsconfig came first, and the gateway's wins


def test_plain_http_trial_mode_has_no_context_and_nothing_is_done() -> None:
    with taddons.context():
        data = client_hello()
        ClientTls(InProcessRuntime(), replace_mitmproxy_tls=True).tls_start_client(data)
        assert data.ssl_conn is None
