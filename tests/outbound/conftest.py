"""Fixtures for the outbound-link tests: a small policy, gateway keys, a classifier, a runtime."""

from __future__ import annotations

import ipaddress
import warnings
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from govgate.core.audit_event import ListSink
from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_url
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import (
    Audit,
    Gateway,
    GeoIP,
    HostPort,
    Login,
    Metrics,
    Outbound,
    Policy,
    RedirectMode,
    SessionLimits,
    State,
    UnknownCountry,
)

# mitmproxy's addon package imports ldap3, which trips a pyasn1 DeprecationWarning at import time
# (warnings are errors in this suite): import it once here with that one warning silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="tagMap is deprecated", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="typeMap is deprecated", category=DeprecationWarning)
    import mitmproxy.test.taddons  # noqa: F401

TZ = ZoneInfo("Asia/Shanghai")
PREFIX = "/__govgate"
DOC_URL = "https://portal.example.gov.cn/news/index.html"


def make_policy(*, redirects: RedirectMode = RedirectMode.WARN, insecure: bool = False,
                public_hosts: tuple[str, ...] = ("portal.example.gov.cn",)) -> Policy:
    return Policy(
        version=1,
        source=Path("/nonexistent/policy.yaml"),
        sha256="0" * 64,
        gateway=Gateway(
            listen=HostPort("127.0.0.1", 8443),
            upstream="http://127.0.0.1:8080",
            public_hosts=public_hosts,
            tls_cert=None,
            insecure=insecure,
            trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),),
            timezone=TZ,
            prefix=PREFIX,
            key_file=Path("/nonexistent/gateway.key"),
        ),
        state=State(redis_url=None),
        geoip=GeoIP(database=Path("/nonexistent/geo.mmdb"), home_countries=frozenset({"CN"}),
                    unknown=UnknownCountry.OVERSEAS),
        networks=(),
        groups=None,
        accounts_file=Path("/nonexistent/accounts.yaml"),
        devices=(),
        access=(),
        grants=(),
        login=Login(),
        session=SessionLimits(),
        outbound=Outbound(
            government_suffixes=("gov.cn", "xn--zfr164b"),  # gov.cn, 政务
            allow_hosts=("www.12377.cn", "*.example-partner.cn"),
            redirects=redirects,
        ),
        audit=Audit(dir=Path("/nonexistent/audit"), retention_days=365),
        metrics=Metrics(listen=None),
    )


@dataclass(frozen=True)
class TinyRuntime:
    """A real (if small) Runtime: fixed clock, in-memory audit sink."""

    policy: Policy
    keys: GatewayKeys
    audit: ListSink = field(default_factory=ListSink)
    at: datetime = datetime(2026, 11, 25, 10, 0, tzinfo=TZ)

    def now(self) -> datetime:
        return self.at

    def with_policy(self, policy: Policy) -> TinyRuntime:
        return replace(self, policy=policy)


@pytest.fixture
def keys() -> GatewayKeys:
    return GatewayKeys.from_bytes(bytes(range(32)))


@pytest.fixture
def policy() -> Policy:
    return make_policy()


@pytest.fixture
def classifier(policy: Policy) -> HostClassifier:
    return HostClassifier.from_policy(policy)


@pytest.fixture
def runtime(policy: Policy, keys: GatewayKeys) -> TinyRuntime:
    return TinyRuntime(policy=policy, keys=keys)


def absolute_leave_maker(origin: str, keys: GatewayKeys) -> object:
    def make(url: str) -> str:
        return origin + leave_url(PREFIX, url, keys)
    return make
