"""The gateway terminating TLS with the operator's certificate (Art. 29), and client certificates as
device identity (Art. 19/30). Certificates are real, made by trustme."""

from __future__ import annotations

import hashlib
import socket
import ssl
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.e2e.harness import CN_ADDRESS, Gateway, Upstream, start_gateway
from tests.policies import policy_data, write_policy
from tests.ports import free_port

pytestmark = pytest.mark.e2e


@dataclass
class TlsGateway:
    gw: Gateway
    ca: trustme.CA
    device_cert: trustme.LeafCert
    stranger_cert: trustme.LeafCert

    @property
    def port(self) -> int:
        return int(self.gw.url.rsplit(":", 1)[1])

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def context(self, client_cert: trustme.LeafCert | None = None,
                maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if client_cert is not None:
            client_cert.configure_cert(ctx)
        if maximum is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = maximum
        return ctx


def der_sha256(cert: trustme.LeafCert) -> str:
    pem = cert.cert_chain_pems[0].bytes()
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).hexdigest()


@pytest.fixture(scope="module")
def tls_gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    yield from tls_gateway_in_front_of(upstream.url, tmp_path_factory)


@pytest.fixture(scope="module")
def unreachable_upstream_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    yield from tls_gateway_in_front_of(f"http://127.0.0.1:{free_port()}", tmp_path_factory)


@pytest.fixture(scope="module")
def rsa_tls_gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    """An RSA certificate: the suites with RSA key exchange or RSA signatures can only be tried against one."""
    yield from tls_gateway_in_front_of(upstream.url, tmp_path_factory, key_type=trustme.KeyType.RSA)


def tls_gateway_in_front_of(upstream_url: str, tmp_path_factory: pytest.TempPathFactory,
                            key_type: trustme.KeyType = trustme.KeyType.ECDSA) -> Iterator[TlsGateway]:
    workdir = tmp_path_factory.mktemp("tls")
    (workdir / "secrets").mkdir()
    ca = trustme.CA(key_type=key_type)
    server = ca.issue_cert("portal.example.gov.cn", "127.0.0.1", "localhost", key_type=key_type)
    pem = workdir / "secrets" / "gateway.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(pem))
    device_cert = ca.issue_cert("zs-laptop.devices.example.gov.cn")
    stranger = trustme.CA().issue_cert("stranger.example")
    data = policy_data(workdir, upstream_url)
    gateway = data["gateway"]
    assert isinstance(gateway, dict)
    gateway["insecure"] = False
    gateway["tls"] = {"cert": str(pem)}
    data["devices"] = [{"id": "zs-laptop", "account": "zhangsan", "cert_sha256": der_sha256(device_cert)}]
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    gw = start_gateway(policy)
    yield TlsGateway(gw, ca, device_cert, stranger)
    assert gw.stop() == 0


def test_tls_responses_carry_hsts(tls_gateway: TlsGateway) -> None:
    r = httpx.get(tls_gateway.https + "/news/", verify=tls_gateway.context())
    assert r.status_code == 200
    assert r.headers["strict-transport-security"].startswith("max-age=63072000")
    assert r.http_version in {"HTTP/1.1", "HTTP/2"}


def test_plain_http_is_redirected_to_https_on_a_public_host(tls_gateway: TlsGateway) -> None:
    r = httpx.get(f"http://127.0.0.1:{tls_gateway.port}/news/a?b=1", headers={"Host": "evil.example"})
    assert r.status_code == 308
    # Never to a Host the client made up.
    assert r.headers["location"] == "https://portal.example.gov.cn/news/a?b=1"


def test_the_https_redirect_keeps_the_port_the_client_used_with_a_public_name(tls_gateway: TlsGateway) -> None:
    r = httpx.get(f"http://127.0.0.1:{tls_gateway.port}/news/a?b=1")  # Host: 127.0.0.1:PORT, a public host
    assert r.status_code == 308
    assert r.headers["location"] == f"https://127.0.0.1:{tls_gateway.port}/news/a?b=1"
    followed = httpx.get(r.headers["location"], verify=tls_gateway.context())
    assert followed.status_code == 200
    other = httpx.get(f"http://127.0.0.1:{tls_gateway.port}/news/", headers={"Host": "127.0.0.1:1"})
    assert other.headers["location"] == "https://127.0.0.1/news/"  # a port it was not reached on: not sent back


def test_tls_below_1_2_is_refused_by_the_gateway(tls_gateway: TlsGateway) -> None:
    ctx = tls_gateway.context(maximum=ssl.TLSVersion.TLSv1_1)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", tls_gateway.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLError) as refused:
        ctx.wrap_socket(raw, server_hostname="portal.example.gov.cn")
    # The refusal comes from the gateway (it hangs up or sends a protocol-version alert after our
    # TLS 1.1 ClientHello), not from this client being unable to offer TLS 1.1.
    message = str(refused.value).upper()
    assert "NO_PROTOCOLS_AVAILABLE" not in message
    assert isinstance(refused.value, ssl.SSLEOFError) or "VERSION" in message


def test_tls_1_2_is_accepted(tls_gateway: TlsGateway) -> None:
    ctx = tls_gateway.context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", tls_gateway.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="portal.example.gov.cn") as tls:
        assert tls.version() == "TLSv1.2"


def test_a_client_certificate_of_an_allowlisted_device_passes_the_network_check(tls_gateway: TlsGateway) -> None:
    headers = {"X-Forwarded-For": CN_ADDRESS, "Accept": "application/json"}
    without = httpx.get(tls_gateway.https + "/oa/", headers=headers, verify=tls_gateway.context())
    assert without.status_code == 403
    assert without.json()["reason"] == "network"
    with_cert = httpx.get(tls_gateway.https + "/oa/", headers=headers,
                          verify=tls_gateway.context(tls_gateway.device_cert))
    assert with_cert.status_code == 303  # on to login: the device satisfied the network check


