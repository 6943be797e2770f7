"""The rewrite cache (``govgate.core.rewrite_cache``, used by ``OutboundLinks``): a cached answer is byte for byte the
fresh rewrite, anything the rewrite depends on changing misses, only shared-cacheable responses are kept, and the byte
bound holds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.encoding import encode
from mitmproxy.test import taddons, tflow

from govgate.addons.outbound_links import OutboundLinks
from govgate.core.policy.model import RedirectMode
from govgate.core.rewrite_cache import ENTRY_OVERHEAD, CachedRewrite, RewriteCache, rewrite_key, shared_cacheable
from tests.runtime import InProcessRuntime, fixed_keys

from .conftest import outbound_policy

PAGE = b'<p>x</p><a href="http://evil.example/a">a</a><a href="/oa/">b</a><form action="https://f.example/"></form>'


def flow_with(body: bytes, headers: dict[str, str], *, path: str = "/news/", host: str = "portal.example.gov.cn",
              request_headers: dict[str, str] | None = None) -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request.path = path
    f.request.headers["host"] = host
    for name, value in (request_headers or {}).items():
        f.request.headers[name] = value
    f.response = http.Response.make(200, body, headers)
    return f


def serve(addon: OutboundLinks, f: http.HTTPFlow) -> bytes:
    addon.responseheaders(f)
    assert f.response is not None
    assert not f.response.stream
    addon.response(f)
    assert f.response.status_code == 200
    return f.response.raw_content or b""


def fresh(runtime: InProcessRuntime, f: http.HTTPFlow) -> bytes:
    """What an addon without a cache sends for ``f``."""
    plain = OutboundLinks(runtime, cache_bytes=0)
    assert plain.cache is None
    with taddons.context(plain):
        return serve(plain, f)


def test_a_page_served_again_is_answered_from_the_cache(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    with taddons.context(addon):
        first = serve(addon, flow_with(PAGE, {"content-type": "text/html"}))
        second = serve(addon, flow_with(PAGE, {"content-type": "text/html"}))
    assert b"/__govgate/leave?url=" in first
    assert second == first == fresh(runtime, flow_with(PAGE, {"content-type": "text/html"}))
    assert (addon.cache.misses, addon.cache.hits, len(addon.cache)) == (1, 1, 1)


_html_bits = st.sampled_from([
    b'<a href="http://evil.example/x">e</a>', b'<a href="/local">l</a>', b'<a href="https://www.gov.cn/">g</a>',
    b'<form action="http://f.example/p" method="post"></form>', b"<base href=\"https://other.example/\">",
    b'<meta charset="gbk">', "<p>政务公开</p>".encode(), b'<area href="//evil.example/m">', b"<!-- c -->",
    b"<a href='javascript:x'>j</a>", b'<iframe src="http://evil.example/f"></iframe>', b"text & more",
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_html_bits, max_size=8),
       content_type=st.sampled_from(["text/html", "text/html; charset=utf-8", "text/html; charset=gbk",
                                     "application/xhtml+xml", ""]),
       coding=st.sampled_from(["", "gzip", "br", "deflate", "zstd"]),
       path=st.sampled_from(["/news/", "/a/b?q=1", "/"]))
def test_the_cached_answer_is_byte_identical_to_a_fresh_rewrite(runtime: InProcessRuntime, parts: list[bytes],
                                                                 content_type: str, coding: str, path: str) -> None:
    body = b"<!doctype html><html><body>" + b"".join(parts) + b"</body></html>"
    headers = {"content-type": content_type} if content_type else {}
    raw = body
    if coding:
        raw = encode(body, coding)
        headers["content-encoding"] = coding

    def flow() -> http.HTTPFlow:
        f = flow_with(b"", headers, path=path)
        assert f.response is not None
        f.response.raw_content = raw
        f.response.headers["content-length"] = str(len(raw))
        return f

    # No taddons.context here: hypothesis runs many examples in one test, and the addon needs none.
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    outcomes = []
    for _ in range(2):
        f = flow()
        addon.responseheaders(f)
        addon.response(f)
        assert f.response is not None
        outcomes.append((f.response.status_code, f.response.raw_content))
    g = flow()
    plain = OutboundLinks(runtime, cache_bytes=0)
    plain.responseheaders(g)
    plain.response(g)
    assert g.response is not None
    assert outcomes[0] == outcomes[1] == (g.response.status_code, g.response.raw_content)
    if outcomes[0][0] == 200:
        assert addon.cache.hits == 1  # the second answer came from the cache
    else:
        assert addon.cache.hits == 0
        assert len(addon.cache) == 0


def test_a_changed_body_url_type_or_coding_misses(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    variants: list[Callable[[], http.HTTPFlow]] = [
        lambda: flow_with(PAGE, {"content-type": "text/html"}),
        lambda: flow_with(PAGE + b" ", {"content-type": "text/html"}),
        lambda: flow_with(PAGE, {"content-type": "text/html"}, path="/news/other"),
        lambda: flow_with(PAGE, {"content-type": "text/html"}, path="/news/?q=1"),
        lambda: flow_with(PAGE, {"content-type": "text/html; charset=gbk"}),
        lambda: flow_with(PAGE, {"content-type": "application/xhtml+xml"}),
        # (Response.make encodes the body by its Content-Encoding: a gzip-coded page)
        lambda: flow_with(PAGE, {"content-type": "text/html", "content-encoding": "gzip"}),
        lambda: flow_with(PAGE.replace(b'"/oa/"', b'"oa/"'), {"content-type": "text/html"}),
        lambda: flow_with(PAGE.replace(b'"/oa/"', b'"oa/"'), {"content-type": "text/html"}, path="/other/"),
    ]
    with taddons.context(addon):
        outputs = [serve(addon, make()) for make in variants]
    assert (addon.cache.hits, addon.cache.misses) == (0, len(variants))
    # and each is what a fresh rewrite gives for its own inputs
    assert outputs == [fresh(runtime, make()) for make in variants]


def test_the_origin_the_browser_used_is_part_of_the_key() -> None:
    runtime = InProcessRuntime(policy=outbound_policy(public_hosts=("portal.example.gov.cn", "www.example.gov.cn")))
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    with taddons.context(addon):
        a = serve(addon, flow_with(PAGE, {"content-type": "text/html"}))
        b = serve(addon, flow_with(PAGE, {"content-type": "text/html"}, host="www.example.gov.cn"))
    assert addon.cache.hits == 0
    assert b"https://portal.example.gov.cn/__govgate/leave" in a
    assert b"https://www.example.gov.cn/__govgate/leave" in b


def test_a_policy_reload_or_other_keys_empty_the_cache(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime)
    cache = addon.cache
    assert cache is not None
    with taddons.context(addon):
        before = serve(addon, flow_with(PAGE, {"content-type": "text/html"}))
        assert len(cache) == 1
        # A reload gives a new policy object, here one that lets evil.example through.
        reloaded = outbound_policy()
        reloaded = dataclasses.replace(reloaded, outbound=dataclasses.replace(
            reloaded.outbound, allow_hosts=(*reloaded.outbound.allow_hosts, "evil.example")))
        runtime.policy = reloaded
        after_reload = serve(addon, flow_with(PAGE, {"content-type": "text/html"}))
        assert cache.hits == 0
        assert b'href="http://evil.example/a"' in after_reload
        assert b'href="http://evil.example/a"' not in before
        runtime.keys = fixed_keys(b"k" * 32)
        after_keys = serve(addon, flow_with(PAGE, {"content-type": "text/html"}))
    assert cache.hits == 0
    assert len(cache) == 1
    assert after_keys != after_reload
    assert after_keys == fresh(runtime, flow_with(PAGE, {"content-type": "text/html"}))


@pytest.mark.parametrize(("response_headers", "request_headers"), [
    ({"cache-control": "private"}, {}),
    ({"cache-control": "max-age=60, no-store"}, {}),
    ({"cache-control": 'PRIVATE="set-cookie"'}, {}),
    ({"set-cookie": "a=b"}, {}),
    ({}, {"authorization": "Basic eDp5"}),
    ({}, {"x-govgate-user": "zhangsan"}),  # what the gate sets on a forwarded staff request
])
def test_responses_a_shared_cache_could_not_store_are_not_kept(runtime: InProcessRuntime,
                                                                 response_headers: dict[str, str],
                                                                 request_headers: dict[str, str]) -> None:
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    headers = {"content-type": "text/html", **response_headers}
    with taddons.context(addon):
        outs = [serve(addon, flow_with(PAGE, headers, request_headers=request_headers)) for _ in range(2)]
    assert len(addon.cache) == 0
    assert addon.cache.hits == 0
    assert outs[0] == outs[1]
    assert b"/__govgate/leave?url=" in outs[0]


def test_no_cache_and_public_responses_are_kept(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    with taddons.context(addon):
        serve(addon, flow_with(PAGE, {"content-type": "text/html", "cache-control": "no-cache, public"}))
    assert len(addon.cache) == 1


def test_shared_cacheable() -> None:
    assert shared_cacheable(cache_control="", set_cookie=False, authorization=False, staff=False)
    assert shared_cacheable(cache_control="public, max-age=0, no-cache", set_cookie=False, authorization=False,
                            staff=False)
    assert not shared_cacheable(cache_control="no-store", set_cookie=False, authorization=False, staff=False)
    assert not shared_cacheable(cache_control=" Private ", set_cookie=False, authorization=False, staff=False)
    assert not shared_cacheable(cache_control="", set_cookie=True, authorization=False, staff=False)
    assert not shared_cacheable(cache_control="", set_cookie=False, authorization=True, staff=False)
    assert not shared_cacheable(cache_control="", set_cookie=False, authorization=False, staff=True)


def test_the_key_separates_its_fields() -> None:
    base = {"content_type": "text/html", "content_encoding": "", "document_url": "https://a/x", "prefix": "/p"}
    keys = {rewrite_key(**base),
            rewrite_key(**{**base, "content_type": "text/htm"}),
            rewrite_key(**{**base, "content_encoding": "gzip"}),
            rewrite_key(**{**base, "document_url": "https://a/y"}),
            rewrite_key(**{**base, "prefix": "/q"}),
            # moving bytes from one field to the next is another key
            rewrite_key(**{**base, "document_url": "https://a/", "prefix": "x/p"})}
    assert len(keys) == 6


def test_an_entry_answers_only_the_body_it_was_made_from() -> None:
    cache = RewriteCache()
    cache.bind(object, object)
    key = rewrite_key(content_type="text/html", content_encoding="", document_url="https://a/x", prefix="/p")
    entry = CachedRewrite(b"body", b"out", 1, 1, "utf-8")
    cache.put(key, entry)
    assert cache.get(key, b"body") == entry
    assert cache.get(key, bytes(bytearray(b"body"))) == entry  # equal bytes, another object
    for other in (b"body!", b"bod", b"Body", b""):
        assert cache.get(key, other) is None
    cache.put(key, CachedRewrite(b"body!", None, 0, 0, "utf-8"))  # the last version rewritten replaces the first
    assert cache.get(key, b"body") is None
    assert cache.get(key, b"body!") is not None
    assert len(cache) == 1


@settings(max_examples=200)
@given(ops=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3000)), max_size=60),
       bound=st.integers(0, 8000))
def test_the_byte_bound_holds(ops: list[tuple[int, int]], bound: int) -> None:
    cache = RewriteCache(bound)
    cache.bind(object, object)
    for name, size in ops:
        key = (str(name), "", "", "")
        entry = CachedRewrite(b"r" * (size // 3), b"x" * size, 1, 1, "utf-8")
        cache.put(key, entry)
        assert cache.size <= bound
        assert cache.size == sum(e.size for e in cache._entries.values())
        if entry.size <= bound:
            assert cache.get(key, entry.raw) == entry  # the newest entry is kept whenever it fits at all
        else:
            assert cache.get(key, entry.raw) != entry  # too large for the whole cache: never kept


def test_least_recently_used_goes_first() -> None:
    cache = RewriteCache(3 * (110 + ENTRY_OVERHEAD))
    cache.bind(object, object)
    for name in "abc":
        cache.put((name, "", "", ""), CachedRewrite(b"r" * 10, b"x" * 100, 1, 1, "utf-8"))
    assert cache.get(("a", "", "", ""), b"r" * 10) is not None  # a is now the most recently used
    cache.put(("d", "", "", ""), CachedRewrite(b"r" * 10, b"x" * 100, 1, 1, "utf-8"))
    assert cache.get(("b", "", "", ""), b"r" * 10) is None
    assert all(cache.get((k, "", "", ""), b"r" * 10) is not None for k in "acd")


def test_the_addons_cache_is_bounded_by_its_bytes(runtime: InProcessRuntime) -> None:
    limit = 4 * (2 * len(PAGE) + 200 + ENTRY_OVERHEAD)
    addon = OutboundLinks(runtime, cache_bytes=limit)
    assert addon.cache is not None
    with taddons.context(addon):
        for i in range(40):
            serve(addon, flow_with(PAGE, {"content-type": "text/html"}, path=f"/p{i}"))
            assert addon.cache.size <= limit
    assert 0 < len(addon.cache) < 40


def test_redirect_mode_allow_still_caches(runtime: InProcessRuntime) -> None:
    runtime.policy = outbound_policy(redirects=RedirectMode.ALLOW)
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    with taddons.context(addon):
        outs = [serve(addon, flow_with(PAGE, {"content-type": "text/html"})) for _ in range(2)]
    assert outs[0] == outs[1]
    assert addon.cache.hits == 1


def test_a_page_that_fails_is_refused_and_audited_every_time(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime)
    assert addon.cache is not None
    page = b'<base href="https://a.example/"><base href="https://b.example/"><a href="x">x</a>'
    with taddons.context(addon):
        for _ in range(3):
            f = flow_with(page, {"content-type": "application/xhtml+xml"})
            addon.responseheaders(f)
            addon.response(f)
            assert f.response is not None
            assert f.response.status_code == 502
    assert len(addon.cache) == 0
    assert [(e.event, e.decision, e.reason) for e in runtime.audit.events] == \
        [("outbound.not_rewritten", "deny", "ambiguous_base")] * 3
