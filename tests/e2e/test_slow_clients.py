"""Slow clients and ``gateway.idle_timeout``, end to end (``govgate/addons/connections.py``).

A connection is closed when the client has left it quiet for ``idle_timeout``: no request (idle keep-alive, a head
that never ends: ``test_graceful_edges``), a request body that stops arriving (found in review: it was held until
mitmproxy's 600 s), an answer the client stops reading (it was held for ever with its buffers, over HTTP/2 too). A
client that is slow but moving is never cut, however long it takes. A WebSocket is quiet between messages by design
and stays open.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import h2.events
import pytest
import wsproto
import wsproto.events

from tests.e2e.harness import Gateway
from tests.e2e.test_graceful_edges import gateway
from tests.e2e.test_h2_backpressure import zero_window_client
from tests.pki import TestCA
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

IDLE = 2.0  # seconds: the gateways' idle_timeout here
PAGE = b"<!doctype html><title>t</title><p>" + b"x" * (6 << 20) + b"</p>"  # buffered whole: rewritten as HTML
HOST = b"Host: portal.example.gov.cn\r\n"


class Portal(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/news/ws":
            self._websocket()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path.endswith(".html") else "application/octet-stream")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = b"got %d" % len(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _websocket(self) -> None:
        key = self.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.wfile.flush()
        ws = wsproto.Connection(wsproto.ConnectionType.SERVER)
        while data := self.connection.recv(65536):
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, wsproto.events.TextMessage):
                    self.connection.sendall(ws.send(wsproto.events.TextMessage("echo " + event.data)))
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def plain(portal: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = gateway(tmp_path_factory.mktemp("slow"), portal, idle_timeout=f"{IDLE:.0f}s")
    try:
        yield gw
    finally:
        assert gw.stop() == 0
    assert not [line for line in gw.output.lines if "crashed" in line or "Traceback" in line]


def connect(gw: Gateway, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # a small window: a slow link
    sock.settimeout(15)
    sock.connect(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the gateway closed ``sock`` (reading and dropping whatever comes first); fails after
    ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the connection was still open after {seconds} s")
    return time.monotonic() - started


def test_a_page_read_slowly_for_longer_than_the_idle_timeout_arrives_whole(plain: Gateway) -> None:
    with connect(plain, receive_buffer=8192) as sock:
        sock.sendall(b"GET /news/page.html HTTP/1.1\r\n" + HOST + b"\r\n")
        received = bytearray()
        started = time.monotonic()
        rate = 1.2e6  # bytes a second: the page takes about 5 s, more than twice the idle timeout
        while not received.endswith(b"</p>"):
            chunk = sock.recv(16384)
            assert chunk, f"closed after {len(received)} bytes, {time.monotonic() - started:.1f} s"
            received += chunk
            ahead = len(received) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        took = time.monotonic() - started
    assert took > 2 * IDLE
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == PAGE


def test_a_request_body_that_stops_arriving_is_closed_after_the_idle_timeout(plain: Gateway) -> None:
    with connect(plain) as sock:
        sock.sendall(b"POST /news/upload HTTP/1.1\r\n" + HOST + b"Content-Length: 1000\r\n\r\n" + b"a" * 10)
        assert closed_within(sock, IDLE + 6) >= IDLE - 0.5
    wait_for(lambda: "reason=request body stalled" in plain.output.text(), 5, "the reason in the log")


def test_a_request_body_that_trickles_but_moves_is_not_cut(plain: Gateway) -> None:
    with connect(plain) as sock:
        sock.sendall(b"POST /news/upload HTTP/1.1\r\n" + HOST + b"Content-Length: 8\r\n\r\n")
        for _ in range(8):  # a byte every 0.7 s: 5.6 s in all, nearly three idle timeouts
            time.sleep(0.7)
            sock.sendall(b"b")
        answer = b""
        while not answer.endswith(b"got 8"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")


def test_an_answer_the_client_stops_reading_is_closed_after_the_idle_timeout(plain: Gateway) -> None:
    with connect(plain, receive_buffer=8192) as sock:
        sock.sendall(b"GET /news/page.html HTTP/1.1\r\n" + HOST + b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(IDLE + 3)  # reads nothing more
        # The gateway has closed the connection and dropped the answer's bytes; only what the kernel's buffers held
        # comes (at most tcp_wmem's 4 MiB). Before, the close waited, with the whole page buffered, for a client that
        # might never read it.
        sock.settimeout(5)
        rest = 0
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                rest += len(chunk)
        assert rest < len(PAGE) - (1 << 20)
    wait_for(lambda: "reason=client stopped reading" in plain.output.text(), 5, "the reason in the log")


def test_a_websocket_stays_open_while_quiet_between_messages(plain: Gateway) -> None:
    with connect(plain) as sock:
        key = base64.b64encode(os.urandom(16))
        sock.sendall(b"GET /news/ws HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        ws = wsproto.Connection(wsproto.ConnectionType.CLIENT)
        for message in ("first", "after a quiet spell"):
            sock.sendall(ws.send(wsproto.events.TextMessage(message)))
            got: list[str] = []
            while not got:
                chunk = sock.recv(65536)
                assert chunk, f"the WebSocket was closed before {message!r}"
                ws.receive_data(chunk)
                got = [e.data for e in ws.events() if isinstance(e, wsproto.events.TextMessage)]
            assert got == ["echo " + message]
            time.sleep(IDLE * 2 + 1.5)  # quiet for more than twice the idle timeout


def test_an_http2_client_that_takes_nothing_is_closed_after_the_idle_timeout(
        portal: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Found in review: with answers waiting for its windows, such a connection was held for ever, with its buffers.
    workdir = tmp_path_factory.mktemp("slow-h2")
    (workdir / "secrets").mkdir()
    ca = TestCA()
    pem = ca.server("portal.example.gov.cn", "127.0.0.1").write_key_and_chain(workdir / "secrets" / "gw.pem")
    data = policy_data(workdir, portal)
    settings = data["gateway"]
    assert isinstance(settings, dict)
    settings.update({"insecure": False, "idle_timeout": f"{IDLE:.0f}s",
                     "tls": {"cert": str(pem), "request_client_cert": False}})
    write_policy(workdir / "policy.yaml", data)
    from tests.e2e.harness import start_gateway

    gw = start_gateway(workdir / "policy.yaml")
    try:
        with zero_window_client(gw, ca.write(workdir / "ca.pem"), 15) as (tls, client):
            client.send_headers(1, [(":method", "GET"), (":path", "/news/page.bin"), (":scheme", "https"),
                                    (":authority", "portal.example.gov.cn")], end_stream=True)
            tls.sendall(client.data_to_send())
            started = time.monotonic()
            tls.settimeout(IDLE + 8)
            ended = False
            with contextlib.suppress(ConnectionResetError):  # TimeoutError: still open, the test fails
                while not ended and (data_in := tls.recv(65536)):
                    ended = any(isinstance(e, h2.events.ConnectionTerminated) for e in client.receive_data(data_in))
                    tls.sendall(client.data_to_send())
            assert time.monotonic() - started >= IDLE - 0.5
    finally:
        assert gw.stop() == 0
    assert "reason=client stopped reading" in gw.output.text()


def test_a_connection_without_a_request_is_closed_with_its_reason_in_the_log(plain: Gateway) -> None:
    with connect(plain) as sock:  # no request at all
        assert closed_within(sock, IDLE + 6) >= IDLE - 0.5
    wait_for(lambda: "reason=no request" in plain.output.text(), 5, "the reason in the log")
