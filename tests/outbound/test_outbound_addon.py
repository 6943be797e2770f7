"""The OutboundLinks addon under mitmproxy's test context: what streams, what is rewritten, redirects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from mitmproxy import http
from mitmproxy.net.encoding import decode, encode
from mitmproxy.test import taddons, tflow

from govgate.addons.context import RequestContext
from govgate.addons.outbound_links import OutboundLinks
from govgate.core.leave_link import verify_leave
from govgate.core.policy.model import Policy, RedirectMode
from tests.addons.flows import judged, request_flow, response_to
from tests.runtime import InProcessRuntime

from .conftest import outbound_policy


@pytest.fixture
def addon(runtime: InProcessRuntime) -> Iterator[OutboundLinks]:
    a = OutboundLinks(runtime, max_rewrite_bytes=64 * 1024)
    with taddons.context(a):
        yield a


def flow_with(body: bytes, headers: dict[str, str], status: int = 200, path: str = "/news/") -> http.HTTPFlow:
    f = tflow.tflow(resp=True)
    f.request.path = path
    f.request.headers["host"] = "portal.example.gov.cn"
    f.response = http.Response.make(status, body, headers)
    return f


def run(addon: OutboundLinks, f: http.HTTPFlow) -> http.HTTPFlow:
    addon.responseheaders(f)
    if not f.response.stream:  # type: ignore[union-attr]
        addon.response(f)
    return f


def leave_target(href: str, runtime: InProcessRuntime) -> str:
    parts = urlsplit(href)
    assert parts.scheme == "https"
    assert parts.netloc == "portal.example.gov.cn"
    assert parts.path == "/__govgate/leave"
    q = parse_qs(parts.query)
    assert verify_leave(q["url"][0], q["sig"][0], runtime.keys)
    return q["url"][0]


def test_html_response_has_external_links_rewritten(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    f = run(addon, flow_with(b'<a href="http://evil.example/">x</a><a href="/oa/">y</a>',
                             {"content-type": "text/html; charset=utf-8"}))
    assert f.response is not None
    body = f.response.content or b""
    assert b'<a href="/oa/">y</a>' in body
    href = body.split(b'"')[1].decode().replace("&amp;", "&")
    assert leave_target(href, runtime) == "http://evil.example/"
    assert f.response.headers["content-length"] == str(len(body))


def test_a_large_page_under_the_cap_is_rewritten(runtime: InProcessRuntime) -> None:
    from govgate.addons.outbound_links import MAX_REWRITE_BYTES

    addon = OutboundLinks(runtime)  # the default cap (8 MiB), unlike this module's small-cap fixture
    assert addon.max_rewrite_bytes == MAX_REWRITE_BYTES
    filler = b"<p>" + "政务公开".encode() * 8192 + b"</p>"
    page = filler + b'<a href="http://evil.example/big">x</a>' + filler
    assert len(page) > 128 * 1024
    with taddons.context(addon):
        f = run(addon, flow_with(page, {"content-type": "text/html; charset=utf-8"}))
    assert f.response is not None
    body = f.response.content or b""
    assert body.startswith(filler)
    assert body.endswith(filler)
    href = body[len(filler):].split(b'"')[1].decode().replace("&amp;", "&")
    assert leave_target(href, runtime) == "http://evil.example/big"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_body_is_rewritten_and_stays_compressed(addon: OutboundLinks, encoding: str) -> None:
    raw = b"<p>" + b"x" * 1000 + b'</p><a href="https://evil.example/">x</a>'
    f = flow_with(b"", {"content-type": "text/html", "content-encoding": encoding})
    assert f.response is not None
    f.response.raw_content = encode(raw, encoding)
    run(addon, f)
    assert f.response.headers["content-encoding"] == encoding
    decoded = decode(f.response.raw_content or b"", encoding)
    assert b"/__govgate/leave?url=https://evil.example/" in decoded
    assert decoded.startswith(b"<p>" + b"x" * 1000 + b'</p><a href="')
    assert f.response.headers["content-length"] == str(len(f.response.raw_content or b""))


@pytest.mark.parametrize("ctype", ["image/png", "application/json", "text/css", "application/javascript",
                                   "text/plain"])
def test_non_html_streams_unbuffered(addon: OutboundLinks, ctype: str) -> None:
    f = flow_with(b'<a href="http://evil.example/">', {"content-type": ctype})
    addon.responseheaders(f)
    assert f.response is not None
    assert f.response.stream is True


def test_head_and_304_stream(addon: OutboundLinks) -> None:
    f = flow_with(b"", {"content-type": "text/html"}, status=304)
    addon.responseheaders(f)
    assert f.response is not None
    assert f.response.stream is True


def test_oversized_html_streams_and_is_audited_as_not_rewritten(addon: OutboundLinks,
                                                                runtime: InProcessRuntime) -> None:
    f = flow_with(b"", {"content-type": "text/html"})
    assert f.response is not None
    f.response.headers["content-length"] = str(10 * 1024 * 1024)
    addon.responseheaders(f)
    assert f.response.stream is True
    [event] = runtime.audit.events
    assert event.event == "outbound.not_rewritten"
    assert event.reason == "too_large"
    assert event.article == "Art. 15"


def test_undecodable_body_gets_502_and_an_audit_record(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    f = flow_with(b"", {"content-type": "text/html", "content-encoding": "gzip"})
    assert f.response is not None
    f.response.raw_content = b"this is not gzip <a href=http://evil.example/>"
    run(addon, f)
    assert f.response.status_code == 502
    assert [(e.decision, e.reason) for e in runtime.audit.events] == [("deny", "undecodable")]


@pytest.mark.parametrize("codings", [["gzip", "gzip"], ["gzip", "br"], ["deflate", "identity", "zstd"]])
def test_stacked_content_encodings_are_undone_and_redone_in_order(addon: OutboundLinks, runtime: InProcessRuntime,
                                                                  codings: list[str]) -> None:
    body = b'<a href="http://evil.example/">x</a>'
    raw = body
    for c in codings:
        if c != "identity":
            raw = encode(raw, c)
    f = flow_with(b"", {"content-type": "text/html"})
    assert f.response is not None
    f.response.headers["content-encoding"] = ", ".join(codings)
    f.response.raw_content = raw
    f.response.headers["content-length"] = str(len(raw))
    run(addon, f)
    assert f.response.status_code == 200
    out = f.response.raw_content or b""
    assert f.response.headers["content-length"] == str(len(out))
    for c in reversed(codings):
        if c != "identity":
            out = decode(out, c)
    assert b"/__govgate/leave?url=http://evil.example/" in out
    assert not runtime.audit.events


def test_unknown_content_encoding_gets_502(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    f = flow_with(b'<a href="http://evil.example/">x</a>', {"content-type": "text/html"})
    assert f.response is not None
    f.response.headers["content-encoding"] = "gzip, x-custom"
    run(addon, f)
    assert f.response is not None
    assert f.response.status_code == 502
    assert [e.reason for e in runtime.audit.events] == ["undecodable"]


def test_xhtml_is_rewritten_by_xml_rules(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    body = (b'<html xmlns="http://www.w3.org/1999/xhtml"><body><xmp><a href="http://evil.example/">x</a></xmp>'
            b'</body></html>')
    f = run(addon, flow_with(body, {"content-type": "application/xhtml+xml"}))
    assert f.response is not None
    assert f.response.status_code == 200
    assert b"/__govgate/leave?url=http://evil.example/" in (f.response.content or b"")
    assert not runtime.audit.events


def test_xhtml_with_an_internal_dtd_subset_gets_502(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    body = (b'<!DOCTYPE html [<!ENTITY e "&#60;a href=\'http://evil.example/\'>x&#60;/a>">]>'
            b'<html xmlns="http://www.w3.org/1999/xhtml"><body>&e;</body></html>')
    f = run(addon, flow_with(body, {"content-type": "application/xhtml+xml"}))
    assert f.response is not None
    assert f.response.status_code == 502
    assert b"evil.example" not in (f.response.content or b"")
    assert [(e.event, e.reason) for e in runtime.audit.events] == [("outbound.not_rewritten", "xhtml")]


def test_deeply_nested_srcdoc_fails_closed_with_502(runtime: InProcessRuntime) -> None:
    doc = '<a href="http://evil.example/">x</a>'
    for _ in range(400):
        doc = '<iframe srcdoc="' + doc.replace("&", "&amp;").replace('"', "&quot;") + '"></iframe>'
    addon = OutboundLinks(runtime)
    with taddons.context(addon):
        f = run(addon, flow_with(doc.encode(), {"content-type": "text/html"}))
    assert f.response is not None
    assert f.response.status_code == 502
    assert b"evil.example" not in (f.response.content or b"")
    assert [(e.decision, e.reason) for e in runtime.audit.events] == [("deny", "nesting")]


def test_any_unexpected_error_in_the_rewrite_fails_closed(runtime: InProcessRuntime) -> None:
    class Broken(OutboundLinks):
        def _urls(self, flow: http.HTTPFlow, policy: Policy) -> tuple[str, Callable[[str], str]]:
            def boom(url: str) -> str:
                raise RuntimeError("a bug")
            return "https://portal.example.gov.cn/news/", boom

    a = Broken(runtime)
    with taddons.context(a):
        f = run(a, flow_with(b'<a href="http://evil.example/">x</a>', {"content-type": "text/html"}))
    assert f.response is not None
    assert f.response.status_code == 502
    body = f.response.content or b""
    assert b"evil.example" not in body
    assert body.index("页面无法显示".encode()) < body.index(b"Page unavailable")
    assert [(e.event, e.decision, e.reason) for e in runtime.audit.events] == [
        ("outbound.not_rewritten", "deny", "error")]


@pytest.mark.parametrize("location", ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
                                      "ftp://evil.example/x"])
def test_redirects_to_non_http_schemes_are_not_signed(addon: OutboundLinks, runtime: InProcessRuntime,
                                                      location: str) -> None:
    f = run(addon, flow_with(b"", {"location": location, "refresh": f"0;url={location}"}, status=302))
    assert f.response is not None
    assert f.response.headers["location"] == location
    assert "/__govgate/leave" not in f.response.headers["refresh"]
    assert not runtime.audit.events


def test_untyped_body_that_sniffs_as_html_is_rewritten(addon: OutboundLinks) -> None:
    f = run(addon, flow_with(b'  <html><a href="http://evil.example/">', {}))
    assert f.response is not None
    assert b"/__govgate/leave?" in (f.response.content or b"")
    f = run(addon, flow_with(b'%PDF-1.7 <a href="http://evil.example/">', {}))
    assert f.response is not None
    assert f.response.content == b'%PDF-1.7 <a href="http://evil.example/">'


def test_responses_made_by_the_gate_are_left_alone(addon: OutboundLinks) -> None:
    body = b'<a href="http://evil.example/">continue</a>'
    f = flow_with(body, {"content-type": "text/html"})
    f.metadata["govgate.local"] = True
    run(addon, f)
    assert f.response is not None
    assert f.response.content == body


def test_external_redirect_goes_through_the_leave_page(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    f = run(addon, flow_with(b"", {"location": "//evil.example/x?y=1", "content-type": "text/html"}, status=302))
    assert f.response is not None
    assert leave_target(f.response.headers["location"], runtime) == "https://evil.example/x?y=1"
    assert [e.event for e in runtime.audit.events] == ["outbound.redirect"]


@pytest.mark.parametrize("location", ["/oa/", "https://www.gov.cn/", "http://a.example-partner.cn/",
                                      "https://portal.example.gov.cn:8443/x", "mailto:x@evil.example"])
def test_internal_redirects_are_untouched(addon: OutboundLinks, location: str) -> None:
    f = run(addon, flow_with(b"", {"location": location}, status=301))
    assert f.response is not None
    assert f.response.headers["location"] == location


def test_refresh_header_to_external_site_is_rewritten(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    f = run(addon, flow_with(b"ok", {"refresh": "3; url=http://evil.example/", "content-type": "text/plain"}))
    assert f.response is not None
    assert f.response.stream is True  # headers are rewritten even when the body streams
    time_part, url_part = f.response.headers["refresh"].split(";url=", 1)
    assert time_part == "3"
    assert leave_target(url_part, runtime) == "http://evil.example/"


def test_redirects_allow_leaves_location_alone(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime.with_policy(outbound_policy(redirects=RedirectMode.ALLOW)))
    with taddons.context(addon):
        f = run(addon, flow_with(b"", {"location": "http://evil.example/"}, status=302))
    assert f.response is not None
    assert f.response.headers["location"] == "http://evil.example/"


def test_insecure_gateway_makes_http_leave_links(runtime: InProcessRuntime) -> None:
    addon = OutboundLinks(runtime.with_policy(outbound_policy(insecure=True)))
    with taddons.context(addon):
        f = run(addon, flow_with(b'<a href="http://evil.example/">', {"content-type": "text/html"}))
    assert f.response is not None
    assert b'href="http://portal.example.gov.cn/__govgate/leave?url=' in (f.response.content or b"")


def test_html_streamed_by_another_addon_is_audited(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    f = flow_with(b"", {"content-type": "text/html"})
    assert f.response is not None
    f.response.stream = True
    addon.responseheaders(f)
    assert [e.reason for e in runtime.audit.events] == ["streamed"]


def stream_through(f: http.HTTPFlow, chunks: list[bytes]) -> bytes:
    """Feed chunks to the response's stream function as mitmproxy does (then b"" at the end)."""
    assert f.response is not None
    stream = f.response.stream
    assert callable(stream)
    out = [stream(c) for c in chunks]
    out.append(stream(b""))
    return b"".join(x if isinstance(x, bytes) else b"".join(x) for x in out)


