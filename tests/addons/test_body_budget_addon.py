"""The request-body budget in mitmproxy's own body check, in process (``govgate.addons.body_budget``): a piece of a
body that would take the bodies held past the limit fails its request as one over ``body_size_limit`` does (an error
for the audit record, the gate's 413 answer sent instead), and the bytes come back when the request is over
(``ConnectionLimits`` releases them on its answer or error)."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import commands
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http._events import ErrorCode, ResponseProtocolError
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook
from mitmproxy.test import taddons, tflow

from govgate.addons import body_budget
from govgate.addons.connections import ConnectionLimits
from govgate.core.body_budget import BodyBudget
from tests.policies import policy
from tests.runtime import InProcessRuntime


@pytest.fixture
def small_budget(monkeypatch: pytest.MonkeyPatch) -> BodyBudget:
    budget = BodyBudget(1000)
    monkeypatch.setattr(body_budget, "BODIES", budget)  # read by the wrapped check and by ConnectionLimits
    body_budget.install()
    return budget


def receiving(tctx: taddons.context, flow: http.HTTPFlow, body: bytes) -> tuple[list[commands.Command], bool]:
    """mitmproxy's check of a request body that has ``body`` so far: the commands it gives, and whether it stopped
    the request."""
    stream = http_layer.HttpStream(Context(flow.client_conn, tctx.options), 1)
    stream.flow = flow
    stream.request_body_buf += body
    check = stream.check_body_size(True)
    given: list[commands.Command] = []
    while True:
        try:
            given.append(next(check))
        except StopIteration as stop:
            return given, bool(stop.value)


def test_a_body_past_the_budget_fails_its_request_and_the_bytes_come_back_when_requests_end(
        small_budget: BodyBudget) -> None:
    limits = ConnectionLimits(InProcessRuntime(policy=policy()))
    with taddons.context(Proxyserver(), limits) as tctx:  # Proxyserver: mitmproxy's body options
        first, second = tflow.tflow(), tflow.tflow()
        for flow in (first, second):
            limits.requestheaders(flow)
        assert receiving(tctx, first, b"a" * 600) == ([], False)
        given, stopped = receiving(tctx, second, b"b" * 500)
        assert stopped
        assert [type(c) for c in given] == [HttpErrorHook, http_layer.SendHttp]
        refusal = given[1].event  # type: ignore[attr-defined]
        assert isinstance(refusal, ResponseProtocolError)
        assert refusal.code is ErrorCode.REQUEST_TOO_LARGE  # the gate's 413 page (govgate.addons.proxy_errors)
        assert second.error is not None
        assert second.error.msg.startswith("Request body refused: the gateway already holds")
        assert small_budget.held == 600
        limits.error(second)
        first.response = http.Response.make(200)
        limits.response(first)  # answered: its body is no longer held
        assert small_budget.held == 0
        third = tflow.tflow()
        limits.requestheaders(third)
        assert receiving(tctx, third, b"c" * 1000) == ([], False)
