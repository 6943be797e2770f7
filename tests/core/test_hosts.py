"""One host parser (``govgate.core.hosts``): its canonical form, what it refuses, and that every place
that compares hosts (rules, public_hosts, link classification, the policy) agrees on any spelling."""

from __future__ import annotations

import dataclasses
import ipaddress

import ada_url
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.decide import CompiledPolicy, compile_policy, decide
from govgate.core.hosts import host_of, parse_host, split_host_port
from govgate.core.outbound import HostClassifier
from govgate.core.policy.model import Outbound, RedirectMode
from tests.decide.facts import facts
from tests.policies import NOW, policy, rule
from tests.policy.texts import BASE, load, problems, replace

SETTINGS = settings(max_examples=300, deadline=None)

LOOPBACK_SPELLINGS = [
    "[::1]", "[0:0:0:0:0:0:0:1]", "[0::1]", "[0::01]", "[::0001]", "[0000:0000:0000:0000:0000:0000:0000:0001]",
    "[0:0::0:1]", "[::0:1]", "[0:0:0:0:0:0:0.0.0.1]", "[::0.0.0.1]",
]
MAPPED_SPELLINGS = ["[::ffff:7f00:1]", "[::FFFF:127.0.0.1]", "[0:0:0:0:0:FFFF:7F00:0001]", "[::ffff:7F00:1]"]


# ---------------------------------------------------------------- the canonical form


@pytest.mark.parametrize(("text", "expected"), [
    ("portal.example.gov.cn", ("portal.example.gov.cn", None)),
    ("Portal.Example.GOV.cn.:8443", ("portal.example.gov.cn", 8443)),
    ("例子.政务", ("xn--fsqu00a.xn--zfr164b", None)),
    ("WWW.例子.政务.:443", ("www.xn--fsqu00a.xn--zfr164b", 443)),
    ("127.0.0.1:80", ("127.0.0.1", 80)),
    ("127.1", ("127.0.0.1", None)),  # as browsers read it
    ("0x7f.0.0.1:8443", ("127.0.0.1", 8443)),
    ("127.0.0.1.", ("127.0.0.1", None)),
    ("[0:0:0:0:0:0:0:1]", ("[::1]", None)),
    ("[0::01]:8443", ("[::1]", 8443)),
    ("[2001:DB8::0001]:443", ("[2001:db8::1]", 443)),
    ("[::FFFF:127.0.0.1]", ("[::ffff:7f00:1]", None)),
    ("portal.example.gov.cn:", ("portal.example.gov.cn", None)),  # an empty port is no port (RFC 3986)
    ("portal.example.gov.cn:00443", ("portal.example.gov.cn", 443)),
    ("localhost:0", ("localhost", 0)),
    ("h:65535", ("h", 65535)),
    ("  portal.example.gov.cn  ", ("portal.example.gov.cn", None)),
])
def test_a_host_header_is_read_into_canonical_host_and_port(text: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(text) == expected
    assert host_of(text) == expected[0]


@pytest.mark.parametrize("text", [
    "", " ", ":8443", ".", "a..", "portal.example.gov.cn..", "a b", "a\tb", "a/b", "a\\b", "a?b", "a#b",
    "user@portal.example.gov.cn", "a%41", "[1:2]", "[::1", "::1", "[::1]x", "[::1].", "[fe80::1%25eth0]",
    "[fe80::1%eth0]", "[127.0.0.1]", "[]", "999.1.1.1", "foo.1", "1.2.3.4.5", "h:65536", "h:123456", "h:-1",
    "h:8443:1", "h:８０", "h:0x50", "a.b:c", "例子.政务\u3000x", "[::1]:80:80", "x\x00y",
])
def test_text_that_is_not_a_host_is_refused(text: str) -> None:
    assert split_host_port(text) is None
    assert host_of(text) == ""


@pytest.mark.parametrize(("text", "expected"), [
    ("::1", "[::1]"), ("[::1]", "[::1]"), ("0:0:0:0:0:0:0:1", "[::1]"),
    ("Portal.Example.GOV.CN.", "portal.example.gov.cn"),
    ("::ffff:127.0.0.1", "[::ffff:7f00:1]"),
])
def test_a_bare_host_may_be_an_ipv6_address_without_brackets(text: str, expected: str) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize("text", ["a:80", "[::1]:80", "::1%eth0", "", "a..", "[::1"])
def test_a_bare_host_has_no_port(text: str) -> None:
    assert parse_host(text) is None


def test_an_ipv4_mapped_address_is_not_the_ipv4_address() -> None:
    # Different URL hosts (and origins): a rule for one does not cover the other.
    assert {host_of(s) for s in MAPPED_SPELLINGS} == {"[::ffff:7f00:1]"}
    assert host_of("127.0.0.1") == "127.0.0.1"


# ---------------------------------------------------------------- properties

hextets = st.lists(st.one_of(st.just(0), st.just(0xFFFF), st.integers(0, 0xFFFF)), min_size=8, max_size=8)
ports = st.one_of(st.none(), st.integers(0, 65535))


@st.composite
def ipv6_spelling(draw: st.DrawFn, pieces: list[int]) -> str:
    """One of the many ways to write the address ``pieces``: any zero run compressed (or none), any case,
    leading zeros, the last 32 bits as dotted IPv4."""
    texts = [draw(st.sampled_from(["{:x}", "{:X}", "{:04x}", "{:04X}", "{:02x}"])).format(p) for p in pieces]
    if draw(st.booleans()):
        texts[6:] = [str(ipaddress.IPv4Address((pieces[6] << 16) | pieces[7]))]
    runs = [(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts) + 1)
            if all(pieces[k] == 0 for k in range(i, min(j, 8))) and (j <= 6 or len(texts) == 8)]
    if runs and draw(st.booleans()):
        i, j = draw(st.sampled_from(runs))
        return ":".join(texts[:i]) + "::" + ":".join(texts[j:])
    return ":".join(texts)