def untyped_length_flow(headers: dict[str, str]) -> http.HTTPFlow:
    f = flow_with(b"", headers)
    assert f.response is not None
    del f.response.headers["content-length"]
    f.response.headers["transfer-encoding"] = "chunked"
    f.response.raw_content = None
    return f


def test_html_without_content_length_is_collected_and_rewritten(addon: OutboundLinks,
                                                                runtime: InProcessRuntime) -> None:
    f = untyped_length_flow({"content-type": "text/html"})
    addon.responseheaders(f)
    out = stream_through(f, [b'<p>x</p><a href="http://evil', b'.example/">y</a>'])
    assert b"/__govgate/leave?url=http://evil.example/" in out
    assert not runtime.audit.events


def test_gzipped_html_without_content_length_is_rewritten_and_stays_gzipped(addon: OutboundLinks) -> None:
    f = untyped_length_flow({"content-type": "text/html"})
    assert f.response is not None
    f.response.headers["content-encoding"] = "gzip"
    addon.responseheaders(f)
    raw = encode(b'<a href="http://evil.example/">y</a>', "gzip")
    out = stream_through(f, [raw[:10], raw[10:]])
    assert b"/__govgate/leave?url=http://evil.example/" in decode(out, "gzip")


def test_html_without_content_length_past_the_limit_is_dropped_not_forwarded(addon: OutboundLinks,
                                                                              runtime: InProcessRuntime) -> None:
    f = untyped_length_flow({"content-type": "text/html"})
    addon.responseheaders(f)
    chunk = b'<a href="http://evil.example/">y</a>' + b"x" * 8000
    out = stream_through(f, [chunk] * 20)  # 160 KB > the 64 KiB limit
    assert b"evil.example" not in out
    assert "页面无法显示".encode() in out
    assert [(e.event, e.decision, e.reason) for e in runtime.audit.events] == [
        ("outbound.not_rewritten", "deny", "too_large")]


