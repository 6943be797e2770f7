"""Policies for tests: the one place that builds them, for every kind of test.

There is one test policy, written the way an operator writes one: ``policy_data()`` returns it as the
dict that is dumped to ``policy.yaml`` (plain HTTP, loopback trusted as a proxy so tests choose client
addresses with ``X-Forwarded-For``, an office and a VPN network, public / staff / deny rules, three login
failures, the MaxMind test GeoIP database). Keyword sections replace the section of that name whole
(``None`` removes it); for a smaller change, edit the returned dict (``data["access"][1]["networks"] = …``).
From that one description:

* ``write_policy(path, data)`` gives it to the real ``govgate`` command (end-to-end and CLI tests);
* ``policy(**sections)`` (or ``load(data)``) returns the typed ``Policy`` for core and addon tests, read from
  the same YAML by the production loader (``read_policy_text``). A test policy thereby gets the defaults,
  normalisation and validation an operator's gets, and a policy production would refuse cannot be built
  by accident. Loading costs a few milliseconds; the same text is loaded once (a ``Policy`` is frozen, so
  tests can share it).

``rule``, ``grant``, ``device`` and ``standard_access`` write pieces of a policy in the same YAML form.

One piece is built as a dataclass instead: ``make_grant`` returns a ``Grant`` for the unit tests of the
grant arithmetic (``govgate.core.grants``), which need grants the loader refuses or changes on purpose — a
grant naming no one, a window ending at an exact second (``until: …T23:59`` in YAML means the end of that
minute), instants in other timezones — and whose property tests build hundreds per run.

The loader's own tests (tests/policy/) keep their policies as YAML text: there the text, its quirks and
its line numbers are what is under test.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml

from govgate.core.decide import CompiledPolicy, compile_policy
from govgate.core.policy.load import read_policy_text
from govgate.core.policy.model import AccessRule, DailyHours, Grant, Policy

REPO = Path(__file__).resolve().parents[1]
GEOIP_DB = REPO / "geoip" / "GeoLite2-Country-Test.mmdb"  # MaxMind's test data (tests/data/geoip/*.json)
GEOIP_DIR = REPO / "tests" / "data" / "geoip"  # more of MaxMind's test databases, broken ones included
TZ = ZoneInfo("Asia/Shanghai")  # the test policy's gateway.timezone
NOW = datetime(2026, 12, 5, 10, 0, tzinfo=TZ)  # a Saturday morning inside the default grant window
UPSTREAM = "http://127.0.0.1:8080"
SOURCE = Path("/nonexistent/policy.yaml")  # where a policy without a folder of its own claims to come from

OFFICE = ("10.0.0.0/8", "2001:db8::/32")  # networks.office
VPN = ("172.20.0.0/16",)  # networks.vpn

type Data = dict[str, Any]


def at(text: str) -> datetime:
    """An aware time in the test policy's timezone: ``at("2026-12-05 10:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# -- pieces, in the YAML form ---------------------------------------------------------------------------

def rule(name: str, paths: list[str] | tuple[str, ...], allow: str = "staff", *,
         networks: tuple[str, ...] | list[str] | Literal["any"] = (), devices: str | None = None,
         groups: tuple[str, ...] | list[str] | None = None, bind_devices: bool = False,
         hosts: tuple[str, ...] | list[str] | None = None, methods: tuple[str, ...] | list[str] | None = None) -> Data:
    """One ``access`` rule; keys left at their default are left out, as an operator would."""
    data: Data = {"name": name, "paths": list(paths), "allow": allow}
    if hosts is not None:
        data["hosts"] = list(hosts)
    if methods is not None:
        data["methods"] = sorted(methods)
    if networks == "any":
        data["networks"] = "any"  # every address passes the network check (a staff rule must say so)
    elif networks:
        data["networks"] = list(networks)
    if devices is not None:
        data["devices"] = devices
    if groups is not None:
        data["groups"] = list(groups)
    if bind_devices:
        data["bind_devices"] = True
    return data


def standard_access(*, networks: tuple[str, ...] | Literal["any"] = ("office",), devices: str | None = None,
                    groups: tuple[str, ...] | None = ("staff",), bind_devices: bool = False) -> list[Data]:
    """The test policy's rules: a public site, the office system for staff (options here), and deny the rest."""
    return [
        rule("public site", ["/", "/news/**", "/static/**", "/echo/public/**", "/redirect-out"], "public"),
        rule("office system", ["/oa/**", "/echo/staff/**"], "staff", networks=networks, devices=devices,
             groups=groups, bind_devices=bind_devices),
        rule("the rest", ["/**"], "deny"),
    ]


GRANT_START = "2026-12-01 00:00"
GRANT_END = "2026-12-15 23:59"
GRANT_REASON = "参加国际会议"


