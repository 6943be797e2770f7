"""The gateway's TLS judged by tools nobody here wrote (Art. 29): sslyze against Mozilla's "intermediate"
profile, OpenSSL's own client for the key exchange groups and the CertificateRequest, and Python's ssl for
session resumption. Plus the plain-HTTP edges: no HSTS on a 308, `redirect_listen`, key file permissions."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import REPO, Gateway, Upstream, start_gateway, wait_for
from tests.pki import TestCA
from tests.policies import policy_data, write_policy

pytestmark = pytest.mark.e2e

SSLYZE = REPO / ".venv" / "tools" / "sslyze" / "bin" / "python"


@dataclass
class TlsGw:
    gw: Gateway
    ca: TestCA
    workdir: Path

    @property
    def port(self) -> int:
        return int(self.gw.url.rsplit(":", 1)[1])

    def context(self, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca.pem().decode())
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx

    def policy_version(self) -> int:
        return int(httpx.get(f"https://127.0.0.1:{self.port}/__govgate/health", verify=self.context(),
                             timeout=10).json()["policy_version"])


def start_tls_gateway(upstream: str, workdir: Path, **gateway_keys: object) -> TlsGw:
    (workdir / "secrets").mkdir(exist_ok=True)
    ca = TestCA()
    # Mozilla: at most 366 days (recommended 90), ECDSA P-256 with SHA-256.
    pem = ca.server("localhost", "127.0.0.1", "portal.example.gov.cn").write_key_and_chain(
        workdir / "secrets" / "gateway.pem")
    data = policy_data(workdir, upstream)
    gw = data["gateway"]
    assert isinstance(gw, dict)
    gw["insecure"] = False
    gw["tls"] = {"cert": str(pem)}
    gw.update(gateway_keys)
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    return TlsGw(start_gateway(policy), ca, workdir)


@pytest.fixture(scope="module")
def tls_gw(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGw]:
    g = start_tls_gateway(upstream.url, tmp_path_factory.mktemp("tls-profile"))
    yield g
    assert g.gw.stop() == 0


def test_sslyze_finds_the_gateway_compliant_with_mozillas_intermediate_profile(tls_gw: TlsGw) -> None:
    assert SSLYZE.exists(), "sslyze is installed by scripts/setup --test into .venv/tools/sslyze"
    ca_file = tls_gw.ca.write(tls_gw.workdir / "ca.pem")
    result = subprocess.run([str(SSLYZE), "-m", "sslyze", "--mozilla_config=intermediate", "--certinfo_ca_file",
                             str(ca_file), f"localhost:{tls_gw.port}{{127.0.0.1}}"],
                            capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert "is compliant with Mozilla's intermediate" in out or "OK - Compliant" in out, out[-3000:]
    assert "FAILED - Not compliant" not in out, out[-3000:]
    assert result.returncode == 0, out[-3000:]


def s_client(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                           *args], input="", capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_only_x25519_p256_and_p384_are_offered_for_key_exchange(tls_gw: TlsGw, version: str) -> None:
    for group in ("X25519", "P-256", "P-384"):
        assert "Cipher is" in s_client(tls_gw.port, version, "-groups", group).stdout, group
    for group in ("X448", "P-521", "ffdhe2048"):
        assert "Cipher is (NONE)" in s_client(tls_gw.port, version, "-groups", group).stdout or \
            "Cipher is" not in s_client(tls_gw.port, version, "-groups", group).stdout, group


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_the_certificate_request_offers_no_dsa_sha1_or_sha224(tls_gw: TlsGw, version: str) -> None:
    out = s_client(tls_gw.port, version).stdout
    m = re.search(r"^Requested Signature Algorithms: (.+)$", out, re.MULTILINE)
    assert m, out
    offered = m.group(1).split(":")
    assert "ECDSA+SHA256" in offered
    assert not [a for a in offered if ("DSA+" in a and not a.startswith("ECDSA")) or "SHA224" in a or "SHA1" in a]


def test_tls_1_2_lets_the_client_choose_the_cipher(tls_gw: TlsGw) -> None:
    chosen = set()
    for order in ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
                  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"):
        out = s_client(tls_gw.port, "-tls1_2", "-cipher", order).stdout
        m = re.search(r"Cipher is (\S+)", out)
        assert m, out
        chosen.add((order.split(":")[0], m.group(1)))
    assert all(first == got for first, got in chosen)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_a_returning_client_resumes_its_tls_session(tls_gw: TlsGw, version: ssl.TLSVersion) -> None:
    ctx = tls_gw.context(version)

    def connect(session: ssl.SSLSession | None = None) -> tuple[ssl.SSLSession | None, bool]:
        with socket.create_connection(("127.0.0.1", tls_gw.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(b"GET /news/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert tls.recv(12).startswith(b"HTTP/1.1 200")
            return tls.session, tls.session_reused

    session, reused = connect()
    assert not reused
    assert session is not None
    _, reused = connect(session)
    assert reused, "the second connection did a full handshake"


def test_tls_sessions_survive_a_reload_that_keeps_the_certificate(tls_gw: TlsGw) -> None:
    ctx = tls_gw.context(ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", tls_gw.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        session = tls.session
    before = tls_gw.policy_version()
    tls_gw.gw.proc.send_signal(signal.SIGHUP)  # the whole policy re-read and applied: the same certificate
    wait_for(lambda: tls_gw.policy_version() > before, 10, "the reload")
    with socket.create_connection(("127.0.0.1", tls_gw.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
        assert tls.session_reused


def test_the_plain_http_redirect_on_the_tls_port_carries_no_hsts(tls_gw: TlsGw) -> None:
    r = httpx.get(f"http://127.0.0.1:{tls_gw.port}/news/x")
    assert r.status_code == 308
    assert "strict-transport-security" not in r.headers  # RFC 6797 §7.2
    over_tls = httpx.get(f"https://127.0.0.1:{tls_gw.port}/news/x", verify=tls_gw.context())
    assert over_tls.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


def test_redirect_listen_answers_every_plain_http_request_with_a_308_to_https(
        upstream: Upstream, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port80 = s.getsockname()[1]
    g = start_tls_gateway(upstream.url, tmp_path, redirect_listen=f"127.0.0.1:{port80}")
    try:
        g.gw.output.wait_for_line(r"redirecting http://127\.0\.0\.1:\d+/ to HTTPS")
        r = httpx.get(f"http://127.0.0.1:{port80}/oa/inbox?x=1", headers={"Host": "portal.example.gov.cn"})
        assert r.status_code == 308
        assert r.headers["location"] == f"https://portal.example.gov.cn:{g.port}/oa/inbox?x=1"
        assert "strict-transport-security" not in r.headers
        made_up = httpx.get(f"http://127.0.0.1:{port80}/", headers={"Host": "evil.example"})
        assert made_up.headers["location"] == f"https://portal.example.gov.cn:{g.port}/"  # a public name only
        with socket.create_connection(("127.0.0.1", port80), timeout=5) as raw:
            raw.sendall(b"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        assert g.gw.stop() == 0


def test_a_private_key_readable_by_others_is_warned_about_at_start(upstream: Upstream, tmp_path: Path) -> None:
    g = start_tls_gateway(upstream.url, tmp_path)
    assert g.gw.stop() == 0
    pem = tmp_path / "secrets" / "gateway.pem"
    os.chmod(pem, 0o644)
    again = start_gateway(tmp_path / "policy.yaml")
    try:
        again.output.wait_for_line(rf"key\.permissions {re.escape(str(pem))} \(gateway\.tls\.cert\).*chmod 600")
    finally:
        assert again.stop() == 0
