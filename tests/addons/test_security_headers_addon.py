"""The security-headers addon in process: HSTS over TLS only, the portal's attempts to set the gate's cookies
dropped (the gate's own answers keep theirs), and the portal's TLS name (SNI) for an ``https`` upstream."""

from __future__ import annotations

from mitmproxy.proxy import server_hooks
from mitmproxy.test import taddons, tflow

from govgate.addons.context import LOCAL_KEY
from govgate.addons.security_headers import HSTS, SecurityHeaders
from tests.addons.flows import request_flow, response_to
from tests.policies import policy
from tests.runtime import InProcessRuntime


def test_every_response_over_tls_carries_hsts_and_none_over_plain_http() -> None:
    addon = SecurityHeaders(InProcessRuntime())
    with taddons.context(addon):
        over_tls = response_to(request_flow(tls=True), 200)
        addon.responseheaders(over_tls)
        assert over_tls.response is not None
        assert over_tls.response.headers["strict-transport-security"] == HSTS == "max-age=63072000; includeSubDomains"
        plain = response_to(request_flow(tls=False), 308)
        addon.responseheaders(plain)
        addon.response(plain)
        assert plain.response is not None
        assert "strict-transport-security" not in plain.response.headers  # RFC 6797 §7.2
        replaced = response_to(request_flow(tls=True), 200)
        addon.responseheaders(replaced)
        response_to(replaced, 502)  # an answer another addon made after the head went through
        addon.response(replaced)
        assert replaced.response is not None
        assert replaced.response.headers["strict-transport-security"] == HSTS


def test_the_portals_own_hsts_is_replaced_by_exactly_one_of_the_gates() -> None:
    addon = SecurityHeaders(InProcessRuntime())
    for sent in ([], ["max-age=0"], [HSTS, "max-age=0"], ["max-age=0", HSTS], [HSTS, HSTS]):
        flow = response_to(request_flow(tls=True), 200)
        assert flow.response is not None
        for value in sent:
            flow.response.headers.add("Strict-Transport-Security", value)
        addon.responseheaders(flow)
        assert flow.response.headers.get_all("strict-transport-security") == [HSTS], sent
        addon.response(flow)
        assert flow.response.headers.get_all("strict-transport-security") == [HSTS], sent


def test_the_portal_cannot_set_the_gates_cookies_but_the_gates_own_answers_keep_theirs() -> None:
    addon = SecurityHeaders(InProcessRuntime())
    portal = response_to(request_flow(), 200, b"", {"Set-Cookie": "__Host-govgate-session=planted; Path=/"})
    portal.response.headers.add("Set-Cookie", "portal=kept")  # type: ignore[union-attr]
    addon.responseheaders(portal)
    assert portal.response.headers.get_all("set-cookie") == ["portal=kept"]  # type: ignore[union-attr]
    own = response_to(request_flow(), 303, b"", {"Set-Cookie": "govgate-session=ours"})
    own.metadata[LOCAL_KEY] = True
    addon.responseheaders(own)
    assert own.response.headers["set-cookie"] == "govgate-session=ours"  # type: ignore[union-attr]


def test_an_https_portal_is_asked_for_its_own_name_and_a_plain_http_one_is_left_alone() -> None:
    https = SecurityHeaders(InProcessRuntime(policy=policy(upstream="https://portal.internal.example:8443")))
    data = server_hooks.ServerConnectionHookData(server=tflow.tserver_conn(), client=tflow.tclient_conn())
    data.server.sni = None
    https.server_connect(data)
    assert data.server.sni == "portal.internal.example"
    plain = SecurityHeaders(InProcessRuntime())
    data.server.sni = None
    plain.server_connect(data)
    assert data.server.sni is None
