"""gateway, state, geoip, networks: every error names file:line: key.path and what was expected."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import trustme

from tests.policy.texts import BASE, GEOIP_DB, INVALID_DB, expect_problem, load, problems, replace


def test_unknown_key_suggests_the_close_one() -> None:
    text = BASE + "session:\n  idle_timout: 5m\n"
    problem = expect_problem(text, "idle_timout", "session.idle_timout", "unknown key 'idle_timout'")
    assert problem.endswith("did you mean 'idle_timeout'?")


def test_unknown_top_level_key_suggests_the_section() -> None:
    text = BASE + "acess: []\n"
    expect_problem(text, "acess", "acess", "unknown key 'acess'; did you mean 'access'?")


def test_unknown_key_without_a_close_match_lists_the_allowed_ones() -> None:
    text = replace(BASE, "  insecure: true\n", "  insecure: true\n  colour: blue\n")
    expect_problem(text, "colour", "gateway.colour", "expected one of: listen, upstream, public_hosts, tls")


def test_missing_required_key_is_reported_at_its_mapping() -> None:
    text = replace(BASE, '  upstream: "http://127.0.0.1:8080"\n', "")
    expect_problem(text, "gateway:", "gateway.upstream", "required key missing")


def test_missing_sections_are_each_reported() -> None:
    found = problems("version: 1\n")
    assert {p.split(": ")[1] for p in found} == {"gateway", "geoip", "access"}


def test_version_must_be_1() -> None:
    text = replace(BASE, "version: 1", "version: 2")
    expect_problem(text, "version: 2", "version", "expected 1", "found the integer 2")
    text = replace(BASE, "version: 1", 'version: "1"')
    expect_problem(text, "version:", "version", "found the string '1'")


def test_a_quoted_boolean_is_a_string_not_a_boolean() -> None:
    text = replace(BASE, "insecure: true", 'insecure: "true"')
    expect_problem(text, "insecure", "gateway.insecure", "expected true or false; found the string 'true'")


def test_a_string_where_a_list_belongs_is_an_error() -> None:
    text = replace(BASE, "public_hosts: [portal.example.gov.cn]", "public_hosts: portal.example.gov.cn")
    expect_problem(text, "public_hosts", "gateway.public_hosts",
                   "expected a list of host names; found the string 'portal.example.gov.cn'")


@pytest.mark.parametrize(("listen", "fragment"), [
    ("127.0.0.1", "no port"),
    ("::1:8443", "needs brackets"),
    ("127.0.0.1:99999", "port '99999'"),
    (":8443", "no host"),
    ("[nothex]:80", "not an IPv6 address"),
])
def test_bad_listen_addresses_are_explained(listen: str, fragment: str) -> None:
    text = replace(BASE, '"127.0.0.1:8443"', f'"{listen}"')
    expect_problem(text, "listen", "gateway.listen", "expected HOST:PORT or [IPv6]:PORT", fragment)


def test_listen_accepts_ipv6_in_brackets_and_port_0() -> None:
    policy = load(replace(BASE, '"127.0.0.1:8443"', '"[::1]:0"'))
    assert (policy.gateway.listen.host, policy.gateway.listen.port) == ("::1", 0)
    assert str(policy.gateway.listen) == "[::1]:0"


@pytest.mark.parametrize(("upstream", "fragment"), [
    ("http://127.0.0.1:8080/portal", "a path"),
    ("ftp://127.0.0.1", "scheme 'ftp'"),
    ("127.0.0.1:8080", "scheme"),
    ("http://user:pw@portal", "credentials"),
    ("http://portal:notaport", "Port"),
])
def test_upstream_must_be_an_http_url_without_path(upstream: str, fragment: str) -> None:
    text = replace(BASE, '"http://127.0.0.1:8080"', f'"{upstream}"')
    expect_problem(text, "upstream", "gateway.upstream", "expected an http:// or https:// URL", fragment)


def test_upstream_trailing_slash_is_dropped() -> None:
    assert load(replace(BASE, '8080"', '8080/"')).gateway.upstream == "http://127.0.0.1:8080"


def test_hosts_are_normalised_to_lower_case_idna_without_trailing_dot() -> None:
    text = replace(BASE, "[portal.example.gov.cn]", '[Portal.Example.GOV.CN., 例子.政务, "::1", 127.0.0.1]')
    assert load(text).gateway.public_hosts == ("portal.example.gov.cn", "xn--fsqu00a.xn--zfr164b", "[::1]",
                                               "127.0.0.1")


@pytest.mark.parametrize("host", ["portal.example.gov.cn:8443", "http://portal", "a b", "*.example.cn", ""])
def test_a_public_host_with_port_scheme_or_wildcard_is_an_error(host: str) -> None:
    text = replace(BASE, "[portal.example.gov.cn]", f'["{host}"]')
    expect_problem(text, "public_hosts", "gateway.public_hosts[0]", "expected a host name")


def test_tls_is_required_unless_insecure() -> None:
    text = replace(BASE, "  insecure: true\n", "")
    expect_problem(text, "gateway:", "gateway.tls", "required unless insecure: true", "Art. 29")
    text = replace(BASE, "insecure: true", "insecure: false")
    expect_problem(text, "gateway:", "gateway.tls", "required unless insecure: true")


def test_tls_cert_must_be_readable_when_files_are_checked(tmp_path: Path) -> None:
    text = replace(BASE, "  insecure: true\n", "  tls: {cert: certs/missing.pem}\n")
    text = replace(text, "geoip/GeoLite2", str(GEOIP_DB.parent) + "/GeoLite2")
    source = tmp_path / "policy.yaml"
    expect_problem(text, "tls:", "gateway.tls.cert", "cannot read it", check_files=True, source=source,
                   file=str(source))
    assert load(text, check_files=False, source=source).gateway.tls_cert == tmp_path / "certs" / "missing.pem"


def test_tls_cert_without_private_key_is_an_error(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("portal.example.gov.cn")
    (tmp_path / "only-cert.pem").write_bytes(cert.cert_chain_pems[0].bytes())
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "gateway.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    text = replace(BASE, "  insecure: true\n", "  tls: {cert: only-cert.pem}\n")
    text = replace(text, "geoip/GeoLite2", str(GEOIP_DB.parent) + "/GeoLite2")
    source = tmp_path / "policy.yaml"
    expect_problem(text, "tls:", "gateway.tls.cert", "lacks the private key", check_files=True, source=source,
                   file=str(source))
    good = replace(text, "{cert: only-cert.pem}", "{cert: gateway.pem, client_ca: ca.pem, request_client_cert: no}")
    gateway = load(good, check_files=True, source=source).gateway
    assert (gateway.tls_cert, gateway.client_ca, gateway.request_client_cert, gateway.insecure) == (
        tmp_path / "gateway.pem", tmp_path / "ca.pem", False, False)


@pytest.mark.parametrize("prefix", ["__govgate", "/__govgate/", "/", "/a b", "/../x"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    text = replace(BASE, "  insecure: true\n", f'  insecure: true\n  prefix: "{prefix}"\n')
    expect_problem(text, "prefix", "gateway.prefix", "expected a path starting with '/'")


def test_bad_timezone_is_an_error() -> None:
    text = replace(BASE, "  insecure: true\n", "  insecure: true\n  timezone: Asia/Beijing\n")
    expect_problem(text, "timezone", "gateway.timezone", "unknown zone 'Asia/Beijing'")
    text = replace(BASE, "  insecure: true\n", "  insecure: true\n  timezone: ../../etc/passwd\n")
    expect_problem(text, "timezone", "gateway.timezone", "expected an IANA time zone name")


def test_trusted_proxies_are_networks() -> None:
    text = replace(BASE, "  insecure: true\n", '  insecure: true\n  trusted_proxies: [127.0.0.0/8, "fd00::/8"]\n')
    assert load(text).gateway.trusted_proxies == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def test_cidr_with_host_bits_suggests_the_network() -> None:
    text = replace(BASE, "office: [10.0.0.0/8]", "office: [10.1.2.3/8]")
    expect_problem(text, "office", "networks.office[0]", "'10.1.2.3/8' has host bits set", "did you mean '10.0.0.0/8'?")
    text = replace(BASE, "office: [10.0.0.0/8]", 'office: ["2001:db8::1/32"]')
    expect_problem(text, "office", "networks.office[0]", "did you mean '2001:db8::/32'?")


def test_garbage_cidr_says_what_was_expected() -> None:
    text = replace(BASE, "office: [10.0.0.0/8]", "office: [10.0.0.0/8, 10.0.0.300/24]")
    expect_problem(text, "office", "networks.office[1]", "expected an IPv4 or IPv6 network", "10.0.0.300/24")


def test_network_names_and_contents_are_checked() -> None:
    text = replace(BASE, "  office: [10.0.0.0/8]\n", "  office: [10.0.0.0/8]\n  bad name: [10.0.0.0/8]\n  empty: []\n")
    expect_problem(text, "bad name", "networks.bad name", "expected a network name")
    expect_problem(text, "empty", "networks.empty", "expected at least 1 of CIDRs")


def test_state_redis_url_and_timeout_are_checked() -> None:
    text = BASE + "state: {redis: 'http://127.0.0.1:6379', timeout: soon}\n"
    expect_problem(text, "state", "state.redis", "found the scheme 'http'")
    expect_problem(text, "state", "state.timeout", "expected a duration")
    for url in ("redis://127.0.0.1:6379/0", "rediss://r.example:6380", "unix:///run/redis.sock",
                "redis+sentinel://127.0.0.1:26379/mymaster/0",
                "redis+sentinel://10.0.0.31:26379,10.0.0.32,[2001:db8::3]:26380/govgate/0",
                "rediss+sentinel://app:secret@s1.example:26379/govgate"):
        assert load(BASE + f"state: {{redis: '{url}', timeout: 2s}}\n").state.redis_url == url


@pytest.mark.parametrize("url", ["redis+sentinel://h1:26379,:1/m", "redis+sentinel://h1:26379",
                                 "redis+sentinel://h1:99999/m", "redis+sentinel://h1/m/x"])
def test_a_malformed_sentinel_url_is_refused_as_the_store_would_refuse_it(url: str) -> None:
    expect_problem(BASE + f"state: {{redis: '{url}'}}\n", "state", "state.redis", "Redis Sentinel URL")


def test_geoip_database_must_exist_when_files_are_checked(tmp_path: Path) -> None:
    source = tmp_path / "policy.yaml"
    expect_problem(BASE, "database", "geoip.database", "cannot read it", check_files=True, source=source,
                   file=str(source))
    database = load(BASE, check_files=False, source=source).geoip.database
    assert database == tmp_path / "geoip" / "GeoLite2-Country-Test.mmdb"


def test_invalid_geoip_database_is_an_error() -> None:
    text = replace(BASE, "geoip/GeoLite2-Country-Test.mmdb", str(INVALID_DB))
    expect_problem(text, "database", "geoip.database", "is not a valid database", check_files=True)


def test_a_file_path_no_file_can_have_is_a_located_problem() -> None:
    text = replace(BASE, "geoip/GeoLite2-Country-Test.mmdb", '"\\x00"')
    expect_problem(text, "database", "geoip.database", "cannot read it", "null", check_files=True)


def test_geoip_database_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    text = replace(BASE, "geoip/GeoLite2-Country-Test.mmdb", str(tmp_path))
    expect_problem(text, "database", "geoip.database", "found a folder", check_files=True)


def test_home_countries_keep_norway_as_a_country_not_a_boolean() -> None:
    text = replace(BASE, "  database: geoip/GeoLite2-Country-Test.mmdb\n",
                   "  database: geoip/GeoLite2-Country-Test.mmdb\n  home_countries: [cn, NO, hk]\n  unknown: home\n")
    geoip = load(text).geoip
    assert geoip.home_countries == frozenset({"CN", "NO", "HK"})
    assert geoip.unknown.value == "home"


def test_bad_country_codes_and_unknown_mode_are_errors() -> None:
    text = replace(BASE, "  database: geoip/GeoLite2-Country-Test.mmdb\n",
                   "  database: geoip/GeoLite2-Country-Test.mmdb\n  home_countries: [CHN]\n  unknown: maybe\n")
    expect_problem(text, "home_countries", "geoip.home_countries[0]", "expected a two-letter country code", "'CHN'")
    expect_problem(text, "unknown", "geoip.unknown", "expected one of home, overseas; found the string 'maybe'")


def test_proxy_protocol_is_off_unless_asked_for() -> None:
    assert load(BASE).gateway.proxy_protocol is False


def test_proxy_protocol_with_trusted_proxies_is_read() -> None:
    text = replace(BASE, "  insecure: true\n", "  insecure: true\n  trusted_proxies: [10.9.0.0/24]\n"
                   "  proxy_protocol: true\n")
    gw = load(text).gateway
    assert gw.proxy_protocol is True
    assert gw.trusted_proxies == (ipaddress.ip_network("10.9.0.0/24"),)


def test_proxy_protocol_without_trusted_proxies_is_an_error() -> None:
    text = replace(BASE, "  insecure: true\n", "  insecure: true\n  proxy_protocol: true\n")
    expect_problem(text, "proxy_protocol", "gateway.proxy_protocol", "needs gateway.trusted_proxies")
