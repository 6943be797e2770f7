"""A real gateway: a rule written for an IPv6 literal meets every spelling of it in the Host header."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.harness import Gateway, Upstream, start_gateway
from tests.policies import policy_data, write_policy

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("gw")
    (workdir / "secrets").mkdir()
    policy = workdir / "policy.yaml"
    write_policy(policy, policy_data(workdir, upstream.url, access=[
        {"name": "loopback v6", "paths": ["/echo/**"], "hosts": ["[::1]"], "allow": "public"},
        {"name": "the rest", "paths": ["/**"], "allow": "deny"},
    ]))
    gw = start_gateway(policy)
    yield gw
    assert gw.stop() == 0


def status_with_host(gw: Gateway, host: str) -> int:
    return httpx.get(gw.url + "/echo/x", headers={"Host": host}, timeout=10).status_code


@pytest.mark.parametrize("spelling", ["[::1]", "[0:0:0:0:0:0:0:1]", "[0::01]", "[::0001]", "[0:0:0:0:0:0:0.0.0.1]"])
def test_every_spelling_of_the_ipv6_literal_reaches_its_rule(gateway: Gateway, spelling: str) -> None:
    port = gateway.url.rsplit(":", 1)[1]
    for host in (spelling, spelling.upper(), f"{spelling}:{port}"):
        assert status_with_host(gateway, host) == 200, host


def test_other_hosts_do_not_reach_it_and_a_host_that_is_not_one_gets_400(gateway: Gateway) -> None:
    assert status_with_host(gateway, "127.0.0.1") == 403
    assert status_with_host(gateway, "[::ffff:127.0.0.1]") == 403
    assert status_with_host(gateway, "[1:2]") == 400
