"""The warning page: 200 with host, URL, continue and back links; 400 without naming the destination."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_url, sign_leave
from govgate.core.policy.model import Policy
from govgate.pages.leave import leave_page, safe_back

from .conftest import PREFIX


def query_of(url: str, keys: GatewayKeys) -> str:
    return leave_url(PREFIX, url, keys).split("?", 1)[1]


def test_valid_link_shows_host_url_continue_and_back(policy: Policy, keys: GatewayKeys) -> None:
    url = "https://evil.example/path?a=1&b=<x>"
    view = leave_page(policy, keys, query_of(url, keys))
    body = view.page.body.decode()
    assert view.valid
    assert view.page.status == 200
    assert view.destination_host == "evil.example"
    assert '<p class="host">evil.example</p>' in body
    assert "https://evil.example/path?a=1&amp;b=&lt;x&gt;" in body
    assert re.search(r'<a class="button" href="https://evil.example/path\?a=1&amp;b=&lt;x&gt;" '
                     r'rel="noopener noreferrer"', body)
    assert 'href="/">返回' in body
    assert "<script" not in body
    assert body.index("您即将离开本网站") < body.index("You are about to leave")


def test_idn_host_is_shown_in_unicode_and_punycode(policy: Policy, keys: GatewayKeys) -> None:
    url = "https://xn--80ak6aa92e.com/"  # Cyrillic look-alike of "apple"
    body = leave_page(policy, keys, query_of(url, keys)).page.body.decode()
    assert "аррӏе.com" in body
    assert "(xn--80ak6aa92e.com)" in body


def test_mapping_query_is_accepted(policy: Policy, keys: GatewayKeys) -> None:
    url = "http://evil.example/"
    view = leave_page(policy, keys, {"url": url, "sig": sign_leave(url, keys)})
    assert view.valid


@pytest.mark.parametrize("query", [
    "", "url=http%3A%2F%2Fevil.example%2F", "sig=abc",
    "url=http%3A%2F%2Fevil.example%2F&sig=AAAA",
    "url=http%3A%2F%2Fevil.example%2F&sig=" + "A" * 43,
    "url=http%3A%2F%2Fevil.example%2F&sig=%FF%FE",
])
def test_missing_or_wrong_sig_gets_400_without_the_destination(policy: Policy, keys: GatewayKeys,
                                                               query: str) -> None:
    view = leave_page(policy, keys, query)
    body = view.page.body.decode()
    assert view.page.status == 400
    assert not view.valid
    assert "evil" not in body
    assert view.destination_host is None


def test_sig_for_another_url_or_key_is_refused(policy: Policy, keys: GatewayKeys) -> None:
    other = GatewayKeys.from_bytes(b"\x01" * 32)
    good = "http://evil.example/"
    assert not leave_page(policy, keys, urlencode({"url": good, "sig": sign_leave(good, other)})).valid
    assert not leave_page(policy, keys, urlencode({"url": good + "x", "sig": sign_leave(good, keys)})).valid
    dup = urlencode([("url", good), ("url", "http://other.example/"), ("sig", sign_leave(good, keys))])
    assert not leave_page(policy, keys, dup).valid


@pytest.mark.parametrize(("given", "expected"), [
    ("/news/1.html", "/news/1.html"), (None, "/"), ("//evil.example/", "/"), ("/\\evil.example", "/"),
    ("https://evil.example/", "/"), ("javascript:alert(1)", "/"),
])
def test_back_link_only_ever_leads_to_this_site(given: str | None, expected: str) -> None:
    assert safe_back(given) == expected


def test_mitmproxy_query_with_repeated_url_is_refused(policy: Policy, keys: GatewayKeys) -> None:
    from mitmproxy.test import tflow

    good = "http://evil.example/"
    f = tflow.tflow()
    f.request.path = "/__govgate/leave?" + urlencode([("url", good), ("sig", sign_leave(good, keys))])
    assert leave_page(policy, keys, f.request.query).valid
    f.request.path = "/__govgate/leave?" + urlencode([("url", good), ("url", "x"), ("sig", sign_leave(good, keys))])
    assert not leave_page(policy, keys, f.request.query).valid
