"""A policy file cut off anywhere (an editor saving, a copy in progress) never admits what the whole refuses.

Art. 19: staff functions only from allowed networks. The shipped ``policy.yaml`` is cut after every line in
turn; every cut that still loads is asked the same questions as the whole file — each probe address, path,
account and device at times inside and outside the sample grant's window and daily hours — and may only
answer as strictly or more strictly: never forward where the whole refuses or sends to login, never open
the login page's password check to a client the whole keeps out.
"""

from __future__ import annotations

from datetime import datetime
from ipaddress import ip_address
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from govgate.core.decide import (
    AccountFacts,
    CompiledPolicy,
    Outcome,
    RequestFacts,
    account_admitted,
    compile_policy,
    decide,
    login_gate,
)
from govgate.core.geoip import CountryLookup
from govgate.errors import PolicyError
from govgate.files import load_policy, open_country_lookup

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "policy.yaml"
TZ = ZoneInfo("Asia/Shanghai")
RANK = {Outcome.REFUSE: 0, Outcome.LOGIN: 1, Outcome.FORWARD: 2}

ADDRESSES = ("10.1.2.3", "127.0.0.1", "::1", "2001:db8::7", "111.235.160.1", "81.2.69.160", "216.160.83.57",
             "198.51.100.7", "192.168.1.9")
PATHS = ("/", "/news/a", "/static/x.css", "/oa/", "/oa/x", "/admin/", "/__govgate/login")
ACCOUNTS = (None, "zhangsan", "lisi")
TIMES = (datetime(2026, 12, 3, 10, 0, tzinfo=TZ), datetime(2026, 12, 3, 23, 30, tzinfo=TZ),
         datetime(2026, 12, 20, 10, 0, tzinfo=TZ))


def account(name: str | None) -> AccountFacts | None:
    if name is None:
        return None
    return AccountFacts(name=name, groups=frozenset({"staff"}), disabled=False, expires=None, locked_until=None,
                        devices=frozenset())


def answers(compiled: CompiledPolicy, geoip: CountryLookup) -> dict[tuple[object, ...], int]:
    out: dict[tuple[object, ...], int] = {}
    for text in ADDRESSES:
        ip = ip_address(text)
        country = geoip.country(ip)
        for when in TIMES:
            gate = login_gate(ip, country, None, compiled, when)
            for name in ACCOUNTS:
                out[("login", text, name, when)] = int(
                    account_admitted(gate, name, None, country, compiled, when) if name else gate.open)
                for path in PATHS:
                    facts = RequestFacts(client=ip, country=country, host="localhost", path=path, method="GET",
                                         device=None, account=account(name))
                    out[("request", text, path, name, when)] = RANK[decide(facts, compiled, when).outcome]
    return out


def test_the_shipped_policy_cut_after_any_line_never_admits_more_than_the_whole() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    whole = load_policy(SHIPPED, data=text.encode("utf-8"))
    geoip = open_country_lookup(whole.geoip.database)
    try:
        full = answers(compile_policy(whole), geoip)
        lines = text.splitlines(keepends=True)
        loaded = 0
        for cut in range(len(lines)):
            try:
                part = load_policy(SHIPPED, data="".join(lines[:cut]).encode("utf-8"))
            except PolicyError:
                continue
            loaded += 1
            for question, answer in answers(compile_policy(part), geoip).items():
                assert answer <= full[question], (f"cut after line {cut} ({lines[cut - 1].strip()!r}) admits "
                                                  f"{question} beyond the whole policy")
        assert loaded > 0, "no cut loads at all: the test would prove nothing"
    finally:
        geoip.close()


@pytest.mark.parametrize("cut_after", ["    allow: staff", "    paths: [\"/oa/**\"]"])
def test_the_cut_that_used_to_open_staff_paths_to_every_address_is_refused(cut_after: str) -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    head = text[: text.index(cut_after) + len(cut_after)] + "\n"
    with pytest.raises(PolicyError) as info:
        load_policy(SHIPPED, data=head.encode("utf-8"))
    assert any(p.key_path.startswith("access[1]") for p in info.value.problems), info.value.problems
