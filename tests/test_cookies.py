"""The gate's cookies (``govgate.cookies``): names on the wire, Set-Cookie values, reading, which are the gate's."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
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
    cookies = {"__Host-govgate-session": "tls", "govgate-session": "plain", "govgate-csrf": ""}
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


# A Cookie header is read by mitmproxy's parser; headers without a quote take a faster path that must read the same
# pairs, whatever the separators, spaces (any Unicode whitespace: the parser strips with str.lstrip) and equals.
_cookie_text = st.text(alphabet=st.sampled_from(list('ab=; \t"\\,\u3000\x0b\x85中')), max_size=24)


@settings(max_examples=3000, deadline=None)
@given(values=st.lists(_cookie_text | st.text(max_size=12), max_size=3))
@example(values=["a=b; c=d=e", " =x;  y ;;", "a=b;", "a=", "=", ";", "", "\u3000a=b", 'a="b;c"; d=e', 'a"=b; c=d'])
def test_reading_cookie_headers_is_mitmproxys_parser(values: list[str]) -> None:
    theirs = mitmproxy_cookies.parse_cookie_headers(values)  # type: ignore[no-untyped-call]
    assert parse_cookie_headers(values) == [(name, value) for name, value in theirs]
