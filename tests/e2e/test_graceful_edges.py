"""Connections that end gracefully (``docs/operations.md``): SIGTERM lets requests in flight finish and exits 0
without a traceback; idle keep-alive connections close at once; `drain_timeout` bounds the wait; and a
connection is closed gracefully after `max_requests_per_connection` (Connection: close, HTTP/2 GOAWAY)."""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest

from tests.e2e.harness import GOVGATE, Gateway, portal_in_thread, start_gateway
from tests.pki import TestCA
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


ARRIVED: list[str] = []  # paths of the requests that reached the portal, in order (list.append is atomic)


class SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        ARRIVED.append(self.path)
        if "/slow/" in self.path:
            time.sleep(float(self.path.rsplit("/", 1)[1]))
        body = b"done " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def slow_portal() -> Iterator[str]:
    with portal_in_thread(SlowHandler) as url:
        yield url


def gateway(workdir: Path, upstream: str, **gateway_keys: object) -> Gateway:
    (workdir / "secrets").mkdir(exist_ok=True)
    data = policy_data(workdir, upstream)
    gw = data["gateway"]
    assert isinstance(gw, dict)
    gw.update(gateway_keys)
    write_policy(workdir / "policy.yaml", data)
    return start_gateway(workdir / "policy.yaml")


def sigterm_and_wait(gw: Gateway, within: float) -> tuple[int, float]:
    started = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    code = gw.proc.wait(within)
    gw.output.join()
    return code, time.monotonic() - started


def in_flight(count: int, path: str) -> None:
    """Wait until ``count`` requests for ``path`` have reached the portal: they are in flight at the gateway."""
    wait_for(lambda: ARRIVED.count(path) >= count, 15, f"{count} requests for {path} at the portal")


def test_sigterm_lets_slow_requests_in_flight_finish_and_exits_0(slow_portal: str, workdir: Path) -> None:
    gw = gateway(workdir, slow_portal)
    ARRIVED.clear()
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(httpx.get, f"{gw.url}/news/slow/3", timeout=30) for _ in range(6)]
        in_flight(6, "/news/slow/3")
        code, took = sigterm_and_wait(gw, 15)
        answers = [f.result() for f in futures]
    assert code == 0
    assert [a.status_code for a in answers] == [200] * 6
    assert all(a.text == "done /news/slow/3" for a in answers)
    assert took < 5
    output = gw.output.text()
    assert "Traceback" not in output
    assert "CancelledError" not in output
    # After the drain, nothing listens any more, and the audit log is whole.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])), timeout=2)
    verify = subprocess.run([*GOVGATE, "audit", "verify", "-p", str(gw.policy_path)],
                            capture_output=True, text=True, cwd=workdir, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_new_connections_are_refused_while_draining(slow_portal: str, workdir: Path) -> None:
    gw = gateway(workdir, slow_portal)
    port = int(gw.url.rsplit(":", 1)[1])
    ARRIVED.clear()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{gw.url}/news/slow/2", timeout=30)
        in_flight(1, "/news/slow/2")
        gw.proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for(refused, 5, "the gateway to stop accepting while the slow request is in flight")
        assert slow.result().status_code == 200
    assert gw.proc.wait(15) == 0
    gw.output.join()


def test_an_idle_keep_alive_connection_does_not_hold_up_the_shutdown(slow_portal: str, workdir: Path) -> None:
    # Far longer than the bound below: a shutdown that waited for the idle connection would take a minute.
    gw = gateway(workdir, slow_portal, drain_timeout="60s")
    with socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(b"GET /news/a HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n")
        answer = b""
        while not answer.endswith(b"done /news/a"):
            answer += s.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        code, took = sigterm_and_wait(gw, 15)  # the connection stays open and idle on our side
        assert s.recv(1) == b""  # closed by the gateway
    assert code == 0
    assert took < 10  # at once, give or take a loaded machine (the audit log is flushed and fsynced on the way out)


def test_drain_timeout_bounds_how_long_a_hanging_request_holds_the_shutdown(slow_portal: str, workdir: Path) -> None:
    gw = gateway(workdir, slow_portal, drain_timeout="1s")
    ARRIVED.clear()
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(httpx.get, f"{gw.url}/news/slow/10", timeout=30)
        in_flight(1, "/news/slow/10")
        code, took = sigterm_and_wait(gw, 15)
        with pytest.raises(httpx.HTTPError):
            stuck.result()
    assert code == 0
    assert took < 4
    assert "Traceback" not in gw.output.text()


def test_http1_connection_is_closed_gracefully_after_max_requests(slow_portal: str, workdir: Path) -> None:
    gw = gateway(workdir, slow_portal, max_requests_per_connection=3)
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            answers = [client.get(f"/news/{i}") for i in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers.get("connection") for a in answers] == [None, None, "close"]
        with socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])), timeout=10) as s:
            s.sendall(b"GET /news/a HTTP/1.1\r\nHost: x.gov.cn\r\n\r\n" * 3)
            received = b""
            while chunk := s.recv(65536):
                received += chunk
        assert received.count(b"HTTP/1.1 200") == 3  # all three answered, then the connection closed
    finally:
        assert gw.stop() == 0


