"""PROXY protocol v1 and v2 (``gateway.proxy_protocol``) against a real gateway, with raw headers on raw sockets.

The trusted balancer is 127.0.0.2 (``trusted_proxies: [127.0.0.2/32]``; Linux lets a socket bind any 127/8 source
address); 127.0.0.1 is an untrusted peer. The address in the header decides what the rules say (Art. 19): with
the office system open to every network, an office or Chinese address is sent to the login page and a British one
is refused ``overseas`` — and the audit log's ``client`` is that address. Anything wrong closes the connection
before mitmproxy reads a byte of it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from govgate.core.proxy_protocol import v1_line, v2_header
from tests.e2e.harness import CN_ADDRESS, GB_ADDRESS, OFFICE_ADDRESS, Gateway, Upstream, start_gateway, wait_for_record
from tests.e2e.test_tls_profile import TlsGw, start_tls_gateway
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

BALANCER = "127.0.0.2"
STRANGER = "127.0.0.1"
HEAD = (b"GET /oa/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nAccept: application/json\r\n"
        b"Connection: close\r\n\r\n")


def ep(address: str, port: int) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    return ipaddress.ip_address(address), port


def port_of(gw: Gateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


def exchange(port: int, data: bytes, *, source: str = BALANCER, half_close: bool = False,
             timeout: float = 15) -> bytes:
    """Send ``data`` from ``source`` and read until the gateway closes the connection; what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, (json.loads(body) if body.startswith(b"{") else {})