def test_a_failure_while_collecting_sends_the_notice_not_the_page(addon: OutboundLinks,
                                                                  runtime: InProcessRuntime) -> None:
    f = untyped_length_flow({"content-type": "application/xhtml+xml"})
    addon.responseheaders(f)
    out = stream_through(f, [b'<!DOCTYPE html [<!ENTITY e "x">]><a href="http://evil.example/">y</a>'])
    assert b"evil.example" not in out
    assert [e.reason for e in runtime.audit.events] == ["xhtml"]


def test_a_buffered_body_without_content_length_past_the_limit_gets_502(addon: OutboundLinks,
                                                                        runtime: InProcessRuntime) -> None:
    body = b"<p>" + b"x" * (100 * 1024) + b'</p><a href="http://evil.example/">'
    f = flow_with(body, {"content-type": "text/html"})
    assert f.response is not None
    del f.response.headers["content-length"]
    addon.response(f)  # e.g. buffered by mitmproxy without our responseheaders having run
    assert f.response.status_code == 502
    assert b"evil.example" not in (f.response.content or b"")
    assert [(e.decision, e.reason) for e in runtime.audit.events] == [("deny", "too_large")]


@pytest.mark.parametrize("host", ["evil.example/x?", "a b", "", "portal.example.gov.cn@evil.example"])
def test_a_malformed_host_header_never_ends_up_in_leave_links(addon: OutboundLinks, host: str) -> None:
    f = flow_with(b'<a href="http://evil.example/">', {"content-type": "text/html"})
    f.request.headers["host"] = host
    run(addon, f)
    assert f.response is not None
    assert b'href="https://portal.example.gov.cn/__govgate/leave?url=' in (f.response.content or b"")


