"""Contract §6: which hosts are external."""

from __future__ import annotations

import pytest

from govgate.core.hosts import host_of
from govgate.core.outbound import HostClassifier, classify_host
from govgate.core.policy.model import Policy


@pytest.mark.parametrize("host", [
    "portal.example.gov.cn", "PORTAL.EXAMPLE.GOV.CN", "portal.example.gov.cn.", "portal.example.gov.cn:8443",
    "gov.cn", "www.gov.cn", "WWW.GOV.CN.", "a.b.c.gov.cn", "例子.政务", "xn--fsqu00a.xn--zfr164b", "政务",
    "www.12377.cn", "a.example-partner.cn", "x.y.example-partner.cn",
])
def test_government_public_and_allowed_hosts_are_internal(host: str, classifier: HostClassifier) -> None:
    assert classifier.is_external(host) is False


@pytest.mark.parametrize("host", [
    "evilgov.cn", "gov.cn.evil.com", "evil.com", "example-partner.cn", "12377.cn", "x.www.12377.cn",
    "portal.example.gov.cn.evil.com", "127.0.0.1", "[::1]", "", "gov.cn..", "xn--zfr164b.com",
    "例子.com", "gov-cn.com", "govcn",
])
def test_other_hosts_are_external(host: str, classifier: HostClassifier) -> None:
    assert classifier.is_external(host) is True


def test_classify_host_function_agrees_with_the_compiled_classifier(policy: Policy) -> None:
    for host in ("evilgov.cn", "www.gov.cn", "portal.example.gov.cn"):
        expected = HostClassifier.from_policy(policy).is_external(host)
        assert classify_host(host, policy.outbound, policy.gateway.public_hosts) is expected


def test_the_page_host_can_be_added_as_internal(classifier: HostClassifier) -> None:
    local = classifier.with_internal("127.0.0.1")
    assert local.is_external("127.0.0.1") is False
    assert classifier.is_external("127.0.0.1") is True


def test_hosts_are_compared_lowercased_without_port_and_dot_in_idna() -> None:
    assert host_of("WWW.例子.政务.:443") == "www.xn--fsqu00a.xn--zfr164b"
    assert host_of("[::1]:8080") == "[::1]"
