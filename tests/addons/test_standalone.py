"""GovGate as one addon for a stock mitmproxy (``govgate.addons.standalone``), under mitmproxy's test context: the
``govgate_policy`` option, GovGate's addons in their order, the options that follow from the policy, an invalid
policy refused with every problem, and 503 until a policy is loaded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.addons import block, proxyserver, tlsconfig
from mitmproxy.test import taddons

from govgate.addons.chain import gateway_addons
from govgate.addons.standalone import GovGate
from tests.addons.flows import request_flow
from tests.policies import UPSTREAM, policy_data, write_policy
from tests.runtime import InProcessRuntime

ORDER = ["RequestContextAddon", "Enrolment", "GatePages", "Gate", "OutboundLinks", "SecurityHeaders", "ProxyErrors",
         "UpstreamTimeout", "ConnectionLimits", "PolicyWatch", "MetricsEndpoint", "HttpsRedirect", "AdminChannel"]


def write_test_policy(workdir: Path, **sections: object) -> Path:
    (workdir / "secrets").mkdir(exist_ok=True)
    return write_policy(workdir / "policy.yaml", policy_data(workdir, **sections))


@pytest.fixture
async def tctx() -> AsyncIterator[tuple[taddons.context, GovGate]]:
    addon = GovGate()
    # The built-in addons whose options GovGate sets, as a stock mitmproxy has them.
    with taddons.context(proxyserver.Proxyserver(), tlsconfig.TlsConfig(), block.Block(), addon) as tctx:
        yield tctx, addon
        if addon.runtime is not None:
            await addon.runtime.close()


def test_the_gateway_and_a_stock_mitmproxy_take_the_same_addons_in_the_same_order() -> None:
    addons = gateway_addons(InProcessRuntime(), lambda before, after: None)
    assert [type(a).__name__ for a in addons.chain] == ORDER
    assert addons.limits in addons.chain


async def test_a_valid_policy_puts_govgates_addons_after_it_and_sets_the_proxy_from_the_policy(
        tctx: tuple[taddons.context, GovGate], tmp_path: Path) -> None:
    context, addon = tctx
    context.configure(addon, govgate_policy=str(write_test_policy(tmp_path)))
    assert addon.runtime is not None
    assert [type(a).__name__ for a in addon.addons] == ["ClientTls", *ORDER, "_CloseRuntime"]
    options = context.options
    assert options.mode == [f"reverse:{UPSTREAM}@127.0.0.1:0"]
    assert options.keep_host_header is True
    assert options.connection_strategy == "lazy"
    assert options.tls_version_client_min == "TLS1_2"
    assert options.block_global is False
    # The same file again (mitmproxy configures a script more than once): nothing changes.
    runtime = addon.runtime
    context.configure(addon, govgate_policy=str(tmp_path / "policy.yaml"))
    assert addon.runtime is runtime


async def test_another_policy_cannot_replace_the_one_in_force(tctx: tuple[taddons.context, GovGate],
                                                              tmp_path: Path) -> None:
    context, addon = tctx
    context.configure(addon, govgate_policy=str(write_test_policy(tmp_path)))
    (tmp_path / "other").mkdir()
    with pytest.raises(exceptions.OptionsError, match="cannot change while running"):
        context.configure(addon, govgate_policy=str(write_test_policy(tmp_path / "other")))


async def test_an_invalid_policy_is_refused_with_every_problem_listed(tctx: tuple[taddons.context, GovGate],
                                                                      tmp_path: Path) -> None:
    context, addon = tctx
    path = write_test_policy(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("idle_timeout", "idle_timout").replace("allow: staff", "allow: staf"),
                    encoding="utf-8")
    with pytest.raises(exceptions.OptionsError) as refused:
        context.configure(addon, govgate_policy=str(path))
    message = str(refused.value)
    assert "the policy is invalid" in message
    assert "unknown key 'idle_timout'" in message
    assert "'staf'" in message
    assert addon.runtime is None
    assert addon.addons == []


async def test_without_a_policy_every_request_is_answered_503(tctx: tuple[taddons.context, GovGate]) -> None:
    _, addon = tctx
    flow = request_flow("GET", "/news/")
    addon.request(flow)
    assert flow.response is not None
    assert flow.response.status_code == 503
