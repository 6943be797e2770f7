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

from tests.e2e.harness import CN_ADDRESS, Gateway, Upstream, base_policy, start_gateway, write_policy

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
    workdir = tmp_path_factory.mktemp("tls")
    (workdir / "secrets").mkdir()
    ca = trustme.CA()
    server = ca.issue_cert("portal.example.gov.cn", "127.0.0.1", "localhost")
    pem = workdir / "secrets" / "gateway.pem"
    server.private_key_and_cert_chain_pem.write_to_path(str(pem))
    device_cert = ca.issue_cert("zs-laptop.devices.example.gov.cn")
    stranger = trustme.CA().issue_cert("stranger.example")
    data = base_policy(workdir, upstream.url)
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
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")
    assert r.http_version in {"HTTP/1.1", "HTTP/2"}


def test_plain_http_is_redirected_to_https_on_a_public_host(tls_gateway: TlsGateway) -> None:
    r = httpx.get(f"http://127.0.0.1:{tls_gateway.port}/news/a?b=1", headers={"Host": "evil.example"})
    assert r.status_code == 308
    # Never to a Host the client made up.
    assert r.headers["location"] == "https://portal.example.gov.cn/news/a?b=1"


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
