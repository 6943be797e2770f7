"""Builds small, real ``Policy`` objects for the decision tests (no YAML, no loader)."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from govgate.core.decide import AccountFacts, CompiledPolicy, RequestFacts, compile_policy
from govgate.core.policy.model import (
    AccessRule,
    Allow,
    Audit,
    DailyHours,
    Device,
    DevicesMode,
    Gateway,
    GeoIP,
    Grant,
    HostPort,
    IPAddress,
    Login,
    Metrics,
    NetworkGroup,
    Outbound,
    Policy,
    RedirectMode,
    SessionLimits,
    State,
    UnknownCountry,
)

TZ = ZoneInfo("Asia/Shanghai")
GEOIP_DIR = Path(__file__).resolve().parents[1] / "data" / "geoip"
NOW = datetime(2026, 12, 5, 10, 0, tzinfo=TZ)


def at(text: str) -> datetime:
    """An aware time in the gateway's timezone: ``at("2026-12-05 10:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def rule(name: str, paths: tuple[str, ...] | list[str], allow: str = "staff", *, index: int = 0,
         networks: tuple[str, ...] | Literal["any"] = (), devices: str = "allowlisted",
         groups: tuple[str, ...] | None = None, bind_devices: bool = False, hosts: tuple[str, ...] | None = None,
         methods: frozenset[str] | None = None) -> AccessRule:
    """``networks="any"`` is the policy's ``networks: any``; a staff rule with ``()`` admits no address by network."""
    any_network = networks == "any"
    return AccessRule(name=name, index=index, line=10 + index, paths=tuple(paths), hosts=hosts, methods=methods,
                      allow=Allow(allow), networks=() if networks == "any" else networks,
                      devices=DevicesMode(devices), groups=groups, bind_devices=bind_devices, any_network=any_network)


def grant(*, index: int = 0, account: str | None = None, devices: tuple[str, ...] = (),
          countries: frozenset[str] | None = None, start: str = "2026-12-01 00:00", end: str = "2026-12-15 23:59",
          daily: tuple[str, str] | None = None, reason: str = "参加国际会议") -> Grant:
    hours = DailyHours(time.fromisoformat(daily[0]), time.fromisoformat(daily[1])) if daily else None
    return Grant(index=index, line=100 + index, account=account, devices=devices, countries=countries,
                 start=at(start), end=at(end), daily=hours, reason=reason)


def device(device_id: str, account: str, *, cert_sha256: bytes | None = None, token: str | None = None,
           expires: date | None = None) -> Device:
    return Device(id=device_id, account=account, cert_sha256=cert_sha256, token=token, expires=expires)


def nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


OFFICE = NetworkGroup("office", nets("10.0.0.0/8", "2001:db8::/32"))
VPN = NetworkGroup("vpn", nets("172.20.0.0/16"))


def standard_rules(*, groups: tuple[str, ...] | None = ("staff",), bind_devices: bool = False,
                   devices: str = "allowlisted", networks: tuple[str, ...] | Literal["any"] = ("office",),
                   ) -> tuple[AccessRule, ...]:
    return (
        rule("public site", ["/", "/news/**", "/static/**"], "public", index=0),
        rule("office system", ["/oa/**"], "staff", index=1, networks=networks, devices=devices, groups=groups,
             bind_devices=bind_devices),
        rule("the rest", ["/**"], "deny", index=2),
    )


def make_policy(*, networks: tuple[NetworkGroup, ...] = (OFFICE, VPN), access: tuple[AccessRule, ...] | None = None,
                grants: tuple[Grant, ...] = (), devices: tuple[Device, ...] = (),
                home: frozenset[str] = frozenset({"CN"}), unknown: str = "overseas",
                trusted_proxies: tuple[str, ...] = ()) -> Policy:
    return Policy(
        version=1,
        source=Path("/nonexistent/policy.yaml"),
        sha256="0" * 64,
        gateway=Gateway(
            listen=HostPort("127.0.0.1", 8443), upstream="http://127.0.0.1:8080",
            public_hosts=("portal.example.gov.cn",), tls_cert=None, insecure=True,
            trusted_proxies=nets(*trusted_proxies), timezone=TZ, prefix="/__govgate",
            key_file=Path("/nonexistent/gateway.key"),
        ),
        state=State(redis_url=None),
        geoip=GeoIP(database=GEOIP_DIR / "GeoLite2-Country-Test.mmdb", home_countries=home,
                    unknown=UnknownCountry(unknown)),
        networks=networks,
        groups=None,
        accounts_file=Path("/nonexistent/accounts.yaml"),
        devices=devices,
        access=access if access is not None else standard_rules(),
        grants=grants,
        login=Login(),
        session=SessionLimits(),
        outbound=Outbound(government_suffixes=("gov.cn",), allow_hosts=(), redirects=RedirectMode.WARN),
        audit=Audit(dir=Path("/nonexistent/audit"), retention_days=365),
        metrics=Metrics(listen=None),
    )


def compiled(**kwargs: object) -> CompiledPolicy:
    return compile_policy(make_policy(**kwargs))  # type: ignore[arg-type]


def account(name: str = "zhangsan", *, groups: frozenset[str] = frozenset({"staff"}), disabled: bool = False,
            expires: date | None = None, locked_until: datetime | None = None,
            devices: frozenset[str] = frozenset()) -> AccountFacts:
    return AccountFacts(name=name, groups=groups, disabled=disabled, expires=expires, locked_until=locked_until,
                        devices=devices)


def facts(client: str | IPAddress = "10.1.2.3", path: str = "/oa/", *, country: str | None = None,
          host: str = "portal.example.gov.cn", method: str = "GET", device: str | None = None,
          account: AccountFacts | None = None) -> RequestFacts:
    ip = ipaddress.ip_address(client) if isinstance(client, str) else client
    return RequestFacts(client=ip, country=country, host=host, path=path, method=method, device=device,
                        account=account)