def grant(*, account: str | None = None, devices: tuple[str, ...] = (), countries: frozenset[str] | None = None,
          start: str = GRANT_START, end: str = GRANT_END, daily: tuple[str, str] | None = None,
          reason: str = GRANT_REASON) -> Data:
    """One ``overseas.grants`` entry (``policy(overseas={"grants": [grant(...)]})``)."""
    data: Data = {}
    if account is not None:
        data["account"] = account
    if devices:
        data["devices"] = list(devices)
    if countries is not None:
        data["countries"] = sorted(countries)
    data.update({"from": start.replace(" ", "T"), "until": end.replace(" ", "T"), "reason": reason})
    if daily is not None:
        data["daily"] = f"{daily[0]}-{daily[1]}"
    return data


def device(device_id: str, account: str, *, cert_sha256: bytes | None = None, token: str | None = None,
           expires: date | None = None) -> Data:
    """One ``devices`` entry."""
    data: Data = {"id": device_id, "account": account}
    if cert_sha256 is not None:
        data["cert_sha256"] = cert_sha256.hex()
    if token is not None:
        data["token"] = token
    if expires is not None:
        data["expires"] = expires.isoformat()
    return data


def geoip(*, home: tuple[str, ...] = ("CN",), unknown: str = "overseas") -> Data:
    """The ``geoip`` section: the MaxMind test database, ``home`` countries, how an unknown country counts."""
    return {"database": str(GEOIP_DB), "home_countries": list(home), "unknown": unknown}


# -- the policy ---------------------------------------------------------------------------------------------

def policy_data(workdir: Path | None = None, upstream: str = UPSTREAM, **sections: Any) -> Data:
    """The test policy as the dict written to ``policy.yaml``. Its files (key, accounts, audit log) are under
    ``workdir``; without one they are relative, under the folder of wherever the policy is loaded from."""
    def file(name: str) -> str:
        return str(workdir / name) if workdir is not None else name

    data: Data = {
        "version": 1,
        "gateway": {
            "listen": "127.0.0.1:0",
            "upstream": upstream,
            "public_hosts": ["portal.example.gov.cn", "127.0.0.1", "localhost"],
            "insecure": True,
            "trusted_proxies": ["127.0.0.0/8"],
            "timezone": "Asia/Shanghai",
            "key_file": file("secrets/gateway.key"),
        },
        "geoip": geoip(),
        "networks": {"office": list(OFFICE), "vpn": list(VPN)},
        "accounts_file": file("accounts.yaml"),
        "access": standard_access(),
        "login": {"max_failures": 3, "failure_window": "15m", "lockout": "30m", "ip_max_failures": 10},
        "session": {"idle_timeout": "15m", "absolute_timeout": "8h"},
        "outbound": {"government_suffixes": ["gov.cn", "政务"], "allow_hosts": ["www.12377.cn", "*.example-partner.cn"],
                     "redirects": "warn"},
        "audit": {"dir": file("audit"), "retention_days": 365},
    }
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


class _Dumper(yaml.SafeDumper):
    """YAML's safe dumper, writing tuples and sets (as tests like to pass them) as sequences."""


_Dumper.add_representer(tuple, lambda dumper, value: dumper.represent_list(value))
_Dumper.add_representer(frozenset, lambda dumper, value: dumper.represent_list(sorted(value)))


def policy_text(data: Data) -> str:
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False)


def write_policy(path: Path, data: Data) -> Path:
    """Write ``data`` to ``path`` in one step (a gateway watching the file never reads half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(policy_text(data), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load(data: Data, *, source: Path = SOURCE) -> Policy:
    """``data`` through the production loader, as if read from ``source`` (relative paths resolve against its
    folder). The files it names are not opened: tests that need them write them."""
    return _load_text(policy_text(data), source)


@functools.lru_cache(maxsize=256)
def _load_text(text: str, source: Path) -> Policy:
    return read_policy_text(text, source).policy_or_error()


def policy(workdir: Path | None = None, upstream: str = UPSTREAM, **sections: Any) -> Policy:
    """The test policy (with ``sections`` replaced), typed; its files under ``workdir`` if given."""
    source = workdir / "policy.yaml" if workdir is not None else SOURCE
    return load(policy_data(workdir, upstream=upstream, **sections), source=source)


def compiled(**sections: Any) -> CompiledPolicy:
    return compile_policy(policy(**sections))


def access_rules(*rules: Data) -> tuple[AccessRule, ...]:
    """The typed rules the loader makes of ``rules`` (as the test policy's ``access``)."""
    return policy(access=list(rules)).access


# -- a piece as a dataclass ----------------------------------------------------------------------------------

def make_grant(*, index: int = 0, account: str | None = None, devices: tuple[str, ...] = (),
               countries: frozenset[str] | None = None, start: str = GRANT_START, end: str = GRANT_END,
               daily: tuple[str, str] | None = None, reason: str = GRANT_REASON) -> Grant:
    """A ``Grant`` exactly as given (no loader): ``end`` is that very instant, not the end of its minute."""
    hours = DailyHours(time.fromisoformat(daily[0]), time.fromisoformat(daily[1])) if daily else None
    return Grant(index=index, line=100 + index, account=account, devices=devices, countries=countries,
                 start=at(start), end=at(end), daily=hours, reason=reason)
