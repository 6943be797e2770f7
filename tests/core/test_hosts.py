"""One host parser (``govgate.core.hosts``): its canonical form and what it refuses."""

from __future__ import annotations

import ipaddress

import ada_url
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govgate.core.hosts import host_of, parse_host, split_host_port

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