def _address(pieces: list[int]) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int.from_bytes(b"".join(p.to_bytes(2, "big") for p in pieces), "big"))


@SETTINGS
@given(data=st.data(), pieces=hextets, port=ports)
def test_every_spelling_of_an_ipv6_address_reads_as_the_browser_serialises_it(
    data: st.DataObject, pieces: list[int], port: int | None
) -> None:
    spelling = data.draw(ipv6_spelling(pieces))
    canonical = str(ada_url.URL(f"http://[{_address(pieces)}]/").hostname)  # the WHATWG serialisation
    assert str(ada_url.URL(f"http://[{spelling}]/").hostname) == canonical
    suffix = "" if port is None else f":{port}"
    assert split_host_port(f"[{spelling}]{suffix}") == (canonical, port)
    assert parse_host(f"[{spelling}]") == canonical
    assert parse_host(spelling) == canonical


names = st.lists(st.sampled_from([*"abcXYZ019-_.", "xn--fsqu00a", "例子", "政务", "ａ", "。", "ß", "0x7f", "127"]),
                 min_size=1, max_size=8).map("".join)


@SETTINGS
@given(text=st.one_of(names, st.text(max_size=12)), port=ports)
def test_the_canonical_form_is_a_fixed_point_and_ports_do_not_change_the_host(text: str, port: int | None) -> None:
    host = host_of(text)
    if not host:
        return
    assert host_of(host) == host
    assert parse_host(host) == host
    assert split_host_port(host + ("" if port is None else f":{port}")) == (host, port)
    if not host.startswith("["):
        assert host_of(host + ".") == host
        assert host_of(host.upper()) == host or not host.isascii()


@SETTINGS
@given(text=names)
def test_a_name_reads_as_the_browser_reads_its_host(text: str) -> None:
    try:
        browser = str(ada_url.URL(f"http://{text}/").hostname)
    except ValueError:
        assert host_of(text) == ""
        return
    expected = browser[:-1] if browser.endswith(".") else browser
    assert host_of(text) == ("" if not expected or expected.endswith(".") else expected)


# ---------------------------------------------------------------- through the decisions


def rule_for(policy: CompiledPolicy, host: str) -> str | None:
    """The name of the rule ``decide`` applies to a request with Host ``host``."""
    decision = decide(facts(host=host, path="/x", country="CN"), policy, NOW)
    return decision.rule.name if decision.rule is not None else None


def _loopback_policy(written: str) -> CompiledPolicy:
    """Loaded from YAML, so the rule's host is what the policy stores for ``written``."""
    text = replace(BASE, '  - {name: public, paths: ["/"], allow: public}\n',
                   f'  - {{name: loopback v6, paths: ["/**"], hosts: ["{written}"], allow: public}}\n'
                   '  - {name: the rest, paths: ["/**"], allow: deny}\n')
    return compile_policy(load(text))


