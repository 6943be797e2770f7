"""Fixtures for the outbound-link tests: a small policy, gateway keys, a classifier, a runtime."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_url
from govgate.core.link_rewrite import RewriteResult, rewrite_html
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Policy, RedirectMode
from tests.policies import load, policy_data
from tests.runtime import InProcessRuntime, fixed_keys

# mitmproxy's addon package imports ldap3, which trips a pyasn1 DeprecationWarning at import time
# (warnings are errors in this suite): import it once here with that one warning silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="tagMap is deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="typeMap is deprecated", category=DeprecationWarning)
    import mitmproxy.test.taddons  # noqa: F401

PREFIX = "/__govgate"
DOC_URL = "https://portal.example.gov.cn/news/index.html"


def outbound_policy(*, redirects: RedirectMode | str = RedirectMode.WARN, insecure: bool = False,
                    public_hosts: tuple[str, ...] = ("portal.example.gov.cn",)) -> Policy:
    """The test policy as these tests need it: served over TLS (leave links are https) to ``public_hosts`` only,
    behind proxies in 10.0.0.0/8, redirects to other sites handled as ``redirects`` says."""
    data = policy_data()
    data["gateway"].update(insecure=insecure, public_hosts=list(public_hosts), trusted_proxies=["10.0.0.0/8"])
    if not insecure:
        data["gateway"]["tls"] = {"cert": "certs/gateway.pem"}  # named, never opened
    data["outbound"]["redirects"] = str(redirects)
    return load(data)


ORIGIN = "https://portal.example.gov.cn"


@pytest.fixture
def rw(classifier: HostClassifier, keys: GatewayKeys) -> Callable[[bytes], RewriteResult]:
    """``rewrite_html`` of a text/html page at ``DOC_URL``, leave links absolute on ``ORIGIN``."""
    def run(body: bytes) -> RewriteResult:
        return rewrite_html(body, content_type="text/html", document_url=DOC_URL, classifier=classifier,
                            make_leave_url=lambda u: ORIGIN + leave_url(PREFIX, u, keys))
    return run


@pytest.fixture
def keys() -> GatewayKeys:
    return fixed_keys()


@pytest.fixture
def policy() -> Policy:
    return outbound_policy()


@pytest.fixture
def classifier(policy: Policy) -> HostClassifier:
    return HostClassifier.from_policy(policy)


@pytest.fixture
def runtime(policy: Policy, keys: GatewayKeys) -> InProcessRuntime:
    return InProcessRuntime(policy=policy, keys=keys)


def absolute_leave_maker(origin: str, keys: GatewayKeys) -> object:
    def make(url: str) -> str:
        return origin + leave_url(PREFIX, url, keys)
    return make