@pytest.mark.parametrize(("location", "destination"), [
    ("http://％65vil.example/x", "http://evil.example/x"),
    ("//www.gov.cn％2eevil.example/", "https://www.gov.cn.evil.example/"),
])
def test_a_redirect_the_spec_rejects_but_chromium_follows_goes_through_the_leave_page(
    addon: OutboundLinks, runtime: InProcessRuntime, location: str, destination: str
) -> None:
    f = run(addon, flow_with(b"", {"location": location}, status=302))
    assert f.response is not None
    assert leave_target(f.response.headers["location"], runtime) == destination


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8443", "evil.example"])
def test_a_host_header_that_is_not_a_public_host_never_ends_up_in_links(addon: OutboundLinks, host: str) -> None:
    # A cache that ignores Host would otherwise serve leave links (and redirects) naming the attacker's host.
    f = flow_with(b'<a href="http://evil.example/">e</a><a href="http://attacker.example/">a</a>',
                  {"content-type": "text/html"})
    f.request.headers["host"] = host
    run(addon, f)
    assert f.response is not None
    body = f.response.content or b""
    assert body.count(b'href="https://portal.example.gov.cn/__govgate/leave?url=') == 2  # both are off-site
    redirect = flow_with(b"", {"location": "http://" + host + "/x"}, status=302)
    redirect.request.headers["host"] = host
    run(addon, redirect)
    assert redirect.response is not None
    assert redirect.response.headers["location"].startswith("https://portal.example.gov.cn/__govgate/leave?url=")


