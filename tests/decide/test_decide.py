"""``decide``: the steps of ``docs/decisions.md`` §2, every branch and every reason, on real compiled policies."""

from __future__ import annotations

import ipaddress
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.decide import Outcome, Reason, compile_policy, decide, match_rule
from tests.decide.facts import account, facts
from tests.policies import NOW, OFFICE, VPN, compiled, device, geoip, grant, policy, rule, standard_access

GB = "81.2.69.142"
US = "216.160.83.56"
CN = "111.235.160.1"
ZS_LAPTOP = device("zs-laptop", "zhangsan", token="zhangsan-laptop-enrolment-0001")  # for grants that name the device


def names(decision: object) -> list[tuple[str, bool]]:
    return [(c.name, c.passed) for c in decision.checks]  # type: ignore[attr-defined]


# -- rules ------------------------------------------------------------------------------------------

def test_public_path_is_forwarded_to_anyone() -> None:
    d = decide(facts(GB, "/news/2026/a.html", country="GB"), compiled(), NOW)
    assert d.outcome is Outcome.FORWARD
    assert d.status == 200
    assert d.rule is not None
    assert d.rule.name == "public site"
    assert d.reason is None


def test_root_path_matches_only_the_root_glob() -> None:
    c = compiled()
    assert decide(facts(GB, "/"), c, NOW).outcome is Outcome.FORWARD
    assert decide(facts(GB, "/index.html"), c, NOW).reason is Reason.DENIED


def test_deny_rule_refuses_with_denied() -> None:
    d = decide(facts("10.1.2.3", "/admin/"), compiled(), NOW)
    assert d.outcome is Outcome.REFUSE
    assert d.status == 403
    assert d.reason is Reason.DENIED
    assert d.rule is not None
    assert d.rule.name == "the rest"


def test_unmatched_request_is_denied_without_a_rule() -> None:
    c = compiled(access=[rule("news", ["/news/**"], "public")])
    d = decide(facts("10.1.2.3", "/elsewhere"), c, NOW)
    assert d.outcome is Outcome.REFUSE
    assert d.reason is Reason.DENIED
    assert d.rule is None
    assert names(d) == [("rule", False)]


def test_first_matching_rule_wins() -> None:
    c = compiled(access=(rule("deny oa", ["/oa/secret/**"], "deny"),
                         rule("oa public", ["/oa/**"], "public")))
    assert decide(facts(GB, "/oa/secret/x"), c, NOW).reason is Reason.DENIED
    assert decide(facts(GB, "/oa/other"), c, NOW).outcome is Outcome.FORWARD


def test_query_string_does_not_change_the_rule() -> None:
    d = decide(facts(GB, "/news/?next=/oa/x"), compiled(), NOW)
    assert d.rule is not None
    assert d.rule.name == "public site"


def test_dot_segments_cannot_reach_a_staff_path_through_a_public_rule() -> None:
    d = decide(facts(GB, "/news/../oa/x", country="GB"), compiled(), NOW)
    assert d.rule is not None
    assert d.rule.name == "office system"
    assert d.reason is Reason.NETWORK


def test_encoded_slash_after_dots_is_denied() -> None:
    d = decide(facts(GB, "/news/..%2Foa/x", country="GB"), compiled(), NOW)
    assert d.reason is Reason.DENIED
    assert d.rule is None


def test_rule_with_hosts_only_matches_those_hosts() -> None:
    c = compiled(access=(rule("intranet", ["/**"], "public", hosts=("intranet.example.gov.cn", "*.oa.gov.cn")),
                         rule("rest", ["/**"], "deny")))
    assert decide(facts(GB, "/x", host="Intranet.Example.gov.cn."), c, NOW).outcome is Outcome.FORWARD
    assert decide(facts(GB, "/x", host="a.b.oa.gov.cn"), c, NOW).outcome is Outcome.FORWARD
    assert decide(facts(GB, "/x", host="oa.gov.cn"), c, NOW).reason is Reason.DENIED
    assert decide(facts(GB, "/x", host="portal.example.gov.cn"), c, NOW).reason is Reason.DENIED


def test_rule_with_methods_only_matches_those_methods() -> None:
    c = compiled(access=(rule("read only", ["/**"], "public", methods=frozenset({"GET", "HEAD"})),
                         rule("rest", ["/**"], "deny")))
    assert decide(facts(GB, "/x", method="get"), c, NOW).outcome is Outcome.FORWARD
    assert decide(facts(GB, "/x", method="POST"), c, NOW).reason is Reason.DENIED


