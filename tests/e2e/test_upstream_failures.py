"""A portal that hangs or cannot be reached (``docs/operations.md``): the gate's own 504/502 page, with the
request id, over HTTP/1.1 and HTTP/2 alike, logged and audited; the portal connection is not held."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.e2e.h2client import H2Session, h2_request
from tests.e2e.harness import Gateway, read_records, start_gateway, wait_for_record
from tests.policies import policy_data, write_policy

pytestmark = pytest.mark.e2e

TIMEOUT_S = 2


class HangingPortal:
    """Accepts connections, reads what comes, never answers; counts the connections still open."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.open: list[socket.socket] = []
        self.closed = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.open.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        self.closed += 1  # the gateway closed its side

    def stop(self) -> None:
        self._stop = True
        for conn in self.open:
            conn.close()
        self.sock.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway(workdir: Path, upstream: str, *, tls: bool) -> tuple[Gateway, trustme.CA | None]:
    data = policy_data(workdir, upstream)
    gw = data["gateway"]
    assert isinstance(gw, dict)
    gw["upstream_timeout"] = f"{TIMEOUT_S}s"
    ca = None
    if tls:
        ca = trustme.CA()
        pem = workdir / "secrets" / "gateway.pem"
        ca.issue_cert("portal.example.gov.cn", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
        gw["insecure"] = False
        gw["tls"] = {"cert": str(pem), "request_client_cert": False}
    policy = workdir / "policy.yaml"
    write_policy(policy, data)
    return start_gateway(policy), ca


@pytest.fixture
def hanging() -> Iterator[HangingPortal]:
    portal = HangingPortal()
    yield portal
    portal.stop()


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_a_hanging_portal_gets_the_client_a_504_page_within_the_timeout(
        hanging: HangingPortal, workdir: Path, http2: bool) -> None:
    gw, ca = gateway(workdir, hanging.url, tls=True)
    assert ca is not None
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        started = time.monotonic()
        status, headers, text = get_page(port, ca, "/news/slow", http2=http2)
        took = time.monotonic() - started
        assert status == 504
        assert TIMEOUT_S - 0.2 <= took <= TIMEOUT_S + 2
        assert "门户响应超时" in text
        assert "request id" in text
        assert "mitmproxy" not in headers.get("server", "").lower()
        assert headers["strict-transport-security"].startswith("max-age=")
        assert "127.0.0.1" not in text  # never the upstream address
        record = wait_for_record(workdir / "audit", "upstream.error",
                                 lambda rec: rec["event"] == "upstream.error")
        assert record["reason"] == "timeout"
        assert record["request_id"] in text
        # The portal connection is closed by the gateway, not held for tcp_timeout.
        deadline = time.monotonic() + 5
        while hanging.closed < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hanging.closed >= 1
        assert "upstream.error" in gw.output.text()
    finally:
        assert gw.stop() == 0


@pytest.fixture
def unanswered_connect() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further SYNs, so a connect there hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.5)
    with pytest.raises(TimeoutError):
        probe.connect(("127.0.0.1", port))  # the premise: a connect there does not complete
    probe.close()
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_a_connect_that_hangs_gets_the_client_a_504_within_the_timeout(
        unanswered_connect: int, workdir: Path, http2: bool) -> None:
    # gateway.upstream_timeout counts from the request, connecting included: a connect still in progress is
    # cancelled (before, an HTTP/1.1 client waited for the kernel's own connect timeout, about 130 s).
    gw, ca = gateway(workdir, f"http://127.0.0.1:{unanswered_connect}", tls=True)
    assert ca is not None
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        started = time.monotonic()
        status, _, _ = get_page(port, ca, "/news/a", http2=http2)
        took = time.monotonic() - started
        assert status == 504
        assert took <= TIMEOUT_S + 2
        record = wait_for_record(workdir / "audit", "upstream.error", lambda rec: rec["event"] == "upstream.error")
        assert record["reason"] == "timeout"
    finally:
        assert gw.stop() == 0


