"""Builds the facts ``decide`` judges: a request (``facts``) and the account behind a session (``account``).

Policies come from ``tests.policies``."""

from __future__ import annotations

import ipaddress
from datetime import date, datetime

from govgate.core.decide import AccountFacts, RequestFacts
from govgate.core.policy.model import IPAddress


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