# -- network ----------------------------------------------------------------------------------------

def test_staff_path_from_office_network_without_session_goes_to_login() -> None:
    d = decide(facts("10.1.2.3", "/oa/"), compiled(), NOW)
    assert d.outcome is Outcome.LOGIN
    assert d.status == 303
    assert d.reason is None
    assert d.article == "Art. 30"
    assert names(d) == [("rule", True), ("network", True), ("overseas", True), ("session", False)]
    assert "10.1.2.3 is in network 'office'" in d.checks[1].detail


def test_staff_path_from_office_ipv6_network_is_admitted_to_login() -> None:
    assert decide(facts("2001:db8::5", "/oa/"), compiled(), NOW).outcome is Outcome.LOGIN


def test_ipv4_mapped_ipv6_client_counts_as_its_ipv4_address() -> None:
    assert decide(facts("::ffff:10.1.2.3", "/oa/"), compiled(), NOW).outcome is Outcome.LOGIN


def test_staff_path_from_outside_the_rules_networks_is_refused_for_network() -> None:
    d = decide(facts(CN, "/oa/", country="CN"), compiled(), NOW)
    assert d.outcome is Outcome.REFUSE
    assert d.reason is Reason.NETWORK
    assert d.article == "Art. 19"
    assert names(d) == [("rule", True), ("network", False)]


def test_network_of_another_group_does_not_satisfy_the_rule() -> None:
    d = decide(facts("172.20.1.1", "/oa/"), compiled(), NOW)
    assert d.reason is Reason.NETWORK


def test_allowlisted_device_satisfies_the_network_check() -> None:
    d = decide(facts(CN, "/oa/", country="CN", device="zs-laptop"), compiled(), NOW)
    assert d.outcome is Outcome.LOGIN
    assert "zs-laptop" in d.checks[1].detail


def test_device_does_not_help_when_the_rule_forbids_devices() -> None:
    c = compiled(access=standard_access(devices="none"))
    d = decide(facts(CN, "/oa/", country="CN", device="zs-laptop"), c, NOW)
    assert d.reason is Reason.NETWORK


def test_rule_with_networks_any_admits_any_home_address() -> None:
    c = compiled(access=standard_access(networks="any"))
    d = decide(facts(CN, "/oa/", country="CN"), c, NOW)
    assert d.outcome is Outcome.LOGIN


def test_rule_with_networks_any_still_applies_the_overseas_check() -> None:
    c = compiled(access=standard_access(networks="any"))
    d = decide(facts(GB, "/oa/", country="GB"), c, NOW)
    assert d.reason is Reason.OVERSEAS
    assert d.article == "Art. 19"


# -- overseas ---------------------------------------------------------------------------------------

def test_overseas_request_without_grant_is_denied() -> None:
    c = compiled(access=standard_access(networks="any"))
    d = decide(facts(US, "/oa/", country="US", account=account()), c, NOW)
    assert d.reason is Reason.OVERSEAS
    assert names(d)[-1] == ("overseas", False)


def test_overseas_device_user_inside_a_rule_network_is_not_overseas() -> None:
    # An address in any listed network is never "overseas", even if GeoIP says otherwise.
    d = decide(facts("10.9.9.9", "/oa/", country="US"), compiled(), NOW)
    assert d.outcome is Outcome.LOGIN


def test_private_address_is_always_home_even_when_unknown_is_overseas() -> None:
    c = compiled(access=standard_access(networks="any"))
    for ip in ("192.168.1.5", "127.0.0.1", "169.254.1.1", "fd00::1", "fe80::1", "::1"):
        assert decide(facts(ip, "/oa/", country=None), c, NOW).outcome is Outcome.LOGIN, ip


def test_unknown_country_is_overseas_by_default() -> None:
    c = compiled(access=standard_access(networks="any"))
    d = decide(facts("1.1.1.1", "/oa/", country=None), c, NOW)
    assert d.reason is Reason.OVERSEAS
    assert "unknown country" in d.checks[-1].detail


def test_unknown_country_is_home_when_the_policy_says_so() -> None:
    c = compiled(access=standard_access(networks="any"), geoip=geoip(unknown="home"))
    assert decide(facts("1.1.1.1", "/oa/", country=None), c, NOW).outcome is Outcome.LOGIN


