"""Small pieces of the glue, tested without a proxy: header and cookie hygiene."""

from __future__ import annotations

from mitmproxy.test import tflow

from govgate.addons.context import strip_client_headers, strip_gate_cookies
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
