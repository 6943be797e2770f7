"""The proxy-errors addon's ``error`` hook in process: a portal that failed is logged and audited as
``upstream.error`` (timeout or unreachable) with the request's fields; a browser that went away, or a request that
could not be read, is not an upstream error. (What the client receives — the gate's 502/504/400/431 pages over
HTTP/1.1 and HTTP/2 — needs mitmproxy's protocol layers and real sockets: ``tests/e2e/test_upstream_failures.py``,
``test_gateway_tls.py``, ``test_request_framing.py``.)"""

from __future__ import annotations

import logging

import pytest
from mitmproxy import flow as mitm_flow
from mitmproxy import http

from govgate.addons.proxy_errors import UPSTREAM_TIMEOUT_KEY, ProxyErrors
from govgate.pages.refusal import proxy_error
from govgate.repeated import REPEATED
from tests.addons.flows import judged, request_flow
from tests.runtime import InProcessRuntime


def failed(runtime: InProcessRuntime, message: str, *, read_whole: bool = True) -> http.HTTPFlow:
    flow = request_flow("GET", "/news/a?q=1", client="81.2.69.160")
    judged(runtime, flow)
    flow.error = mitm_flow.Error(message)
    if not read_whole:
        flow.request.timestamp_end = None
    return flow


@pytest.mark.parametrize(("timed_out", "reason", "status"), [(False, "unreachable", 502), (True, "timeout", 504)])
def test_a_portal_that_failed_is_audited_as_upstream_error(timed_out: bool, reason: str, status: int,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    REPEATED.flush()  # a repeated upstream.error is one line per 5 s (govgate/repeated.py): start afresh
    runtime = InProcessRuntime()
    flow = failed(runtime, "Connection refused")
    if timed_out:
        flow.metadata[UPSTREAM_TIMEOUT_KEY] = True
    ProxyErrors(runtime).error(flow)
    [event] = runtime.events
    assert (event.event, event.decision, event.reason, event.extra["status"]) == ("upstream.error", "error", reason,
                                                                                  status)
    assert (event.client, event.country, event.path, event.host) == ("81.2.69.160", "GB", "/news/a",
                                                                     "portal.example.gov.cn")
    assert f"upstream.error request_id={event.request_id} reason={reason}" in caplog.text


@pytest.mark.parametrize("message", ["Client disconnected.", "Connection killed."])
def test_a_browser_that_went_away_is_not_an_upstream_error(message: str) -> None:
    runtime = InProcessRuntime()
    ProxyErrors(runtime).error(failed(runtime, message))
    assert runtime.events == []


def test_a_request_that_could_not_be_read_is_logged_as_malformed_not_audited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    runtime = InProcessRuntime()
    ProxyErrors(runtime).error(failed(runtime, "bad chunk size", read_whole=False))
    assert runtime.events == []
    assert "request.malformed" in caplog.text
    assert "upstream.error" not in caplog.text


def test_a_flow_that_was_answered_after_all_is_left_alone() -> None:
    runtime = InProcessRuntime()
    flow = failed(runtime, "Connection refused")
    flow.response = http.Response.make(200)
    ProxyErrors(runtime).error(flow)
    assert runtime.events == []


def test_the_error_pages_name_no_upstream_and_carry_the_request_id() -> None:
    page = proxy_error(504, "abcd1234")
    assert page.status == 504
    assert b"abcd1234" in page.body
    assert b"mitmproxy" not in page.body
    assert proxy_error(502, "abcd1234", as_json=True).body.startswith(b'{"error": "portal_unreachable"')