def test_http2_connection_gets_a_goaway_after_max_requests(slow_portal: str, workdir: Path) -> None:
    ca = TestCA()
    (workdir / "secrets").mkdir(exist_ok=True)
    pem = ca.server("portal.example.gov.cn", "127.0.0.1").write_key_and_chain(workdir / "secrets" / "gw.pem")
    ca_file = ca.write(workdir / "ca.pem")
    gw = gateway(workdir, slow_portal, max_requests_per_connection=3, insecure=False,
                 tls={"cert": str(pem), "request_client_cert": False})
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        # curl, one HTTP/2 connection reused for consecutive URLs until the gateway's GOAWAY after the third.
        urls = [f"https://portal.example.gov.cn:{port}/news/{i}" for i in range(5)]
        out = subprocess.run(["curl", "-s", "--http2", "--cacert", str(ca_file), "--resolve",
                              f"portal.example.gov.cn:{port}:127.0.0.1",
                              "-w", "%{http_code} %{http_version} %{num_connects}\n",
                              *(arg for url in urls for arg in ("-o", "/dev/null", url))],
                             capture_output=True, text=True, timeout=60)
        lines = out.stdout.split()
        rows = [tuple(lines[i:i + 3]) for i in range(0, len(lines), 3)]
        assert [r[0] for r in rows] == ["200"] * 5, out
        assert {r[1] for r in rows} == {"2"}
        assert [r[2] for r in rows] == ["1", "0", "0", "1", "0"]  # a new connection after the third request
    finally:
        assert gw.stop() == 0



def test_streams_reset_by_the_client_after_the_goaway_are_not_a_crash(slow_portal: str, workdir: Path) -> None:
    # Found in review: a stream opened after the GOAWAY's last one and reset by the client in the same read made the
    # gateway's refusal raise StreamClosedError: "mitmproxy has crashed!" and a 60-line traceback per connection.
    ca = TestCA()
    (workdir / "secrets").mkdir(exist_ok=True)
    pem = ca.server("portal.example.gov.cn", "127.0.0.1").write_key_and_chain(workdir / "secrets" / "gw.pem")
    gw = gateway(workdir, slow_portal, max_requests_per_connection=3, insecure=False,
                 tls={"cert": str(pem), "request_client_cert": False})
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        context = ssl.create_default_context(cafile=str(ca.write(workdir / "ca.pem")))
        context.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="portal.example.gov.cn") as tls:
            client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            client.initiate_connection()
            for stream in range(1, 20, 2):  # ten streams, each opened and reset at once, in one write
                client.send_headers(stream, [(":method", "GET"), (":path", "/news/a"), (":scheme", "https"),
                                             (":authority", "portal.example.gov.cn")], end_stream=True)
                client.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
            tls.sendall(client.data_to_send())
            ended = False
            while not ended and (data := tls.recv(65536)):
                ended = any(isinstance(e, h2.events.ConnectionTerminated) for e in client.receive_data(data))
                tls.sendall(client.data_to_send())
            assert ended  # the GOAWAY after the third stream
    finally:
        assert gw.stop() == 0
    assert not [line for line in gw.output.lines if "crashed" in line or "Traceback" in line]


def test_a_connection_without_a_request_is_closed_after_the_idle_timeout(slow_portal: str, workdir: Path) -> None:
    # Found in review: 300 slowloris connections and 300 half TLS handshakes were all held (mitmproxy waits 600 s).
    gw = gateway(workdir, slow_portal, idle_timeout="2s")
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slowloris, \
                socket.create_connection(("127.0.0.1", port), timeout=10) as kept_alive:
            slowloris.sendall(b"GET /news/a HTTP/1.1\r\nHost: portal.example.gov.cn\r\nX-A: 1\r\n")  # never ends
            kept_alive.sendall(b"GET /news/a HTTP/1.1\r\nHost: portal.example.gov.cn\r\n\r\n")
            answer = b""
            while not answer.endswith(b"done /news/a"):  # the whole answer (head and body may come apart)
                answer += kept_alive.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert slowloris.recv(65536) == b""  # closed by the gateway
            assert kept_alive.recv(65536) == b""
            assert time.monotonic() - started < 8
        # A request in flight is not cut, however long the portal takes (upstream_timeout bounds that).
        answer = httpx.get(gw.url + "/news/slow/3.5", headers={"Host": "portal.example.gov.cn"}, timeout=20)
        assert answer.status_code == 200
    finally:
        assert gw.stop() == 0
