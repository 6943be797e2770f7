"""The request context's reading of the Host header (``govgate.core.hosts``), on mitmproxy test flows: the
host every later step compares, the 400 for a Host that is not one, the HTTPS redirect to a public host."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from govgate.addons.context import RequestContextAddon, context_of
from tests.outbound.conftest import outbound_policy
from tests.runtime import InProcessRuntime

LOOPBACK_SPELLINGS = ["[::1]", "[0:0:0:0:0:0:0:1]", "[0::01]", "[::0001]", "[0:0:0:0:0:0:0.0.0.1]"]


@pytest.fixture
def addon() -> RequestContextAddon:
    policy = outbound_policy(public_hosts=("portal.example.gov.cn", "[::1]"))
    return RequestContextAddon(InProcessRuntime(policy=policy))


def request_with_host(addon: RequestContextAddon, host: str, *, tls: bool = True) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.content = b""  # tflow's GET carries a body, which the gate refuses (a GET has none)
    if not tls:
        f.client_conn.timestamp_tls_setup = None  # what ``tls_established`` reads
    f.client_conn.sockname = ("::1", 8443)
    f.request.headers["host"] = host
    addon.request(f)
    return f


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
@pytest.mark.parametrize("port", ["", ":8443"])
def test_every_spelling_of_an_ipv6_host_gives_the_same_context_host(addon: RequestContextAddon, spelling: str,
                                                                     port: str) -> None:
    for host in (spelling, spelling.upper()):
        f = request_with_host(addon, host + port)
        ctx = context_of(f)
        assert ctx is not None
        assert ctx.host == "[::1]"
        assert f.response is None


@pytest.mark.parametrize("host", ["[1:2]", "[::1", "portal.example.gov.cn..", "999.1.1.1", "foo.1", "[::1]:99999"])
def test_a_host_header_that_is_not_a_host_gets_400(addon: RequestContextAddon, host: str) -> None:
    f = request_with_host(addon, host)
    assert f.response is not None
    assert f.response.status_code == 400


def test_plain_http_to_a_public_ipv6_host_in_another_spelling_is_redirected_to_it(addon: RequestContextAddon) -> None:
    f = request_with_host(addon, "[0:0:0:0:0:0:0:1]:8443", tls=False)
    assert f.response is not None
    assert f.response.status_code == 308
    assert f.response.headers["location"] == "https://[::1]:8443/path"
    f = request_with_host(addon, "[::1]:1", tls=False)  # not the port the client reached: not sent back
    assert f.response is not None
    assert f.response.headers["location"] == "https://[::1]/path"
    f = request_with_host(addon, "[::2]", tls=False)  # not a public host: the first public one
    assert f.response is not None
    assert f.response.headers["location"] == "https://portal.example.gov.cn/path"
