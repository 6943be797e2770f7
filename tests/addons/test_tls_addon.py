"""The client-TLS addon in process: every browser connection gets the gateway's own TLS context (Art. 29) —
before mitmproxy's ``tlsconfig`` under ``govgate run``, in place of the one it made under a stock mitmproxy — and
nothing is done in plain-HTTP trial mode. (The handshake itself, judged by sslyze and OpenSSL:
``tests/e2e/test_tls_profile.py``.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import certs, options, tls
from mitmproxy.proxy import context
from mitmproxy.test import taddons, tflow
from OpenSSL import SSL

from govgate.addons.tls import ClientTls, device_certificate, resumed
from govgate.core.device_certs import DeviceCertificate
from govgate.tls_server import ServerTls
from tests.pki import Issued, TestCA
from tests.policies import policy, policy_data
from tests.runtime import Clock, InProcessRuntime


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


# -- device certificates: one verdict per connection, a resumed session's kept by its CAs ----------------------


def _tls_runtime_with_client_ca(tmp_path: Path, ca: TestCA) -> InProcessRuntime:
    pem = TestCA().server("portal.example.gov.cn").write_key_and_chain(tmp_path / "gateway.pem")
    client_ca = ca.write(tmp_path / f"client-ca-{ca.cert.serial_number}.pem")
    gateway = {**policy_data()["gateway"], "insecure": False,
               "tls": {"cert": str(pem), "client_ca": str(client_ca), "request_client_cert": True}}
    served = policy(tmp_path, gateway=gateway)
    # The certificates are made now (valid from an hour ago): the runtime's clock reads the real time.
    return InProcessRuntime(policy=served, server_tls=ServerTls.load(served), clock=Clock(datetime.now(UTC)))


def _pump(one: SSL.Connection, other: SSL.Connection) -> None:
    for src, dst in ((one, other), (other, one)):
        try:
            data = src.bio_read(65536)
        except SSL.WantReadError:
            continue
        dst.bio_write(data)


def _browser(device: Issued) -> SSL.Context:
    """A browser's TLS 1.2 context presenting ``device``, with the intermediates of its chain (not the root)."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.use_certificate(device.cert)
    context.use_privatekey(device.key)
    for cert in device.chain[:-1]:
        context.add_extra_chain_cert(cert)
    return context


def _handshake(addon: ClientTls, context: SSL.Context,
               session: SSL.Session | None = None) -> tuple[DeviceCertificate | None, SSL.Connection, SSL.Connection]:
    """A real TLS handshake in memory between a browser (``_browser``) and the gateway's own context; the addon
    then sees the connection as mitmproxy shows it (``certificate_list``: the peer's certificate, then the chain it
    sent)."""
    with taddons.context():
        data = client_hello()
        addon.tls_start_client(data)
        server = data.ssl_conn
        assert server is not None
        browser = SSL.Connection(context, None)
        browser.set_connect_state()
        if session is not None:
            browser.set_session(session)
        for _ in range(20):
            done = 0
            for side in (browser, server):
                try:
                    side.do_handshake()
                    done += 1
                except SSL.WantReadError:
                    pass
            _pump(browser, server)
            if done == 2:
                break
        presented = [server.get_peer_certificate(), *(server.get_peer_cert_chain() or [])]
        data.conn.certificate_list = [certs.Cert.from_pyopenssl(c) for c in presented if c is not None]
        addon.tls_established_client(data)
        return device_certificate(data.conn), browser, server


async def test_a_resumed_session_keeps_the_verdict_of_its_full_handshake(tmp_path: Path) -> None:
    # A device certificate from an intermediate CA: a resumed session shows the leaf alone, which does not chain
    # by itself; the verdict of the full handshake under the same CAs stands.
    root = TestCA("device root")
    device = root.intermediate("device issuing CA").issue("zs-laptop", client=True)
    runtime = _tls_runtime_with_client_ca(tmp_path, root)
    addon = ClientTls(runtime)
    browser_context = _browser(device)
    first, browser, server = _handshake(addon, browser_context)
    assert first is not None
    assert first.chained is True
    assert not resumed(server)
    again, _, server = _handshake(addon, browser_context, browser.get_session())
    assert resumed(server)
    assert again is not None
    assert again.chained is True


async def test_a_leaf_verified_once_is_not_trusted_after_its_ca_is_removed(tmp_path: Path) -> None:
    # Art. 30: an operator replaces client_ca (a retired or compromised PKI). A leaf of the old CA verified before
    # the reload must not stay a device on a new connection (it did: its verdict was kept by fingerprint alone).
    old, new = TestCA("old device CA"), TestCA("new device CA")
    device = old.issue("zs-laptop", client=True)
    runtime = _tls_runtime_with_client_ca(tmp_path, old)
    addon = ClientTls(runtime)
    first, _, _ = _handshake(addon, _browser(device))
    assert first is not None
    assert first.chained is True
    runtime.server_tls = _tls_runtime_with_client_ca(tmp_path, new).server_tls  # the reloaded policy's
    after, _, server = _handshake(addon, _browser(device))
    assert not resumed(server)
    assert after is not None
    assert after.chained is False
    assert not after.usable(runtime.now())


async def test_a_full_handshake_showing_the_leaf_alone_is_judged_on_it(tmp_path: Path) -> None:
    # The kept verdict stands for a resumed session only: a full handshake that shows the leaf without the
    # intermediate it needs does not chain, whatever was verified for the same leaf before.
    root = TestCA("device root")
    issuing = root.intermediate("device issuing CA")
    device = issuing.issue("zs-laptop", client=True)
    runtime = _tls_runtime_with_client_ca(tmp_path, root)
    addon = ClientTls(runtime)
    first, _, _ = _handshake(addon, _browser(device))
    assert first is not None
    assert first.chained is True
    leaf_alone = Issued(device.cert, device.key, (root.cert,))  # no intermediate sent
    after, _, server = _handshake(addon, _browser(leaf_alone))
    assert not resumed(server)
    assert after is not None
    assert after.chained is False
