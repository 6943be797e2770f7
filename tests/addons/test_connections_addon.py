"""The connections addon in process: requests counted per client connection; the answer that reaches
``gateway.max_requests_per_connection`` says ``Connection: close`` over HTTP/1.1 (not over HTTP/2, which gets a
GOAWAY); an answer to HEAD carries no body; a drain closes every connection's next answer. (The GOAWAY itself, the
sweeper and SIGTERM: ``tests/e2e/test_graceful_edges.py``.)"""

from __future__ import annotations

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
        assert addon.in_flight[cid] == 0
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
        assert addon.in_flight[flow.client_conn.id] == 1
        addon.error(flow)
        assert addon.in_flight[flow.client_conn.id] == 0
