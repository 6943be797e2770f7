"""The warning pages: 200 with host, URL, continue and back links; 400 without naming the destination. For a link
(``leave``) and for a form's target (``leave-form``), submitted by GET or by POST."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from govgate.core.keys import GatewayKeys
from govgate.core.leave_link import leave_form_url, leave_url, sign_leave, verify_leave_form
from govgate.core.next_path import back_path
from govgate.core.policy.model import Policy
from govgate.pages.leave import leave_form_page, leave_page, safe_back

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


# -- Back: the page the link was on ------------------------------------------------------------------------

PUBLIC = ("portal.example.gov.cn", "localhost", "[::1]")


@pytest.mark.parametrize(("referer", "expected"), [
    ("https://portal.example.gov.cn/news/2026/notice.html?page=2", "/news/2026/notice.html?page=2"),
    ("http://PORTAL.example.gov.cn.:8443/news/", "/news/"),  # any spelling of a public host, any port
    ("http://[0:0:0:0:0:0:0:1]:8443/a", "/a"),
    ("https://portal.example.gov.cn/news/#part", "/news/"),
    ("https://portal.example.gov.cn/新闻/", "/%E6%96%B0%E9%97%BB/"),
    ("https://evil.example/news/", "/"),  # another site: never a way there
    ("https://portal.example.gov.cn.evil.example/news/", "/"),
    ("https://user:pw@portal.example.gov.cn/news/", "/"),
    ("https://portal.example.gov.cn//evil.example/", "/"),
    ("https://portal.example.gov.cn/\\evil.example", "/"),
    ("https://portal.example.gov.cn/__govgate/login?next=/oa/", "/"),  # no gate page to go back to
    ("ftp://portal.example.gov.cn/x", "/"),
    ("javascript:history.back()", "/"),
    ("", "/"), (None, "/"), ("not a url", "/"),
])
def test_back_is_the_referring_page_on_this_site_and_never_another(referer: str | None, expected: str) -> None:
    assert back_path(referer, PUBLIC, PREFIX) == expected


def test_the_back_link_is_written_into_the_page(policy: Policy, keys: GatewayKeys) -> None:
    body = leave_page(policy, keys, query_of("https://evil.example/", keys), back="/news/?a=1&b=2").page.body
    assert b'<a class="button secondary" href="/news/?a=1&amp;b=2">' in body


# -- a form's target --------------------------------------------------------------------------------------

def form_rest(url: str, keys: GatewayKeys, charset: str = "UTF-8") -> str:
    path = leave_form_url(PREFIX, url, charset, keys)
    assert path.startswith(f"{PREFIX}/leave-form/{charset}/")
    assert "?" not in path
    assert "#" not in path
    return path.removeprefix(f"{PREFIX}/leave-form/")


def test_a_form_target_carries_its_destination_and_charset_signed(keys: GatewayKeys) -> None:
    url = "https://search.example.org/find?site=portal#top"
    assert verify_leave_form(form_rest(url, keys, "GBK"), keys) == (url, "GBK")
    _charset, encoded, sig = form_rest(url, keys, "GBK").split("/")
    other = GatewayKeys.from_bytes(b"\x01" * 32)
    assert verify_leave_form(form_rest(url, other, "GBK"), keys) is None  # another gateway's
    assert verify_leave_form(f"UTF-8/{encoded}/{sig}", keys) is None  # charset changed
    forged = form_rest("https://evil.example/", keys).split("/")[1]
    assert verify_leave_form(f"GBK/{forged}/{sig}", keys) is None  # destination changed
    assert verify_leave_form(f"GBK/{encoded}", keys) is None
    assert verify_leave_form(f"GBK/{encoded}/{sig}/x", keys) is None
    # A link's sig is no form's: the two are made under different keys.
    assert verify_leave_form(f"UTF-8/{encoded}/{sign_leave(url, keys)}", keys) is None
    with pytest.raises(ValueError, match="http"):
        leave_form_url(PREFIX, "javascript:alert(1)", "UTF-8", keys)
    with pytest.raises(ValueError, match="encoding"):
        leave_form_url(PREFIX, url, "GBK/../x", keys)


def test_a_get_form_shows_the_destination_with_the_submitted_fields(keys: GatewayKeys) -> None:
    url = "https://search.example.org/search?site=portal"
    view = leave_form_page(keys, form_rest(url, keys), method="GET", query="q=%E4%B8%AD%E6%96%87&lang=zh",
                           back="/news/forms.html")
    body = view.page.body.decode()
    assert (view.valid, view.form, view.destination_host) == (True, "get", "search.example.org")
    full = "https://search.example.org/search?q=%E4%B8%AD%E6%96%87&amp;lang=zh"  # the form's query replaced the URL's
    assert f'<p class="url">{full}</p>' in body
    assert f'<a class="button" href="{full}" rel="noopener noreferrer"' in body
    assert '<p class="host">search.example.org</p>' in body
    assert 'href="/news/forms.html">返回 Back' in body
    assert "site=portal" not in body
    assert "<script" not in body


def test_a_get_form_target_opened_without_a_query_shows_the_target_as_it_was(keys: GatewayKeys) -> None:
    url = "https://search.example.org/search?site=portal"
    body = leave_form_page(keys, form_rest(url, keys), method="GET", query=None).page.body.decode()
    assert "https://search.example.org/search?site=portal" in body


def test_a_query_cannot_move_the_destination_elsewhere(keys: GatewayKeys) -> None:
    url = "https://search.example.org/search"
    for query in ("a=1#@evil.example", "/../../@evil.example/", "x=%2F%2Fevil.example"):
        view = leave_form_page(keys, form_rest(url, keys), method="GET", query=query)
        assert view.destination_host == "search.example.org"
        href = re.search(r'<a class="button" href="([^"]+)"', view.page.body.decode())
        assert href is not None
        assert href.group(1).startswith("https://search.example.org/search?")


def test_a_post_form_is_written_into_a_continue_form_with_the_same_fields(keys: GatewayKeys) -> None:
    url = "https://partner.example.org/feedback?form=1"
    body = urlencode([("text", 'line 1\r\nline "2" <b>'), ("topic", "办事服务 & 咨询"), ("text", "again")],
                     encoding="gbk").encode()
    view = leave_form_page(keys, form_rest(url, keys, "GBK"), method="POST", query=None, body=body,
                           content_type="application/x-www-form-urlencoded")
    page = view.page.body.decode()
    assert (view.valid, view.form, view.fields, view.not_carried) == (True, "post", 3, None)
    assert ('<form method="post" action="https://partner.example.org/feedback?form=1" '
            'enctype="application/x-www-form-urlencoded" accept-charset="GBK">') in page
    assert ('<input type="hidden" name="text" value="line 1&#13;&#10;line &quot;2&quot; &lt;b&gt;">'
            '<input type="hidden" name="topic" value="办事服务 &amp; 咨询">'
            '<input type="hidden" name="text" value="again">') in page
    assert '<button type="submit">继续提交 Continue</button>' in page
    csp = dict(view.page.headers)["Content-Security-Policy"]
    assert "form-action 'self' http: https:;" in csp
    assert "script-src" not in csp
    assert "default-src 'none'" in csp


def test_a_post_form_that_cannot_be_carried_says_why_and_offers_only_back(keys: GatewayKeys) -> None:
    url = "https://partner.example.org/signup"
    body = (b'--b\r\nContent-Disposition: form-data; name="f"; filename="id.pdf"\r\n\r\n%PDF\r\n--b--\r\n')
    view = leave_form_page(keys, form_rest(url, keys), method="POST", query=None, body=body,
                           content_type="multipart/form-data; boundary=b")
    page = view.page.body.decode()
    assert (view.valid, view.not_carried, view.fields) == (True, "file", None)
    assert "<form" not in page
    assert "网关无法代为转交文件" in page
    assert "cannot pass on" in page
    assert "partner.example.org" in page
    assert dict(view.page.headers)["Content-Security-Policy"].count("form-action 'self';") == 1


def test_a_compressed_post_body_is_not_inflated_or_carried(keys: GatewayKeys) -> None:
    view = leave_form_page(keys, form_rest("https://partner.example.org/x", keys), method="POST", query=None,
                           body=b"\x1f\x8b...", content_type="application/x-www-form-urlencoded",
                           content_encoding="gzip")
    assert view.not_carried == "kind"


@pytest.mark.parametrize("rest", ["", "UTF-8", "UTF-8/aHR0cHM6Ly9ldmlsLmV4YW1wbGUv/AAAA",
                                  "UTF-8/aHR0cHM6Ly9ldmlsLmV4YW1wbGUv/" + "A" * 43, "x/y/z", "%/%/%"])
def test_a_form_target_without_our_sig_gets_400_without_the_destination(keys: GatewayKeys, rest: str) -> None:
    for method in ("GET", "POST"):
        view = leave_form_page(keys, rest, method=method, query="q=1", body=b"a=1",
                               content_type="application/x-www-form-urlencoded")
        assert view.page.status == 400
        assert not view.valid
        assert b"evil" not in view.page.body
