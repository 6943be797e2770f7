"""devices, groups, access rules: references, uniqueness, globs, staff-only keys."""

from __future__ import annotations

import pytest

from govgate.core.policy.model import Allow, DevicesMode
from tests.policy.texts import BASE, expect_problem, load, problems, replace

FINGERPRINT = "AB:" * 31 + "CD"


def with_rules(*rules: str) -> str:
    text = BASE.split("access:\n")[0] + "access:\n"
    return text + "".join(f"  - {r}\n" for r in rules)


def test_devices_parse_fingerprints_ignoring_colons_and_case() -> None:
    text = replace(BASE, "{id: zs-laptop, account: zhangsan, token: zhangsanEnrolmentToken0001}",
                   f'{{id: zs-laptop, account: zhangsan, cert_sha256: "{FINGERPRINT}", expires: 2027-06-30}}')
    device = load(text).device("zs-laptop")
    assert device is not None
    assert device.cert_sha256 == bytes.fromhex("ab" * 31 + "cd")
    assert device.token is None
    assert str(device.expires) == "2027-06-30"


def test_bad_fingerprint_says_how_many_digits_were_found() -> None:
    text = replace(BASE, "token: zhangsanEnrolmentToken0001}", 'cert_sha256: "abc"}')
    expect_problem(text, "zs-laptop", "devices[0].cert_sha256", "64 hex digits", "found 3 characters")


def test_device_needs_a_certificate_or_a_token() -> None:
    listed = "{id: zs-laptop, account: zhangsan"
    text = replace(BASE, listed + ", token: zhangsanEnrolmentToken0001}", listed + "}")
    expect_problem(text, "zs-laptop", "devices[0]", "expected cert_sha256 or token (or both)")


def test_device_ids_are_unique() -> None:
    text = replace(BASE, "{id: ls-phone,", "{id: zs-laptop,")
    expect_problem(text, "lisi", "devices[1].id", "expected unique device ids; 'zs-laptop' is already")


def test_device_needs_id_and_account_and_a_real_expiry_date() -> None:
    text = replace(BASE, "{id: ls-phone, account: lisi, token: lisiEnrolmentTokenNumber02}",
                   "{token: lisiEnrolmentTokenNumber02, expires: 2027-02-30}")
    expect_problem(text, "Number02,", "devices[1].id", "required key missing")
    expect_problem(text, "Number02,", "devices[1].account", "required key missing")
    expect_problem(text, "Number02,", "devices[1].expires",
                   "expected a date like 2027-06-30; found the string '2027-02-30'")


@pytest.mark.parametrize("token", ["t1", "zhangsan-laptop", "x" * 21, "short token with spaces ok?"])
def test_a_hand_written_enrolment_token_needs_128_bits(token: str) -> None:
    text = replace(BASE, "token: zhangsanEnrolmentToken0001}", f'token: "{token}"}}')
    expect_problem(text, "zs-laptop", "devices[0].token", "expected at least 128 bits of randomness")


def test_rules_become_typed_with_index_and_line() -> None:
    text = with_rules(
        '{name: api, paths: ["/api/*/x"], hosts: ["API.Example.gov.cn", "*.例子.cn"], methods: [get, Post], '
        "allow: public}",
        '{name: oa, paths: ["/oa/**"], allow: staff, networks: [office], devices: none, groups: [staff], '
        "bind_devices: true}",
    )
    api, oa = load(text).access
    assert (api.name, api.index, api.line, api.allow) == ("api", 0, text.splitlines().index(
        next(line for line in text.splitlines() if "name: api" in line)) + 1, Allow.PUBLIC)
    assert api.hosts == ("api.example.gov.cn", "*.xn--fsqu00a.cn")
    assert api.methods == frozenset({"GET", "POST"})
    assert api.networks == ()
    assert api.groups is None
    assert (oa.index, oa.networks, oa.devices, oa.groups, oa.bind_devices) == (1, ("office",), DevicesMode.NONE,
                                                                                ("staff",), True)
    assert oa.hosts is None
    assert oa.methods is None


def test_rule_names_are_required_and_unique() -> None:
    text = with_rules('{paths: ["/"], allow: public}', '{name: a, paths: ["/a"], allow: public}',
                      '{name: a, paths: ["/b"], allow: deny}')
    expect_problem(text, '"/"', "access[0].name", "required key missing")
    expect_problem(text, '"/b"', "access[2].name", "expected unique rule names; 'a' is already")


@pytest.mark.parametrize(("paths", "fragment"), [
    ("[]", "expected at least 1 of path globs; found an empty list"),
    ('["oa/**"]', "does not start with '/'"),
    ('["/oa**"]', "'**' must be a whole segment"),
    ('["/oa?x"]', "'?'"),
    ('"/oa/**"', "expected a list of path globs; found the string '/oa/**'"),
])
def test_bad_paths_are_explained(paths: str, fragment: str) -> None:
    text = with_rules(f"{{name: r, paths: {paths}, allow: public}}")
    found = problems(text)
    assert any(p.startswith("policy.yaml:") and ": access[0].paths" in p and fragment in p for p in found), found


