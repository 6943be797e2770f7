"""Requests a portal could read differently from the gate (``docs/operations.md``): a GET or HEAD with a
body, a malformed chunked body, conflicting framing — the gate's 400 page, nothing of it at the portal; and
pipelined HTTP/1.1 requests answered in order, never a hang. Raw sockets, a recording portal, h11 as the
client-side parser of the answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from tests.e2e.h2client import h2_request
from tests.e2e.harness import Gateway, start_gateway
from tests.pki import TestCA
from tests.policies import policy_data, write_policy
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

HOST = b"portal.example.gov.cn"


@dataclass
class RecordingPortal:
    """A portal that answers every request with a small 200 and records every byte it receives."""

    sock: socket.socket = field(default_factory=socket.socket)
    received: list[bytes] = field(default_factory=list)

    def start(self) -> RecordingPortal:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def everything(self) -> bytes:
        return b"".join(self.received)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        server = h11.Connection(h11.SERVER)
        method = b"GET"
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                self.received.append(data)
                server.receive_data(data)
                while True:
                    try:
                        event = server.next_event()
                    except h11.RemoteProtocolError:
                        return
                    if event is h11.NEED_DATA or event is h11.PAUSED:
                        break
                    if isinstance(event, h11.Request):
                        method = event.method
                    if isinstance(event, h11.EndOfMessage):
                        body = b"portal ok"
                        conn.sendall(server.send(h11.Response(status_code=200, headers=[
                            ("content-type", "text/plain"), ("content-length", str(len(body)))])) or b"")
                        if method != b"HEAD":
                            conn.sendall(server.send(h11.Data(data=body)) or b"")
                        conn.sendall(server.send(h11.EndOfMessage()) or b"")
                        server.start_next_cycle()
                    if isinstance(event, h11.ConnectionClosed):
                        return
                if not data:
                    return


@pytest.fixture(scope="module")
def portal() -> Iterator[RecordingPortal]:
    p = RecordingPortal().start()
    yield p
    p.sock.close()


@pytest.fixture(scope="module")
def gw(portal: RecordingPortal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("framing")
    (workdir / "secrets").mkdir()
    data = policy_data(workdir, portal.url)
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    g = start_gateway(policy)
    yield g
    assert g.stop() == 0


def exchange(gw: Gateway, raw: bytes, *, methods: tuple[str, ...] = ("GET",)) -> tuple[list[h11.Response], bool]:
    """Send ``raw`` (requests with these ``methods``, in order) on one connection and read one answer each with
    h11. Returns the answers and whether the gateway then closed the connection."""
    port = int(gw.url.rsplit(":", 1)[1])
    client = h11.Connection(h11.CLIENT)
    responses: list[h11.Response] = []
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        # h11 only parses answers to requests it knows of: tell it about each one we sent, in turn.
        for method in methods:
            client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    data = s.recv(65536)
                    if not data:
                        raise AssertionError(f"connection closed after {len(responses)} of {len(methods)} answers")
                    client.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    responses.append(event)
                if isinstance(event, h11.EndOfMessage):
                    break
            if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
                break
            client.start_next_cycle()
        s.settimeout(2)
        try:
            closed = s.recv(1) == b""
        except (TimeoutError, ConnectionResetError):
            closed = False
    return responses, closed


def request(method: bytes, path: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: " + HOST, *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


SMUGGLED = request(b"GET", b"/oa/secret")


@pytest.mark.parametrize("raw", [
    request(b"GET", b"/news/a", b"Content-Length: %d" % len(SMUGGLED), body=SMUGGLED),
    request(b"HEAD", b"/news/a", b"Transfer-Encoding: chunked", body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED),
                                                                                               SMUGGLED)),
    request(b"GET", b"/news/a", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
], ids=["get-content-length", "head-chunked", "get-empty-chunked"])
def test_a_get_or_head_with_a_body_is_refused_and_nothing_reaches_the_portal(
        gw: Gateway, portal: RecordingPortal, raw: bytes) -> None:
    before = len(portal.everything())
    responses, closed = exchange(gw, raw, methods=(raw.split(b" ", 1)[0].decode(),))
    assert responses[0].status_code == 400
    assert (b"connection", b"close") in responses[0].headers
    assert closed
    assert len(portal.everything()) == before, portal.everything()[before:]
    assert b"/oa/secret" not in portal.everything()


def test_a_get_with_content_length_0_is_an_ordinary_request(gw: Gateway) -> None:
    responses, _ = exchange(gw, request(b"GET", b"/news/a", b"Content-Length: 0"))
    assert responses[0].status_code == 200


@pytest.mark.parametrize("raw", [
    request(b"POST", b"/news/a", b"Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"),
    request(b"POST", b"/news/a", b"Transfer-Encoding: chunked", body=b"5\r\nhelloXX\r\n0\r\n\r\n"),
    request(b"POST", b"/news/a", b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
    request(b"POST", b"/news/a", b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"),
    request(b"POST", b"/news/a", b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
    request(b"POST", b"/news/a", b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
], ids=["bad-chunk-size", "bad-chunk-end", "cl-and-te", "two-lengths", "te-not-chunked-last", "trailers"])
def test_malformed_or_conflicting_framing_gets_the_gates_400_page(gw: Gateway, portal: RecordingPortal,
                                                                  raw: bytes) -> None:
    before = len(portal.everything())
    port = int(gw.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.count(b"HTTP/1.1 400 ") == 1
    assert "请求无效".encode() in answer  # the gate's page, not mitmproxy's
    assert b"mitmproxy" not in answer.lower()
    assert len(portal.everything()) == before


def test_pipelined_requests_are_answered_in_order(gw: Gateway) -> None:
    raw = (request(b"GET", b"/news/1") + request(b"GET", b"/__govgate/health") + request(b"GET", b"/admin/")
           + request(b"HEAD", b"/news/2") + request(b"HEAD", b"/__govgate/health") + request(b"HEAD", b"/admin/")
           + request(b"GET", b"/news/3"))
    # HEAD answers made by the gate itself carry no body: otherwise the next answer would be misread.
    responses, closed = exchange(gw, raw, methods=("GET", "GET", "GET", "HEAD", "HEAD", "HEAD", "GET"))
    assert [r.status_code for r in responses] == [200, 200, 403, 200, 200, 403, 200]
    assert not closed  # keep-alive: the client may go on


def test_http2_get_with_a_body_is_refused(tmp_path: Path, portal: RecordingPortal) -> None:
    (tmp_path / "secrets").mkdir()
    ca = TestCA()
    pem = ca.server("portal.example.gov.cn", "127.0.0.1").write_key_and_chain(tmp_path / "secrets" / "gw.pem")
    data = policy_data(tmp_path, portal.url)
    gateway = data["gateway"]
    assert isinstance(gateway, dict)
    gateway.update({"insecure": False, "tls": {"cert": str(pem), "request_client_cert": False}})
    write_policy(tmp_path / "policy.yaml", data)
    g = start_gateway(tmp_path / "policy.yaml")
    try:
        import ssl

        ctx = ssl.create_default_context(cadata=ca.pem().decode())
        before = len(portal.everything())
        headers, _ = h2_request(int(g.url.rsplit(":", 1)[1]), ctx, "/news/a", body=SMUGGLED)
        assert headers[":status"] == "400"
        assert "connection" not in headers  # not a legal HTTP/2 header
        assert len(portal.everything()) == before
    finally:
        assert g.stop() == 0


@pytest.mark.parametrize("option", [b"Content-Length", b"Transfer-Encoding", b"content-length, x-a"])
def test_a_connection_option_cannot_take_the_length_off_a_body(gw: Gateway, portal: RecordingPortal,
                                                               option: bytes) -> None:
    # RFC 9110 7.6.1 has a proxy drop the headers a Connection header names; dropping Content-Length (found in
    # review of the first version) let the body reach the portal as a second request the gate never judged.
    before = len(portal.everything())
    raw = request(b"POST", b"/news/a", b"Connection: keep-alive, " + option,
                  b"Content-Length: %d" % len(SMUGGLED), body=SMUGGLED)
    responses, _ = exchange(gw, raw, methods=("POST",))
    assert responses[0].status_code == 200
    wait_for(lambda: SMUGGLED in portal.everything()[before:], 10, "the body at the portal")
    head, _, body = portal.everything()[before:].partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(SMUGGLED) in head.lower()
    assert body == SMUGGLED  # the body, read as one; no second request
    assert b"/oa/secret" not in head