@pytest.fixture(scope="module")
def gw(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("proxy-protocol")
    (workdir / "secrets").mkdir()
    data = policy_data(workdir, upstream.url)
    data["gateway"]["trusted_proxies"] = [f"{BALANCER}/32"]
    data["gateway"]["proxy_protocol"] = True
    data["access"][1]["networks"] = "any"  # only the country (from the header's address) tells them apart
    gateway = start_gateway(write_policy(workdir / "policy.yaml", data))
    yield gateway
    assert gateway.stop() == 0


def test_the_v1_header_sets_the_client_address_the_rules_and_the_audit_log_see(gw: Gateway) -> None:
    port = port_of(gw)
    to = ep("192.0.2.10", 443)
    assert status_and_json(exchange(port, v1_line(ep(OFFICE_ADDRESS, 50001), to) + HEAD))[0] == 303  # login
    assert status_and_json(exchange(port, v1_line(ep(CN_ADDRESS, 50002), to) + HEAD))[0] == 303
    status, body = status_and_json(exchange(port, v1_line(ep(GB_ADDRESS, 50003), to) + HEAD))
    assert (status, body["reason"]) == (403, "overseas")
    record = wait_for_record(gw.workdir / "audit", "the overseas refusal",
                             lambda r: r["event"] == "access" and r["request_id"] == body["request_id"])
    assert (record["client"], record["country"], record["reason"]) == (GB_ADDRESS, "GB", "overseas")


def test_the_clients_own_x_forwarded_for_is_not_believed_behind_the_header(gw: Gateway) -> None:
    # The balancer is trusted; the client it speaks for is not: its X-Forwarded-For names nobody.
    head = HEAD.replace(b"Accept:", b"X-Forwarded-For: " + OFFICE_ADDRESS.encode() + b"\r\nAccept:")
    status, body = status_and_json(exchange(port_of(gw), v1_line(ep(GB_ADDRESS, 50004), ep("192.0.2.10", 443)) + head))
    assert (status, body["reason"]) == (403, "overseas")


def test_the_v2_header_carries_ipv4_and_ipv6_clients(gw: Gateway) -> None:
    port = port_of(gw)
    status, body = status_and_json(exchange(port, v2_header(ep(GB_ADDRESS, 1), ep("192.0.2.10", 443)) + HEAD))
    assert (status, body["reason"]) == (403, "overseas")
    # 2001:db8::/32 is the test policy's office network: an IPv6 client from the office goes on to log in.
    assert status_and_json(exchange(port, v2_header(ep("2001:db8::7", 2), ep("2001:db8::1", 443)) + HEAD))[0] == 303
    tlv = bytes((0x05, 0x00, 0x03)) + b"abc"  # a unique-id TLV after the addresses is skipped
    assert status_and_json(exchange(port, v2_header(ep(OFFICE_ADDRESS, 3), ep("192.0.2.10", 443), tlvs=tlv)
                                    + HEAD))[0] == 303


def test_a_local_header_is_the_balancers_own_health_check(gw: Gateway) -> None:
    health = b"GET /__govgate/health HTTP/1.1\r\nHost: portal.example.gov.cn\r\nConnection: close\r\n\r\n"
    status, body = status_and_json(exchange(port_of(gw), v2_header(None, None) + health))
    assert status == 200
    assert body["policy_version"] == 1
    assert status_and_json(exchange(port_of(gw), b"PROXY UNKNOWN\r\n" + health))[0] == 200
    # The balancer's own address is what a LOCAL connection is judged as.
    status, _ = status_and_json(exchange(port_of(gw), v2_header(None, None) + HEAD.replace(b"/oa/", b"/oa/local")))
    assert status == 303
    record = wait_for_record(gw.workdir / "audit", "the LOCAL request",
                             lambda r: r["event"] == "access" and r["path"] == "/oa/local")
    assert record["client"] == BALANCER


@pytest.mark.parametrize(("data", "reason"), [
    (HEAD, "missing"),  # the balancer forgot send-proxy: its own address must not be judged instead
    (b"PROXY TCP9 81.2.69.160 192.0.2.10 1 443\r\n" + HEAD, "malformed"),
    (b"PROXY TCP4 81.2.69.160 192.0.2.10 1 443\n" + HEAD, "malformed"),  # LF only: no CRLF within 107 bytes
    (b"PROXY TCP4 81.2.69.160 192.0.2.10 99999 443\r\n" + HEAD, "malformed"),
    (v2_header(ep(GB_ADDRESS, 1), ep("192.0.2.10", 443))[:12] + b"\x31\x11\x00\x0c" + bytes(12) + HEAD, "malformed"),
    (v2_header(ep(GB_ADDRESS, 1), ep("192.0.2.10", 443))[:13] + b"\x31\x00\x6c" + bytes(108) + HEAD, "unsupported"),
    (bytes(range(256)), "missing"),
])
def test_a_trusted_peer_without_a_valid_header_is_closed_before_anything_is_read(
        gw: Gateway, data: bytes, reason: str) -> None:
    assert exchange(port_of(gw), data) == b""
    gw.output.wait_for_line(rf"proxy_protocol\.refused reason={reason} peer={BALANCER}")


@pytest.mark.parametrize("data", [b"PROXY TCP4 81.2.69.160", b"PRO", v2_header(ep(GB_ADDRESS, 1),
                                                                               ep("192.0.2.10", 443))[:20]])
def test_a_header_cut_short_by_the_end_of_the_connection_is_refused(gw: Gateway, data: bytes) -> None:
    assert exchange(port_of(gw), data, half_close=True) == b""
    gw.output.wait_for_line(r"proxy_protocol\.refused reason=truncated")


def test_a_header_that_never_completes_is_refused_after_five_seconds(gw: Gateway) -> None:
    started = time.monotonic()
    assert exchange(port_of(gw), b"PROXY TCP4 81.2.69.160 ") == b""
    assert 4 < time.monotonic() - started < 12
    gw.output.wait_for_line(r"proxy_protocol\.refused reason=timeout")


def test_a_header_from_an_untrusted_peer_is_refused_and_its_plain_requests_are_served(gw: Gateway) -> None:
    port = port_of(gw)
    assert exchange(port, v1_line(ep(OFFICE_ADDRESS, 1), ep("192.0.2.10", 443)) + HEAD, source=STRANGER) == b""
    assert exchange(port, v2_header(ep(OFFICE_ADDRESS, 1), ep("192.0.2.10", 443)) + HEAD, source=STRANGER) == b""
    gw.output.wait_for_line(rf"proxy_protocol\.refused reason=untrusted peer={STRANGER}")
    # A browser reaching the gateway directly is served as always (it sends no header).
    plain = exchange(port, b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn\r\nConnection: close\r\n\r\n",
                     source=STRANGER)
    assert plain.startswith(b"HTTP/1.1 200")


def test_refusals_are_logged_once_per_burst_not_per_connection(gw: Gateway) -> None:
    before = sum("reason=malformed" in line for line in gw.output.lines)
    for _ in range(20):
        assert exchange(port_of(gw), b"PROXY TCP4 not-an-address 192.0.2.10 1 443\r\n" + HEAD) == b""
    wait_for(lambda: gw.health()["status"] in ("ok", "degraded"), 5, "the gateway to answer")
    assert sum("reason=malformed" in line for line in gw.output.lines) - before <= 2
    assert "Traceback" not in gw.output.text()


@pytest.fixture(scope="module")
def tls_gw(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGw]:
    g = start_tls_gateway(upstream.url, tmp_path_factory.mktemp("proxy-protocol-tls"),
                          trusted_proxies=[f"{BALANCER}/32"], proxy_protocol=True)
    yield g
    assert g.gw.stop() == 0


def tls_exchange(g: TlsGw, header: bytes, request: bytes) -> bytes:
    """The header in clear, then TLS (as HAProxy's send-proxy in front of a TLS backend does)."""
    with socket.create_connection(("127.0.0.1", g.port), timeout=10, source_address=(BALANCER, 0)) as raw:
        raw.sendall(header)
        with g.context().wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(request)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return answer


def test_over_tls_the_header_comes_first_and_sets_the_client(tls_gw: TlsGw) -> None:
    answer = tls_exchange(tls_gw, v2_header(ep(GB_ADDRESS, 7), ep("192.0.2.10", 443)), HEAD)
    status, body = status_and_json(answer)
    assert (status, body["reason"]) == (403, "network")  # the test policy: staff from the office network only
    assert b"strict-transport-security" in answer.lower()
    assert status_and_json(tls_exchange(tls_gw, v1_line(ep(OFFICE_ADDRESS, 8), ep("192.0.2.10", 443)), HEAD))[0] == 303
    record = wait_for_record(tls_gw.workdir / "audit", "the refusal over TLS",
                             lambda r: r["event"] == "access" and r["request_id"] == body["request_id"])
    assert record["client"] == GB_ADDRESS


def test_over_tls_a_trusted_peer_without_a_header_gets_no_handshake(tls_gw: TlsGw) -> None:
    with socket.create_connection(("127.0.0.1", tls_gw.port), timeout=10, source_address=(BALANCER, 0)) as raw, \
            pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        tls_gw.context().wrap_socket(raw, server_hostname="localhost")
    tls_gw.gw.output.wait_for_line(r"proxy_protocol\.refused reason=missing")


def test_the_https_redirect_keeps_the_port_the_client_reached_the_balancer_on(tls_gw: TlsGw) -> None:
    # Plain HTTP to the balancer's port 8443 (the header's destination), forwarded to the gateway's own port.
    answer = exchange(tls_gw.port, v1_line(ep(OFFICE_ADDRESS, 9), ep("192.0.2.10", 8443))
                      + b"GET /news/ HTTP/1.1\r\nHost: portal.example.gov.cn:8443\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 308")
    assert b"location: https://portal.example.gov.cn:8443/news/" in answer.lower()
