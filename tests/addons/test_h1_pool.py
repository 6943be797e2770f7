"""govgate/addons/h1_pool.py in process: when an exchange for an HTTP/2 stream ends on an HTTP/1.1 portal
connection, the connection is kept for the next stream exactly when mitmproxy keeps it for an HTTP/1.1 client
(RFC 9112 §9.3), and closed otherwise. The reuse itself, the bound and the errors run against a real gateway:
tests/e2e/test_h2_portal_connections.py."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import connection, http
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import commands
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode
from mitmproxy.proxy.layers.http._events import RequestHeaders
from mitmproxy.proxy.layers.http._http1 import Http1Client
from mitmproxy.test import taddons

from govgate.addons.h1_pool import frame_body, reuse_idle_portal_connections

reuse_idle_portal_connections()


def portal_client(client_alpn: bytes, request: http.Request, response: http.Response) -> Http1Client:
    """An HTTP/1 client layer under an HttpLayer, its request sent and its answer read but for the last event."""
    with taddons.context() as tctx:
        client = connection.Client(peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 443), timestamp_start=0)
        client.alpn = client_alpn
        ctx = Context(client, tctx.options)
        HttpLayer(ctx, HTTPMode.transparent)  # joins ctx.layers
        server_ctx = ctx.fork()
        server_ctx.server = connection.Server(address=("portal.example.gov.cn", 80))
        server_ctx.server.state = ConnectionState.OPEN
        layer = Http1Client(server_ctx)
    layer.stream_id = 1
    layer.request = request
    layer.response = response
    layer.request_done = True
    layer.state = layer.read_body
    return layer


def finish(layer: Http1Client) -> tuple[bool, str]:
    """The answer's end: (whether the connection was closed, the state the layer is left in)."""
    done = list(layer.mark_done(response=True))
    closed = any(isinstance(c, commands.CloseConnection) and c.connection is layer.conn for c in done)
    return closed, layer.state.__name__


def request(method: str, version: str) -> http.Request:
    return http.Request("portal.example.gov.cn", 443, method.encode(), b"https", b"portal.example.gov.cn",
                        b"/x", version.encode(), http.Headers(), b"", None, 0, 0)


def response(status: int, version: str, headers: list[tuple[str, str]]) -> http.Response:
    return http.Response(version.encode(), status, b"R", http.Headers([(k.encode(), v.encode()) for k, v in headers]),
                         b"", None, 0, 0)


framing = st.sampled_from([[("Content-Length", "5")], [("Content-Length", "0")], [],
                           [("Transfer-Encoding", "chunked")]])
conn_header = st.sampled_from([[], [("Connection", "close")], [("Connection", "keep-alive")],
                               [("Connection", "Keep-Alive, Upgrade")], [("Connection", "upgrade")]])


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(["GET", "HEAD", "POST", "DELETE"]), version=st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
       status=st.sampled_from([200, 204, 206, 301, 304, 404, 500, 101]), length=framing, conn=conn_header)
def test_an_http2_streams_portal_connection_is_kept_exactly_when_http11_keeps_it(
        method: str, version: str, status: int, length: list[tuple[str, str]], conn: list[tuple[str, str]]) -> None:
    answer = (status, version, length + conn)
    by_h2 = finish(portal_client(b"h2", request(method, "HTTP/2.0"), response(*answer)))
    by_h11 = finish(portal_client(b"http/1.1", request(method, "HTTP/1.1"), response(*answer)))
    assert by_h2 == by_h11
    assert by_h2 in {(False, "read_headers"), (True, "done"), (False, "passthrough")}


def test_without_the_patch_every_http2_exchange_closed_its_connection() -> None:
    """The cost this module removes (and a check that the test above can tell the two apart)."""
    layer = portal_client(b"h2", request("GET", "HTTP/2.0"), response(200, "HTTP/1.1", [("Content-Length", "5")]))
    assert finish(layer) == (False, "read_headers")
    layer = portal_client(b"h2", request("GET", "HTTP/2.0"), response(200, "HTTP/1.1", [("Content-Length", "5")]))
    original = Http1Client.__mro__[1].mark_done  # Http1Connection's, unpatched
    closed = any(isinstance(c, commands.CloseConnection) for c in original(layer, response=True))
    assert closed


def test_an_interim_answer_or_an_unreadable_length_closes_the_connection() -> None:
    # mitmproxy would read on after a 1xx (or guess at a bad length); a stream's answer must not be taken from
    # bytes another request left behind, so the connection is not kept for the next stream.
    for answer in [response(103, "HTTP/1.1", [("Content-Length", "0")]),
                   response(200, "HTTP/1.1", [("Content-Length", "five")])]:
        assert finish(portal_client(b"h2", request("GET", "HTTP/2.0"), answer)) == (True, "done")


def test_bytes_beyond_the_answer_close_the_connection() -> None:
    layer = portal_client(b"h2", request("GET", "HTTP/2.0"), response(200, "HTTP/1.1", [("Content-Length", "5")]))
    layer.buf += b"HTTP/1.1 200 OK\r\n"
    assert finish(layer)[0]


def test_a_half_closed_portal_connection_is_not_kept() -> None:
    layer = portal_client(b"h2", request("GET", "HTTP/2.0"), response(200, "HTTP/1.1", [("Content-Length", "5")]))
    layer.conn.state = ConnectionState.CAN_WRITE  # the portal sent its FIN
    assert finish(layer)[0]


def test_an_exchange_half_done_is_not_decided_yet() -> None:
    layer = portal_client(b"h2", request("GET", "HTTP/2.0"), response(200, "HTTP/1.1", [("Content-Length", "5")]))
    layer.request_done = False
    assert finish(layer) == (False, "read_body")  # the request body is still on its way
    assert layer.request is not None


def framed(version: str, content: bytes | None, headers: list[tuple[str, str]] | None = None, *,
           end_stream: bool = False) -> dict[str, str]:
    req = request("POST", version)
    req.data.content = content
    for k, v in headers or []:
        req.headers[k] = v
    frame_body(RequestHeaders(1, req, end_stream))
    return {k.lower(): v for k, v in req.headers.items()}


def test_an_http2_body_without_a_length_gets_one_for_the_portal() -> None:
    assert framed("HTTP/2.0", b"GET /oa/ HTTP/1.1\r\n\r\n") == {"content-length": "21"}
    assert framed("HTTP/2.0", b"") == {"content-length": "0"}
    assert framed("HTTP/2.0", None) == {"transfer-encoding": "chunked"}  # streamed: chunked by Http1Client


def test_a_request_already_framed_or_without_a_body_is_left_alone_and_a_body_without_a_length_gets_one() -> None:
    assert framed("HTTP/2.0", b"abc", [("content-length", "3")]) == {"content-length": "3"}
    assert framed("HTTP/2.0", None, [("transfer-encoding", "chunked")]) == {"transfer-encoding": "chunked"}
    assert framed("HTTP/2.0", b"", end_stream=True) == {}
    assert framed("HTTP/1.1", b"") == {}  # an HTTP/1.1 request without a body: nothing to frame
    # One with a body that lost its length on the way (a client's Connection option used to take it off): the body
    # must not reach the portal as the next request.
    assert framed("HTTP/1.1", b"abc") == {"content-length": "3"}