@pytest.mark.parametrize(("host", "origin"), [
    ("portal.example.gov.cn:8443", "portal.example.gov.cn:8443"),  # the port the client reached us on
    ("PORTAL.example.gov.cn.", "PORTAL.example.gov.cn."),
    ("portal.example.gov.cn:1", "portal.example.gov.cn"),  # any other port is not written into links
])
def test_a_public_host_in_the_host_header_is_kept_with_the_port_it_reached(
    addon: OutboundLinks, host: str, origin: str
) -> None:
    f = flow_with(b'<a href="http://evil.example/">e</a>', {"content-type": "text/html"})
    f.client_conn.sockname = ("127.0.0.1", 8443)
    f.request.headers["host"] = host
    run(addon, f)
    assert f.response is not None
    assert f'href="https://{origin}/__govgate/leave?url='.encode() in (f.response.content or b"")


@pytest.mark.parametrize(("host", "origin"), [
    ("[0:0:0:0:0:0:0:1]:8443", "[0:0:0:0:0:0:0:1]:8443"),  # public_hosts' [::1], spelled as the client did
    ("[::1]", "[::1]"),
    ("[0::01]:1", "[0::01]"),
    ("[::ffff:7f00:1]", "portal.example.gov.cn"),  # not [::1]: not a public host
    ("[1:2]", "portal.example.gov.cn"),
])
def test_a_public_ipv6_host_is_recognised_in_any_spelling(runtime: InProcessRuntime, host: str, origin: str) -> None:
    addon = OutboundLinks(runtime.with_policy(outbound_policy(public_hosts=("portal.example.gov.cn", "[::1]"))))
    with taddons.context(addon):
        f = flow_with(b'<a href="http://evil.example/">e</a>', {"content-type": "text/html"})
        f.client_conn.sockname = ("::1", 8443)
        f.request.headers["host"] = host
        run(addon, f)
    assert f.response is not None
    assert f'href="https://{origin}/__govgate/leave?url='.encode() in (f.response.content or b"")