def test_home_countries_are_the_operators_call() -> None:
    rules = standard_access(networks="any")
    hk = "1.2.3.4"
    assert decide(facts(hk, "/oa/", country="HK"), compiled(access=rules), NOW).reason is Reason.OVERSEAS
    with_hk = compiled(access=rules, geoip=geoip(home=("CN", "HK")))
    assert decide(facts(hk, "/oa/", country="HK"), with_hk, NOW).outcome is Outcome.LOGIN


def test_overseas_client_before_login_goes_to_login_when_a_grant_could_admit_it() -> None:
    c = compiled(access=standard_access(networks="any"), overseas={"grants": [grant(account="zhangsan")]})
    d = decide(facts(GB, "/oa/", country="GB"), c, NOW)
    assert d.outcome is Outcome.LOGIN
    assert d.grant is not None
    assert d.grant.index == 0
    assert "could admit" in d.checks[-2].detail


def test_overseas_client_before_login_is_refused_when_no_grant_is_active() -> None:
    c = compiled(access=standard_access(networks="any"),
                 overseas={"grants": [grant(account="zhangsan", start="2027-01-01 00:00", end="2027-01-31 00:00")]})
    d = decide(facts(GB, "/oa/", country="GB"), c, NOW)
    assert d.reason is Reason.OVERSEAS
    assert "no active grant could admit" in d.checks[-1].detail


def test_overseas_client_before_login_is_refused_when_grants_name_other_countries() -> None:
    c = compiled(access=standard_access(networks="any"),
                 overseas={"grants": [grant(account="zhangsan", countries=frozenset({"JP"}))]})
    assert decide(facts(GB, "/oa/", country="GB"), c, NOW).reason is Reason.OVERSEAS


def test_overseas_client_before_login_needs_the_grants_device() -> None:
    c = compiled(access=standard_access(networks="any"), devices=[ZS_LAPTOP],
                 overseas={"grants": [grant(account="zhangsan", devices=("zs-laptop",))]})
    assert decide(facts(GB, "/oa/", country="GB"), c, NOW).reason is Reason.OVERSEAS
    d = decide(facts(GB, "/oa/", country="GB", device="zs-laptop"), c, NOW)
    assert d.outcome is Outcome.LOGIN


def test_overseas_account_with_an_active_grant_is_forwarded() -> None:
    c = compiled(access=standard_access(networks="any"),
                 overseas={"grants": [grant(account="zhangsan", countries=frozenset({"GB"}))]})
    d = decide(facts(GB, "/oa/x", country="GB", account=account("zhangsan")), c, NOW)
    assert d.outcome is Outcome.FORWARD
    assert d.status == 200
    assert "grant #0 (参加国际会议) active until 2026-12-15T23:59" in d.checks[2].detail


def test_overseas_grant_for_another_account_does_not_admit() -> None:
    c = compiled(access=standard_access(networks="any"), overseas={"grants": [grant(account="lisi")]})
    d = decide(facts(GB, "/oa/", country="GB", account=account("zhangsan")), c, NOW)
    assert d.reason is Reason.OVERSEAS


def test_overseas_grant_ends_an_open_session_when_it_expires() -> None:
    c = compiled(access=standard_access(networks="any"), overseas={"grants": [grant(account="zhangsan")]})
    f = facts(GB, "/oa/", country="GB", account=account("zhangsan"))
    assert decide(f, c, NOW).outcome is Outcome.FORWARD
    assert decide(f, c, NOW + timedelta(days=30)).reason is Reason.OVERSEAS


def test_overseas_grant_outside_its_daily_hours_does_not_admit() -> None:
    c = compiled(access=standard_access(networks="any"),
                 overseas={"grants": [grant(account="zhangsan", daily=("08:00", "22:00"))]})
    f = facts(GB, "/oa/", country="GB", account=account("zhangsan"))
    assert decide(f, c, NOW.replace(hour=9)).outcome is Outcome.FORWARD
    assert decide(f, c, NOW.replace(hour=23)).reason is Reason.OVERSEAS


def test_overseas_device_only_grant_admits_any_account_on_that_device() -> None:
    kiosk = device("kiosk", "wangwu", token="wangwu-kiosk-enrolment-token-1")
    c = compiled(access=standard_access(networks="any"), devices=[kiosk],
                 overseas={"grants": [grant(devices=("kiosk",))]})
    assert decide(facts(GB, "/oa/", country="GB", device="kiosk", account=account("lisi")), c, NOW).allowed
    assert decide(facts(GB, "/oa/", country="GB", account=account("lisi")), c, NOW).reason is Reason.OVERSEAS


