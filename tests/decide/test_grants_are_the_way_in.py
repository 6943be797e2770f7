"""Art. 19 made whole: from abroad an overseas grant is the way in, whatever the rule's networks; a grant
never admits a home-country address; and nobody may try a password from where no rule could admit them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any

import pytest

from govgate.core.decide import CompiledPolicy, Outcome, Reason, account_admitted, compile_policy, decide, login_gate
from govgate.core.grants import grant_shortfalls
from tests.decide.facts import account, facts
from tests.policies import NOW, compiled, device, geoip, grant, make_grant, policy, standard_access

GB = "81.2.69.142"
US = "216.160.83.56"
CN = "111.235.160.1"
OFFICE = "10.1.2.3"
UNKNOWN = "198.51.100.7"  # a public address the test database does not know

TRIP = grant(account="zhangsan", countries=frozenset({"GB"}), daily=("08:00", "22:00"))
ZS_LAPTOP = device("zs-laptop", "zhangsan", token="zhangsan-laptop-enrolment-0001")


def office_only(*grants: dict[str, Any], devices: str | None = None, **sections: Any) -> CompiledPolicy:
    """The shipped sample's shape: the staff rule names only the office network."""
    return compiled(access=standard_access(networks=("office",), devices=devices),
                    overseas={"grants": list(grants)}, devices=[ZS_LAPTOP], **sections)


def test_a_granted_account_abroad_reaches_a_rule_that_names_only_office_networks() -> None:
    c = office_only(TRIP)
    before = decide(facts(GB, "/oa/", country="GB"), c, NOW)
    assert before.outcome is Outcome.LOGIN
    assert before.grant is not None
    assert before.grant.index == 0
    after = decide(facts(GB, "/oa/x", country="GB", account=account("zhangsan")), c, NOW)
    assert after.outcome is Outcome.FORWARD
    assert after.grant == before.grant
    network = next(ch for ch in after.checks if ch.name == "network")
    assert network.passed
    assert "grant #0" in network.detail
    assert "way in from abroad" in network.detail


def test_a_grant_never_admits_a_home_country_address_outside_the_networks() -> None:
    c = office_only(grant(account="zhangsan"))
    d = decide(facts(CN, "/oa/x", country="CN", account=account("zhangsan")), c, NOW)
    assert d.reason is Reason.NETWORK
    assert d.grant is None


def test_an_unknown_country_counts_as_overseas_and_a_grant_without_countries_admits_it() -> None:
    open_grant = grant(account="zhangsan")
    c = office_only(open_grant)
    d = decide(facts(UNKNOWN, "/oa/", country=None, account=account("zhangsan")), c, NOW)
    assert d.outcome is Outcome.FORWARD
    # ... but not when unknown addresses are home: then they are simply outside the networks.
    home = office_only(open_grant, geoip=geoip(unknown="home"))
    d = decide(facts(UNKNOWN, "/oa/", country=None, account=account("zhangsan")), home, NOW)
    assert d.reason is Reason.NETWORK


def test_another_account_from_the_granted_country_is_refused_after_login() -> None:
    c = office_only(TRIP)
    d = decide(facts(GB, "/oa/", country="GB", account=account("lisi")), c, NOW)
    assert d.outcome is Outcome.REFUSE
    assert d.reason is Reason.NETWORK
    assert "no active grant admits account 'lisi'" in d.checks[-1].detail


@pytest.mark.parametrize("when", [NOW.replace(hour=23), NOW + timedelta(days=30)])
def test_a_grant_outside_its_hours_or_window_lets_nobody_in(when: datetime) -> None:
    c = office_only(TRIP)
    d = decide(facts(GB, "/oa/", country="GB", account=account("zhangsan")), c, when)
    assert d.reason is Reason.NETWORK


def test_a_grant_is_the_way_in_even_where_devices_are_not_accepted() -> None:
    c = office_only(TRIP, devices="none")
    d = decide(facts(GB, "/oa/", country="GB", account=account("zhangsan")), c, NOW)
    assert d.outcome is Outcome.FORWARD


def test_a_device_outside_the_networks_abroad_still_needs_a_grant() -> None:
    c = office_only(grant(devices=("zs-laptop",), countries=frozenset({"GB"})))
    refused = decide(facts(US, "/oa/", country="US", device="zs-laptop"), c, NOW)
    assert refused.outcome is Outcome.REFUSE
    assert refused.reason is Reason.OVERSEAS  # the device passed the network step; no grant for the US
    allowed = decide(facts(GB, "/oa/", country="GB", device="zs-laptop"), c, NOW)
    assert allowed.outcome is Outcome.LOGIN


def test_a_rule_with_no_networks_and_no_any_admits_no_address() -> None:
    # Only reachable by building a rule by hand (the validator requires `networks`): never read as "any".
    loaded = policy()
    bare = replace(loaded.access[1], networks=(), any_network=False)
    c = compile_policy(replace(loaded, access=(loaded.access[0], bare, loaded.access[2])))
    d = decide(facts(OFFICE, "/oa/", account=account("zhangsan")), c, NOW)
    assert d.reason is Reason.NETWORK


# -- what explain shows about each grant -----------------------------------------------------------------

def test_grant_shortfalls_name_every_condition_that_failed() -> None:
    g = make_grant(account="zhangsan", devices=("zs-laptop",), countries=frozenset({"GB"}), daily=("08:00", "22:00"))
    late = NOW.replace(hour=23) + timedelta(days=30)
    found = grant_shortfalls(g, "lisi", None, "US", late)
    assert [f.split(":", 1)[0] for f in found] == ["window", "daily hours", "country", "account", "device"]
    assert grant_shortfalls(g, "zhangsan", "zs-laptop", "GB", NOW) == []
    # Before login the account is not known yet: it is not held against the client.
    assert grant_shortfalls(g, None, "zs-laptop", "GB", NOW, before_login=True) == []


# -- no password guessing from where nobody may enter (docs/decisions.md §3) --------------------------------------

def test_login_gate_is_closed_to_an_address_no_staff_rule_could_admit() -> None:
    c = office_only(TRIP)
    home = login_gate(ip_address(CN), "CN", None, c, NOW)
    assert (home.open, home.reason) == (False, Reason.NETWORK)
    abroad = login_gate(ip_address(US), "US", None, c, NOW)
    assert (abroad.open, abroad.reason) == (False, Reason.OVERSEAS)


def test_login_gate_is_open_in_the_office_for_every_account() -> None:
    c = office_only(TRIP)
    gate = login_gate(ip_address(OFFICE), None, None, c, NOW)
    assert gate.open
    assert not gate.overseas
    assert account_admitted(gate, "anyone", None, None, c, NOW)


def test_from_a_granted_country_only_the_granted_account_may_try_its_password() -> None:
    c = office_only(TRIP)
    ip = ip_address(GB)
    gate = login_gate(ip, "GB", None, c, NOW)
    assert gate.open
    assert gate.overseas
    assert account_admitted(gate, "zhangsan", None, "GB", c, NOW)
    assert not account_admitted(gate, "lisi", None, "GB", c, NOW)
    assert not account_admitted(gate, "no-such-account", None, "GB", c, NOW)


def test_login_gate_opens_for_an_allowlisted_device_only_where_a_rule_accepts_devices() -> None:
    ip = ip_address(CN)
    accepts = office_only()
    assert login_gate(ip, "CN", "zs-laptop", accepts, NOW).open
    refuses = office_only(devices="none")
    assert not login_gate(ip, "CN", "zs-laptop", refuses, NOW).open
