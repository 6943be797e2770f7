"""The gate's cookies (``govgate.cookies``): names on the wire, Set-Cookie values, reading, which are the gate's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy.net.http import cookies as mitmproxy_cookies

from govgate.cookies import (
    GateCookie,
    clear_cookie,
    cookie_name,
    is_gate_cookie,
    parse_cookie_headers,
    read_cookie,
    set_cookie,
    sets_gate_cookie,
)


def test_over_tls_every_gate_cookie_is_a_host_cookie_and_plain_http_uses_the_bare_name() -> None:
    assert [cookie_name(c, insecure=False) for c in GateCookie] == [
        "__Host-govgate-session", "__Host-govgate-pending", "__Host-govgate-csrf", "__Host-govgate-device"]
    assert cookie_name(GateCookie.SESSION, insecure=True) == "govgate-session"


def test_set_and_clear_cookie_values() -> None:
    assert set_cookie(GateCookie.SESSION, "v", insecure=False) == (
        "__Host-govgate-session=v; Path=/; HttpOnly; SameSite=Lax; Secure")
    assert set_cookie(GateCookie.PENDING, "p", insecure=True, max_age=300) == (
        "govgate-pending=p; Path=/; HttpOnly; SameSite=Lax; Max-Age=300")
    assert clear_cookie(GateCookie.CSRF, insecure=False) == (
        "__Host-govgate-csrf=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0")


def test_a_cookie_is_read_under_the_name_the_mode_gives_it_and_an_empty_one_is_absent() -> None:
    cookies = [("__Host-govgate-session", "tls"), ("govgate-session", "plain"), ("govgate-csrf", ""),
               ("govgate-session", "second")]  # the first of a name is the one read
    assert read_cookie(cookies, GateCookie.SESSION, insecure=False) == "tls"
    assert read_cookie(cookies, GateCookie.SESSION, insecure=True) == "plain"
    assert read_cookie(cookies, GateCookie.CSRF, insecure=True) is None
    assert read_cookie(cookies, GateCookie.DEVICE, insecure=True) is None


@pytest.mark.parametrize(("name", "gate"), [
    ("govgate-session", True), ("__Host-govgate-device", True), ("govgate-anything", True), ("portal", False),
    ("my-govgate-x", False),
])
def test_which_request_cookies_are_the_gates(name: str, gate: bool) -> None:
    assert is_gate_cookie(name) is gate


@pytest.mark.parametrize(("value", "gate"), [
    ("__Host-govgate-session=planted; Path=/; Secure", True), (" __HOST-GOVGATE-pending=x", True),
    ("__Secure-govgate-device=x", True), ("govgate-csrf=x", True), ("portal=kept; Path=/", False),
])
def test_which_set_cookie_values_would_set_a_gate_cookie(value: str, gate: bool) -> None:
    assert sets_gate_cookie(value) is gate


# The gate reads a Cookie header as browsers write it and portals read it: split at every ';', quotes or not.
_token = st.text(alphabet="abcXYZ09-_.!#$%&'*+^`|~", min_size=1, max_size=8)  # RFC 6265 cookie-name (token)
_octets = st.text(alphabet="abc09-_./:?@[]{}()<>+!#$%&'*^`|~\"", max_size=8)  # cookie-octets, and a quote


@settings(max_examples=500, deadline=None)
@given(headers=st.lists(st.lists(st.tuples(_token | st.sampled_from(["__Host-govgate-session", "govgate-csrf"]),
                                           _octets), min_size=1, max_size=4), max_size=3))
def test_a_header_as_browsers_write_it_is_read_pair_by_pair(headers: list[list[tuple[str, str]]]) -> None:
    values = ["; ".join(f"{n}={v}" for n, v in pairs) for pairs in headers]
    assert parse_cookie_headers(values) == [pair for pairs in headers for pair in pairs]
    # mitmproxy's parser reads the same where no value holds a quote (it reads a quote as the start of quoted text).
    if not any('"' in v for pairs in headers for _, v in pairs):
        theirs = mitmproxy_cookies.parse_cookie_headers(values)  # type: ignore[no-untyped-call]
        assert parse_cookie_headers(values) == [(n, v) for n, v in theirs]


@pytest.mark.parametrize(("values", "pairs"), [
    # An unclosed quote does not hide the cookies after it (mitmproxy's parser reads one cookie `a` here).
    (['a="x; __Host-govgate-session=ID; b=1'], [("a", '"x'), ("__Host-govgate-session", "ID"), ("b", "1")]),
    (['a="x;y"'], [("a", '"x'), ('y"', "")]),
    ([" a = b ;; c=d=e;\t", "f"], [("a", "b"), ("c", "d=e"), ("f", "")]),
    (["", ";", " ; "], []),
    (["=x"], [("", "x")]),
])
def test_cookie_headers_are_split_at_every_semicolon(values: list[str], pairs: list[tuple[str, str]]) -> None:
    assert parse_cookie_headers(values) == pairs