def judged_under(policy: Policy, runtime: InProcessRuntime, status: int, headers: dict[str, str]) -> tuple[
        http.HTTPFlow, RequestContext]:
    """A request judged under ``policy`` (its context's snapshot), answered by the portal."""
    f = request_flow("GET", "/news/")
    ctx = judged(runtime.with_policy(policy), f)
    return response_to(f, status, b"", headers), ctx


def test_the_request_snapshot_policy_is_used_over_a_newer_one(addon: OutboundLinks, runtime: InProcessRuntime) -> None:
    f, _ = judged_under(outbound_policy(redirects=RedirectMode.ALLOW), runtime, 302,
                        {"location": "http://evil.example/"})
    run(addon, f)
    assert f.response is not None
    assert f.response.headers["location"] == "http://evil.example/"
    f, ctx = judged_under(outbound_policy(), runtime, 200, {"content-type": "text/html"})
    assert f.response is not None
    f.response.headers["content-length"] = str(10 * 1024 * 1024)
    addon.responseheaders(f)
    assert [e.request_id for e in runtime.audit.events] == [ctx.request_id]


def test_outbound_records_carry_the_request_fields_every_addon_fills(addon: OutboundLinks,
                                                                    runtime: InProcessRuntime) -> None:
    f = request_flow("GET", "/news/a?q=secret", client="81.2.69.160", host="PORTAL.example.gov.cn:443")
    ctx = judged(runtime, f)
    response_to(f, 302, b"", {"location": "http://evil.example/"})
    run(addon, f)
    [event] = runtime.audit.events
    assert (event.request_id, event.client, event.country) == (ctx.request_id, "81.2.69.160", "GB")
    assert (event.method, event.host, event.path) == ("GET", "portal.example.gov.cn", "/news/a")
    assert (event.event, event.decision, event.reason) == ("outbound.redirect", "warn", "external_redirect")


def test_an_error_while_rewriting_a_redirect_fails_closed(runtime: InProcessRuntime) -> None:
    class Broken(OutboundLinks):
        def _urls(self, flow: http.HTTPFlow, policy: Policy) -> tuple[str, Callable[[str], str]]:
            def boom(url: str) -> str:
                raise RuntimeError("a bug")
            return "https://portal.example.gov.cn/news/", boom

    a = Broken(runtime)
    with taddons.context(a):
        f = run(a, flow_with(b"", {"location": "http://evil.example/"}, status=302))
    assert f.response is not None
    assert f.response.status_code == 502
    assert "location" not in f.response.headers
    assert [(e.decision, e.reason) for e in runtime.audit.events] == [("deny", "error")]