def test_allow_must_be_public_staff_or_deny() -> None:
    text = with_rules('{name: r, paths: ["/"], allow: maybe}')
    expect_problem(text, "maybe", "access[0].allow", "expected one of public, staff, deny; found the string 'maybe'")
    text = with_rules('{name: r, paths: ["/"]}')
    expect_problem(text, "name: r", "access[0].allow", "required key missing")


def test_unknown_network_in_a_rule_suggests_the_close_one() -> None:
    text = with_rules('{name: oa, paths: ["/oa/**"], allow: staff, networks: [office, ofice, elsewhere]}')
    expect_problem(text, "ofice", "access[0].networks[1]", "unknown network 'ofice'; did you mean 'office'?")
    expect_problem(text, "ofice", "access[0].networks[2]", "unknown network 'elsewhere'",
                   "expected one of the names under networks: office")


@pytest.mark.parametrize("key", ["networks: [office]", "devices: none", "groups: [staff]", "bind_devices: true"])
@pytest.mark.parametrize("allow", ["public", "deny"])
def test_staff_only_keys_on_public_or_deny_rules_are_errors(key: str, allow: str) -> None:
    text = with_rules(f'{{name: r, paths: ["/"], allow: {allow}, {key}}}')
    name = key.split(":")[0]
    expect_problem(text, "name: r", f"access[0].{name}", "only meaningful for allow: staff",
                   f"this rule is allow: {allow}")


def test_rule_groups_must_be_declared_when_groups_are_declared() -> None:
    rule = '{name: oa, paths: ["/oa/**"], allow: staff, networks: any, groups: [staff, staf]}'
    assert load(with_rules(rule)).access[0].groups == ("staff", "staf")  # no declaration: not checked
    text = with_rules(rule) + "groups: [staff, admins]\n"
    expect_problem(text, "staf]", "access[0].groups[1]", "unknown group 'staf'; did you mean 'staff'?")


def test_declared_groups_are_names_and_unique() -> None:
    text = BASE + "groups: [staff, staff, 'bad name']\n"
    expect_problem(text, "groups:", "groups[1]", "declared twice")
    expect_problem(text, "groups:", "groups[2]", "expected a group name")


def test_bad_method_and_host_in_a_rule() -> None:
    text = with_rules('{name: r, paths: ["/"], allow: public, methods: ["GE T"], hosts: ["a/b"]}')
    expect_problem(text, "name: r", "access[0].methods[0]", "expected an HTTP method")
    expect_problem(text, "name: r", "access[0].hosts[0]", "expected a host name or IP address without port "
                                                          "(or *.suffix)")


def test_access_must_have_at_least_one_rule() -> None:
    text = with_rules()
    expect_problem(text, "access:", "access", "expected a list of access rules; found nothing (null)")
    text = replace(text, "access:", "access: []")
    expect_problem(text, "access:", "access", "expected at least 1 of access rules; found an empty list")


def test_an_empty_networks_list_on_a_staff_rule_is_refused_not_read_as_anyone() -> None:
    text = with_rules("{name: office, paths: [\"/oa/**\"], allow: staff, networks: []}")
    assert any("access[0].networks: expected at least one network name" in p for p in problems(text))


def test_a_staff_rule_without_networks_is_an_error_at_the_rule() -> None:
    # Art. 19: a policy cut off after `allow: staff` (an editor saving, a copy in progress) must never open
    # staff paths to every address.
    text = with_rules('{name: public, paths: ["/"], allow: public}', '{name: office, paths: ["/oa/**"], allow: staff}')
    expect_problem(text, "name: office", "access[1]", "a staff rule must name its networks", "networks: any")


def test_a_staff_rule_cut_after_allow_in_block_style_is_an_error() -> None:
    text = BASE.split("access:\n")[0] + "access:\n  - name: office\n    paths: [\"/oa/**\"]\n    allow: staff\n"
    expect_problem(text, "- name: office", "access[0]", "a staff rule must name its networks")


def test_networks_cut_after_its_key_is_an_error_not_any_address() -> None:
    text = (BASE.split("access:\n")[0] + "access:\n  - name: office\n    paths: [\"/oa/**\"]\n    allow: staff\n"
            "    networks:\n")
    expect_problem(text, "    networks:", "access[0].networks", "expected a list of network names or `any`")


def test_networks_any_admits_every_address_explicitly() -> None:
    rule = load(with_rules("{name: office, paths: [\"/oa/**\"], allow: staff, networks: any}")).access[0]
    assert rule.any_network is True
    assert rule.networks == ()
    named = load(BASE).access[1]
    assert named.any_network is False
    assert named.networks == ("office",)


@pytest.mark.parametrize("value", ['"ANY"', "all", "[any]", "[office, any]", "yes", "1", "{any: 1}"])
def test_networks_is_a_list_of_names_or_exactly_any(value: str) -> None:
    text = with_rules(f"{{name: office, paths: [\"/oa/**\"], allow: staff, networks: {value}}}")
    found = problems(text)
    assert any("access[0].networks" in p for p in found), found


def test_any_is_reserved_as_a_network_name() -> None:
    text = replace(BASE, "office: [10.0.0.0/8]", "office: [10.0.0.0/8]\n  any: [192.0.2.0/24]")
    expect_problem(text, "any: [192.0.2.0/24]", "networks.any", "`any` is reserved")
