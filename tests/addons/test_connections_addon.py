"""The connections addon in process: requests counted per client connection; the answer that reaches
``gateway.max_requests_per_connection`` says ``Connection: close`` over HTTP/1.1 (not over HTTP/2, which gets a
GOAWAY); an answer to HEAD carries no body; a drain closes every connection's next answer; whose turn it is on each
connection (the client's: a body arriving, an answer being read; or the portal's), and when ``idle_timeout`` closes
one. (The GOAWAY itself, the sweeper and SIGTERM: ``tests/e2e/test_graceful_edges.py``; slow clients for real:
``tests/e2e/test_slow_clients.py``.)"""

from __future__ import annotations

import functools
import types

from mitmproxy import http
from mitmproxy.test import taddons

from govgate.addons.connections import ConnectionLimits
from tests.addons.flows import request_flow
from tests.policies import policy, policy_data
from tests.runtime import InProcessRuntime


def limits(max_requests: int = 3) -> ConnectionLimits:
    gateway = policy_data()["gateway"]
    return ConnectionLimits(InProcessRuntime(policy=policy(gateway={**gateway,
                                                                    "max_requests_per_connection": max_requests})))


def exchange(addon: ConnectionLimits, flow: http.HTTPFlow, body: bytes = b"ok") -> http.HTTPFlow:
    addon.requestheaders(flow)
    flow.response = http.Response.make(200, body)
    addon.responseheaders(flow)
    addon.response(flow)
    return flow


def on_one_connection(count: int, *, http_version: str = "HTTP/1.1") -> list[http.HTTPFlow]:
    first = request_flow(http_version=http_version)
    flows = [first]
    for _ in range(count - 1):
        flow = request_flow(http_version=http_version)
        flow.client_conn = first.client_conn
        flows.append(flow)
    return flows


def test_the_answer_that_reaches_the_limit_closes_an_http1_connection() -> None:
    addon = limits(3)
    with taddons.context(addon):
        answers = [exchange(addon, flow) for flow in on_one_connection(3)]
        assert ["connection" in f.response.headers for f in answers] == [False, False, True]  # type: ignore[union-attr]
        assert answers[-1].response.headers["connection"] == "close"  # type: ignore[union-attr]
        other = exchange(addon, request_flow())  # another connection counts from zero
        assert "connection" not in other.response.headers  # type: ignore[union-attr]
        cid = answers[0].client_conn.id
        assert addon.requests[cid] == 3
        assert not addon.in_flight[cid]
        addon.client_disconnected(answers[0].client_conn)
        assert cid not in addon.requests
        assert cid not in addon.closing


def test_http2_answers_never_say_connection_close() -> None:
    addon = limits(2)
    with taddons.context(addon):
        answers = [exchange(addon, flow) for flow in on_one_connection(3, http_version="HTTP/2.0")]
        assert all("connection" not in f.response.headers for f in answers)  # type: ignore[union-attr]
        assert answers[0].client_conn.id in addon.closing


def test_an_answer_to_head_carries_no_body_but_keeps_its_length() -> None:
    addon = limits()
    with taddons.context(addon):
        head = exchange(addon, request_flow("HEAD"), b"<html>the gate's page</html>")
        assert head.response is not None
        assert head.response.raw_content == b""
        assert head.response.headers["content-length"] == str(len(b"<html>the gate's page</html>"))
        get = exchange(addon, request_flow("GET"), b"body")
        assert get.response.raw_content == b"body"  # type: ignore[union-attr]


def test_while_draining_every_answer_closes_its_connection() -> None:
    addon = limits(1000)
    with taddons.context(addon):
        addon.draining = True
        flow = exchange(addon, request_flow())
        assert flow.response.headers["connection"] == "close"  # type: ignore[union-attr]


def test_a_request_that_ended_in_an_error_is_no_longer_in_flight() -> None:
    addon = limits()
    with taddons.context(addon):
        flow = request_flow()
        addon.requestheaders(flow)
        assert list(addon.in_flight[flow.client_conn.id].values()) == [flow]
        addon.error(flow)
        assert not addon.in_flight[flow.client_conn.id]


def test_idle_timeout_closes_only_where_the_client_has_left_the_connection_quiet() -> None:
    addon = limits()
    limit, now = 60.0, 1000.0
    with taddons.context(addon):
        flow = request_flow("POST")
        cid = flow.client_conn.id
        addon.client_connected(flow.client_conn)
        addon.quiet_since[cid] = now - 61
        # No request: the head's own bytes do not count (a slowloris), answers still going out do.
        assert addon._quiet(cid, 0, now - 61, None, now, limit) == "no request"
        assert addon._quiet(cid, 0, now - 59, None, now, limit) is None  # the last answer finished draining
        assert addon._quiet(cid, 4096, now - 61, None, now, limit) == "client stopped reading"
        assert addon._quiet(cid, 4096, now - 30, None, now, limit) is None  # read slowly, but read
        # Requests in flight: closed when the client has moved none of them on for the timeout.
        addon.requestheaders(flow)
        assert addon._quiet(cid, 0, now - 61, now - 59, now, limit) is None
        assert addon._quiet(cid, 0, now - 61, now - 61, now, limit) == "request body stalled"
        assert addon._quiet(cid, 8192, now - 61, now - 61, now, limit) == "client stopped reading"
        assert addon._quiet(cid, 0, now - 600, None, now, limit) is None  # one waits for the portal: never here
        addon.response(flow)
        # A WebSocket: quiet between messages by design.
        addon.quiet_since.pop(cid)
        assert addon._quiet(cid, 0, now - 600, None, now, limit) is None


def test_over_http1_the_client_has_the_turn_while_a_body_arrives_or_a_streamed_answer_waits_to_go_out() -> None:
    addon = limits()
    with taddons.context(addon):
        flow = request_flow("POST")
        flow.request.timestamp_end = None  # mitmproxy sets it when the whole body is in
        handler = types.SimpleNamespace(client=flow.client_conn, _govgate_read_at=900.0)
        moved = functools.partial(addon._client_moved, [flow], handler, written_at=800.0, now=1000.0)
        assert moved(unsent=0) == 900.0  # the body's last byte
        flow.request.timestamp_end = 950.0
        assert moved(unsent=0) is None  # the portal's turn: it has yet to answer
        flow.response = http.Response.make(200, b"")
        flow.response.stream = True
        assert moved(unsent=0) is None  # all sent: waiting for the portal's next bytes
        assert moved(unsent=65536) == 900.0  # waiting for the client
