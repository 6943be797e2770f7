"""The PROXY protocol header (v1 text, v2 binary) as pure functions of bytes: what a balancer sends is read back
exactly, and anything else is refused with one of the fixed reasons."""

from __future__ import annotations

import ipaddress
import struct
from contextlib import AbstractContextManager, suppress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govgate.core.proxy_protocol import (
    PREFIX_LENGTH,
    V2_FIXED_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyRefusal,
    header_version,
    parse_v1,
    parse_v2,
    starts_like_header,
    v1_line,
    v2_header,
    v2_payload_length,
)

V4 = (ipaddress.ip_address("81.2.69.160"), 51234)
V4_DST = (ipaddress.ip_address("192.0.2.10"), 443)
V6 = (ipaddress.ip_address("2001:db8::7"), 40000)
V6_DST = (ipaddress.ip_address("2001:db8::1"), 443)


def read_v2(data: bytes) -> ProxyHeader:
    fixed = data[:V2_FIXED_LENGTH]
    return parse_v2(fixed, data[V2_FIXED_LENGTH:V2_FIXED_LENGTH + v2_payload_length(fixed)])


def refused(reason: ProxyRefusal) -> AbstractContextManager[object]:
    return pytest.raises(ProxyHeaderError, match=f"^{reason}: ")


def test_a_v1_tcp4_line_gives_the_client_and_where_it_connected() -> None:
    line = b"PROXY TCP4 81.2.69.160 192.0.2.10 51234 443\r\n"
    assert header_version(line[:PREFIX_LENGTH]) == 1
    assert parse_v1(line) == ProxyHeader(version=1, source=V4, destination=V4_DST, length=len(line))


def test_a_v1_tcp6_line_gives_an_ipv6_client() -> None:
    assert parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n").source == V6


def test_v1_unknown_is_the_balancers_own_connection() -> None:
    assert parse_v1(b"PROXY UNKNOWN\r\n").source is None
    assert parse_v1(b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n").source is None


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 81.2.69.160 192.0.2.10 51234 443\n",  # LF only
    b"PROXY TCP4 81.2.69.160 192.0.2.10 51234\r\n",  # a field missing
    b"PROXY TCP4 81.2.69.160  192.0.2.10 51234 443\r\n",  # two spaces
    b"PROXY TCP5 81.2.69.160 192.0.2.10 51234 443\r\n",
    b"PROXY TCP4 2001:db8::7 192.0.2.10 51234 443\r\n",  # the family says otherwise
    b"PROXY TCP6 81.2.69.160 2001:db8::1 51234 443\r\n",
    b"PROXY TCP4 81.2.69.999 192.0.2.10 51234 443\r\n",
    b"PROXY TCP4 081.2.69.160 192.0.2.10 51234 443\r\n",  # leading zero: ambiguous octal
    b"PROXY TCP6 fe80::1%eth0 2001:db8::1 51234 443\r\n",
    b"PROXY TCP4 81.2.69.160 192.0.2.10 65536 443\r\n",
    b"PROXY TCP4 81.2.69.160 192.0.2.10 051234 443\r\n",
    b"PROXY TCP4 81.2.69.160 192.0.2.10 +1234 443\r\n",
    b"PROXY TCP4 81.2.69.160 192.0.2.10 \xd9\xa1 443\r\n",  # not ASCII digits
    b"PROXY TCP4 " + b"1" * 100 + b"\r\n",  # longer than 107 bytes
])
def test_a_malformed_v1_line_is_refused(line: bytes) -> None:
    with refused(ProxyRefusal.MALFORMED):
        parse_v1(line)


def test_v2_ipv4_and_ipv6_are_read_back_exactly() -> None:
    assert read_v2(v2_header(V4, V4_DST)) == ProxyHeader(version=2, source=V4, destination=V4_DST, length=28)
    assert read_v2(v2_header(V6, V6_DST)).source == V6


def test_v2_tlvs_after_the_addresses_are_skipped() -> None:
    tlv = bytes((0x05,)) + struct.pack("!H", 4) + b"abcd"  # PP2_TYPE_UNIQUE_ID
    header = read_v2(v2_header(V4, V4_DST, tlvs=tlv))
    assert header.source == V4
    assert header.length == 28 + len(tlv)


def test_v2_local_is_the_balancers_own_connection() -> None:
    assert read_v2(v2_header(None, None)).source is None
    # LOCAL with addresses anyway (some balancers send them): ignored, as the specification says.
    local = bytearray(v2_header(V4, V4_DST))
    local[12] = 0x20
    assert read_v2(bytes(local)).source is None


@pytest.mark.parametrize(("family", "reason"), [
    (0x00, ProxyRefusal.UNSUPPORTED),  # AF_UNSPEC with the PROXY command: no client named
    (0x31, ProxyRefusal.UNSUPPORTED),  # AF_UNIX
    (0x12, ProxyRefusal.UNSUPPORTED),  # IPv4 datagrams
    (0x41, ProxyRefusal.MALFORMED),  # no such family
])
def test_a_v2_proxy_header_without_a_tcp_ip_client_is_refused(family: int, reason: ProxyRefusal) -> None:
    data = bytearray(v2_header(V4, V4_DST))
    data[13] = family
    with refused(reason):
        read_v2(bytes(data))


def test_v2_with_another_version_or_command_or_too_short_a_payload_is_refused() -> None:
    good = v2_header(V4, V4_DST)
    for index, value in ((12, 0x11), (12, 0x22)):
        bad = bytearray(good)
        bad[index] = value
        with refused(ProxyRefusal.MALFORMED):
            read_v2(bytes(bad))
    short = good[:14] + struct.pack("!H", 8) + good[16:24]
    with refused(ProxyRefusal.MALFORMED):
        read_v2(short)
    with refused(ProxyRefusal.TRUNCATED):
        parse_v2(good[:16], good[16:20])


def test_anything_else_is_no_header() -> None:
    for first in (b"GET / ", b"\x16\x03\x01\x02\x00\x01", b"proxy "):
        with refused(ProxyRefusal.MISSING):
            header_version(first)


def test_what_a_connection_starts_with_tells_whether_it_carries_a_header() -> None:
    assert starts_like_header(b"PROXY TCP4 ") is True
    assert starts_like_header(V2_SIGNATURE + b"\x21") is True
    assert starts_like_header(b"PRO") is None  # too few bytes to tell
    assert starts_like_header(b"\r\n\r\n") is None
    assert starts_like_header(b"") is None
    assert starts_like_header(b"GET / HTTP/1.1\r\n") is False
    assert starts_like_header(b"\x16\x03\x01") is False


@given(st.ip_addresses(), st.integers(0, 65535), st.integers(0, 65535))
def test_every_address_and_port_round_trips_through_both_versions(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address, sport: int, dport: int) -> None:
    dst = ipaddress.ip_address("192.0.2.1" if address.version == 4 else "2001:db8::1")
    assert parse_v1(v1_line((address, sport), (dst, dport))).source == (address, sport)
    assert read_v2(v2_header((address, sport), (dst, dport))).source == (address, sport)


@given(st.binary(max_size=120))
def test_no_bytes_make_the_parsers_raise_anything_but_a_refusal(data: bytes) -> None:
    for attempt in (lambda: parse_v1(data), lambda: parse_v1(b"PROXY " + data + b"\r\n"),
                    lambda: read_v2(V2_SIGNATURE + data)):
        with suppress(ProxyHeaderError):
            attempt()