def test_overseas_grant_naming_account_and_devices_requires_both() -> None:
    c = compiled(access=standard_access(networks="any"), devices=[ZS_LAPTOP],
                 overseas={"grants": [grant(account="zhangsan", devices=("zs-laptop",))]})
    assert decide(facts(GB, "/oa/", country="GB", device="zs-laptop", account=account("zhangsan")), c, NOW).allowed
    assert decide(facts(GB, "/oa/", country="GB", account=account("zhangsan")), c, NOW).reason is Reason.OVERSEAS
    assert decide(facts(GB, "/oa/", country="GB", device="zs-laptop", account=account("lisi")),
                  c, NOW).reason is Reason.OVERSEAS


# -- session and account ----------------------------------------------------------------------------

def test_valid_session_in_the_right_group_is_forwarded() -> None:
    d = decide(facts("10.1.2.3", "/oa/", account=account()), compiled(), NOW)
    assert d.outcome is Outcome.FORWARD
    assert d.article == "Art. 19"
    assert names(d) == [("rule", True), ("network", True), ("overseas", True), ("session", True),
                        ("account", True), ("group", True)]


def test_disabled_account_is_refused_for_account() -> None:
    d = decide(facts("10.1.2.3", "/oa/", account=account(disabled=True)), compiled(), NOW)
    assert d.reason is Reason.ACCOUNT
    assert d.article == "Art. 30"


def test_expired_account_is_refused_for_account() -> None:
    d = decide(facts("10.1.2.3", "/oa/", account=account(expires=date(2026, 12, 4))), compiled(), NOW)
    assert d.reason is Reason.ACCOUNT
    assert "expired" in d.checks[-1].detail


def test_account_works_through_its_expiry_day() -> None:
    d = decide(facts("10.1.2.3", "/oa/", account=account(expires=date(2026, 12, 5))), compiled(), NOW)
    assert d.outcome is Outcome.FORWARD


def test_locked_account_is_refused_for_locked() -> None:
    d = decide(facts("10.1.2.3", "/oa/", account=account(locked_until=NOW + timedelta(minutes=5))), compiled(), NOW)
    assert d.reason is Reason.LOCKED
    assert d.article == "Art. 30"


def test_lock_that_has_ended_no_longer_refuses() -> None:
    d = decide(facts("10.1.2.3", "/oa/", account=account(locked_until=NOW - timedelta(seconds=1))), compiled(), NOW)
    assert d.outcome is Outcome.FORWARD


def test_account_outside_the_rules_groups_is_refused_for_group() -> None:
    d = decide(facts("10.1.2.3", "/oa/", account=account(groups=frozenset({"guests"}))), compiled(), NOW)
    assert d.reason is Reason.GROUP
    assert names(d)[-1] == ("group", False)


def test_rule_without_groups_admits_any_account() -> None:
    c = compiled(access=standard_access(groups=None))
    assert decide(facts("10.1.2.3", "/oa/", account=account(groups=frozenset())), c, NOW).allowed


def test_bound_account_on_a_foreign_device_is_refused_for_device() -> None:
    c = compiled(access=standard_access(bind_devices=True))
    mine = account(devices=frozenset({"zs-laptop"}))
    assert decide(facts("10.1.2.3", "/oa/", device="ls-browser", account=mine), c, NOW).reason is Reason.DEVICE
    assert decide(facts("10.1.2.3", "/oa/", device=None, account=mine), c, NOW).reason is Reason.DEVICE
    assert decide(facts("10.1.2.3", "/oa/", device="zs-laptop", account=mine), c, NOW).allowed


def test_checks_run_in_the_documented_order_network_before_account() -> None:
    # A disabled account from outside every network is refused for the network, the earlier check.
    d = decide(facts(CN, "/oa/", country="CN", account=account(disabled=True)), compiled(), NOW)
    assert d.reason is Reason.NETWORK


def test_account_problems_are_reported_before_group_and_device() -> None:
    c = compiled(access=standard_access(bind_devices=True))
    d = decide(facts("10.1.2.3", "/oa/", account=account(disabled=True, groups=frozenset())), c, NOW)
    assert d.reason is Reason.ACCOUNT


