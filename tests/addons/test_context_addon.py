"""The context addon in process (``govgate.addons.context``): the request's context, the header hygiene every later
step relies on, the 400s for requests the rules and the portal could read differently, and plain HTTP sent to
HTTPS. Through the gateway's request side where what the portal receives is the point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mitmproxy import http

from govgate.addons.context import RequestContextAddon, context_of
from tests.addons.flows import request_flow
from tests.addons.gateway import Browser, InProcessGateway
from tests.outbound.conftest import outbound_policy
from tests.runtime import InProcessRuntime

US_ADDRESS = "216.160.83.57"


@pytest.fixture
def runtime() -> InProcessRuntime:
    return InProcessRuntime()


@pytest.fixture
async def gateway(runtime: InProcessRuntime) -> AsyncIterator[InProcessGateway]:
    async with InProcessGateway(runtime) as gw:
        yield gw


def judge(runtime: InProcessRuntime, method: str = "GET", path: str = "/news/", **kwargs: Any) -> http.HTTPFlow:
    """A request through the context addon alone."""
    flow = request_flow(method, path, **kwargs)
    RequestContextAddon(runtime).request(flow)
    return flow


def test_each_request_gets_a_context_with_its_own_id_the_client_and_its_country(runtime: InProcessRuntime) -> None:
    first, second = judge(runtime, client="81.2.69.160"), judge(runtime, client="81.2.69.160")
    ctx = context_of(first)
    assert ctx is not None
    assert (str(ctx.client), ctx.country, ctx.host, ctx.path) == ("81.2.69.160", "GB", "portal.example.gov.cn",
                                                                  "/news/")
    assert ctx.snapshot is runtime.snapshot
    assert len(ctx.request_id) == 16
    assert ctx.request_id != context_of(second).request_id  # type: ignore[union-attr]
    assert first.response is None


async def test_client_sent_identity_headers_never_reach_the_portal(gateway: InProcessGateway) -> None:
    seen = (await Browser(gateway).get("/echo/public/x", headers=[("X-GovGate-User", "admin"),
                                                                  ("x-govgate-groups", "root")])).portal_headers
    assert "x-govgate-user" not in seen
    assert "x-govgate-groups" not in seen


async def test_spoofable_forwarding_and_identity_headers_never_reach_the_portal(gateway: InProcessGateway) -> None:
    sent = {"X_GovGate_User": "admin", "x-govgate-anything": "1", "Forwarded": "for=10.1.1.1",
            "X-Real-IP": "10.1.1.1", "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "1",
            "True-Client-IP": "10.1.1.1", "X.GovGate.User": "admin", "X-GovGateUser": "admin", "Remote-User": "admin",
            "X-Forwarded-User": "admin", "X-Original-URL": "/oa/secret", "X-Rewrite-URL": "/oa/secret",
            "X-Forwarded-Uri": "/oa/secret", "X-HTTP-Method-Override": "DELETE", "X-Method-Override": "DELETE",
            "X-Original-Host": "oa.example.gov.cn"}
    seen = (await Browser(gateway).get("/echo/public/x", headers=list(sent.items()))).portal_headers
    for name in sent:
        assert name.lower() not in seen
    assert seen["x-forwarded-proto"] == "http"  # the test policy is plain HTTP (insecure)


async def test_a_client_cannot_make_a_hop_behind_the_gate_drop_its_headers(gateway: InProcessGateway) -> None:
    # RFC 9110 §7.6.1: a proxy behind the gate drops the headers a Connection header names. The client's options
    # go, with the headers they name; close / keep-alive stay (the gate's X-Forwarded-For reaches the portal).
    sent = [("Connection", "close, X-Forwarded-For, X-GovGate-User, X-Portal-Hint"), ("X-Portal-Hint", "1")]
    seen = (await Browser(gateway).get("/echo/public/x", headers=sent)).portal_headers
    assert seen.get("connection") in (None, "close")
    assert "x-portal-hint" not in seen
    assert seen["x-forwarded-for"] == "10.1.2.3"  # the Browser's address: the gate's own chain
    kept = (await Browser(gateway).get("/echo/public/x", headers=[("Connection", "Keep-Alive")])).portal_headers
    assert kept.get("connection") in (None, "Keep-Alive")


async def test_the_portal_gets_one_forwarding_chain_and_scheme_the_gates_own(gateway: InProcessGateway) -> None:
    # Client-sent copies, in any spelling, are dropped; the gate's are the only ones (the context addon appends
    # them after the stripping, which must have removed every copy).
    sent = [("X-Forwarded-For", "6.6.6.6"), ("x_forwarded_for", "7.7.7.7"), ("X-Forwarded-Proto", "https"),
            ("X.Forwarded.Proto", "https")]
    answer = await Browser(gateway).get("/echo/public/x", headers=sent)
    assert answer.forwarded
    names = [name.lower().replace(b"_", b"-").replace(b".", b"-") for name, _ in answer.flow.request.headers.fields]
    assert names.count(b"x-forwarded-for") == 1
    assert names.count(b"x-forwarded-proto") == 1
    assert answer.flow.request.headers.get_all("x-forwarded-for") == ["10.1.2.3"]
    assert answer.flow.request.headers.get_all("x-forwarded-proto") == ["http"]


async def test_the_gates_own_cookies_never_reach_the_portal(gateway: InProcessGateway) -> None:
    r = await Browser(gateway).get("/echo/public/x", headers=[
        ("Cookie", "govgate-session=SECRET1; portal=keep; __Host-govgate-device=SECRET2; govgate-csrf=SECRET3")])
    cookie = r.portal_headers.get("cookie", "")
    assert "SECRET" not in cookie
    assert "portal=keep" in cookie


async def test_forwarded_for_towards_the_portal_is_the_chain_the_gate_believes(gateway: InProcessGateway) -> None:
    # The peer (a trusted proxy here: 127.0.0.0/8) is believed: the last untrusted hop is the client. A spoofed hop
    # further left stays in the chain but is not the client.
    b = Browser(gateway, "127.0.0.1")
    r = await b.get("/echo/public/x", headers=[("X-Forwarded-For", f"6.6.6.6, {US_ADDRESS}")])
    chain = [h.strip() for h in r.portal_headers["x-forwarded-for"].split(",")]
    assert chain[-1] == US_ADDRESS
    assert context_of(r.flow).client.exploded == US_ADDRESS  # type: ignore[union-attr]


async def test_an_untrusted_peers_forwarded_for_is_not_believed(gateway: InProcessGateway) -> None:
    r = await Browser(gateway, US_ADDRESS).get("/echo/public/x", headers=[("X-Forwarded-For", "10.1.2.3")])
    assert r.portal_headers["x-forwarded-for"] == US_ADDRESS
    assert str(context_of(r.flow).client) == US_ADDRESS  # type: ignore[union-attr]


async def test_garbage_forwarded_for_is_ignored_not_a_crash(gateway: InProcessGateway) -> None:
    r = await Browser(gateway, "127.0.0.1").get("/news/", headers=[("X-Forwarded-For", "not-an-ip, , ::::, 999.1.1.1")])
    assert r.forwarded


@pytest.mark.parametrize("target", ["/oa/../news/", "/oa/%2e%2e/news/", "/oa/%2E./news/", "/news/./x",
                                    "/news/..;/oa/x", "/echo/public/%c0%ae%c0%ae/staff/x", "/echo/public/..%3b/staff/x",
                                    "/echo/public/%ef%bc%8e%ef%bc%8e/staff/x", "/echo/public/x%c0%afy",
                                    "//echo/public/staff/x", "/echo/public/..%25%32%66staff/x",
                                    "/echo/public/..%c0%80/staff/x"])
def test_paths_the_portal_could_read_differently_from_the_rules_get_400(runtime: InProcessRuntime,
                                                                        target: str) -> None:
    flow = judge(runtime, path=target)
    assert flow.response is not None
    assert flow.response.status_code == 400
    assert "请求无效" in flow.response.get_text()


def test_legacy_percent_encoded_file_names_that_are_not_utf8_still_pass(runtime: InProcessRuntime) -> None:
    assert judge(runtime, path="/echo/public/%D6%D0%CE%C4.doc").response is None


@pytest.mark.parametrize(("method", "version", "host"), [("BR EW", "HTTP/1.1", "portal.example.gov.cn"),
                                                         ("GET", "HTTP/9.9", "portal.example.gov.cn"),
                                                         ("GET", "HTTP/1.1", None), ("GET", "HTTP/1.1", "门户.gov.cn"),
                                                         ("GET", "HTTP/1.1", ""), ("GET", "HTTP/2.0", "")])
def test_an_odd_method_version_or_host_gets_400(runtime: InProcessRuntime, method: str, version: str,
                                                host: str | None) -> None:
    flow = judge(runtime, method, http_version=version, host=host)
    assert flow.response is not None
    assert flow.response.status_code == 400


def test_control_characters_in_a_header_value_get_400(runtime: InProcessRuntime) -> None:
    flow = judge(runtime, headers=[("X-Bad", "a\x00b")])
    assert flow.response is not None
    assert flow.response.status_code == 400


@pytest.mark.parametrize("name", ["Cookie ", "X Forwarded For", "Coo\tkie"])
def test_a_header_name_that_is_not_a_token_gets_400(runtime: InProcessRuntime, name: str) -> None:
    # `Cookie : __Host-govgate-session=…` reaches mitmproxy as the name "Cookie ": the gate does not read it as the
    # Cookie header, a lenient portal might.
    flow = judge(runtime, headers=[(name, "__Host-govgate-session=x")])
    assert flow.response is not None
    assert flow.response.status_code == 400


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_get_or_head_with_a_body_is_refused_and_http1_closes_the_connection(runtime: InProcessRuntime,
                                                                             method: str) -> None:
    flow = judge(runtime, method, body=b"GET /oa/ HTTP/1.1\r\n\r\n")
    assert flow.response is not None
    assert flow.response.status_code == 400
    assert flow.response.headers["connection"] == "close"
    h2 = judge(runtime, method, body=b"x", http_version="HTTP/2.0")
    assert h2.response is not None
    assert h2.response.status_code == 400
    assert "connection" not in h2.response.headers  # HTTP/2 frames each request: nothing to desync
    chunked = judge(runtime, method, headers=[("Transfer-Encoding", "chunked")])
    assert chunked.response is not None
    assert chunked.response.status_code == 400


def test_a_get_with_content_length_0_is_an_ordinary_request(runtime: InProcessRuntime) -> None:
    assert judge(runtime, headers=[("Content-Length", "0")]).response is None


def test_plain_http_is_redirected_to_https_on_a_public_host_and_tls_is_not() -> None:
    runtime = InProcessRuntime(policy=outbound_policy())  # served over TLS to portal.example.gov.cn
    plain = judge(runtime, path="/oa/x?y=1", tls=False)
    assert plain.response is not None
    assert plain.response.status_code == 308
    assert plain.response.headers["location"] == "https://portal.example.gov.cn/oa/x?y=1"
    assert "strict-transport-security" not in plain.response.headers
    assert judge(runtime, path="/oa/x", tls=True).response is None


def test_a_request_already_answered_is_left_alone(runtime: InProcessRuntime) -> None:
    flow = request_flow("GET", "/../x")
    flow.response = http.Response.make(204)
    RequestContextAddon(runtime).request(flow)
    assert flow.response.status_code == 204
    assert context_of(flow) is None
