"""The upstream-timeout addon in process: one timer per forwarded request, from ``request`` to the response head,
of ``gateway.upstream_timeout``; when it fires the flow is marked for the 504 page. (Closing the portal connection
and the page itself: ``tests/e2e/test_upstream_failures.py``.)"""

from __future__ import annotations

import asyncio

from mitmproxy import http
from mitmproxy.test import taddons

from govgate.addons.proxy_errors import UPSTREAM_TIMEOUT_KEY
from govgate.addons.upstream_timeout import UpstreamTimeout
from tests.addons.flows import request_flow
from tests.policies import policy, policy_data
from tests.runtime import InProcessRuntime


def with_timeout(seconds: int) -> InProcessRuntime:
    gateway = policy_data()["gateway"]
    return InProcessRuntime(policy=policy(gateway={**gateway, "upstream_timeout": f"{seconds}s"}))


async def test_a_forwarded_request_gets_one_timer_of_upstream_timeout_cancelled_by_the_response_head() -> None:
    addon = UpstreamTimeout(with_timeout(7))
    with taddons.context(addon):
        flow = request_flow()
        addon.request(flow)
        timer = addon._timers[flow.id]
        assert 6.5 < timer.when() - asyncio.get_running_loop().time() <= 7
        addon.responseheaders(flow)
        assert timer.cancelled()
        assert addon._timers == {}


async def test_requests_the_gate_answered_itself_get_no_timer() -> None:
    addon = UpstreamTimeout(with_timeout(7))
    with taddons.context(addon):
        flow = request_flow()
        flow.response = http.Response.make(403)
        addon.request(flow)
        assert addon._timers == {}


async def test_an_expired_timer_marks_the_flow_for_the_504_page_and_an_answered_one_is_left_alone() -> None:
    addon = UpstreamTimeout(with_timeout(7))
    with taddons.context(addon):
        waiting, answered = request_flow(), request_flow()
        addon.request(waiting)
        addon.request(answered)
        answered.response = http.Response.make(200)
        addon._expire(waiting)  # what the timer calls
        addon._expire(answered)
        assert waiting.metadata[UPSTREAM_TIMEOUT_KEY] is True
        assert UPSTREAM_TIMEOUT_KEY not in answered.metadata
        addon.done()
        assert addon._timers == {}