def test_compiled_policy_handles_rules_it_was_not_compiled_with() -> None:
    p = policy()
    c = compile_policy(p)
    assert len(c.rule_networks) == len(p.access)


# -- properties -------------------------------------------------------------------------------------

ipv4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
cidr4 = st.tuples(ipv4, st.integers(min_value=8, max_value=32)).map(
    lambda t: ipaddress.IPv4Network((t[0], t[1]), strict=False))


@settings(max_examples=150, deadline=None)
@given(extra=cidr4, offset=st.integers(min_value=0, max_value=2**24), country=st.sampled_from(["CN", "GB", None]),
       with_account=st.booleans(), with_device=st.booleans())
def test_adding_a_network_never_turns_an_allow_into_a_deny_for_addresses_in_it(
        extra: ipaddress.IPv4Network, offset: int, country: str | None, with_account: bool, with_device: bool) -> None:
    ip = extra.network_address + (offset % extra.num_addresses)
    f = facts(ip, "/oa/x", country=country, account=account() if with_account else None,
              device="zs-laptop" if with_device else None)
    before = policy(access=standard_access(networks=("office", "vpn")))
    after = policy(networks={"office": OFFICE, "vpn": [*VPN, str(extra)]},
                   access=standard_access(networks=("office", "vpn")))
    d_before = decide(f, compile_policy(before), NOW)
    d_after = decide(f, compile_policy(after), NOW)
    if d_before.outcome is not Outcome.REFUSE:
        assert d_after.outcome is d_before.outcome
    # And inside the rule's networks the network and overseas checks always pass.
    assert d_after.reason not in (Reason.NETWORK, Reason.OVERSEAS)


def test_adding_a_network_to_a_policy_without_it_admits_the_address() -> None:
    plain = policy(networks={"office": OFFICE})
    wider = policy(networks={"office": [*OFFICE, "81.2.69.0/24"]})
    f = facts(GB, "/oa/", country="GB", account=account())
    assert decide(f, compile_policy(plain), NOW).reason is Reason.NETWORK
    assert decide(f, compile_policy(wider), NOW).allowed


# -- one match for both decisions ------------------------------------------------------------------------------
# The gate matches a request's rule once (match_rule) and decides with that match before the session lookup (public
# and deny rules) and after it (staff rules): the decision must be the one decide makes matching by itself.

_MATCH_POLICIES = (
    compile_policy(policy(access=standard_access(devices="allowlisted"), devices=[ZS_LAPTOP],
                          overseas={"grants": [grant(account="zhangsan", countries=frozenset({"GB"}))]})),
    compile_policy(policy(access=[rule("by host", ["/oa/**"], "staff", networks=("office",),
                                       hosts=["oa.example.gov.cn"]), *standard_access(bind_devices=True)])),
)
_MATCH_PATHS = ["/", "/oa/", "/oa/x?y=1", "/news/../oa/x", "/oa/%2e%2e/x", "/oa%2fx", "/echo/staff/a", "/static/a.css",
                "/nowhere", "/oa/..;/x", "//oa/x", ""]


@settings(max_examples=300, deadline=None)
@given(which=st.sampled_from(range(len(_MATCH_POLICIES))), path=st.sampled_from(_MATCH_PATHS) | st.text(max_size=12),
       host=st.sampled_from(["portal.example.gov.cn", "oa.example.gov.cn:8443", "OA.example.gov.cn", ""]),
       method=st.sampled_from(["GET", "post", "PUT"]), client=st.sampled_from(["10.1.2.3", GB, CN, US, "192.168.1.9"]),
       country=st.sampled_from(["GB", "CN", None]), with_account=st.booleans(), disabled=st.booleans(),
       device=st.sampled_from([None, "zs-laptop", "other"]))
def test_deciding_with_the_rule_matched_before_the_session_lookup_is_deciding_afresh(
        which: int, path: str, host: str, method: str, client: str, country: str | None, with_account: bool,
        disabled: bool, device: str | None) -> None:
    compiled_policy = _MATCH_POLICIES[which]
    matched = match_rule(compiled_policy, host, path, method)  # before the account or the device is known
    for who in (None, account(disabled=disabled, devices=frozenset({"zs-laptop"})) if with_account else None):
        f = facts(client, path, country=country, host=host, method=method, device=device, account=who)
        assert decide(f, compiled_policy, NOW, matched) == decide(f, compiled_policy, NOW)
    assert matched.rule == decide(facts(client, path, host=host, method=method), compiled_policy, NOW).rule
