"""Small pieces of the glue, tested without a proxy: header and cookie hygiene."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.net.http import cookies as mitmproxy_cookies
from mitmproxy.test import tflow

from govgate.addons.context import (
    READ_HEADERS,
    gate_cookie,
    read_headers,
    request_cookies,
    strip_client_headers,
    strip_gate_cookies,
)
from govgate.addons.gate import IDENTITY_HEADERS, forward_headers
from govgate.cookies import GateCookie, cookie_name, cookie_part_name, cookie_parts, is_gate_cookie
from govgate.core.decide import AccountFacts
from govgate.core.policy.model import Policy
from tests.addons.flows import judged, request_flow
from tests.runtime import InProcessRuntime


def test_client_headers_the_gate_owns_are_stripped_in_any_spelling() -> None:
    f = tflow.tflow()
    for name in ("X-GovGate-User", "x_govgate_groups", "X-GOVGATE-DEVICE", "Forwarded", "X-Real-IP",
                 "X.GovGate.User", "X-GovGateUser", "Remote-User", "remote_user", "X-Forwarded-User",
                 "Client-IP", "X-Cluster-Client-IP", "X-Original-Forwarded-For", "X-Original-URL", "X-Rewrite-URL"):
        f.request.headers[name] = "spoofed"
    f.request.headers["X-Portal"] = "kept"
    strip_client_headers(f.request.headers)
    assert set(f.request.headers.keys()) == {"header", "content-length", "X-Portal"}


def test_gate_cookies_are_removed_and_others_kept() -> None:
    f = tflow.tflow()
    f.request.headers["cookie"] = "govgate-session=s; a=1; __Host-govgate-csrf=c"
    strip_gate_cookies(f.request)
    assert f.request.headers["cookie"] == "a=1"
    f.request.headers["cookie"] = "govgate-session=s"
    strip_gate_cookies(f.request)
    assert "cookie" not in f.request.headers


def test_the_portal_cannot_set_the_gates_cookies() -> None:
    from mitmproxy import http

    from govgate.addons.security_headers import strip_gate_set_cookies

    response = http.Response.make(200, b"", [
        (b"Set-Cookie", b"__Host-govgate-session=planted; Path=/; Secure"),
        (b"Set-Cookie", b"portal=kept; Path=/"),
        (b"Set-Cookie", b"govgate-csrf=planted"),
        (b"Set-Cookie", b" __HOST-GOVGATE-pending=planted"),
        (b"Set-Cookie", b"__Secure-govgate-device=planted"),
    ])
    strip_gate_set_cookies(response)
    assert response.headers.get_all("set-cookie") == ["portal=kept; Path=/"]


def test_the_gates_own_pages_keep_their_cookies() -> None:
    from govgate.addons.context import LOCAL_KEY
    from govgate.addons.security_headers import SecurityHeaders

    f = tflow.tflow(resp=True)
    assert f.response is not None
    f.response.headers["Set-Cookie"] = "govgate-csrf=ours"
    f.metadata[LOCAL_KEY] = True
    headers = SecurityHeaders(InProcessRuntime())
    headers.responseheaders(f)
    assert f.response.headers["set-cookie"] == "govgate-csrf=ours"
    f.metadata.pop(LOCAL_KEY)
    headers.responseheaders(f)
    assert "set-cookie" not in f.response.headers


# The request's cookies are read once per request (``request_cookies``) and asked of several times; what each
# answer must be is what mitmproxy's own cookie view gives, which the gate read before: property tests against it.
_cookie_names = st.sampled_from(["a", "b", "govgate-session", "__Host-govgate-session", "__Host-govgate-device",
                                 "govgate-csrf", "__host-govgate-pending", "__Host-govgate-x", "govgate", "__Host-a"])
_cookie_values = st.text(alphabet="abc=;\" ,=x", max_size=5)
_cookie_headers = st.lists(
    st.lists(st.tuples(_cookie_names, _cookie_values), max_size=4).map(
        lambda pairs: "; ".join(f"{n}={v}" for n, v in pairs)),
    max_size=3)


def _with_cookies(headers: list[str]) -> http.Request:
    request = tflow.tflow().request
    for value in headers:
        request.headers.add("cookie", value)
    return request


@settings(max_examples=500, deadline=None)
@given(headers=_cookie_headers, other=st.lists(st.tuples(st.sampled_from(["x-a", "Cookie2"]), _cookie_values),
                                               max_size=2), spelling=st.sampled_from(["cookie", "Cookie", "COOKIE"]))
def test_no_part_of_a_gate_cookie_reaches_the_portal_and_every_other_part_does(
        headers: list[str], other: list[tuple[str, str]], spelling: str) -> None:
    request = tflow.tflow().request
    for value in headers:
        request.headers.add(spelling, value)
    for name, value in other:
        request.headers.add(name, value)
    before = request.headers.fields
    values = [v.decode() for k, v in before if k.lower() == b"cookie"]
    strip_gate_cookies(request, request_cookies(request))
    after = request.headers.fields
    cookies = [v.decode() for k, v in after if k.lower() == b"cookie"]
    # However the portal reads it (split at ';' as most servers do, or honouring quotes as mitmproxy does), no
    # gate cookie is left.
    assert not any(is_gate_cookie(cookie_part_name(part)) for part in cookie_parts(cookies))
    theirs = mitmproxy_cookies.parse_cookie_headers(cookies)  # type: ignore[no-untyped-call]
    assert not any(is_gate_cookie(name.strip()) for name, _ in theirs)
    # Every other part goes on, in order; the other fields are untouched.
    assert cookie_parts(cookies) == [p for p in cookie_parts(values) if not is_gate_cookie(cookie_part_name(p))]
    assert [f for f in after if f[0].lower() != b"cookie"] == [f for f in before if f[0].lower() != b"cookie"]
    if not any(is_gate_cookie(cookie_part_name(p)) for p in cookie_parts(values)):
        assert after == before  # nothing of the gate's: the request goes on exactly as it came
    else:
        assert len(cookies) <= 1


def test_a_quote_cannot_hide_the_session_from_the_gate_or_carry_it_to_the_portal() -> None:
    # A cookie planted with an unclosed quote (by the portal, or a sibling host's Domain cookie sent first) made
    # mitmproxy's parser read the rest of the header as its value: the gate saw no session, and forwarded it.
    ctx = judged(InProcessRuntime(), request_flow())
    name = cookie_name(GateCookie.SESSION, insecure=ctx.snapshot.policy.gateway.insecure)
    request = _with_cookies([f'a="x; {name}=REAL; b=1'])
    flow = tflow.tflow(req=request)
    pairs = request_cookies(request)
    assert gate_cookie(flow, ctx, GateCookie.SESSION, pairs) == gate_cookie(flow, ctx, GateCookie.SESSION) == "REAL"
    strip_gate_cookies(request, pairs)
    assert request.headers.get_all("cookie") == ['a="x; b=1']


@settings(max_examples=300, deadline=None)
@given(headers=_cookie_headers, insecure=st.booleans(), cookie=st.sampled_from(list(GateCookie)))
def test_a_gate_cookie_is_the_first_of_its_name_with_or_without_the_pairs_read_before(
        headers: list[str], insecure: bool, cookie: GateCookie) -> None:
    request = _with_cookies(headers)
    pairs = request_cookies(request)
    flow = tflow.tflow(req=request)
    runtime = InProcessRuntime()
    ctx = judged(runtime, request_flow())
    ctx = replace(ctx, snapshot=replace(ctx.snapshot, policy=_insecure(ctx.snapshot.policy, insecure)))
    first = next((v for n, v in pairs if n == cookie_name(cookie, insecure=insecure)), None)
    assert gate_cookie(flow, ctx, cookie, pairs) == gate_cookie(flow, ctx, cookie) == (first or None)


def _insecure(policy: Policy, insecure: bool) -> Policy:
    return replace(policy, gateway=replace(policy.gateway, insecure=insecure))


_header_names = st.sampled_from(["X-GovGate-User", "x-govgate-groups", "X-GOVGATE-DEVICE", "Cookie", "Accept", "x-a"])


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(_header_names, st.text(alphabet="ab=; ", max_size=6)), max_size=6),
       cookie_headers=_cookie_headers, name=st.sampled_from(["zhangsan", "李四"]),
       groups=st.frozensets(st.sampled_from(["staff", "hr", "财务"]), max_size=3),
       device=st.sampled_from([None, "laptop-1"]), with_account=st.booleans())
def test_forward_headers_are_what_setting_each_header_gave(fields: list[tuple[str, str]], cookie_headers: list[str],
                                                           name: str, groups: frozenset[str], device: str | None,
                                                           with_account: bool) -> None:
    ours, theirs = _with_cookies(cookie_headers), _with_cookies(cookie_headers)
    for key, value in fields:
        ours.headers.add(key, value)
        theirs.headers.add(key, value)
    account = AccountFacts(name=name, groups=groups, disabled=False, expires=None, locked_until=None,
                           devices=frozenset()) if with_account else None
    forward_headers(ours, request_cookies(ours), account, device)
    # The reference: what the gate did before, one header at a time.
    strip_gate_cookies(theirs)
    if account is not None:
        theirs.headers["X-GovGate-User"] = account.name
        theirs.headers["X-GovGate-Groups"] = ",".join(sorted(account.groups))
    if device is not None:
        theirs.headers["X-GovGate-Device"] = device

    def identity(request: http.Request) -> dict[bytes, list[bytes]]:
        return {n: [v for k, v in request.headers.fields if k.lower() == n] for n in IDENTITY_HEADERS}

    # The same fields, the identity headers perhaps elsewhere in the order (a header's position means nothing).
    assert [f for f in ours.headers.fields if f[0].lower() not in IDENTITY_HEADERS] == [
        f for f in theirs.headers.fields if f[0].lower() not in IDENTITY_HEADERS]
    assert identity(ours) == identity(theirs)
    if account is not None:
        assert ours.headers.get_all("x-govgate-user") == [name]


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.tuples(st.sampled_from(["Accept", "accept", "X-Forwarded-For", "x-forwarded-FOR",
                                                  "Content-Length", "Transfer-Encoding", "Host", "X-Other"]),
                                 st.text(alphabet="ab0,; /\u00e9", max_size=6)), max_size=8))
def test_headers_read_in_one_pass_are_what_mitmproxy_reads(fields: list[tuple[str, str]]) -> None:
    headers = http.Headers([(n.encode(), v.encode()) for n, v in fields])
    read = read_headers(headers.fields)
    for name in READ_HEADERS:
        key = name.decode()
        assert read.get(name, []) == headers.get_all(key)
        assert (name in read) == (key in headers)
        assert (", ".join(read[name]) if name in read else None) == headers.get(key)