@pytest.mark.parametrize("written", ["[::1]", "::1", "[0:0:0:0:0:0:0:1]", "[0::01]"])
def test_a_rule_for_an_ipv6_literal_matches_every_spelling_of_it(written: str) -> None:
    policy = _loopback_policy(written)
    for spelling in LOOPBACK_SPELLINGS:
        for host in (spelling, spelling.upper(), spelling + ":8443", spelling.upper() + ":443"):
            assert rule_for(policy, host) == "loopback v6", host
    for other in ("127.0.0.1", "[::2]", "[::ffff:7f00:1]", "localhost", "[::1", "[::1]:99999", ""):
        assert rule_for(policy, other) == "the rest", other


def test_a_rule_for_an_ipv4_mapped_literal_matches_its_spellings_only() -> None:
    policy = _loopback_policy("[::ffff:127.0.0.1]")
    for spelling in MAPPED_SPELLINGS:
        assert rule_for(policy, spelling) == "loopback v6", spelling
        assert rule_for(policy, spelling + ":80") == "loopback v6", spelling
    assert rule_for(policy, "127.0.0.1") == "the rest"


def test_a_rule_for_a_name_matches_with_case_port_and_one_trailing_dot() -> None:
    policy = _loopback_policy("Portal.Example.GOV.cn.")
    for host in ("portal.example.gov.cn", "PORTAL.EXAMPLE.GOV.CN.", "portal.example.gov.cn.:8443"):
        assert rule_for(policy, host) == "loopback v6", host
    assert rule_for(policy, "portal.example.gov.cn..") == "the rest"


@SETTINGS
@given(data=st.data(), pieces=hextets, port=ports)
def test_any_spelling_of_a_rule_host_meets_any_spelling_of_the_request_host(
    data: st.DataObject, pieces: list[int], port: int | None
) -> None:
    written = data.draw(ipv6_spelling(pieces))
    sent = data.draw(ipv6_spelling(pieces))
    # The rule's host as written, not as the loader stores it: compiling the rules must read it the same way.
    base = POLICY_WITH_TWO_RULES
    v6 = dataclasses.replace(base.access[0], hosts=(f"[{written}]",))
    built = compile_policy(dataclasses.replace(base, access=(v6, base.access[1])))
    assert rule_for(built, f"[{sent}]" + ("" if port is None else f":{port}")) == "v6"


POLICY_WITH_TWO_RULES = policy(access=[rule("v6", ["/**"], "public"), rule("the rest", ["/**"], "deny")])


def test_the_policy_stores_an_ipv6_literal_in_the_canonical_form() -> None:
    text = replace(BASE, "[portal.example.gov.cn]", '[portal.example.gov.cn, "[0:0:0:0:0:0:0:1]", "::FFFF:127.0.0.1"]')
    assert load(text).gateway.public_hosts == ("portal.example.gov.cn", "[::1]", "[::ffff:7f00:1]")


@pytest.mark.parametrize("written", ["portal.example.gov.cn..", "[1:2]", "[::1]:80", "a b", "*.x"])
def test_the_policy_reports_a_public_host_that_is_not_one(written: str) -> None:
    text = replace(BASE, "[portal.example.gov.cn]", f'["{written}"]')
    assert any("gateway.public_hosts[0]" in p and "expected a host name" in p for p in problems(text))


# ---------------------------------------------------------------- through the link classifier


@pytest.mark.parametrize("public", ["[::1]", "::1", "[0:0:0:0:0:0:0:1]"])
def test_a_public_ipv6_host_is_internal_in_every_spelling(public: str) -> None:
    classifier = HostClassifier(Outbound(("gov.cn",), (), RedirectMode.WARN), (public,))
    for spelling in LOOPBACK_SPELLINGS:
        for host in (spelling, spelling.upper(), spelling + ":8443"):
            assert classifier.is_external(host) is False, host
    for other in ("[::2]", "127.0.0.1", "[::ffff:7f00:1]", "[::1", "::1", "[1:2]"):
        assert classifier.is_external(other) is True, other


def test_a_public_ipv6_host_from_the_policy_is_internal_in_every_spelling() -> None:
    text = replace(BASE, "[portal.example.gov.cn]", '[portal.example.gov.cn, "[0::01]"]')
    classifier = HostClassifier.from_policy(load(text))
    assert all(classifier.is_external(s) is False for s in LOOPBACK_SPELLINGS)
    assert classifier.with_internal("[0:0:0:0:0:0:0:2]").is_external("[::2]") is False
