"""Certificate renewal (docs/deploy.md): replace the PEM file, send SIGHUP — a connection opened before keeps
working on the old certificate, and every new connection gets the new one. No connection is dropped (Art. 29)."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.e2e.harness import Upstream
from tests.e2e.test_tls_profile import TlsGw, start_tls_gateway
from tests.pki import TestCA
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

REQUEST = b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n"  # keep-alive


def served_certificate(tls: ssl.SSLSocket) -> str:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def answer_of(tls: ssl.SSLSocket) -> bytes:
    """One keep-alive answer: its head and the body its Content-Length announces."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, "the connection was closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += tls.recv(65536)
    return head


@contextmanager
def connection(g: TlsGw, context: ssl.SSLContext) -> Iterator[ssl.SSLSocket]:
    with socket.create_connection(("127.0.0.1", g.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        yield tls


def test_a_new_certificate_applies_on_sighup_without_dropping_open_connections(
        upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> None:
    g = start_tls_gateway(upstream.url, tmp_path_factory.mktemp("renewal"))
    try:
        pem = g.workdir / "secrets" / "gateway.pem"
        new_ca = TestCA("GovGate renewed test CA")
        both = ssl.create_default_context(cadata=(g.ca.pem() + new_ca.pem()).decode())
        with connection(g, both) as before:
            before.sendall(REQUEST)
            assert answer_of(before).startswith(b"HTTP/1.1 200")
            old = served_certificate(before)
            # Renewal as an operator (or certbot's deploy hook) does it: write beside, rename over, then SIGHUP.
            renewed = new_ca.server("localhost", "127.0.0.1", "portal.example.gov.cn")
            beside = renewed.write_key_and_chain(pem.with_suffix(".new"))
            os.replace(beside, pem)
            def policy_version() -> int:  # over TLS, trusting the old and the new CA
                return int(httpx.get(f"https://127.0.0.1:{g.port}/__govgate/health", verify=both,
                                     timeout=10).json()["policy_version"])

            version = policy_version()
            g.gw.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: policy_version() > version, 10, "the SIGHUP reload")
            # A new connection gets the new certificate, and it verifies against the new CA alone.
            only_new = ssl.create_default_context(cadata=new_ca.pem().decode())
            with connection(g, only_new) as after:
                after.sendall(REQUEST)
                assert answer_of(after).startswith(b"HTTP/1.1 200")
                assert served_certificate(after) != old
                assert served_certificate(after) == hashlib.sha256(renewed.cert.public_bytes(Encoding.DER)).hexdigest()
            # The connection opened before the renewal still works, on the certificate it was opened with.
            before.sendall(REQUEST)
            assert answer_of(before).startswith(b"HTTP/1.1 200")
            assert served_certificate(before) == old
        assert "policy.refused" not in g.gw.output.text()
    finally:
        assert g.gw.stop() == 0
