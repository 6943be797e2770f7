"""The shape of a request the gate reads (``govgate.core.request_shape``), without a proxy: unambiguous targets,
request lines, header values, no body on GET/HEAD, the headers only the gate sets."""

from __future__ import annotations

import pytest

from govgate.core.request_shape import (
    body_allowed,
    connection_options,
    only_the_gate_sets,
    valid_headers,
    valid_request_line,
    valid_target,
)


@pytest.mark.parametrize(("target", "ok"), [
    (b"/", True), (b"/oa/inbox?x=1&y=%2F", True), (b"/news/a.b/..c/...", True), (b"/oa/%E5%8A%9E", True),
    (b"/oa/../news/", False), (b"/oa/..", False), (b"/./oa", False), (b"/oa/%2e%2E/x", False),
    (b"/oa/.%2e;x/y", False), (b"/a#b", False), (b"http://x/", False), (b"*", False), (b"/\xff", False),
    (b"/a b", False), (b"/news?q=../x", True),
    # A leading `//` is an authority to URL parsers (Node, the JDK, PHP): `//news/oa/x` is host news, path /oa/x.
    (b"//news/oa/x", False), (b"///news/oa/x", False), (b"//", False), (b"/news//oa/x", True),
    (b"/?x=//y", True),
    # Encoded twice, however the digits are spelled: read as /news/../oa/x by a portal that decodes twice.
    (b"/news/..%25%32%66oa/x", False), (b"/news/%25%32%65%25%32%65/oa/x", False), (b"/news/%25%32e%25%32e/oa/x", False),
    (b"/news/%252e%252e/oa/x", False), (b"/files/100%25.pdf", True), (b"/files/100%25%20off.pdf", True),
    # NUL in any spelling, as %00 is.
    (b"/news/..%c0%80/oa", False), (b"/news/a%00b", False),
])
def test_only_unambiguous_origin_form_targets_are_valid(target: bytes, ok: bool) -> None:
    assert valid_target(target) is ok


def test_control_characters_in_header_values_are_invalid() -> None:
    assert valid_headers(((b"a", b"b\tc"),))
    assert not valid_headers(((b"a", b"b\x00c"),))
    assert not valid_headers(((b"a", b"b\rc"),))


@pytest.mark.parametrize(("names", "ok"), [
    ([b"Cookie"], True), ([b"x-a", b"Accept", b"!#$%&'*+-.^_`|~09"], True), ([], True),
    ([b"Cookie "], False), ([b" Cookie"], False), ([b"Coo kie"], False), ([b"a", b""], False), ([b""], False),
    ([b"a:b"], False), ([b"a\x00b"], False), ([b"\xc3\xa9"], False), ([b"a", b"b\t"], False), ([b"(a)"], False),
])
def test_header_names_must_be_tokens(names: list[bytes], ok: bool) -> None:
    assert valid_headers(tuple((name, b"v") for name in names)) is ok


@pytest.mark.parametrize(("method", "version", "host", "ok"), [
    (b"GET", "HTTP/1.1", "portal.example.gov.cn", True), (b"GET", "HTTP/1.1", "[::1]:8443", True),
    (b"GET", "HTTP/1.0", None, True), (b"GET", "HTTP/1.1", None, False), (b"BR EW", "HTTP/1.1", "x", False),
    (b"GET", "HTTP/9.9", "x", False), (b"GET", "HTTP/1.1", "\udcff", False), (b"GET", "HTTP/1.1", "a b", False),
])
def test_only_a_token_method_a_version_we_speak_and_an_ascii_host_are_valid(method: bytes, version: str,
                                                                           host: str | None, ok: bool) -> None:
    assert valid_request_line(method, version, host) is ok


def test_a_get_or_head_carries_no_body_and_other_methods_may() -> None:
    assert body_allowed("GET", has_bytes=False, transfer_encoding=False, content_lengths=["0"])
    assert not body_allowed("get", has_bytes=True, transfer_encoding=False, content_lengths=[])
    assert not body_allowed("HEAD", has_bytes=False, transfer_encoding=True, content_lengths=[])
    assert not body_allowed("GET", has_bytes=False, transfer_encoding=False, content_lengths=["0", "5"])
    assert body_allowed("POST", has_bytes=True, transfer_encoding=True, content_lengths=["5"])


@pytest.mark.parametrize(("name", "gates"), [
    (b"X-GovGate-User", True), (b"x_govgate_groups", True), (b"X.GovGate.User", True), (b"Remote_User", True),
    (b"X-Real-IP", True), (b"X-Original-URL", True), (b"X-Portal", False), (b"Accept", False),
    (b"X-HTTP-Method-Override", True), (b"X_Forwarded_Uri", True), (b"Connection", False),
])
def test_which_headers_only_the_gate_sets(name: bytes, gates: bool) -> None:
    assert only_the_gate_sets(name) is gates


@pytest.mark.parametrize(("value", "named", "forwarded"), [
    (b"keep-alive", frozenset(), b"keep-alive"),
    (b"close, X-Forwarded-For", frozenset({b"x-forwarded-for"}), b"close"),
    (b"Upgrade, HTTP2-Settings", frozenset({b"http2-settings"}), b"upgrade"),
    (b"X-GovGate-User", frozenset({b"x-govgate-user"}), None),
    (b" , ,", frozenset(), None),
    # The headers that frame and address the request are never dropped (a body without its length would reach the
    # portal as the next request).
    (b"keep-alive, Content-Length, Transfer-Encoding, Host", frozenset(), b"keep-alive"),
])
def test_a_connection_header_is_read_as_a_proxy_must(value: bytes, named: frozenset[bytes],
                                                     forwarded: bytes | None) -> None:
    assert connection_options(value) == (named, forwarded)