def test_http2_streams_sharing_a_connect_that_hangs_each_get_a_504(unanswered_connect: int, workdir: Path) -> None:
    # Streams sent together wait on one connect. The first whose time runs out cancels it; the others used to get
    # the 502 of a portal that cannot be reached, as if the connect had failed by itself. Each gets the 504 now.
    gw, ca = gateway(workdir, f"http://127.0.0.1:{unanswered_connect}", tls=True)
    assert ca is not None
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        started = time.monotonic()
        with H2Session(port, _context(ca), timeout=TIMEOUT_S + 20) as session:
            answers = session.many([("GET", f"/news/{i}", b"") for i in range(4)])
        assert [a.status for a in answers] == [504] * 4, answers
        assert time.monotonic() - started <= TIMEOUT_S + 3
    finally:
        assert gw.stop() == 0


def get_page(port: int, ca: trustme.CA, path: str, *, http2: bool) -> tuple[int, dict[str, str], str]:
    """GET ``path`` from the gateway over TLS, HTTP/2 or HTTP/1.1: the status, the headers and the body's text."""
    if http2:
        headers, body = h2_request(port, _context(ca), path)
        return int(headers[":status"]), headers, body.decode()
    with httpx.Client(verify=_context(ca), timeout=30) as client:
        r = client.get(f"https://127.0.0.1:{port}{path}")
    return r.status_code, dict(r.headers), r.text


def _context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_the_client_connection_survives_a_portal_timeout(hanging: HangingPortal, workdir: Path) -> None:
    gw, _ = gateway(workdir, hanging.url, tls=False)
    try:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            assert client.get("/news/a").status_code == 504
            assert client.get("/__govgate/health").status_code == 200  # the same keep-alive connection
    finally:
        assert gw.stop() == 0


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_an_unreachable_portal_gets_a_502_page_with_the_request_id(workdir: Path, http2: bool) -> None:
    gw, ca = gateway(workdir, f"http://127.0.0.1:{closed_port()}", tls=True)
    assert ca is not None
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        accept = {"Accept": "application/json"}
        if http2:
            headers, body = h2_request(port, _context(ca), "/news/x", headers=accept)
            status, payload = int(headers[":status"]), json.loads(body)
        else:
            with httpx.Client(verify=_context(ca), timeout=30) as client:
                r = client.get(f"https://127.0.0.1:{port}/news/x", headers=accept)
            headers, status, payload = dict(r.headers), r.status_code, r.json()
        assert status == 502
        assert payload["error"] == "portal_unreachable"
        rid = payload["request_id"]
        assert rid
        assert len(rid) == 16
        assert headers["strict-transport-security"].startswith("max-age=")
        assert "mitmproxy" not in headers.get("server", "")
        record = wait_for_record(workdir / "audit", "upstream.error", lambda rec: rec["event"] == "upstream.error")
        assert (record["reason"], record["request_id"]) == ("unreachable", rid)
        assert [r for r in read_records(workdir / "audit") if r["event"] == "access"][-1]["request_id"] == rid
    finally:
        assert gw.stop() == 0


def test_a_kept_alive_connection_reaches_the_portal_again_once_it_is_back(workdir: Path) -> None:
    # mitmproxy kept a portal connection that failed to open, with its error, for the life of the client's
    # connection: every later request on it got the same error without a new attempt.
    port = closed_port()
    gw, _ = gateway(workdir, f"http://127.0.0.1:{port}", tls=False)
    portal = None
    try:
        with httpx.Client(base_url=gw.url, timeout=30) as client:
            assert client.get("/news/a").status_code == 502
            from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

            class Ok(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def do_GET(self) -> None:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

                def log_message(self, *args: object) -> None:
                    pass

            portal = ThreadingHTTPServer(("127.0.0.1", port), Ok)
            threading.Thread(target=portal.serve_forever, daemon=True).start()
            again = client.get("/news/a")  # the same keep-alive connection
            assert again.status_code == 200
            assert again.text == "ok"
    finally:
        if portal is not None:
            portal.shutdown()
        assert gw.stop() == 0