def test_an_unknown_client_certificate_is_not_a_device(tls_gateway: TlsGateway) -> None:
    r = httpx.get(tls_gateway.https + "/oa/", headers={"X-Forwarded-For": CN_ADDRESS, "Accept": "application/json"},
                  verify=tls_gateway.context(tls_gateway.stranger_cert))
    assert r.status_code == 403
    assert r.json()["reason"] == "network"


# Each is in mitmproxy's default list (Mozilla "old") and would be accepted without the gateway's own list.
WEAK_TLS_1_2_SUITES = [
    ("ecdsa", "ECDHE-ECDSA-AES128-SHA"), ("ecdsa", "ECDHE-ECDSA-AES256-SHA384"),  # CBC
    ("rsa", "ECDHE-RSA-AES128-SHA"), ("rsa", "DHE-RSA-AES256-SHA256"),  # CBC
    ("rsa", "AES128-GCM-SHA256"), ("rsa", "AES128-SHA"),  # no forward secrecy (3DES: OpenSSL 3 refuses it anyway)
    # DHE is not offered at all (Mozilla intermediate: ffdhe2048 or nothing; mitmproxy's DH group was 4096-bit)
    ("rsa", "DHE-RSA-AES128-GCM-SHA256"), ("rsa", "DHE-RSA-CHACHA20-POLY1305"),
]


def handshake_1_2(gw: TlsGateway, ciphers: str) -> ssl.SSLSocket:
    ctx = gw.context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers + ":@SECLEVEL=0")  # this client offers them all; only the gateway may say no
    raw = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    try:
        return ctx.wrap_socket(raw, server_hostname="portal.example.gov.cn")
    except BaseException:
        raw.close()
        raise


@pytest.mark.parametrize(("key", "suite"), WEAK_TLS_1_2_SUITES)
def test_tls_1_2_suites_without_forward_secrecy_or_aead_are_refused(
    tls_gateway: TlsGateway, rsa_tls_gateway: TlsGateway, key: str, suite: str,
) -> None:
    # Art. 29 (secure connections): forward-secret AEAD suites only.
    with pytest.raises(ssl.SSLError) as refused:
        handshake_1_2(rsa_tls_gateway if key == "rsa" else tls_gateway, suite).close()
    assert "NO_CIPHERS_AVAILABLE" not in str(refused.value).upper()  # offered by us, refused by the gateway


@pytest.mark.parametrize(("key", "suite"), [("ecdsa", "ECDHE-ECDSA-AES128-GCM-SHA256"),
                                            ("ecdsa", "ECDHE-ECDSA-CHACHA20-POLY1305"),
                                            ("rsa", "ECDHE-RSA-AES256-GCM-SHA384"),
                                            ("rsa", "ECDHE-RSA-CHACHA20-POLY1305")])
def test_tls_1_2_with_a_forward_secret_aead_suite_is_accepted(
    tls_gateway: TlsGateway, rsa_tls_gateway: TlsGateway, key: str, suite: str,
) -> None:
    with handshake_1_2(rsa_tls_gateway if key == "rsa" else tls_gateway, suite) as tls:
        cipher = tls.cipher()
        assert cipher is not None
        assert cipher[0] == suite


def h2_get(gw: TlsGateway, path: str) -> tuple[dict[str, str], str]:
    """One GET over HTTP/2 with the h2 library (httpx's HTTP/2 client and mitmproxy's server do not agree)."""
    import h2.connection
    import h2.events

    ctx = gw.context()
    ctx.set_alpn_protocols(["h2"])
    conn = h2.connection.H2Connection()
    headers: dict[str, str] = {}
    body = b""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="portal.example.gov.cn") as tls:
        assert tls.selected_alpn_protocol() == "h2"
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "https"),
                              (":authority", "portal.example.gov.cn")], end_stream=True)
        tls.sendall(conn.data_to_send())
        done = False
        while not done:
            data = tls.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    done = True
            tls.sendall(conn.data_to_send())
    return headers, body.decode("utf-8")


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_an_unreachable_upstream_gets_the_gates_own_502_page(unreachable_upstream_gateway: TlsGateway,
                                                             http2: bool) -> None:
    gw = unreachable_upstream_gateway
    if http2:
        headers, text = h2_get(gw, "/news/")
        assert headers[":status"] == "502"
    else:
        r = httpx.get(gw.https + "/news/", verify=gw.context())
        assert r.http_version == "HTTP/1.1"
        assert r.status_code == 502
        headers, text = dict(r.headers), r.text
        # HTTP/1.1: the headers are the gate's too (over HTTP/2 mitmproxy builds them itself).
        assert headers["strict-transport-security"].startswith("max-age=63072000")
        assert "server" not in headers
        assert headers["x-content-type-options"] == "nosniff"
    assert "门户暂时无法访问" in text
    assert "Portal unreachable" in text
    # Not mitmproxy's page: no upstream address, no OS error text, no version.
    assert "127.0.0.1" not in text
    assert "refused" not in text.lower()
    assert "mitmproxy" not in text.lower()


def test_a_request_mitmproxy_cannot_parse_gets_the_gates_400_page_with_hsts(tls_gateway: TlsGateway) -> None:
    ctx = tls_gateway.context()
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_gateway.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="portal.example.gov.cn") as tls:
        tls.sendall(b"NOT A REQUEST LINE <script>\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nStrict-Transport-Security: max-age=63072000" in head
    assert b"mitmproxy" not in answer.lower()
    assert b"<script>" not in body  # the client's bytes are not echoed
    assert "请求无效".encode() in body
